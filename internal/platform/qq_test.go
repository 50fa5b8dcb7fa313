package platform

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/mperr"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/mpsim"
)

// QQ's client: WeChat's login on QQ's origin. The fake checks the request
// (GET /sns/jscode2session with appid, secret, js_code and
// grant_type=authorization_code, as QQ documents it) under the configured
// origin; the answers are in the shape QQ documents (WeChat's).
func TestQQCode2Session(t *testing.T) {
	okBody := `{"session_key":"` + testSessionKey + `","openid":"D2E9C8B1A0F3","unionid":"UID-QQ-1"}`
	noUnion := `{"session_key":"` + testSessionKey + `","openid":"D2E9C8B1A0F3"}`
	qqErr := func(n int, msg string) reply {
		return ok(fmt.Sprintf(`{"errcode":%d,"errmsg":%q}`, n, msg))
	}
	withUnion := Session{OpenID: "D2E9C8B1A0F3", UnionID: "UID-QQ-1", SessionKey: testSessionKey}
	tests := []struct {
		name     string
		replies  []reply
		want     want
		session  Session
		attempts int
	}{
		{"success with unionid", []reply{ok(okBody)}, want{}, withUnion, 1},
		{"success without unionid, errcode 0", []reply{ok(`{"errcode":0,"errmsg":"ok","session_key":"` + testSessionKey + `","openid":"D2E9C8B1A0F3"}`)}, want{}, Session{OpenID: "D2E9C8B1A0F3", SessionKey: testSessionKey}, 1},
		{"no errcode, no unionid", []reply{ok(noUnion)}, want{}, Session{OpenID: "D2E9C8B1A0F3", SessionKey: testSessionKey}, 1},
		{"40029 invalid code", []reply{qqErr(40029, "invalid code")}, want{code: mperr.InvalidCode, errcode: ec(40029)}, Session{}, 1},
		{"45011 rate limited", []reply{qqErr(45011, "api minute-quota reach limit")}, want{code: mperr.RateLimited, errcode: ec(45011)}, Session{}, 1},
		{"string errcode", []reply{ok(`{"errcode":"40029","errmsg":"invalid code"}`)}, want{code: mperr.InvalidCode, errcode: ec(40029)}, Session{}, 1},
		{"-1 then success", []reply{qqErr(-1, "system error"), ok(okBody)}, want{}, withUnion, 2},
		{"-1 always", []reply{qqErr(-1, "system error")}, want{code: mperr.PlatformError, errcode: ec(-1)}, Session{}, 3},
		{"undocumented errcode", []reply{qqErr(41008, "missing code")}, want{code: mperr.PlatformError, errcode: ec(41008)}, Session{}, 1},
		{"missing openid", []reply{ok(`{"session_key":"` + testSessionKey + `"}`)}, want{code: mperr.PlatformError}, Session{}, 1},
		{"missing session_key", []reply{ok(`{"openid":"o"}`)}, want{code: mperr.PlatformError}, Session{}, 1},
		{"html", []reply{status(502, "<html>bad gateway</html>")}, want{code: mperr.PlatformError}, Session{}, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t, wxLoginCheck, tc.replies...)
			cfg, logs := testConfig(f.URL())
			c := NewQQ(cfg)
			s, err := c.Code2Session(context.Background(), LoginCodes{Code: testCode, Anonymous: "ignored-anon"})
			checkErr(t, err, tc.want)
			if !reflect.DeepEqual(s, tc.session) {
				t.Errorf("session = %+v, want %+v", s, tc.session)
			}
			if n := int(f.attempts.Load()); n != tc.attempts {
				t.Errorf("%d attempts, want %d", n, tc.attempts)
			}
			checkLogs(t, logs, tc.attempts)
			for _, en := range logs.All() {
				if p := en.ContextMap()["platform"]; p != QQ {
					t.Errorf("log line says platform %v, want %q", p, QQ)
				}
			}
		})
	}
}

func TestQQMissingCode(t *testing.T) {
	f := newFake(t, nil, ok(`{}`))
	_, err := NewQQ(testConfig1(f.URL())).Code2Session(context.Background(), LoginCodes{})
	checkErr(t, err, want{code: mperr.MissingCode})
	if f.attempts.Load() != 0 {
		t.Errorf("the platform was called")
	}
}

// The descriptor: QQ's real origin is the client's default, it is a login
// client only (no phone-code exchange, no token, no anonymous code, no
// compat dialect), and New makes it by name; api_base (with a path
// prefix) replaces the origin.
func TestQQDescriptor(t *testing.T) {
	d, found := Lookup(QQ)
	if !found {
		t.Fatal("qq is not registered")
	}
	if d.Title != "QQ" || len(d.APIBases) != 1 || d.APIBases[0] != "https://api.q.qq.com" {
		t.Errorf("descriptor %+v", *d)
	}
	if d.AnonymousCode || d.PhoneCode != nil || d.Compat != "" || len(d.IdentityFields) != 0 {
		t.Errorf("capabilities: anonymous %v, phone code %v, compat %q, identity %q", d.AnonymousCode, d.PhoneCode, d.Compat, d.IdentityFields)
	}
	c, err := New("qq", Config{})
	if err != nil {
		t.Fatal(err)
	}
	qc, isQQ := c.(*QQClient)
	if !isQQ || qc.base != "https://api.q.qq.com" || c.Name() != QQ {
		t.Fatalf("New(qq) = %T %+v", c, c)
	}
	if u := qc.endpointURL("/sns/jscode2session", nil); u != "https://api.q.qq.com/sns/jscode2session" {
		t.Errorf("login URL %q", u)
	}
	if _, isPhone := c.(PhoneClient); isPhone {
		t.Error("the QQ client claims a phone-code exchange")
	}
	if _, isToken := c.(TokenClient); isToken {
		t.Error("the QQ client claims a server token")
	}

	var path string
	f := newFake(t, func(t *testing.T, r *http.Request, _ []byte) { path = r.URL.Path },
		ok(`{"session_key":"`+testSessionKey+`","openid":"o"}`))
	if _, err := NewQQ(testConfig1(f.URL()+"/prefix/")).Code2Session(context.Background(), LoginCodes{Code: testCode}); err != nil {
		t.Fatal(err)
	}
	if path != "/prefix/sns/jscode2session" {
		t.Errorf("path %q, want /prefix/sns/jscode2session", path)
	}
}

// QQ's client against the simulator's QQ answers, in every shape the
// simulator gives (labels, errcode 0 present or absent, string numbers).
func TestQQAgainstUnkindSimulator(t *testing.T) {
	const qqApp, qqSecret = "qqdemoapp0000001", "demo-qq-secret"
	for _, q := range []mpsim.Quirks{{Seed: 0}, {Seed: 1}, {SuccessErrcode: mpsim.ShapeAlways, StringErrcode: mpsim.ShapeAlways}, {SuccessErrcode: mpsim.ShapeNever, StringErrcode: mpsim.ShapeNever}} {
		sim := mpsim.New(mpsim.Options{Quirks: q})
		srv := httptest.NewServer(sim)
		c := NewQQ(Config{AppID: qqApp, AppSecret: qqSecret, APIBase: srv.URL, MaxRetries: -1, HTTPClient: srv.Client()})
		for i := 0; i < 4; i++ {
			lr, err := sim.Login(qqApp, fmt.Sprintf("u%d", i))
			if err != nil {
				t.Fatal(err)
			}
			s, err := c.Code2Session(context.Background(), LoginCodes{Code: lr.Code})
			if err != nil || s.OpenID != lr.OpenID || s.SessionKey == "" {
				t.Fatalf("%+v: exchange %+v, %v", q, s, err)
			}
			_, err = c.Code2Session(context.Background(), LoginCodes{Code: lr.Code})
			if e, ok := mperr.As(err); !ok || e.Code != mperr.InvalidCode || e.Errcode != 40163 {
				t.Fatalf("%+v: reused code: %v", q, err)
			}
		}
		// A WeChat app's secret, a wrong secret: QQ's 40125 is platform_error.
		_, err := NewQQ(Config{AppID: qqApp, AppSecret: "wrong", APIBase: srv.URL, MaxRetries: -1}).Code2Session(context.Background(), LoginCodes{Code: "x"})
		if e, ok := mperr.As(err); !ok || e.Code != mperr.PlatformError || e.Errcode != 40125 {
			t.Fatalf("%+v: wrong secret: %v", q, err)
		}
		srv.Close()
	}
}
