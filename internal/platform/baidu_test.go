package platform

import (
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/mperr"
)

// baiduServer answers jscode2sessionkey with the given (status, body)
// replies in turn (the last one repeats), checking each request's form.
func baiduServer(t *testing.T, replies ...reply) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	return formServer(t, "/oauth/jscode2sessionkey", url.Values{"code": {testCode}, "client_id": {"bdappkey"}, "sk": {testSecret}}, replies...)
}

func TestBaiduCode2Session(t *testing.T) {
	cases := []struct {
		name    string
		replies []reply
		want    mperr.Code // "" = success
		calls   int32
		errcode int // platform number kept, 0 = none
	}{
		{"ok", []reply{ok(`{"openid":"bdopenid1","session_key":"` + "1df09d0a1677dd72b8325aec59576e0c" + `"}`)}, "", 1, 0},
		{"invalid_grant (HTTP 400)", []reply{status(400, `{"error":"invalid_grant","error_description":`+jsonText("Invalid authorization code: "+testCode)+`}`)}, mperr.InvalidCode, 1, 0},
		{"invalid_grant (HTTP 200)", []reply{ok(`{"error":"invalid_grant","error_description":"used"}`)}, mperr.InvalidCode, 1, 0},
		{"invalid_client", []reply{status(401, `{"error":"invalid_client","error_description":"unknown client id"}`)}, mperr.PlatformError, 1, 0},
		{"errno variant", []reply{ok(`{"errno":"40001","errmsg":"bad"}`)}, mperr.PlatformError, 1, 40001},
		{"errno 0 with the fields", []reply{ok(`{"errno":0,"openid":"o","session_key":"k"}`)}, "", 1, 0},
		{"5xx then ok", []reply{status(502, `bad gateway`), ok(`{"openid":"o","session_key":"k"}`)}, "", 2, 0},
		{"no session_key", []reply{ok(`{"openid":"o"}`)}, mperr.PlatformError, 1, 0},
		{"no openid", []reply{ok(`{"session_key":"k"}`)}, mperr.PlatformError, 1, 0},
		{"not JSON", []reply{ok(`<html>`)}, mperr.PlatformError, 1, 0},
		{"HTTP 403 without error", []reply{status(403, `{}`)}, mperr.PlatformError, 1, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv, n := baiduServer(t, c.replies...)
			cl, err := New("baidu", Config{AppID: "bdappkey", AppSecret: testSecret, APIBase: srv.URL, Backoff: 1})
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
			if e.HasErrcode != (c.errcode != 0) || e.Errcode != c.errcode {
				t.Errorf("errcode %v %d, want %d", e.HasErrcode, e.Errcode, c.errcode)
			}
			for cause := error(e); cause != nil; cause = errors.Unwrap(cause) {
				if strings.Contains(cause.Error(), testCode) || strings.Contains(cause.Error(), testSecret) {
					t.Errorf("a secret in the error: %q", cause.Error())
				}
			}
		})
	}
	cl := NewBaidu(Config{AppID: "bdappkey", AppSecret: testSecret})
	if _, err := cl.Code2Session(context.Background(), LoginCodes{Code: "", Anonymous: "anon"}); mperr.From(err).Code != mperr.MissingCode {
		t.Errorf("no code: %v", err)
	}
	if cl.base != DefaultBaiduAPIBase {
		t.Errorf("base %q", cl.base)
	}
}

// Baidu's descriptor: login only, its own payload scheme; WeChat and
// Douyin keep the WeChat family's.
func TestBaiduDescriptor(t *testing.T) {
	d, ok := Lookup(Baidu)
	if !ok || d.AnonymousCode || d.PhoneCode != nil || d.Compat != "" || len(d.IdentityFields) != 0 {
		t.Fatalf("baidu descriptor %+v", d)
	}
	if d.PayloadsOf() != &BaiduPayloads {
		t.Error("baidu does not use its payload scheme")
	}
	for _, n := range []string{WeChat, Douyin} {
		if w, _ := Lookup(n); w.PayloadsOf() != &WXPayloads {
			t.Errorf("%s: not the WeChat family's scheme", n)
		}
	}
	if (*Descriptor)(nil).PayloadsOf() != &WXPayloads {
		t.Error("nil descriptor")
	}
}

func jsonText(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
