package platform

import (
	"context"
	"errors"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/mperr"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/mpsim"
)

// ksServer answers code2session with the given replies in turn (the last
// one repeats), checking each request: POST /oauth2/mp/code2session under
// the configured origin, a form body with exactly app_id, app_secret and
// js_code, nothing in the query string.
func ksServer(t *testing.T, prefix string, replies ...reply) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	return formServer(t, prefix+"/oauth2/mp/code2session", url.Values{"js_code": {testCode}, "app_id": {"ksapp1"}, "app_secret": {testSecret}}, replies...)
}

func TestKuaishouCode2Session(t *testing.T) {
	okBody := `{"result":1,"session_key":"` + testSessionKey + `","open_id":"f18a2b3c"}`
	cases := []struct {
		name    string
		replies []reply
		want    mperr.Code // "" = success
		calls   int32
		errcode int // platform number kept, 0 = none
	}{
		{"ok", []reply{ok(okBody)}, "", 1, 0},
		{"ok, result as a string", []reply{ok(`{"result":"1","session_key":"k","open_id":"o"}`)}, "", 1, 0},
		{"invalid_grant", []reply{ok(`{"result":100200100,"error":"invalid_grant","error_msg":"js_code invalid"}`)}, mperr.InvalidCode, 1, 100200100},
		{"invalid_grant with HTTP 400", []reply{status(400, `{"result":100200100,"error":"invalid_grant","error_msg":"used"}`)}, mperr.InvalidCode, 1, 100200100},
		{"invalid_client", []reply{ok(`{"result":100200101,"error":"invalid_client","error_msg":"app_secret wrong"}`)}, mperr.PlatformError, 1, 100200101},
		{"unknown error", []reply{ok(`{"result":0,"error":"server_error","error_msg":"busy"}`)}, mperr.PlatformError, 1, 0},
		{"result with no error name", []reply{ok(`{"result":42}`)}, mperr.PlatformError, 1, 42},
		{"no result", []reply{ok(`{"session_key":"k","open_id":"o"}`)}, mperr.PlatformError, 1, 0},
		{"no session_key", []reply{ok(`{"result":1,"open_id":"o"}`)}, mperr.PlatformError, 1, 0},
		{"no open_id", []reply{ok(`{"result":1,"session_key":"k"}`)}, mperr.PlatformError, 1, 0},
		{"openid is not open_id", []reply{ok(`{"result":1,"session_key":"k","openid":"o"}`)}, mperr.PlatformError, 1, 0},
		{"not JSON", []reply{ok(`<html>`)}, mperr.PlatformError, 1, 0},
		{"5xx then ok", []reply{status(502, `bad gateway`), ok(okBody)}, "", 2, 0},
		{"HTTP 403 without result", []reply{status(403, `{}`)}, mperr.PlatformError, 1, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv, n := ksServer(t, "", c.replies...)
			cl, err := New("kuaishou", Config{AppID: "ksapp1", AppSecret: testSecret, APIBase: srv.URL, Backoff: 1})
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			s, err := cl.Code2Session(context.Background(), LoginCodes{Code: testCode, Anonymous: "ignored"})
			if n.Load() != c.calls {
				t.Errorf("calls %d, want %d", n.Load(), c.calls)
			}
			if c.want == "" {
				if err != nil || s.OpenID == "" || s.SessionKey == "" || s.UnionID != "" || s.Fields != nil {
					t.Fatalf("session %+v, %v", s, err)
				}
				return
			}
			e, ok := mperr.As(err)
			if !ok || e.Code != c.want {
				t.Fatalf("err %v, want %s", err, c.want)
			}
			// result 0 is kept as 0 (HasErrcode); the table's 0 means none
			// only where no result was sent.
			wantHas := c.errcode != 0 || strings.Contains(c.replies[len(c.replies)-1].body, `"result":0`)
			if e.HasErrcode != wantHas || e.Errcode != c.errcode {
				t.Errorf("errcode %v %d, want %v %d", e.HasErrcode, e.Errcode, wantHas, c.errcode)
			}
			for cause := error(e); cause != nil; cause = errors.Unwrap(cause) {
				if strings.Contains(cause.Error(), testCode) || strings.Contains(cause.Error(), testSecret) {
					t.Errorf("a secret in the error: %q", cause.Error())
				}
			}
		})
	}
	cl := NewKuaishou(Config{AppID: "ksapp1", AppSecret: testSecret})
	if _, err := cl.Code2Session(context.Background(), LoginCodes{Code: "", Anonymous: "anon"}); mperr.From(err).Code != mperr.MissingCode {
		t.Errorf("no code: %v", err)
	}
}

// The descriptor: Kuaishou's real origin is the default, api_base (with a
// path prefix) replaces it, login only, and the WeChat family's payload
// scheme (watermark required unless decrypt_watermark optional).
func TestKuaishouDescriptor(t *testing.T) {
	d, found := Lookup(Kuaishou)
	if !found {
		t.Fatal("kuaishou is not registered")
	}
	if d.Title != "Kuaishou" || len(d.APIBases) != 1 || d.APIBases[0] != "https://open.kuaishou.com" {
		t.Errorf("descriptor %+v", *d)
	}
	if d.AnonymousCode || d.PhoneCode != nil || d.Compat != "" || len(d.IdentityFields) != 0 {
		t.Errorf("capabilities: anonymous %v, phone code %v, compat %q, identity %q", d.AnonymousCode, d.PhoneCode, d.Compat, d.IdentityFields)
	}
	if d.PayloadsOf() != &WXPayloads {
		t.Error("kuaishou does not use the WeChat family's payload scheme")
	}
	c, err := New("kuaishou", Config{})
	if err != nil {
		t.Fatal(err)
	}
	kc, isKS := c.(*KuaishouClient)
	if !isKS || kc.base != "https://open.kuaishou.com" || c.Name() != Kuaishou {
		t.Fatalf("New(kuaishou) = %T %+v", c, c)
	}
	if u := kc.endpointURL("/oauth2/mp/code2session", nil); u != "https://open.kuaishou.com/oauth2/mp/code2session" {
		t.Errorf("login URL %q", u)
	}
	if _, isPhone := c.(PhoneClient); isPhone {
		t.Error("the Kuaishou client claims a phone-code exchange")
	}
	if _, isToken := c.(TokenClient); isToken {
		t.Error("the Kuaishou client claims a server token")
	}
	srv, n := ksServer(t, "/prefix", ok(`{"result":1,"session_key":"k","open_id":"o"}`))
	if _, err := NewKuaishou(Config{AppID: "ksapp1", AppSecret: testSecret, APIBase: srv.URL + "/prefix/"}).Code2Session(context.Background(), LoginCodes{Code: testCode}); err != nil || n.Load() != 1 {
		t.Fatalf("prefix: %v (%d calls)", err, n.Load())
	}
}

// The client and the default payload scheme against the simulator:
// login, single use, wrong secret, an injected result, payloads that open
// with the returned key, watermark required unless optional.
func TestKuaishouAgainstSimulator(t *testing.T) {
	const app, secret = "ks000000000000001", "demo-kuaishou-secret"
	for _, q := range []mpsim.Quirks{{}, {StringErrcode: mpsim.ShapeAlways}} {
		sim := mpsim.New(mpsim.Options{Quirks: q})
		srv := httptest.NewServer(sim)
		cl := NewKuaishou(Config{AppID: app, AppSecret: secret, APIBase: srv.URL, MaxRetries: -1, HTTPClient: srv.Client()})
		ctx := context.Background()
		lr, err := sim.Login(app, "kim")
		if err != nil {
			t.Fatal(err)
		}
		s, err := cl.Code2Session(ctx, LoginCodes{Code: lr.Code})
		if err != nil || s.OpenID != lr.OpenID || s.SessionKey == "" {
			t.Fatalf("login: %+v %v", s, err)
		}
		if _, err := cl.Code2Session(ctx, LoginCodes{Code: lr.Code}); mperr.From(err).Code != mperr.InvalidCode {
			t.Fatalf("reused code: %v", err)
		}
		ed, iv, err := sim.EncryptPhone(app, "kim", "13800138000")
		if err != nil {
			t.Fatal(err)
		}
		sc := lookup1(t, Kuaishou).PayloadsOf()
		data, _, err := sc.Open(app, []string{s.SessionKey}, ed, iv, false)
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		if ph, err := sc.ParsePhone(data); err != nil || ph.PhoneNumber != "13800138000" {
			t.Fatalf("phone %+v %v", ph, err)
		}
		ed, iv, _ = sim.Encrypt(app, "kim", map[string]any{"phoneNumber": "13800138000", "purePhoneNumber": "13800138000", "countryCode": "86"}, mpsim.EncryptOptions{NoWatermark: true})
		if _, _, err := sc.Open(app, []string{s.SessionKey}, ed, iv, false); err == nil {
			t.Fatal("a payload without watermark opened with the watermark required")
		}
		if _, _, err := sc.Open(app, []string{s.SessionKey}, ed, iv, true); err != nil {
			t.Fatalf("no watermark, optional: %v", err)
		}
		bad := NewKuaishou(Config{AppID: app, AppSecret: "wrong", APIBase: srv.URL, MaxRetries: -1, HTTPClient: srv.Client()})
		lr, _ = sim.Login(app, "kim")
		if e := mperr.From(func() error { _, err := bad.Code2Session(ctx, LoginCodes{Code: lr.Code}); return err }()); e.Code != mperr.PlatformError || e.Errcode != 100200101 {
			t.Fatalf("wrong secret: %v", e)
		}
		sim.Inject(mpsim.Fault{Endpoint: mpsim.EndpointJSCode2Session, Platform: mpsim.Kuaishou, Errcode: 7, Times: 1})
		if _, err := cl.Code2Session(ctx, LoginCodes{Code: lr.Code}); mperr.From(err).Code != mperr.PlatformError || mperr.From(err).Errcode != 7 {
			t.Fatalf("injected result: %v", err)
		}
		srv.Close()
	}
}

func lookup1(t *testing.T, name string) *Descriptor {
	t.Helper()
	d, ok := Lookup(name)
	if !ok {
		t.Fatalf("%s is not registered", name)
	}
	return d
}
