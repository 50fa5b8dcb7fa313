package integration

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/mpsim"
)

// The phone requests real front ends send (README, "Front-end shapes").
func TestPhoneFrontEndShapes(t *testing.T) {
	e := newEnv(t, "wechat")
	lr := login(t, e.sim, wxApp, "shape")
	wantOK(t, postJSON(t, e.url("/api/login"), map[string]any{"code": lr.Code}))

	t.Run("e.detail whole: phone code with encryptedData and iv", func(t *testing.T) {
		btn, err := e.sim.PhoneButton(wxApp, "shape", "13800138201")
		if err != nil {
			t.Fatal(err)
		}
		calls := e.sim.Calls("getuserphonenumber")
		wantOK(t, postJSON(t, e.url("/api/phone"), map[string]any{
			"errMsg": btn.ErrMsg, "code": btn.Code, "encryptedData": btn.EncryptedData, "iv": btn.IV, "cloudID": btn.CloudID}))
		wantPhoneHeaders(t, e.up.Last(t), "13800138201", "")
		if got := e.sim.Calls("getuserphonenumber") - calls; got != 1 {
			t.Fatalf("getuserphonenumber calls %d, want 1", got)
		}
		// The same e.detail again (a double tap): the same number, no
		// second exchange.
		wantOK(t, postJSON(t, e.url("/api/phone"), map[string]any{
			"errMsg": btn.ErrMsg, "code": btn.Code, "encryptedData": btn.EncryptedData, "iv": btn.IV, "cloudID": btn.CloudID}))
		wantPhoneHeaders(t, e.up.Last(t), "13800138201", "")
		if got := e.sim.Calls("getuserphonenumber") - calls; got != 1 {
			t.Fatalf("getuserphonenumber calls %d after a retry, want 1", got)
		}
	})

	t.Run("legacy: login code with encryptedData: no platform call", func(t *testing.T) {
		ed, iv := phonePayload(t, e.sim, wxApp, "shape", "13800138202")
		calls := e.sim.Calls("getuserphonenumber")
		wantOK(t, postJSON(t, e.url("/api/phone"), map[string]any{"code": lr.Code, "encryptedData": ed, "iv": iv}))
		wantPhoneHeaders(t, e.up.Last(t), "13800138202", lr.OpenID)
		if got := e.sim.Calls("getuserphonenumber") - calls; got != 0 {
			t.Fatalf("getuserphonenumber calls %d, want 0", got)
		}
	})

	t.Run("GET with the fields in the query: headers only", func(t *testing.T) {
		ed, iv := phonePayload(t, e.sim, wxApp, "shape", "13800138203")
		q := url.Values{"code": {lr.Code}, "encryptedData": {ed}, "iv": {iv}, "openid": {"evil"}, "phoneNumber": {"evil"}}
		wantOK(t, do(t, http.MethodGet, e.url("/api/phone?"+q.Encode()), "", nil))
		got := e.up.Last(t)
		wantPhoneHeaders(t, got, "13800138203", lr.OpenID)
		for _, k := range []string{"openid", "phoneNumber", "encryptedData", "iv"} {
			if got.Query.Has(k) {
				t.Errorf("the forwarded query still has %q: %v", k, got.Query)
			}
		}
		if got.Query.Get("code") != lr.Code || len(got.Body) != 0 {
			t.Errorf("forwarded query %v, body %q", got.Query, got.Body)
		}
	})

	t.Run("GET with damaged base64 (a '+' turned into a space, URL-safe, unpadded)", func(t *testing.T) {
		ed, iv := phonePayload(t, e.sim, wxApp, "shape", "13800138204")
		damaged := strings.TrimRight(strings.NewReplacer("+", "-", "/", "_").Replace(ed), "=")
		raw := "code=" + url.QueryEscape(lr.Code) + "&encryptedData=" + damaged + "&iv=" + strings.ReplaceAll(iv, "+", " ")
		wantOK(t, do(t, http.MethodGet, e.url("/api/phone?"+strings.ReplaceAll(raw, " ", "+")), "", nil))
		wantPhoneHeaders(t, e.up.Last(t), "13800138204", lr.OpenID)
	})

	t.Run("a stale code with a payload: session_not_found", func(t *testing.T) {
		ed, iv := phonePayload(t, e.sim, wxApp, "shape", "13800138205")
		wantError(t, postJSON(t, e.url("/api/phone"), map[string]any{"code": "not-a-login-or-phone-code", "encryptedData": ed, "iv": iv}), 401, "session_not_found")
	})
}

// decrypt_watermark optional: payloads without a watermark pass on the
// decrypt route when they have two blocks or more; a foreign watermark and
// a one-block payload are still refused; the phone route still requires it.
func TestDecryptWatermarkOptional(t *testing.T) {
	e := newEnv(t, "wechat", "decrypt_watermark optional")
	lr := login(t, e.sim, wxApp, "werun")
	wantOK(t, postJSON(t, e.url("/api/login"), map[string]any{"code": lr.Code}))
	enc := func(data map[string]any, opt mpsim.EncryptOptions) (string, string) {
		ed, iv, err := e.sim.Encrypt(wxApp, "werun", data, opt)
		if err != nil {
			t.Fatal(err)
		}
		return ed, iv
	}
	ed, iv := enc(map[string]any{"stepInfoList": []any{map[string]any{"timestamp": 1, "step": 1200}}}, mpsim.EncryptOptions{NoWatermark: true})
	wantOK(t, postJSON(t, e.url("/api/decrypt"), map[string]any{"code": lr.Code, "encryptedData": ed, "iv": iv}))
	if dd, _ := e.up.Last(t).JSON(t)["decryptedData"].(map[string]any); dd["stepInfoList"] == nil {
		t.Fatalf("decryptedData %v", dd)
	}
	// One block without a watermark: refused.
	ed, iv = enc(map[string]any{"a": 1}, mpsim.EncryptOptions{NoWatermark: true})
	if raw, _ := base64.StdEncoding.DecodeString(ed); len(raw) != 16 {
		t.Fatalf("test payload has %d bytes, want one block", len(raw))
	}
	wantError(t, postJSON(t, e.url("/api/decrypt"), map[string]any{"code": lr.Code, "encryptedData": ed, "iv": iv}), 422, "watermark_mismatch")
	// Another app's watermark: refused.
	ed, iv = enc(map[string]any{"stepInfoList": []any{}}, mpsim.EncryptOptions{WatermarkAppID: "wx0000000000other"})
	wantError(t, postJSON(t, e.url("/api/decrypt"), map[string]any{"code": lr.Code, "encryptedData": ed, "iv": iv}), 422, "watermark_mismatch")
	// The simulator's WeRun data (no watermark, as wx.getWeRunData's own
	// documentation shows it).
	ed, iv, err := e.sim.WeRun(wxApp, "werun", nil)
	if err != nil {
		t.Fatal(err)
	}
	wantOK(t, postJSON(t, e.url("/api/decrypt"), map[string]any{"code": lr.Code, "encryptedData": ed, "iv": iv}))
	// The phone route requires it.
	ed, iv = enc(map[string]any{"phoneNumber": "13800138299", "purePhoneNumber": "13800138299", "countryCode": "86"}, mpsim.EncryptOptions{NoWatermark: true})
	wantError(t, postJSON(t, e.url("/api/phone"), map[string]any{"code": lr.Code, "encryptedData": ed, "iv": iv}), 422, "watermark_mismatch")
}

// With the session known (the login code in its own field), the openid
// goes with the phone code: another user's phone code is refused.
func TestPhoneCodeOfAnotherUser(t *testing.T) {
	e := newEnv(t, "wechat", "field phone_code phone_code")
	a := login(t, e.sim, wxApp, "ann")
	wantOK(t, postJSON(t, e.url("/api/login"), map[string]any{"code": a.Code}))
	login(t, e.sim, wxApp, "bob")
	bobs := phoneCode(t, e.sim, "bob", "13800138301")
	calls := e.sim.Calls("getuserphonenumber")
	wantError(t, postJSON(t, e.url("/api/phone"), map[string]any{"code": a.Code, "phone_code": bobs}), 401, "invalid_code")
	if got := e.sim.Calls("getuserphonenumber") - calls; got != 1 {
		t.Fatalf("getuserphonenumber calls %d, want 1", got)
	}
	// Ann's own phone code passes, with her openid.
	anns := phoneCode(t, e.sim, "ann", "13800138302")
	wantOK(t, postJSON(t, e.url("/api/phone"), map[string]any{"code": a.Code, "phone_code": anns}))
	wantPhoneHeaders(t, e.up.Last(t), "13800138302", a.OpenID)
}
