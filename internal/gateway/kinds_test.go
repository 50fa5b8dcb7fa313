package gateway

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/platform"
)

// twoKinds is a platform of two upstreams (like Douyin's): one takes its
// token in a header, the other in the JSON body, each its own token.
var twoKinds = &platform.GatewaySpec{Kinds: []platform.GatewayKind{
	{
		Name: "open.example.test", Host: "open.example.test", Origin: "http://unused.invalid",
		TokenHeader:        "access-token",
		ClientTokenParams:  []string{"access_token", "access-token"},
		ClientTokenHeaders: []string{"access-token"},
		TrailingSlash:      true,
		Errcodes: []platform.ErrcodeField{
			{Path: "err_no", Token: []int{28001008}, Rate: []int{28003018}},
			{Path: "data.error_code", Token: []int{2190008}},
		},
		Never: []platform.NeverPath{{Path: "/oauth/client_token/", Why: "tokens"}},
	},
	{
		Name: "dev.example.test", Host: "dev.example.test", Origin: "http://unused.invalid",
		Token:              "app",
		TokenBodyField:     "access_token",
		ClientTokenParams:  []string{"access_token"},
		ClientTokenHeaders: []string{"access-token"},
		Errcodes: []platform.ErrcodeField{
			{Path: "errcode", Token: []int{40002}},
			{Path: "error", Token: []int{2}},
		},
		Never: []platform.NeverPath{{Path: "/api/apps/v2/token", Why: "tokens"}},
	},
}}

// kindsSim answers both kinds: the open kind accepts header "openGood",
// the dev kind body member access_token "devGood".
type kindsSim struct {
	mu       sync.Mutex
	openGood string
	devGood  string
	reqs     []*http.Request
	bodies   [][]byte
}

func (p *kindsSim) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	p.mu.Lock()
	p.reqs = append(p.reqs, r)
	p.bodies = append(p.bodies, b)
	openGood, devGood := p.openGood, p.devGood
	p.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	switch {
	case strings.HasPrefix(r.URL.Path, "/open/"):
		if r.Header.Get("access-token") != openGood {
			io.WriteString(w, `{"err_no":28001008,"err_msg":"expired","log_id":"x"}`)
			return
		}
		io.WriteString(w, `{"err_no":0,"err_msg":"","data":"AAAA"}`)
	case r.URL.Path == "/old/":
		io.WriteString(w, `{"data":{"error_code":2190008,"description":"expired"},"extra":{"error_code":0}}`)
	default:
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		if m["access_token"] != devGood {
			io.WriteString(w, `{"errcode":40002,"errmsg":"bad access_token"}`)
			return
		}
		io.WriteString(w, `{"error":0,"message":"ok"}`)
	}
}

func newKindsGW(t *testing.T, p *kindsSim, open, dev *tokens, allow ...string) *Gateway {
	t.Helper()
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	g, err := New(Options{Spec: twoKinds, Origin: srv.URL, Allow: allow, MaxBuffer: 1024,
		Tokens: map[string]TokenSource{"": open, "app": dev}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Close)
	return g
}

func TestKindsHeaderToken(t *testing.T) {
	p := &kindsSim{openGood: "tokA", devGood: "tokA"}
	open, dev := &tokens{}, &tokens{}
	g := newKindsGW(t, p, open, dev, "/open.example.test/open/censor/", "/dev.example.test/qrcode")
	r := httptest.NewRequest("POST", "/x?access_token=mine&Access-Token=m2&keep=1", strings.NewReader(`{"a":1}`))
	r.Header.Set("access-token", "clients")
	r.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	c := g.Relay(w, r, "/open.example.test/open/censor/")
	if w.Code != 200 || c.Errcode != "0" || c.API != "/open.example.test/open/censor/" {
		t.Fatalf("%d %+v %s", w.Code, c, w.Body)
	}
	sent := p.reqs[0]
	if v := sent.Header.Values("Access-Token"); len(v) != 1 || v[0] != "tokA" {
		t.Fatalf("access-token sent %q", v)
	}
	if q := sent.URL.Query(); len(q) != 1 || q.Get("keep") != "1" || sent.URL.Path != "/open/censor/" {
		t.Fatalf("sent %s", sent.URL)
	}
	if string(p.bodies[0]) != `{"a":1}` {
		t.Fatalf("body %q", p.bodies[0])
	}

	// A token refused (err_no): invalidated, retried once with the next.
	p.openGood = "tokB"
	_, c = relay(g, "POST", "/open.example.test/open/censor/", strings.NewReader(`{}`))
	if !c.Retried || c.Errcode != "0" || open.invalidated != 1 || dev.invalidated != 0 {
		t.Fatalf("%+v open %d dev %d", c, open.invalidated, dev.invalidated)
	}
}

func TestKindsBodyToken(t *testing.T) {
	p := &kindsSim{openGood: "tokA", devGood: "tokB"}
	open, dev := &tokens{}, &tokens{}
	g := newKindsGW(t, p, open, dev, "/dev.example.test/qrcode", "/dev.example.test/censor/*")
	// The client's member (in any case) replaced; the others kept as
	// sent; the token refused once (errcode 40002), the body sent again
	// with the next token.
	in := `{"path":"pages/a?x=1","Access_Token":"mine","n":12345678901234567890,"access_token":"m2"}`
	r := httptest.NewRequest("POST", "/x?access_token=q", strings.NewReader(in))
	w := httptest.NewRecorder()
	c := g.Relay(w, r, "/dev.example.test/qrcode")
	if w.Code != 200 || !c.Retried || c.Errcode != "0" || dev.invalidated != 1 || open.invalidated != 0 || len(p.reqs) != 2 {
		t.Fatalf("%d %+v %s", w.Code, c, w.Body)
	}
	for i, want := range []string{"tokA", "tokB"} {
		if got := string(p.bodies[i]); got != `{"access_token":"`+want+`","path":"pages/a?x=1","n":12345678901234567890}` {
			t.Fatalf("body %d sent %s", i, got)
		}
		if p.reqs[i].URL.RawQuery != "" || p.reqs[i].Header.Get("access-token") != "" || p.reqs[i].Header.Get("Content-Type") != "application/json" {
			t.Fatalf("sent %s %v", p.reqs[i].URL, p.reqs[i].Header)
		}
	}
	// An empty POST gets a body holding the token.
	_, c = relay(g, "POST", "/dev.example.test/censor/image", nil)
	if c.Errcode != "0" || string(p.bodies[2]) != `{"access_token":"tokB"}` {
		t.Fatalf("%+v %s", c, p.bodies[2])
	}
	// Not a JSON object, or too large to carry the token: refused, no
	// platform call.
	for _, body := range []string{`[1]`, `a=b`, `{"a":`, `{"a":"` + strings.Repeat("x", 2000) + `"}`} {
		w, c := relay(g, "POST", "/dev.example.test/qrcode", strings.NewReader(body))
		if (w.Code != 400 && w.Code != 413) || c.Errcode != ErrcodeGateway {
			t.Fatalf("%.20s: %d %+v", body, w.Code, c)
		}
	}
	if len(p.reqs) != 3 {
		t.Fatalf("refused bodies reached the platform: %d calls", len(p.reqs))
	}
}

func TestKindsErrcodeFields(t *testing.T) {
	p := &kindsSim{openGood: "tokA", devGood: "tokA"}
	open := &tokens{}
	g := newKindsGW(t, p, open, &tokens{}, "/open.example.test/old/")
	// data.error_code: refreshed, retried once, passed on.
	_, c := relay(g, "GET", "/open.example.test/old/", nil)
	if c.Errcode != "2190008" || !c.Retried || open.invalidated != 2 || len(p.reqs) != 2 {
		t.Fatalf("%+v %d", c, open.invalidated)
	}
	for _, tc := range []struct {
		in     string
		n, at  int
		found  bool
		fields []string
	}{
		{`{"err_no":0,"data":"AAAA"}`, 0, -1, true, []string{"err_no", "data.error_code"}},
		{`{"data":{"error_code":"2190008"}}`, 2190008, 1, true, []string{"err_no", "data.error_code"}},
		{`{"err_no":0,"errcode":40002}`, 40002, 1, true, []string{"err_no", "errcode", "error"}},
		{`{"error":"bad","errcode":0}`, 0, -1, true, []string{"errcode", "error"}},
		{`{"error":"bad"}`, 0, -1, false, []string{"errcode", "error"}},
		{`{"data":null}`, 0, -1, true, []string{"data.error_code"}},
	} {
		n, at, found := Errcode([]byte(tc.in), tc.fields...)
		if n != tc.n || at != tc.at || found != tc.found {
			t.Errorf("%s: %d %d %v", tc.in, n, at, found)
		}
	}
}

func TestKindsAllowAndHosts(t *testing.T) {
	for _, bad := range [][]string{
		{"/open/censor/"}, {"/nowhere.test/a"}, {"/open.example.test/*"}, {"/open.example.test"}, {"/open.example.test/"},
		{"/open.example.test/oauth/client_token/"}, {"/OPEN.example.test/a"}, {"/dev.example.test/api/apps/v2/token"},
		{"/dev.example.test/a/"},
	} {
		if err := CheckAllow(twoKinds, bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if err := CheckAllow(twoKinds, []string{"/open.example.test/api/x/", "/dev.example.test/api/*"}); err != nil {
		t.Fatal(err)
	}
	p := &kindsSim{openGood: "tokA", devGood: "tokA"}
	g := newKindsGW(t, p, &tokens{}, &tokens{}, "/open.example.test/oauth/*", "/dev.example.test/api/*")
	for _, path := range []string{"/open.example.test/oauth/client_token/", "/open.example.test/oauth/client_token", "/dev.example.test/api/apps/v2/token", "/api/x", "/dev.example.test/api/a//b"} {
		w := httptest.NewRecorder()
		c := g.Relay(w, httptest.NewRequest("GET", "/", nil), path)
		if w.Code != 403 || c.API != APIOther {
			t.Errorf("%s: %d %+v", path, w.Code, c)
		}
	}
	if len(p.reqs) != 0 {
		t.Fatalf("refused paths reached the platform: %d", len(p.reqs))
	}
	if got, ok := g.HostPath("DEV.example.test", "/api/apps/qrcode"); !ok || got != "/dev.example.test/api/apps/qrcode" {
		t.Fatalf("%q %v", got, ok)
	}
	if _, ok := g.HostPath("api.example.test", "/a"); ok {
		t.Fatal("an unknown host named a kind")
	}
	if h := strings.Join(g.Hosts(), " "); h != "open.example.test dev.example.test" {
		t.Fatal(h)
	}
}
