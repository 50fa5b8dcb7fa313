package platform

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/mperr"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/mpsim"
)

// fsTokens is Config.Tokens as the handler gives it: a token from tc, and
// when f says the platform rejected it, one more fetch and one more call.
func fsTokens(tc TokenClient, fetches *atomic.Int32) func(context.Context, func(string) error) error {
	return func(ctx context.Context, f func(string) error) error {
		get := func() (string, error) {
			fetches.Add(1)
			t, err := tc.Token(ctx)
			return t.AccessToken, err
		}
		tok, err := get()
		if err != nil {
			return err
		}
		if err = f(tok); !errors.Is(err, ErrTokenInvalid) {
			return err
		}
		if tok, err = get(); err != nil {
			return err
		}
		return f(tok)
	}
}

// Feishu's login answers mapped: the fields kept, each documented error
// number, a token the platform rejects (retried once with a new one), an
// answer without tenant_key or open_id refused. Each request is checked:
// POST JSON {"code"} with the app access token as a Bearer.
func TestFeishuCode2Session(t *testing.T) {
	okBody := `{"code":0,"msg":"success","data":{"open_id":"ou_1","employee_id":"6c486g","union_id":"x","session_key":"e3aeb7df","tenant_key":"2c59","access_token":"u-1","expires_in":1565512680,"refresh_token":"ur-1"}}`
	cases := []struct {
		name    string
		replies []reply
		want    mperr.Code
		calls   int32
		errcode int
	}{
		{"ok", []reply{ok(okBody)}, "", 1, 0},
		{"code appid not match (HTTP 400)", []reply{status(400, `{"code":10213,"msg":"code appid not match"}`)}, mperr.InvalidCode, 1, 10213},
		{"code as a string", []reply{ok(`{"code":"10213","msg":"code appid not match"}`)}, mperr.InvalidCode, 1, 10213},
		{"not visible to the user", []reply{ok(`{"code":10228,"msg":"user has no visibility"}`)}, mperr.UserBlocked, 1, 10228},
		{"token invalid, then ok", []reply{status(401, `{"code":10202,"msg":"access token invalid"}`), ok(okBody)}, "", 2, 0},
		{"token invalid twice", []reply{ok(`{"code":10202,"msg":"access token invalid"}`)}, mperr.PlatformError, 2, 10202},
		{"rate limited", []reply{status(400, `{"code":99991400,"msg":"request trigger frequency limit"}`)}, mperr.RateLimited, 1, 99991400},
		{"no tenant_key", []reply{ok(`{"code":0,"data":{"open_id":"ou_1","session_key":"k"}}`)}, mperr.PlatformError, 1, 0},
		{"no open_id", []reply{ok(`{"code":0,"data":{"tenant_key":"t","session_key":"k"}}`)}, mperr.PlatformError, 1, 0},
		{"no code", []reply{ok(`{"data":{"open_id":"ou_1","tenant_key":"t","session_key":"k"}}`)}, mperr.PlatformError, 1, 0},
		{"no data", []reply{ok(`{"code":0,"msg":"success"}`)}, mperr.PlatformError, 1, 0},
		{"not JSON", []reply{status(502, `<html>`), ok(okBody)}, "", 2, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var n, fetches atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				i := int(n.Add(1)) - 1
				body, _ := io.ReadAll(r.Body)
				var in map[string]string
				// Each call carries the latest token fetched.
				want := fmt.Sprintf("Bearer tok-%d", fetches.Load())
				if r.Method != http.MethodPost || r.URL.Path != "/open-apis/mina/v2/tokenLoginValidate" || json.Unmarshal(body, &in) != nil || len(in) != 1 || in["code"] != testCode || r.Header.Get("Authorization") != want || r.URL.RawQuery != "" {
					t.Errorf("request %s %s?%s %q auth %q, want %q", r.Method, r.URL.Path, r.URL.RawQuery, body, r.Header.Get("Authorization"), want)
				}
				rp := c.replies[min(i, len(c.replies)-1)]
				w.Header().Set("Content-Type", "application/json; charset=utf-8")
				w.WriteHeader(rp.status)
				io.WriteString(w, rp.body)
			}))
			defer srv.Close()
			var issued atomic.Int32
			tc := tokenFunc(func(context.Context) (Token, error) {
				return Token{AccessToken: fmt.Sprintf("tok-%d", issued.Add(1))}, nil
			})
			cl := NewFeishu(Config{AppID: "cli_1", AppSecret: testSecret, APIBase: srv.URL, Backoff: 1, Tokens: fsTokens(tc, &fetches)})
			s, err := cl.Code2Session(context.Background(), LoginCodes{Code: testCode, Anonymous: "ignored"})
			if n.Load() != c.calls {
				t.Errorf("calls %d, want %d", n.Load(), c.calls)
			}
			if c.want == "" {
				if err != nil || s.OpenID != "ou_1" || s.SessionKey != "e3aeb7df" || s.UnionID != "" || s.Fields[FieldTenantKey] != "2c59" || s.Fields[FieldEmployeeID] != "6c486g" || len(s.Fields) != 2 {
					t.Fatalf("session %+v, err %v", s, err)
				}
				return
			}
			e := mperr.From(err)
			if e.Code != c.want || e.Errcode != c.errcode {
				t.Fatalf("err %v (errcode %d), want %s (%d)", err, e.Errcode, c.want, c.errcode)
			}
		})
	}
	cl := NewFeishu(Config{AppID: "cli_1", AppSecret: testSecret})
	if _, err := cl.Code2Session(context.Background(), LoginCodes{Code: testCode}); mperr.From(err).Code != mperr.Internal {
		t.Errorf("no token source: %v", err)
	}
	if _, err := cl.Code2Session(context.Background(), LoginCodes{}); mperr.From(err).Code != mperr.MissingCode {
		t.Errorf("no code: %v", err)
	}
}

type tokenFunc func(context.Context) (Token, error)

func (f tokenFunc) Token(ctx context.Context) (Token, error) { return f(ctx) }

// Feishu and Lark clients against the simulator: the app access token
// (same token while it has over 30 minutes left), login with tenant_key
// and employee_id, a code used twice, a token revoked behind the client's
// back (one more fetch, one retry), a wrong secret.
func TestFeishuAgainstSimulator(t *testing.T) {
	for _, c := range []struct {
		name, app, secret string
		new               func(Config) *FeishuClient
	}{
		{Feishu, "cli_demofeishu00001", "demo-feishu-secret", NewFeishu},
		{Lark, "cli_demolark000001", "demo-lark-secret", NewLark},
	} {
		t.Run(c.name, func(t *testing.T) {
			sim := mpsim.New(mpsim.Options{Quirks: mpsim.Quirks{StringErrcode: mpsim.ShapeAlways}})
			srv := httptest.NewServer(sim)
			defer srv.Close()
			ctx := context.Background()
			var fetches atomic.Int32
			cl := c.new(Config{AppID: c.app, AppSecret: c.secret, APIBase: srv.URL, MaxRetries: -1, HTTPClient: srv.Client()})
			cl.tokens = fsTokens(cl.AppTokens(), &fetches)
			if cl.Name() != c.name {
				t.Fatalf("name %q", cl.Name())
			}
			t1, err := cl.AppAccessToken(ctx)
			if err != nil || t1.AccessToken == "" || t1.ExpiresIn <= 0 {
				t.Fatalf("token %+v %v", t1, err)
			}
			if t2, _ := cl.AppAccessToken(ctx); t2.AccessToken != t1.AccessToken {
				t.Fatal("a fetch with 2h left gave a new token")
			}
			lr, err := sim.Login(c.app, "fay")
			if err != nil {
				t.Fatal(err)
			}
			s, err := cl.Code2Session(ctx, LoginCodes{Code: lr.Code})
			if err != nil || s.OpenID != lr.OpenID || s.SessionKey == "" || s.Fields[FieldTenantKey] != mpsim.FeishuTenantKey(c.app) || s.Fields[FieldEmployeeID] != mpsim.FeishuEmployeeID(c.app, "fay") {
				t.Fatalf("login %+v %v", s, err)
			}
			if _, err := cl.Code2Session(ctx, LoginCodes{Code: lr.Code}); mperr.From(err).Code != mperr.InvalidCode || mperr.From(err).Errcode != 10213 {
				t.Fatalf("reused code: %v", err)
			}
			if err := sim.InvalidateTokens(c.app, true); err != nil {
				t.Fatal(err)
			}
			// A token client that keeps the revoked token first, as a
			// cache would, then fetches.
			var keep atomic.Bool
			keep.Store(true)
			fetches.Store(0)
			cl.tokens = fsTokens(tokenFunc(func(ctx context.Context) (Token, error) {
				if keep.Swap(false) {
					return t1, nil
				}
				return cl.AppAccessToken(ctx)
			}), &fetches)
			lr, _ = sim.Login(c.app, "fay")
			before := sim.Calls(mpsim.EndpointTokenLoginValidate)
			if s, err := cl.Code2Session(ctx, LoginCodes{Code: lr.Code}); err != nil || s.OpenID != lr.OpenID {
				t.Fatalf("after a revoked token: %+v %v", s, err)
			}
			if got := sim.Calls(mpsim.EndpointTokenLoginValidate) - before; got != 2 || fetches.Load() != 2 {
				t.Fatalf("%d login calls and %d token fetches, want 2 and 2", got, fetches.Load())
			}
			bad := c.new(Config{AppID: c.app, AppSecret: "wrong", APIBase: srv.URL, MaxRetries: -1, HTTPClient: srv.Client()})
			if _, err := bad.AppAccessToken(ctx); mperr.From(err).Code != mperr.PlatformError || mperr.From(err).Errcode != 10014 {
				t.Fatalf("wrong secret: %v", err)
			}
		})
	}
}
