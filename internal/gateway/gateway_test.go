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
