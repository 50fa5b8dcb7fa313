package mpsim

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

const (
	ksApp    = "ks000000000000001"
	ksSecret = "demo-kuaishou-secret"
)

// ksPost posts form as the body and query in the URL, and returns the
// status and the decoded answer.
func (e *env) ksPost(query, form url.Values) (int, map[string]any) {
	e.t.Helper()
	u := e.srv.URL + "/oauth2/mp/code2session"
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	resp, err := http.Post(u, "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		e.t.Fatal(err)
	}
	return resp.StatusCode, m
}

func TestKuaishouCode2Session(t *testing.T) {
	e := newEnv(t, Options{Quirks: exact})
	lr := e.login(ksApp, "kim")
	form := url.Values{"app_id": {ksApp}, "app_secret": {ksSecret}, "js_code": {lr.Code}}
	st, m := e.ksPost(nil, form)
	if st != 200 || num(m, "result") != 1 || m["open_id"] != lr.OpenID || str(m, "session_key") == "" || len(m) != 3 {
		t.Fatalf("form: %d %v", st, m)
	}
	wantFail := func(query, form url.Values, result int, name string) {
		t.Helper()
		st, m := e.ksPost(query, form)
		if st != 200 || num(m, "result") != result || m["error"] != name || str(m, "error_msg") == "" || m["session_key"] != nil {
			t.Fatalf("want %d %s, got %d %v", result, name, st, m)
		}
	}
	wantFail(nil, form, 100200100, "invalid_grant") // used
	// The query string works as well as the form.
	lr = e.login(ksApp, "kim")
	qv := url.Values{"app_id": {ksApp}, "app_secret": {ksSecret}, "js_code": {lr.Code}}
	if st, m := e.ksPost(qv, nil); st != 200 || num(m, "result") != 1 || m["open_id"] != lr.OpenID {
		t.Fatalf("query: %d %v", st, m)
	}
	wantFail(qv, nil, 100200100, "invalid_grant")
	lr = e.login(ksApp, "kim")
	wantFail(nil, url.Values{"app_id": {ksApp}, "app_secret": {"wrong"}, "js_code": {lr.Code}}, 100200101, "invalid_client")
	wantFail(nil, url.Values{"app_id": {wxApp}, "app_secret": {"demo-wechat-secret"}, "js_code": {lr.Code}}, 100200101, "invalid_client")
	wantFail(nil, url.Values{"app_id": {ksApp}, "app_secret": {ksSecret}}, 100200100, "invalid_request")
	wantFail(nil, url.Values{"app_id": {ksApp}, "app_secret": {ksSecret}, "js_code": {"nope"}}, 100200100, "invalid_grant")
	// A WeChat code is not Kuaishou's.
	wx := e.login(wxApp, "kim")
	wantFail(nil, url.Values{"app_id": {ksApp}, "app_secret": {ksSecret}, "js_code": {wx.Code}}, 100200100, "invalid_grant")
	// Codes live 10 minutes (the simulator's choice; unconfirmed).
	e.sim.Advance(10*time.Minute + time.Second)
	wantFail(nil, url.Values{"app_id": {ksApp}, "app_secret": {ksSecret}, "js_code": {lr.Code}}, 100200100, "invalid_grant")
	lr = e.login(ksApp, "kim")
	e.sim.Advance(9 * time.Minute)
	if st, m := e.ksPost(nil, url.Values{"app_id": {ksApp}, "app_secret": {ksSecret}, "js_code": {lr.Code}}); st != 200 || m["open_id"] != lr.OpenID {
		t.Fatalf("9 minutes: %d %v", st, m)
	}
	// GET is refused.
	lr = e.login(ksApp, "kim")
	get := url.Values{"app_id": {ksApp}, "app_secret": {ksSecret}, "js_code": {lr.Code}}
	if code, body := e.do("GET", "/oauth2/mp/code2session?"+get.Encode(), nil); code != 200 || !strings.Contains(string(body), "invalid_request") {
		t.Fatalf("GET: %d %s", code, body)
	}
	// An injected number answers result/error/error_msg.
	e.sim.Inject(Fault{Endpoint: EndpointJSCode2Session, Platform: Kuaishou, Errcode: 4242, Times: 1})
	if st, m := e.ksPost(nil, get); st != 200 || num(m, "result") != 4242 || str(m, "error_msg") == "" {
		t.Fatalf("fault: %d %v", st, m)
	}
	if _, err := ParseFault(FaultJSON{Endpoint: EndpointJSCode2Session, Platform: Kuaishou, Errcode: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.sim.PhoneCode(ksApp, "kim", "13800138000"); err == nil {
		t.Fatal("Kuaishou phone code")
	}
}

// Kuaishou's payloads: WeChat's recipe, watermarked with the app id by
// default, without when asked.
func TestKuaishouEncrypt(t *testing.T) {
	e := newEnv(t, Options{Quirks: exact})
	lr := e.login(ksApp, "lee")
	_, m := e.ksPost(nil, url.Values{"app_id": {ksApp}, "app_secret": {ksSecret}, "js_code": {lr.Code}})
	sk := str(m, "session_key")
	ed, iv, err := e.sim.EncryptPhone(ksApp, "lee", "13800138000")
	if err != nil {
		t.Fatal(err)
	}
	p, err := decrypt(sk, ed, iv)
	if err != nil || p["phoneNumber"] != "13800138000" {
		t.Fatalf("phone payload %v %v", p, err)
	}
	if wm, _ := p["watermark"].(map[string]any); wm == nil || wm["appid"] != ksApp {
		t.Fatalf("watermark %v", p["watermark"])
	}
	ed, iv, err = e.sim.Encrypt(ksApp, "lee", map[string]any{"nickName": "l"}, EncryptOptions{NoWatermark: true})
	if err != nil {
		t.Fatal(err)
	}
	if p, err := decrypt(sk, ed, iv); err != nil || p["watermark"] != nil || p["nickName"] != "l" {
		t.Fatalf("no watermark: %v %v", p, err)
	}
	res, err := e.sim.PhoneButton(ksApp, "lee", "13900139000")
	if err != nil || res.Code != "" || res.EncryptedData == "" {
		t.Fatalf("button %+v %v", res, err)
	}
	if p, err := decrypt(sk, res.EncryptedData, res.IV); err != nil || p["phoneNumber"] != "13900139000" {
		t.Fatalf("button payload %v %v", p, err)
	}
}
