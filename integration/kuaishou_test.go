package integration

import (
	"strings"
	"testing"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/mpsim"
)

// The simulator's Kuaishou demo app.
const (
	ksApp    = "ks000000000000001"
	ksSecret = "demo-kuaishou-secret"
)

// Kuaishou through the real Caddy: login (X-Mp-Openid, X-Mp-Platform
// kuaishou, spoofed headers replaced), a used or made-up code refused
// (invalid_code), the decrypt route and the phone route (WeChat-style
// payloads, watermarked), another app's watermark refused.
func TestKuaishouLoginDecryptPhone(t *testing.T) {
	e := newEnv(t, "kuaishou")
	lr := login(t, e.sim, ksApp, "kim")
	calls := e.sim.Calls("jscode2session")
	wantOK(t, postJSON(t, e.url("/api/login"), map[string]any{"code": lr.Code}, "X-Mp-Openid", "spoofed", "X-Mp-Platform", "wechat", "X-Mp-Unionid", "spoofed-union"))
	got := e.up.Last(t)
	if got.Header.Get("X-Mp-Openid") != lr.OpenID || got.Header.Get("X-Mp-Platform") != "kuaishou" || got.Header.Get("X-Mp-Unionid") != "" {
		t.Fatalf("login headers: openid %q platform %q unionid %q (want %q, kuaishou, none)", got.Header.Get("X-Mp-Openid"), got.Header.Get("X-Mp-Platform"), got.Header.Get("X-Mp-Unionid"), lr.OpenID)
	}
	if b := got.JSON(t); b["openid"] != lr.OpenID {
		t.Fatalf("login body %v", b)
	}
	if n := e.sim.Calls("jscode2session"); n != calls+1 {
		t.Fatalf("%d code2session calls, want 1", n-calls)
	}

	// A code Kuaishou refuses (invalid_grant) is invalid_code, and nothing
	// reaches the upstream.
	n := e.up.Count()
	wantError(t, postJSON(t, e.url("/api/login"), map[string]any{"code": "made-up-code"}), 401, "invalid_code")
	if e.up.Count() != n {
		t.Fatal("a refused login reached the upstream")
	}

	// Decrypt route.
	ed, iv, err := e.sim.Encrypt(ksApp, "kim", map[string]any{"nickName": "kim", "gender": 1}, mpsim.EncryptOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wantOK(t, postJSON(t, e.url("/api/decrypt"), map[string]any{"code": lr.Code, "encryptedData": ed, "iv": iv, "decryptedData": "evil"}, "X-Mp-Platform", "qq"))
	up := e.up.Last(t)
	b := up.JSON(t)
	dd, ok := b["decryptedData"].(map[string]any)
	if !ok || dd["nickName"] != "kim" || dd["gender"] != float64(1) {
		t.Fatalf("decryptedData %v", b["decryptedData"])
	}
	if b["openid"] != lr.OpenID || up.Header.Get("X-Mp-Platform") != "kuaishou" {
		t.Fatalf("openid %v, platform %q", b["openid"], up.Header.Get("X-Mp-Platform"))
	}

	// Phone route: the encryptedData of getPhoneNumber.
	ed, iv, err = e.sim.EncryptPhone(ksApp, "kim", "13800138008")
	if err != nil {
		t.Fatal(err)
	}
	wantOK(t, postJSON(t, e.url("/api/phone"), map[string]any{"code": lr.Code, "encryptedData": ed, "iv": iv}, "X-Mp-Phone", "13900000000"))
	up = e.up.Last(t)
	if up.Header.Get("X-Mp-Phone") != "13800138008" || up.Header.Get("X-Mp-Pure-Phone") != "13800138008" || up.Header.Get("X-Mp-Country-Code") != "86" || up.Header.Get("X-Mp-Platform") != "kuaishou" {
		t.Fatalf("phone headers %v", up.Header)
	}
	if pb := up.JSON(t); pb["phoneNumber"] != "13800138008" || pb["openid"] != lr.OpenID {
		t.Fatalf("phone body %v", pb)
	}

	// Another app's watermark, under this user's own session key: refused
	// on both routes; a payload without a watermark is refused too (the
	// default, decrypt_watermark required).
	n = e.up.Count()
	ed, iv, err = e.sim.Encrypt(ksApp, "kim", map[string]any{"phoneNumber": "13800138008", "purePhoneNumber": "13800138008", "countryCode": "86"}, mpsim.EncryptOptions{WatermarkAppID: "ks000000000000002"})
	if err != nil {
		t.Fatal(err)
	}
	wantError(t, postJSON(t, e.url("/api/phone"), map[string]any{"code": lr.Code, "encryptedData": ed, "iv": iv}), 422, "watermark_mismatch")
	wantError(t, postJSON(t, e.url("/api/decrypt"), map[string]any{"code": lr.Code, "encryptedData": ed, "iv": iv}), 422, "watermark_mismatch")
	ed, iv, err = e.sim.Encrypt(ksApp, "kim", map[string]any{"nickName": "kim", "gender": 1, "city": "Beijing"}, mpsim.EncryptOptions{NoWatermark: true})
	if err != nil {
		t.Fatal(err)
	}
	wantError(t, postJSON(t, e.url("/api/decrypt"), map[string]any{"code": lr.Code, "encryptedData": ed, "iv": iv}), 422, "watermark_mismatch")
	if e.up.Count() != n {
		t.Fatal("a refused payload reached the upstream")
	}
}

// decrypt_watermark optional is the switch for payloads without a
// watermark (whether Kuaishou's carry one is unconfirmed): they then pass
// on the decrypt route; another app's watermark is still refused.
func TestKuaishouWatermarkOptional(t *testing.T) {
	e := newEnv(t, "kuaishou", "decrypt_watermark optional")
	lr := login(t, e.sim, ksApp, "lee")
	wantOK(t, postJSON(t, e.url("/api/login"), map[string]any{"code": lr.Code}))
	ed, iv, err := e.sim.Encrypt(ksApp, "lee", map[string]any{"nickName": "lee", "gender": 2, "city": "Shanghai"}, mpsim.EncryptOptions{NoWatermark: true})
	if err != nil {
		t.Fatal(err)
	}
	wantOK(t, postJSON(t, e.url("/api/decrypt"), map[string]any{"code": lr.Code, "encryptedData": ed, "iv": iv}))
	if dd, _ := e.up.Last(t).JSON(t)["decryptedData"].(map[string]any); dd["nickName"] != "lee" {
		t.Fatalf("decryptedData %v", dd)
	}
	ed, iv, err = e.sim.Encrypt(ksApp, "lee", map[string]any{"nickName": "lee", "gender": 2, "city": "Shanghai"}, mpsim.EncryptOptions{WatermarkAppID: "ks000000000000002"})
	if err != nil {
		t.Fatal(err)
	}
	wantError(t, postJSON(t, e.url("/api/decrypt"), map[string]any{"code": lr.Code, "encryptedData": ed, "iv": iv}), 422, "watermark_mismatch")
}

// Kuaishou has no phone-code exchange, server token or compat endpoints:
// a phone code alone is a bad request (no platform call), and the
// options for them are refused at load.
func TestKuaishouWithoutWeChatCapabilities(t *testing.T) {
	e := newEnv(t, "kuaishou")
	lr := login(t, e.sim, ksApp, "kai")
	wantOK(t, postJSON(t, e.url("/api/login"), map[string]any{"code": lr.Code}))
	calls := e.sim.Calls(mpsim.EndpointGetUserPhoneNumber) + e.sim.Calls(mpsim.EndpointToken) + e.sim.Calls(mpsim.EndpointStableToken) + e.sim.Calls(mpsim.EndpointJSCode2Session)
	m := wantError(t, postJSON(t, e.url("/api/phone"), map[string]any{"code": "a-phone-code-of-some-kind"}), 400, "bad_request")
	if msg, _ := m["message"].(string); !strings.Contains(msg, `no "encryptedData" and "iv"`) {
		t.Fatalf("message %q", msg)
	}
	if n := e.sim.Calls(mpsim.EndpointGetUserPhoneNumber) + e.sim.Calls(mpsim.EndpointToken) + e.sim.Calls(mpsim.EndpointStableToken) + e.sim.Calls(mpsim.EndpointJSCode2Session); n != calls {
		t.Fatalf("%d platform calls", n-calls)
	}
	for _, c := range []struct{ extra, want string }{
		{"access_token classic", "is for platform wechat only"},
		{"private_key /etc/caddy/app_private.pem", `not \"kuaishou\"`},
		{"compat /mp-compat", `platform \"kuaishou\" has no compat endpoints`},
	} {
		out := caddyFailsToStart(t, site(freePort(t), freePort(t), mpBlock("kuaishou", ksApp, ksSecret, e.sim.URL, c.extra)+"\n\trespond ok"))
		if !strings.Contains(out, c.want) {
			t.Errorf("%s: caddy said:\n%s", c.extra, out)
		}
	}
}
