package mpsim

import (
	"errors"
	"regexp"
	"strings"
	"testing"
)

const (
	qqApp    = "qqdemoapp0000001"
	qqSecret = "demo-qq-secret"
)

var qqIDRe = regexp.MustCompile(`^[0-9A-F]{32}$`)

// QQ's jscode2session is WeChat's path on the same origin: a QQ app's
// exchange gives QQ's identities, a WeChat app's WeChat's, and neither
// app's code is taken by the other.
func TestQQCode2Session(t *testing.T) {
	e := newEnv(t, Options{Quirks: exact, Apps: append(DemoApps(), App{Platform: QQ, AppID: "qqunion", Secret: "s3", UnionID: true})})
	lr := e.login(qqApp, "alice")
	if !qqIDRe.MatchString(lr.OpenID) || lr.UnionID != "" {
		t.Fatalf("login result %+v", lr)
	}
	st, raw := e.do("GET", "/sns/jscode2session?"+q("appid", qqApp, "secret", qqSecret, "js_code", lr.Code, "grant_type", "authorization_code"), nil)
	if st != 200 || strings.Contains(string(raw), "errcode") {
		t.Fatalf("status %d, body %s", st, raw)
	}
	m := decodeObj(t, raw)
	if str(m, "openid") != lr.OpenID || str(m, "session_key") == "" || len(m) != 2 {
		t.Fatalf("body %v", m)
	}
	// Single use: 40163, as WeChat.
	wantErrcode(t, e.wxExchange(qqApp, qqSecret, lr.Code), 40163)

	// The session key it gave decrypts what Encrypt makes, watermarked.
	ed, iv, err := e.sim.EncryptPhone(qqApp, "alice", "13800138000")
	if err != nil {
		t.Fatal(err)
	}
	d, err := decrypt(str(m, "session_key"), ed, iv)
	if err != nil || d["phoneNumber"] != "13800138000" {
		t.Fatalf("decrypt: %v %v", d, err)
	}
	if wm, _ := d["watermark"].(map[string]any); wm["appid"] != qqApp {
		t.Fatalf("watermark %v", d["watermark"])
	}

	// A unionid app gives one.
	lu := e.login("qqunion", "alice")
	if !strings.HasPrefix(lu.UnionID, "UID_") {
		t.Fatalf("unionid %q", lu.UnionID)
	}
	if m := e.wxExchange("qqunion", "s3", lu.Code); str(m, "unionid") != lu.UnionID {
		t.Fatalf("unionid answer %v", m)
	}

	// Codes do not cross platforms, nor do secrets.
	wx := e.login(wxApp, "alice")
	wantErrcode(t, e.wxExchange(qqApp, qqSecret, wx.Code), 40029)
	qq := e.login(qqApp, "bob")
	wantErrcode(t, e.wxExchange(wxApp, wxSecret, qq.Code), 40029)
	wantErrcode(t, e.wxExchange(qqApp, wxSecret, qq.Code), 40125)
	wantErrcode(t, e.wxExchange(qqApp, qqSecret, "nosuchcode"), 40029)
	wantErrcode(t, e.json200("GET", "/sns/jscode2session?"+q("appid", qqApp, "secret", qqSecret, "js_code", qq.Code, "grant_type", "client_credential"), nil), 40002)
	wantErrcode(t, e.json200("GET", "/sns/jscode2session?"+q("appid", qqApp, "secret", qqSecret, "grant_type", "authorization_code"), nil), 41008)
	wantErrcode(t, e.json200("POST", "/sns/jscode2session?"+q("appid", qqApp, "secret", qqSecret, "js_code", qq.Code, "grant_type", "authorization_code"), nil), 41002)
	// The code survived the failed attempts.
	if m := e.wxExchange(qqApp, qqSecret, qq.Code); str(m, "openid") != qq.OpenID {
		t.Fatalf("exchange %v", m)
	}
}

// Faults aimed at QQ hit QQ's exchange only; the labels are WeChat's.
func TestQQFaultsAndLabels(t *testing.T) {
	e := newEnv(t, Options{})
	e.sim.Inject(Fault{Endpoint: EndpointJSCode2Session, Platform: QQ, Errcode: -1, Times: 1})
	wx := e.login(wxApp, "a")
	if m := e.wxExchange(wxApp, wxSecret, wx.Code); str(m, "openid") != wx.OpenID {
		t.Fatalf("a QQ fault hit WeChat: %v", m)
	}
	qq := e.login(qqApp, "a")
	wantErrcode(t, e.wxExchange(qqApp, qqSecret, qq.Code), -1)
	r, err := e.srv.Client().Get(e.srv.URL + "/sns/jscode2session?" + q("appid", qqApp, "secret", qqSecret, "js_code", qq.Code, "grant_type", "authorization_code"))
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("content type %q", ct)
	}
}

// QQ documents no phone-code exchange.
func TestQQNoPhoneCode(t *testing.T) {
	e := newEnv(t, Options{})
	if _, err := e.sim.PhoneCode(qqApp, "a", "13800138000"); !errors.Is(err, ErrWrongPlatform) {
		t.Fatalf("PhoneCode: %v", err)
	}
	e.login(qqApp, "a")
	res, err := e.sim.PhoneButton(qqApp, "a", "13800138000")
	if err != nil || res.Code != "" || res.EncryptedData == "" || res.IV == "" {
		t.Fatalf("PhoneButton: %+v %v", res, err)
	}
}
