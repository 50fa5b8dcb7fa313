package mpsim

import (
	"encoding/base64"
	"regexp"
	"strings"
	"testing"
	"time"
)

var logIDRe = regexp.MustCompile(`^[0-9]{14}[0-9A-F]{20}$`)

func ttBody(kv ...string) map[string]any {
	m := map[string]any{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

func wantErrNo(t *testing.T, raw []byte, errno int) {
	t.Helper()
	m := decodeObj(t, raw)
	if _, ok := m["err_no"]; !ok || num(m, "err_no") != errno || str(m, "err_tips") == "" || !logIDRe.MatchString(str(m, "log_id")) {
		t.Fatalf("want err_no %d, got %s", errno, raw)
	}
	if !strings.Contains(string(raw), `"data":null`) {
		t.Fatalf("error without data:null: %s", raw)
	}
}

func TestDouyinV2Success(t *testing.T) {
	e := newEnv(t, Options{Quirks: exact, Apps: append(DemoApps(), App{Platform: Douyin, AppID: "ttunion", Secret: "s", UnionID: true})})
	lr := e.login(ttApp, "alice")
	if !ttOpenIDRe.MatchString(lr.OpenID) || lr.UnionID != "" {
		t.Fatalf("%+v", lr)
	}
	st, raw := e.do("POST", "/api/apps/v2/jscode2session", ttBody("appid", ttApp, "secret", ttSecret, "code", lr.Code, "anonymous_code", ""))
	if st != 200 || !strings.HasPrefix(string(raw), `{"err_no":0,"err_tips":"success","log_id":"`) {
		t.Fatalf("%d %s", st, raw)
	}
	m := decodeObj(t, raw)
	d := m["data"].(map[string]any)
	if k, err := base64.StdEncoding.DecodeString(str(d, "session_key")); err != nil || len(k) != 16 {
		t.Fatalf("session_key %v", d)
	}
	if str(d, "openid") != lr.OpenID || str(d, "unionid") != "" || str(d, "anonymous_openid") != "" || d["dopenid"] != "" || len(d) != 5 {
		t.Fatalf("data %v", d)
	}
	if !logIDRe.MatchString(str(m, "log_id")) {
		t.Fatal(m)
	}

	// Anonymous only: no session key, no openid.
	ac, err := e.sim.AnonymousLogin(ttApp, "device-1")
	if err != nil {
		t.Fatal(err)
	}
	d = e.ttExchange(ttBody("appid", ttApp, "secret", ttSecret, "anonymous_code", ac))["data"].(map[string]any)
	if str(d, "anonymous_openid") != AnonymousOpenID(ttApp, "device-1") || !ttOpenIDRe.MatchString(str(d, "anonymous_openid")) || str(d, "openid") != "" || str(d, "session_key") != "" {
		t.Fatalf("anonymous: %v", d)
	}
	// Both codes, on an app with unionids.
	lr = e.login("ttunion", "alice")
	ac, _ = e.sim.AnonymousLogin("ttunion", "device-1")
	d = e.ttExchange(ttBody("appid", "ttunion", "secret", "s", "code", lr.Code, "anonymous_code", ac))["data"].(map[string]any)
	if str(d, "openid") != lr.OpenID || str(d, "unionid") == "" || str(d, "unionid") != lr.UnionID || str(d, "anonymous_openid") == "" || str(d, "session_key") == "" {
		t.Fatalf("both: %v", d)
	}
	if _, err := e.sim.AnonymousLogin(wxApp, "d"); err == nil {
		t.Fatal("anonymous login on WeChat")
	}
}

func TestDouyinV2Errors(t *testing.T) {
	e := newEnv(t, Options{})
	code := e.login(ttApp, "alice").Code
	wxCode := e.login(wxApp, "alice").Code
	cases := []struct {
		name string
		body any
		want int
	}{
		{"no code", ttBody("appid", ttApp, "secret", ttSecret), 40014},
		{"empty codes", ttBody("appid", ttApp, "secret", ttSecret, "code", "", "anonymous_code", ""), 40014},
		{"no appid", ttBody("secret", ttSecret, "code", code), 40014},
		{"no secret", ttBody("appid", ttApp, "code", code), 40014},
		{"not json", "appid=x", 40014},
		{"bad appid", ttBody("appid", "ttnope", "secret", ttSecret, "code", code), 40015},
		{"wechat appid", ttBody("appid", wxApp, "secret", wxSecret, "code", wxCode), 40015},
		{"bad secret", ttBody("appid", ttApp, "secret", "nope", "code", code), 40017},
		{"bad code", ttBody("appid", ttApp, "secret", ttSecret, "code", "nope"), 40018},
		{"wechat code", ttBody("appid", ttApp, "secret", ttSecret, "code", wxCode), 40018},
		{"bad anonymous code", ttBody("appid", ttApp, "secret", ttSecret, "code", code, "anonymous_code", "nope"), 40019},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st, raw := e.do("POST", "/api/apps/v2/jscode2session", c.body)
			if st != 200 {
				t.Fatal(st)
			}
			wantErrNo(t, raw, c.want)
		})
	}
	_, raw := e.do("GET", "/api/apps/v2/jscode2session", nil)
	wantErrNo(t, raw, 40014)
	// Nothing above consumed the code (not even the 40019 with a good code).
	if d := e.ttExchange(ttBody("appid", ttApp, "secret", ttSecret, "code", code))["data"]; d == nil {
		t.Fatal("code consumed by a failed exchange")
	}
	// Single use.
	_, raw = e.do("POST", "/api/apps/v2/jscode2session", ttBody("appid", ttApp, "secret", ttSecret, "code", code))
	wantErrNo(t, raw, 40018)
	ac, _ := e.sim.AnonymousLogin(ttApp, "dev")
	e.ttExchange(ttBody("appid", ttApp, "secret", ttSecret, "anonymous_code", ac))
	_, raw = e.do("POST", "/api/apps/v2/jscode2session", ttBody("appid", ttApp, "secret", ttSecret, "anonymous_code", ac))
	wantErrNo(t, raw, 40019)
}

func TestDouyinCodeExpiry(t *testing.T) {
	e := newEnv(t, Options{})
	c1 := e.login(ttApp, "alice").Code
	c2 := e.login(ttApp, "bob").Code
	a1, _ := e.sim.AnonymousLogin(ttApp, "d1")
	a2, _ := e.sim.AnonymousLogin(ttApp, "d2")
	e.sim.Advance(2*time.Minute + 59*time.Second)
	if e.ttExchange(ttBody("appid", ttApp, "secret", ttSecret, "code", c1, "anonymous_code", a1))["data"] == nil {
		t.Fatal("2m59s")
	}
	e.sim.Advance(2 * time.Second)
	_, raw := e.do("POST", "/api/apps/v2/jscode2session", ttBody("appid", ttApp, "secret", ttSecret, "code", c2))
	wantErrNo(t, raw, 40018)
	_, raw = e.do("POST", "/api/apps/v2/jscode2session", ttBody("appid", ttApp, "secret", ttSecret, "anonymous_code", a2))
	wantErrNo(t, raw, 40019)
}

func TestDouyinLegacyV1(t *testing.T) {
	e := newEnv(t, Options{})
	lr := e.login(ttApp, "alice")
	path := "/api/apps/jscode2session?" + q("appid", ttApp, "secret", ttSecret, "code", lr.Code)
	m := e.json200("GET", path, nil)
	if str(m, "openid") != lr.OpenID || str(m, "session_key") == "" || m["anonymous_openid"] != "" {
		t.Fatalf("v1: %v", m)
	}
	if _, ok := m["err_no"]; ok {
		t.Fatal("v1 is flat")
	}
	m = e.json200("GET", path, nil)
	if num(m, "errcode") != 40018 || str(m, "errmsg") == "" {
		t.Fatalf("v1 reuse: %v", m)
	}
	m = e.json200("GET", "/api/apps/jscode2session?"+q("appid", ttApp, "secret", "x", "code", "y"), nil)
	if num(m, "errcode") != 40017 {
		t.Fatal(m)
	}
	if num(e.json200("POST", path, nil), "errcode") != 40014 {
		t.Fatal("v1 POST")
	}
	if e.sim.Calls(EndpointJSCode2Session) != 4 {
		t.Fatalf("calls %d", e.sim.Calls(EndpointJSCode2Session))
	}
}
