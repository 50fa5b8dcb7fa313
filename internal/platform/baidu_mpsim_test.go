package platform

import (
	"context"
	"net/http/httptest"
	"testing"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/mperr"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/mpsim"
)

// The Baidu client and payload scheme against the simulator (whose wire
// types and encryption are its own): login, single use, wrong secret, an
// injected errno, and payloads that open with the returned key and refuse
// another app key's trailer.
func TestBaiduAgainstSimulator(t *testing.T) {
	const app, secret = "bddemoappkey0000000000000000001", "demo-baidu-secret"
	for _, q := range []mpsim.Quirks{{}, {StringErrcode: mpsim.ShapeAlways}} {
		sim := mpsim.New(mpsim.Options{Quirks: q})
		srv := httptest.NewServer(sim)
		cl := NewBaidu(Config{AppID: app, AppSecret: secret, APIBase: srv.URL, MaxRetries: -1, HTTPClient: srv.Client()})
		ctx := context.Background()
		lr, err := sim.Login(app, "dora")
		if err != nil {
			t.Fatal(err)
		}
		s, err := cl.Code2Session(ctx, LoginCodes{Code: lr.Code})
		if err != nil || s.OpenID != lr.OpenID {
			t.Fatalf("login: %+v %v", s, err)
		}
		if _, err := cl.Code2Session(ctx, LoginCodes{Code: lr.Code}); mperr.From(err).Code != mperr.InvalidCode {
			t.Fatalf("reused code: %v", err)
		}
		ed, iv, err := sim.EncryptPhone(app, "dora", "13800138000")
		if err != nil {
			t.Fatal(err)
		}
		data, idx, err := BaiduPayloads.Open(app, []string{"", s.SessionKey}, ed, iv, false)
		if err != nil || idx != 1 {
			t.Fatalf("open: %v", err)
		}
		ph, err := BaiduPayloads.ParsePhone(data)
		if err != nil || ph.PhoneNumber != "13800138000" || ph.PurePhoneNumber != "13800138000" || ph.CountryCode != "" {
			t.Fatalf("phone %+v %v", ph, err)
		}
		ed, iv, _ = sim.Encrypt(app, "dora", map[string]any{"a": 1}, mpsim.EncryptOptions{WatermarkAppID: "bdotherappkey"})
		if _, _, err := BaiduPayloads.Open(app, []string{s.SessionKey}, ed, iv, true); mperr.From(err).Code != mperr.DecryptFailed {
			t.Fatalf("another app key's trailer: %v", err)
		}
		bad := NewBaidu(Config{AppID: app, AppSecret: "wrong", APIBase: srv.URL, MaxRetries: -1, HTTPClient: srv.Client()})
		lr, _ = sim.Login(app, "dora")
		if _, err := bad.Code2Session(ctx, LoginCodes{Code: lr.Code}); mperr.From(err).Code != mperr.PlatformError {
			t.Fatalf("wrong secret: %v", err)
		}
		sim.Inject(mpsim.Fault{Endpoint: mpsim.EndpointJSCode2Session, Errcode: 7, Times: 1})
		if _, err := cl.Code2Session(ctx, LoginCodes{Code: lr.Code}); mperr.From(err).Code != mperr.PlatformError || mperr.From(err).Errcode != 7 {
			t.Fatalf("errno: %v", err)
		}
		srv.Close()
	}
}
