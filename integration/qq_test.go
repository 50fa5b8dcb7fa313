package integration

import (
	"strings"
	"testing"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/mpsim"
)

// The simulator's QQ demo app.
const (
	qqApp    = "qqdemoapp0000001"
	qqSecret = "demo-qq-secret"
)

// spoofed are identity headers a client tries to set; none may reach the
// upstream as sent.
var spoofed = []string{
	"X-Mp-Platform", "wechat",
	"X-Mp-App-Id", wxApp,
	"X-Mp-Openid", "spoofed-openid",
	"X-Mp-Unionid", "spoofed-unionid",
	"X-Mp-Phone", "13900000000",
}

// A QQ app through the real Caddy: login against the simulator's QQ
// jscode2session, then a phone payload and a decrypt payload encrypted
// with the session key QQ gave, watermarked with the QQ app id. The
// upstream sees X-Mp-Platform: qq and the QQ identity whatever the client
// sent; a WeChat app's code and a payload watermarked for another app are
// refused.
func TestQQLoginPhoneDecrypt(t *testing.T) {
	e := newEnv(t, "qq")
	checkIdentity := func(what string, got Recorded, openid string) {
		t.Helper()
		h := got.Header
		if h.Get("X-Mp-Platform") != "qq" || h.Get("X-Mp-App-Id") != qqApp || h.Get("X-Mp-Openid") != openid {
			t.Fatalf("%s: platform %q, app id %q, openid %q (want qq, %s, %s)", what,
				h.Get("X-Mp-Platform"), h.Get("X-Mp-App-Id"), h.Get("X-Mp-Openid"), qqApp, openid)
		}
		if h.Get("X-Mp-Unionid") != "" {
			t.Fatalf("%s: X-Mp-Unionid %q reached the upstream (the QQ demo app has none)", what, h.Get("X-Mp-Unionid"))
		}
		if vs := h.Values("X-Mp-Platform"); len(vs) != 1 {
			t.Fatalf("%s: X-Mp-Platform %q", what, vs)
		}
	}

	lr := login(t, e.sim, qqApp, "qiu")
	wantOK(t, postJSON(t, e.url("/api/login"), map[string]any{"code": lr.Code}, spoofed...))
	got := e.up.Last(t)
	checkIdentity("login", got, lr.OpenID)
	if got.Header.Get("X-Mp-Phone") != "" {
		t.Fatal("login: a client-sent X-Mp-Phone reached the upstream")
	}
	if b := got.JSON(t); b["openid"] != lr.OpenID {
		t.Fatalf("login body %v", b)
	}
	if n := e.sim.Calls(mpsim.EndpointJSCode2Session); n != 1 {
		t.Fatalf("jscode2session calls %d, want 1", n)
	}

	ed, iv := phonePayload(t, e.sim, qqApp, "qiu", "13800138300")
	wantOK(t, postJSON(t, e.url("/api/phone"), map[string]any{"code": lr.Code, "encryptedData": ed, "iv": iv}, spoofed...))
	got = e.up.Last(t)
	checkIdentity("phone", got, lr.OpenID)
	if got.Header.Get("X-Mp-Phone") != "13800138300" || got.Header.Get("X-Mp-Country-Code") != "86" {
		t.Fatalf("phone headers %v", got.Header)
	}
	if b := got.JSON(t); b["phoneNumber"] != "13800138300" {
		t.Fatalf("phone body %v", b)
	}

	ed, iv, err := e.sim.Encrypt(qqApp, "qiu", map[string]any{"nickName": "秋", "openId": lr.OpenID}, mpsim.EncryptOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wantOK(t, postJSON(t, e.url("/api/decrypt"), map[string]any{"code": lr.Code, "encryptedData": ed, "iv": iv, "decryptedData": "evil"}, spoofed...))
	got = e.up.Last(t)
	checkIdentity("decrypt", got, lr.OpenID)
	if got.Header.Get("X-Mp-Phone") != "" {
		t.Fatal("decrypt: a client-sent X-Mp-Phone reached the upstream")
	}
	dd, ok := got.JSON(t)["decryptedData"].(map[string]any)
	if !ok || dd["nickName"] != "秋" || dd["openId"] != lr.OpenID {
		t.Fatalf("decryptedData %v", got.JSON(t)["decryptedData"])
	}
	if wm, _ := dd["watermark"].(map[string]any); wm["appid"] != qqApp {
		t.Fatalf("watermark %v", dd["watermark"])
	}

	// Another app's watermark is refused.
	ed, iv, err = e.sim.Encrypt(qqApp, "qiu", map[string]any{"x": 1}, mpsim.EncryptOptions{WatermarkAppID: wxApp})
	if err != nil {
		t.Fatal(err)
	}
	before := e.up.Count()
	wantError(t, postJSON(t, e.url("/api/decrypt"), map[string]any{"code": lr.Code, "encryptedData": ed, "iv": iv}), 422, "watermark_mismatch")
	// A WeChat app's login code is not a QQ app's.
	wx := login(t, e.sim, wxApp, "qiu")
	wantError(t, postJSON(t, e.url("/api/login"), map[string]any{"code": wx.Code}, spoofed...), 401, "invalid_code")
	if e.up.Count() != before {
		t.Fatal("a refused request reached the upstream")
	}

	e.caddy.Stop()
	noSecrets(t, e.caddy.Logs(), lr.Code, wx.Code, qqSecret, "13800138300")
}

// What QQ does not have is refused, not borrowed from WeChat: a phone code
// alone on the phone route (400: the route wants encryptedData/iv; no
// platform call), and
// access_token, private_key and compat in the configuration.
func TestQQWithoutWeChatCapabilities(t *testing.T) {
	e := newEnv(t, "qq")
	lr := login(t, e.sim, qqApp, "qin")
	wantOK(t, postJSON(t, e.url("/api/login"), map[string]any{"code": lr.Code}))
	calls := e.sim.Calls(mpsim.EndpointGetUserPhoneNumber) + e.sim.Calls(mpsim.EndpointToken) + e.sim.Calls(mpsim.EndpointStableToken)
	m := wantError(t, postJSON(t, e.url("/api/phone"), map[string]any{"code": "a-phone-code-of-some-kind"}), 400, "bad_request")
	if msg, _ := m["message"].(string); !strings.Contains(msg, `no "encryptedData" and "iv"`) {
		t.Fatalf("message %q", msg)
	}
	if n := e.sim.Calls(mpsim.EndpointGetUserPhoneNumber) + e.sim.Calls(mpsim.EndpointToken) + e.sim.Calls(mpsim.EndpointStableToken); n != calls {
		t.Fatalf("%d WeChat phone/token calls", n-calls)
	}

	for _, c := range []struct{ extra, want string }{
		{"access_token classic", "is for platform wechat only (QQ has no server token)"},
		{"private_key /etc/caddy/app_private.pem", `private_key: is for platform douyin or alipay (its phone-code answers are RSA-encrypted, or its API calls are signed), not \"qq\"`},
		{"compat /mp-compat", `platform \"qq\" has no compat endpoints`},
	} {
		out := caddyFailsToStart(t, site(freePort(t), freePort(t), mpBlock("qq", qqApp, qqSecret, e.sim.URL, c.extra)+"\n\trespond ok"))
		if !strings.Contains(out, c.want) {
			t.Errorf("%s: caddy said:\n%s", c.extra, out)
		}
	}
}
