package platform

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"testing"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/mperr"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/mpsim"
)

// TestAgainstUnkindSimulator runs the clients against the simulator with
// every shape of answer it gives (text/plain labels, errcode 0 present or
// absent, error numbers as strings), under several seeds: every answer must
// be read the same way. The simulator's wire types are its own, so this
// cannot pass by the two sides sharing a misreading.
func TestAgainstUnkindSimulator(t *testing.T) {
	const wxApp, wxSecret = "wxdemoapp0000001", "demo-wechat-secret"
	const ttApp, ttSecret = "ttdemoapp0000001", "demo-douyin-secret"
	shapes := []mpsim.Shape{mpsim.ShapeMixed, mpsim.ShapeAlways, mpsim.ShapeNever}
	var quirks []mpsim.Quirks
	for seed := uint64(0); seed < 4; seed++ {
		quirks = append(quirks, mpsim.Quirks{Seed: seed})
	}
	for _, a := range shapes {
		for _, b := range shapes {
			quirks = append(quirks, mpsim.Quirks{SuccessErrcode: a, StringErrcode: b})
		}
	}
	wantCode := func(t *testing.T, what string, err error, code mperr.Code, errcode int) {
		t.Helper()
		e, ok := mperr.As(err)
		if !ok || e.Code != code || !e.HasErrcode || e.Errcode != errcode {
			t.Fatalf("%s: want %s with errcode %d, got %v", what, code, errcode, err)
		}
	}
	for _, q := range quirks {
		name := fmt.Sprintf("seed%d/success-%s/string-%s", q.Seed, q.SuccessErrcode, q.StringErrcode)
		t.Run(name, func(t *testing.T) {
			sim := mpsim.New(mpsim.Options{Quirks: q})
			srv := httptest.NewServer(sim)
			defer srv.Close()
			cfg := Config{APIBase: srv.URL, MaxRetries: -1, HTTPClient: srv.Client()}
			wcfg, tcfg := cfg, cfg
			wcfg.AppID, wcfg.AppSecret = wxApp, wxSecret
			tcfg.AppID, tcfg.AppSecret = ttApp, ttSecret
			wx, tt := NewWeChat(wcfg), NewDouyin(tcfg)
			ctx := context.Background()

			// Several rounds, so that mixed shapes meet every call.
			for i := 0; i < 6; i++ {
				user := fmt.Sprintf("u%d", i)
				lr, err := sim.Login(wxApp, user)
				if err != nil {
					t.Fatal(err)
				}
				s, err := wx.Code2Session(ctx, LoginCodes{Code: lr.Code})
				if err != nil || s.OpenID != lr.OpenID || s.UnionID != lr.UnionID || s.SessionKey == "" {
					t.Fatalf("round %d: code2session %+v %v", i, s, err)
				}
				_, err = wx.Code2Session(ctx, LoginCodes{Code: lr.Code})
				wantCode(t, "reused code", err, mperr.InvalidCode, 40163)
				_, err = wx.Code2Session(ctx, LoginCodes{Code: "no-such-code"})
				wantCode(t, "unknown code", err, mperr.InvalidCode, 40029)

				tok, err := wx.StableToken(ctx, false)
				if err != nil || tok.AccessToken == "" || tok.ExpiresIn <= 0 {
					t.Fatalf("stable token %+v %v", tok, err)
				}
				b, err := sim.PhoneButton(wxApp, user, "1380013800"+fmt.Sprint(i))
				if err != nil {
					t.Fatal(err)
				}
				p, err := wx.GetUserPhoneNumber(ctx, tok.AccessToken, b.Code, "")
				if err != nil || p.PhoneNumber != "1380013800"+fmt.Sprint(i) || p.CountryCode != "86" || p.WatermarkAppID != wxApp {
					t.Fatalf("phone %+v %v", p, err)
				}
				_, err = wx.GetUserPhoneNumber(ctx, tok.AccessToken, b.Code, "")
				wantCode(t, "reused phone code", err, mperr.InvalidCode, 40029)
				_, err = wx.GetUserPhoneNumber(ctx, "SIM_not-a-token", b.Code, "")
				if !errors.Is(err, ErrTokenInvalid) {
					t.Fatalf("bad token: %v", err)
				}

				dl, err := sim.Login(ttApp, user)
				if err != nil {
					t.Fatal(err)
				}
				ds, err := tt.Code2Session(ctx, LoginCodes{Code: dl.Code})
				if err != nil || ds.OpenID != dl.OpenID || ds.SessionKey == "" {
					t.Fatalf("douyin %+v %v", ds, err)
				}
				_, err = tt.Code2Session(ctx, LoginCodes{Code: dl.Code})
				wantCode(t, "douyin reused code", err, mperr.InvalidCode, 40018)
			}
			// A fault in the platform's shape, under the same quirks.
			sim.Inject(mpsim.Fault{Endpoint: mpsim.EndpointJSCode2Session, Errcode: 40226, Times: 1})
			lr, _ := sim.Login(wxApp, "blocked")
			_, err := wx.Code2Session(ctx, LoginCodes{Code: lr.Code})
			wantCode(t, "40226", err, mperr.UserBlocked, 40226)
		})
	}
}
