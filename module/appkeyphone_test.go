package module

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/mpsim"
)

// The rules of private_key, platform_public_key and aes_key, by the
// descriptor (Alipay: SignedAPI and AppKeyPayloads), JSON alike.
func TestAppKeyRules(t *testing.T) {
	dir := t.TempDir()
	pub := filepath.Join(dir, "alipay.pem")
	if err := os.WriteFile(pub, []byte(mpsim.AlipayPublicKeyPEM()), 0o600); err != nil {
		t.Fatal(err)
	}
	const ap = `"platform":"alipay","app_id":"2021000000000001",`
	const keys = `"private_key":"k.pem","platform_public_key":"p.pem",`
	for _, c := range []struct{ json, field, says string }{
		{`{` + ap + `"platform_public_key":"p.pem","login":"/l"}`, "private_key", "is required for platform alipay"},
		{`{` + ap + `"private_key":"k.pem","login":"/l"}`, "platform_public_key", "is required for platform alipay"},
		{`{` + ap + keys + `"login":"/l","phone":"/p"}`, "aes_key", "is required by the phone route"},
		{`{` + ap + keys + `"aes_key":"aYA0GP8JEW+D7/UFaskCWA==","login":"/l","decrypt":"/d"}`, "decrypt", "Alipay has no decrypt route"},
		{`{` + ap + keys + `"aes_key":"c2hvcnQ=","login":"/l","phone":"/p"}`, "aes_key", "5 bytes once decoded"},
		{`{` + ap + keys + `"aes_key":"not base64!","login":"/l","phone":"/p"}`, "aes_key", "not base64"},
		{`{"platform":"wechat","app_id":"wx1","app_secret":"s","login":"/l","aes_key":"aYA0GP8JEW+D7/UFaskCWA=="}`, "aes_key", "is for platform alipay"},
		{`{"platform":"wechat","app_id":"wx1","app_secret":"s","login":"/l","platform_public_key":"p.pem"}`, "platform_public_key", "is for platform alipay"},
		{`{"platform":"alipay","app_id":"2021000000000001","private_key":"/nonexistent/k.pem","platform_public_key":"` + pub + `","login":"/l"}`, "private_key", "cannot read"},
	} {
		_, err := provisionJSON(t, c.json)
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != c.field || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%s: %v, want %s: …%s…", c.json, err, c.field, c.says)
		}
	}
	// app_secret is not required for a signed API (no "missing required").
	_, err := provisionJSON(t, `{`+ap+`"private_key":"/nonexistent/k.pem","platform_public_key":"p.pem","login":"/l"}`)
	if err == nil || strings.Contains(err.Error(), "missing required") {
		t.Errorf("alipay without app_secret: %v", err)
	}
}
