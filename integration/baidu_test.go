package integration

import (
	"testing"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/mpsim"
)

// The simulator's Baidu demo app (App Key and App Secret).
const (
	bdApp    = "bddemoappkey0000000000000000001"
	bdSecret = "demo-baidu-secret"
)

// Baidu through the real Caddy: login (X-Mp-Openid, X-Mp-Platform baidu),
// a used code refused, the decrypt route (AES-192-CBC frame with the app
// key trailer), the phone route ("mobile"), and a payload whose trailer is
// another app key's refused.
func TestBaiduLoginDecryptPhone(t *testing.T) {
	e := newEnv(t, "baidu")
	lr := login(t, e.sim, bdApp, "li")
	wantOK(t, postJSON(t, e.url("/api/login"), map[string]any{"code": lr.Code}, "X-Mp-Openid", "spoofed", "X-Mp-Platform", "wechat"))
	got := e.up.Last(t)
	if got.Header.Get("X-Mp-Openid") != lr.OpenID || got.Header.Get("X-Mp-Platform") != "baidu" {
		t.Fatalf("login headers: openid %q platform %q (want %q, baidu)", got.Header.Get("X-Mp-Openid"), got.Header.Get("X-Mp-Platform"), lr.OpenID)
	}
	if b := got.JSON(t); b["openid"] != lr.OpenID {
		t.Fatalf("login body %v", b)
	}

	// A code Baidu refuses (invalid_grant) is invalid_code.
	wantError(t, postJSON(t, e.url("/api/login"), map[string]any{"code": "made-up-code"}), 401, "invalid_code")

	// Decrypt route.
	ed, iv, err := e.sim.Encrypt(bdApp, "li", map[string]any{"nickname": "li", "sex": 1}, mpsim.EncryptOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wantOK(t, postJSON(t, e.url("/api/decrypt"), map[string]any{"code": lr.Code, "encryptedData": ed, "iv": iv, "decryptedData": "evil"}))
	b := e.up.Last(t).JSON(t)
	dd, ok := b["decryptedData"].(map[string]any)
	if !ok || dd["nickname"] != "li" || dd["sex"] != float64(1) || len(dd) != 2 {
		t.Fatalf("decryptedData %v", b["decryptedData"])
	}
	if b["openid"] != lr.OpenID {
		t.Fatalf("openid %v", b["openid"])
	}

	// Phone route: {"mobile"} → phoneNumber and purePhoneNumber, no
	// country code.
	ed, iv, err = e.sim.EncryptPhone(bdApp, "li", "13800138007")
	if err != nil {
		t.Fatal(err)
	}
	wantOK(t, postJSON(t, e.url("/api/phone"), map[string]any{"code": lr.Code, "encryptedData": ed, "iv": iv}, "X-Mp-Phone", "13900000000"))
	up := e.up.Last(t)
	if up.Header.Get("X-Mp-Phone") != "13800138007" || up.Header.Get("X-Mp-Pure-Phone") != "13800138007" || up.Header.Get("X-Mp-Country-Code") != "" {
		t.Fatalf("phone headers %v", up.Header)
	}
	if pb := up.JSON(t); pb["phoneNumber"] != "13800138007" || pb["openid"] != lr.OpenID {
		t.Fatalf("phone body %v", pb)
	}

	// Another app key's trailer, under this user's own session key:
	// refused on both routes, nothing reaches the upstream.
	n := e.up.Count()
	ed, iv, err = e.sim.Encrypt(bdApp, "li", map[string]any{"mobile": "13800138007"}, mpsim.EncryptOptions{WatermarkAppID: "bdotherappkey000000000000000002"})
	if err != nil {
		t.Fatal(err)
	}
	wantError(t, postJSON(t, e.url("/api/phone"), map[string]any{"code": lr.Code, "encryptedData": ed, "iv": iv}), 422, "decrypt_failed")
	wantError(t, postJSON(t, e.url("/api/decrypt"), map[string]any{"code": lr.Code, "encryptedData": ed, "iv": iv}), 422, "decrypt_failed")
	// Not base64: refused before any session lookup.
	wantError(t, postJSON(t, e.url("/api/decrypt"), map[string]any{"code": lr.Code, "encryptedData": ed[:len(ed)-4] + "%%", "iv": iv}), 400, "malformed_payload")
	if e.up.Count() != n {
		t.Fatal("a refused payload reached the upstream")
	}
}
