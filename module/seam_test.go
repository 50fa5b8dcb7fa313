package module

import (
	"slices"
	"strings"
	"testing"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/platform"
)

// The handler decides by the platform's descriptor, never by its name:
// every registered platform's compat dialect is one the handler serves,
// and its identity fields are protected.
func TestPlatformSeam(t *testing.T) {
	for _, name := range platform.Names() {
		d, _ := platform.Lookup(name)
		if _, ok := compatDialects[d.Compat]; d.Compat != "" && !ok {
			t.Errorf("%s: compat dialect %q is not served", name, d.Compat)
		}
		for _, f := range d.IdentityFields {
			if !slices.Contains(identityFields, f) {
				t.Errorf("%s: identity field %q is not protected", name, f)
			}
		}
	}
	// The names the login route injects are among the protected ones.
	for _, f := range []string{FieldOpenID, FieldUnionID, platform.FieldAnonymousOpenID} {
		if !slices.Contains(identityFields, f) {
			t.Errorf("%q is not protected", f)
		}
	}
	err := CheckPlatform("taobao")
	if err == nil || !strings.Contains(err.Error(), `unknown platform "taobao" (want `+platform.OrList(platform.Names())+`)`) || !strings.Contains(err.Error(), "(want wechat, douyin") {
		t.Errorf("CheckPlatform(taobao) = %v", err)
	}
}

// A platform with no capabilities (what a newly registered one declares
// before it says otherwise) gets none of another platform's: no compat
// endpoints, no private_key, no access_token, no anonymous code.
func TestPlatformWithoutCapabilities(t *testing.T) {
	bare := &platform.Descriptor{Name: "bare", Title: "Bare"}
	h := &Handler{Platform: "bare", desc: bare, Compat: &CompatConfig{Prefix: "/mp-compat"}}
	if err := h.validateCompat(); err == nil || !strings.Contains(err.Error(), `platform "bare" has no compat endpoints`) {
		t.Errorf("compat: %v", err)
	}
	h = &Handler{Platform: "bare", desc: bare, PrivateKey: "k.pem"}
	if err := h.validatePrivateKey(); err == nil || !strings.Contains(err.Error(), `is for platform douyin or alipay (its phone-code answers are RSA-encrypted, or its API calls are signed), not "bare"`) {
		t.Errorf("private_key: %v", err)
	}
	h = &Handler{Platform: "bare", desc: bare, AccessToken: &AccessTokenConfig{}}
	if err := h.validateAccessToken(); err == nil || !strings.Contains(err.Error(), `access_token is for platform wechat only (Bare has no server token), not "bare"`) {
		t.Errorf("access_token: %v", err)
	}
	if h.phoneCodeCall() == "" {
		t.Error("no name for a phone-code call")
	}
	// Douyin's messages are those it always had.
	h = &Handler{Platform: platform.Douyin, AccessToken: &AccessTokenConfig{}}
	if err := h.validateAccessToken(); err == nil || !strings.Contains(err.Error(), `access_token is for platform wechat only (Douyin's client token needs no configuration), not "douyin"`) {
		t.Errorf("access_token on douyin: %v", err)
	}
	h = &Handler{Platform: platform.WeChat, PrivateKey: "k.pem"}
	if err := h.validatePrivateKey(); err == nil || !strings.Contains(err.Error(), `is for platform douyin or alipay (its phone-code answers are RSA-encrypted, or its API calls are signed), not "wechat"`) {
		t.Errorf("private_key on wechat: %v", err)
	}
}
