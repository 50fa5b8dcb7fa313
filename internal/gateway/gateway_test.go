package gateway

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/platform"
)

// spec is a platform spec of the test's own (the package names no
// platform).
var spec = &platform.GatewaySpec{Kinds: []platform.GatewayKind{{
	Name:              "api.example.test",
	Origin:            "http://unused.invalid",
	Host:              "api.example.test",
	TokenParam:        "access_token",
	ClientTokenParams: []string{"access_token", "cloudbase_access_token"},
	Errcodes:          []platform.ErrcodeField{{Path: "errcode", Token: []int{40001, 40014, 42001}, Rate: []int{45009, 45011}}},
	Never:             []platform.NeverPath{{Path: "/cgi-bin/token", Why: "tokens"}, {Path: "/sns/jscode2session", Why: "codes"}},
}}}

// tokens is a TokenSource: each Invalidate of the current token moves to
// the next one.
type tokens struct {
	mu          sync.Mutex
	n           int
	invalidated int
}

func (s *tokens) Token(context.Context) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return "tok" + string(rune('A'+s.n)), nil
}

func (s *tokens) Invalidate(_ context.Context, bad string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.invalidated++
	if bad == "tok"+string(rune('A'+s.n)) {
		s.n++
	}
	return nil
}

// platformSim accepts only token "good"; records each call.
type platformSim struct {
	mu     sync.Mutex
	good   string
	calls  []*http.Request
	bodies [][]byte
	answer func(w http.ResponseWriter, r *http.Request)
}

func (p *platformSim) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	p.mu.Lock()
	p.calls = append(p.calls, r)
	p.bodies = append(p.bodies, b)
	good := p.good
	p.mu.Unlock()
	w.Header().Set("Content-Type", "text/plain")
	if r.URL.Query().Get("access_token") != good {
		io.WriteString(w, `{"errcode":"40001","errmsg":"invalid credential"}`)
		return
	}
	if p.answer != nil {
		p.answer(w, r)
		return
	}
	io.WriteString(w, `{"errcode":0,"errmsg":"ok","len":`+strconv.Itoa(len(b))+`}`)
}

func newGW(t *testing.T, p *platformSim, ts *tokens, allow ...string) *Gateway {
	t.Helper()
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	g, err := New(Options{Spec: spec, Origin: srv.URL, Allow: allow, MaxBuffer: 1024, Tokens: map[string]TokenSource{"": ts}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Close)
	return g
}

func relay(g *Gateway, method, target string, body io.Reader) (*httptest.ResponseRecorder, Call) {
	r := httptest.NewRequest(method, target, body)
	w := httptest.NewRecorder()
	p := r.URL.EscapedPath()
	return w, g.Relay(w, r, p)
}

func TestRelayAddsTokenReplacingClients(t *testing.T) {
	p := &platformSim{good: "tokA"}
	g := newGW(t, p, &tokens{}, "/wxa/msg_sec_check")
	w, c := relay(g, "POST", "/wxa/msg_sec_check?access_token=mine&cloudbase_access_token=x&keep=1", strings.NewReader(`{}`))
	if w.Code != 200 || c.Errcode != "0" || c.Retried {
		t.Fatalf("%d %+v %s", w.Code, c, w.Body)
	}
	q := p.calls[0].URL.Query()
	if q["access_token"][0] != "tokA" || len(q["access_token"]) != 1 || q.Get("cloudbase_access_token") != "" || q.Get("keep") != "1" {
		t.Fatalf("query sent %v", q)
	}
}

func TestRelayRetriesOnceAfterTokenError(t *testing.T) {
	p := &platformSim{good: "tokB"}
	ts := &tokens{}
	g := newGW(t, p, ts, "/cgi-bin/message/subscribe/send")
	w, c := relay(g, "POST", "/cgi-bin/message/subscribe/send", strings.NewReader(`{"a":`))
	if w.Code != 200 || !c.Retried || c.Errcode != "0" || len(p.calls) != 2 || ts.invalidated != 1 {
		t.Fatalf("%d %+v calls %d invalidated %d %s", w.Code, c, len(p.calls), ts.invalidated, w.Body)
	}
	if !bytes.Equal(p.bodies[0], p.bodies[1]) || string(p.bodies[1]) != `{"a":` {
		t.Fatalf("bodies %q", p.bodies)
	}
	// Refused again after the retry: passed on, no third call.
	p.good = "never"
	w, c = relay(g, "POST", "/cgi-bin/message/subscribe/send", strings.NewReader(`{}`))
	if c.Errcode != "40001" || len(p.calls) != 4 || !strings.Contains(w.Body.String(), `"40001"`) {
		t.Fatalf("%+v calls %d %s", c, len(p.calls), w.Body)
	}
}

func TestRelayStreamsLargeBodiesNeverRetried(t *testing.T) {
	p := &platformSim{good: "tokB"}
	ts := &tokens{}
	g := newGW(t, p, ts, "/cgi-bin/media/upload")
	big := bytes.Repeat([]byte("x"), 5000)
	_, c := relay(g, "POST", "/cgi-bin/media/upload?type=image", bytes.NewReader(big))
	if !c.Streamed || c.Retried || c.Errcode != "40001" || len(p.calls) != 1 || ts.invalidated != 1 {
		t.Fatalf("%+v calls %d invalidated %d", c, len(p.calls), ts.invalidated)
	}
	if !bytes.Equal(p.bodies[0], big) {
		t.Fatalf("streamed body: %d bytes", len(p.bodies[0]))
	}
	// The backend's retry gets the fresh token.
	_, c = relay(g, "POST", "/cgi-bin/media/upload?type=image", bytes.NewReader(big))
	if c.Errcode != "0" || len(p.calls) != 2 {
		t.Fatalf("%+v", c)
	}
	// Unknown length (chunked) over the limit streams too.
	r := httptest.NewRequest("POST", "/cgi-bin/media/upload", io.MultiReader(bytes.NewReader(big)))
	r.ContentLength = -1
	rec := httptest.NewRecorder()
	c = g.Relay(rec, r, "/cgi-bin/media/upload")
	if !c.Streamed || !bytes.Equal(p.bodies[2], big) {
		t.Fatalf("chunked: %+v %d", c, len(p.bodies[2]))
	}
}

func TestRelayBinaryPassesUnchanged(t *testing.T) {
	img := append([]byte{0xff, 0xd8, 0xff, 0xe0}, bytes.Repeat([]byte{0, '{', 0x80}, 1000)...)
	p := &platformSim{good: "tokA", answer: func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "image/jpeg")
		w.Header().Set("Content-Disposition", `attachment; filename="m.jpg"`)
		w.Write(img)
	}}
	g := newGW(t, p, &tokens{}, "/cgi-bin/media/*")
	w, c := relay(g, "GET", "/cgi-bin/media/get?media_id=1", nil)
	if w.Code != 200 || c.Errcode != ErrcodeNone || c.API != "/cgi-bin/media/*" || !bytes.Equal(w.Body.Bytes(), img) {
		t.Fatalf("%+v %d bytes", c, w.Body.Len())
	}
	if w.Header().Get("Content-Disposition") == "" || w.Header().Get("Content-Type") != "image/jpeg" {
		t.Fatalf("headers %v", w.Header())
	}
	// Binary labelled text/plain: not JSON, passed on byte for byte.
	p.answer = func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Write(img)
	}
	w, c = relay(g, "GET", "/cgi-bin/media/get?media_id=1", nil)
	if c.Errcode != ErrcodeNone || !bytes.Equal(w.Body.Bytes(), img) {
		t.Fatalf("%+v", c)
	}
}

func TestRelayRateLimitNotRetried(t *testing.T) {
	p := &platformSim{good: "tokA", answer: func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"errcode":45011,"errmsg":"api minute-quota reach limit"}`)
	}}
	g := newGW(t, p, &tokens{}, "/wxa/msg_sec_check")
	_, c := relay(g, "POST", "/wxa/msg_sec_check", strings.NewReader("{}"))
	if c.Errcode != "45011" || c.Retried || len(p.calls) != 1 {
		t.Fatalf("%+v calls %d", c, len(p.calls))
	}
}

func TestAllowList(t *testing.T) {
	p := &platformSim{good: "tokA"}
	g := newGW(t, p, &tokens{}, "/wxa/msg_sec_check", "/sns/*")
	for _, path := range []string{
		"/wxa/img_sec_check", "/wxa/msg_sec_check/", "/wxa//msg_sec_check", "/wxa/./msg_sec_check",
		"/wxa/%6dsg_sec_check", "/sns/jscode2session", "/SNS/jscode2session", "/sns/", "/sns/JSCODE2SESSION",
	} {
		w, c := relay(g, "GET", "http://x"+path, nil)
		if w.Code != 403 || c.API != APIOther {
			t.Errorf("%s: %d %+v", path, w.Code, c)
		}
	}
	if len(p.calls) != 0 {
		t.Fatalf("refused paths reached the platform: %d", len(p.calls))
	}
	w, _ := relay(g, "GET", "/sns/jscode2session", nil)
	if !strings.Contains(w.Body.String(), "never relayed") {
		t.Fatalf("%s", w.Body)
	}
	if _, c := relay(g, "GET", "/sns/other", nil); c.API != "/sns/*" {
		t.Fatalf("%+v", c)
	}
}

func TestCheckAllow(t *testing.T) {
	for _, bad := range [][]string{
		nil, {"wxa/x"}, {"/"}, {"/*"}, {"/a/../b"}, {"/a/"}, {"/a%2Fb"}, {"/a?b"}, {"/a*"},
		{"/cgi-bin/token"}, {"/CGI-BIN/Token"}, {"/sns/jscode2session"}, {"/a", "/a"},
	} {
		if err := CheckAllow(spec, bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if err := CheckAllow(spec, []string{"/wxa/msg_sec_check", "/cgi-bin/*"}); err != nil {
		t.Fatal(err)
	}
}

func TestErrcode(t *testing.T) {
	for _, c := range []struct {
		in    string
		n     int
		found bool
	}{
		{`{"errcode":40001}`, 40001, true}, {`{"errcode":"42001"}`, 42001, true}, {` {"x":1}`, 0, true},
		{`[1]`, 0, false}, {"\xff\xd8", 0, false}, {`{"errcode":"x"}`, 0, false}, {`{"errcode":1.5}`, 0, false},
	} {
		n, _, found := Errcode([]byte(c.in), "errcode")
		if n != c.n || found != c.found {
			t.Errorf("%q: %d %v", c.in, n, found)
		}
	}
}

// Paths a platform's server might read as another API than the allow-list
// and the never-relayed list do (";" parameters, a trailing ".", "~", any
// byte outside API paths' alphabet) are refused, also under a "/*" entry,
// with no platform call.
func TestRelayRefusesPathsReadOtherwise(t *testing.T) {
	p := &platformSim{good: "tokA"}
	g := newGW(t, p, &tokens{}, "/cgi-bin/*", "/sns/*")
	for _, path := range []string{
		"/cgi-bin/token;x", "/cgi-bin/token.", "/cgi-bin/token./", "/sns/jscode2session;a", "/cgi-bin/~token",
		"/cgi-bin/to,ken", "/cgi-bin/token!", "/cgi-bin/a:b", "/cgi-bin/a@b", "/cgi-bin/a+b",
	} {
		if _, ok := g.Match(path); ok {
			t.Errorf("%s matched", path)
		}
		if w, c := relay(g, "GET", "http://x"+path, nil); w.Code != 403 || c.API != APIOther {
			t.Errorf("%s: %d %+v", path, w.Code, c)
		}
	}
	if len(p.calls) != 0 {
		t.Fatalf("%d calls reached the platform", len(p.calls))
	}
	if _, ok := g.Match("/cgi-bin/message/subscribe/send"); !ok {
		t.Fatal("a plain path under /cgi-bin/* refused")
	}
	if err := CheckAllow(spec, []string{"/cgi-bin/token;x"}); err == nil {
		t.Fatal("an allow entry with ; accepted")
	}
}

// The query: one that does not parse is refused (relayed, its unreadable
// pairs would vanish or be read otherwise); every spelling a server might
// take for the token parameter is removed.
func TestRelayQuery(t *testing.T) {
	p := &platformSim{good: "tokA"}
	g := newGW(t, p, &tokens{}, "/wxa/msg_sec_check")
	for _, q := range []string{"a=1;b=2", "x=%zz"} {
		if w, c := relay(g, "POST", "/wxa/msg_sec_check?"+q, strings.NewReader(`{}`)); w.Code != 400 || c.Errcode != ErrcodeGateway {
			t.Errorf("%s: %d %+v %s", q, w.Code, c, w.Body)
		}
	}
	if len(p.calls) != 0 {
		t.Fatalf("%d calls with an unparsable query", len(p.calls))
	}
	w, _ := relay(g, "POST", "/wxa/msg_sec_check?access_token%5B%5D=m&ACCESS_TOKEN%20=m&access_token.=m&Cloudbase_Access_Token=m&keep=1", strings.NewReader(`{}`))
	if w.Code != 200 || len(p.calls) != 1 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	q := p.calls[0].URL.Query()
	if len(q) != 2 || q.Get("access_token") != "tokA" || q.Get("keep") != "1" {
		t.Fatalf("query sent %v", q)
	}
}

// The token the call carried never comes back to the backend: a redirect's
// Location or an error page quoting the URL get "[token]"; headers the
// answer's Connection names are dropped; an attachment (a media download)
// is never read as a token error, whatever it holds.
func TestRelayAnswerNeverCarriesTheToken(t *testing.T) {
	p := &platformSim{good: "tokA"}
	p.answer = func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/cgi-bin/redirect":
			w.Header().Set("Location", "https://example.test/x?"+r.URL.RawQuery)
			w.Header().Set("Connection", "X-Internal")
			w.Header().Set("X-Internal", "secret")
			w.WriteHeader(302)
		case "/cgi-bin/echo":
			io.WriteString(w, `{"errcode":44002,"errmsg":"bad request `+r.URL.String()+`"}`)
		case "/cgi-bin/media/get":
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Content-Disposition", `attachment; filename="a.json"`)
			io.WriteString(w, `{"errcode":40001}`)
		}
	}
	ts := &tokens{}
	g := newGW(t, p, ts, "/cgi-bin/*")
	w, _ := relay(g, "GET", "/cgi-bin/redirect", nil)
	if loc := w.Header().Get("Location"); w.Code != 302 || strings.Contains(loc, "tokA") || !strings.Contains(loc, "[token]") || w.Header().Get("X-Internal") != "" {
		t.Fatalf("%d Location %q X-Internal %q", w.Code, loc, w.Header().Get("X-Internal"))
	}
	w, _ = relay(g, "GET", "/cgi-bin/echo", nil)
	if b := w.Body.String(); strings.Contains(b, "tokA") || !strings.Contains(b, "[token]") || w.Header().Get("Content-Length") != strconv.Itoa(len(b)) {
		t.Fatalf("%s (Content-Length %s)", b, w.Header().Get("Content-Length"))
	}
	w, c := relay(g, "GET", "/cgi-bin/media/get?media_id=1", nil)
	if w.Code != 200 || c.Retried || ts.invalidated != 0 || w.Body.String() != `{"errcode":40001}` {
		t.Fatalf("attachment: %d %+v invalidated %d %s", w.Code, c, ts.invalidated, w.Body)
	}
}

// WeChat's getRidInfo answers with the failed call's request URL, the
// token in it: never relayed, even under /cgi-bin/*.
func TestWeChatNeverRelaysRidInfo(t *testing.T) {
	wx, _ := platform.Lookup(platform.WeChat)
	if err := CheckAllow(wx.Gateway, []string{"/cgi-bin/openapi/rid/get"}); err == nil || !strings.Contains(err.Error(), "never relayed") {
		t.Fatalf("CheckAllow: %v", err)
	}
	g, err := New(Options{Spec: wx.Gateway, Origin: "http://127.0.0.1:1", Allow: []string{"/cgi-bin/*"}, Tokens: map[string]TokenSource{"": &tokens{}}})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if _, ok := g.Match("/cgi-bin/openapi/rid/get"); ok {
		t.Fatal("rid/get matched /cgi-bin/*")
	}
}
