package module

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/mpsim"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/redistest"
)

// upstream is a fake next handler, the backend behind the handler: it
// records the requests that reach it (headers and body) and answers with
// answer, or 200 {"ok":true}.
type upstream struct {
	answer func(w http.ResponseWriter, r *http.Request) error

	mu     sync.Mutex
	reqs   []*http.Request
	bodies [][]byte
}

func (u *upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) error {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return err
	}
	u.mu.Lock()
	u.reqs = append(u.reqs, r)
	u.bodies = append(u.bodies, body)
	u.mu.Unlock()
	if u.answer != nil {
		return u.answer(w, r)
	}
	w.Header().Set("Content-Type", "application/json")
	_, err = io.WriteString(w, `{"ok":true}`)
	return err
}

func (u *upstream) calls() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.reqs)
}

// last is the last request that reached the upstream, and its body
// decoded as a JSON object (nil when none reached it).
func (u *upstream) last(t *testing.T) (*http.Request, map[string]any) {
	t.Helper()
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.reqs) == 0 {
		return nil, nil
	}
	var m map[string]any
	if err := json.Unmarshal(u.bodies[len(u.bodies)-1], &m); err != nil {
		t.Fatalf("forwarded body %q: %v", u.bodies[len(u.bodies)-1], err)
	}
	return u.reqs[len(u.reqs)-1], m
}

// answerJSON is an upstream answer: status, JSON content type, body.
func answerJSON(status int, body string) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(status)
		_, err := io.WriteString(w, body)
		return err
	}
}

// loginWithAnswer logs user in through h (a WeChat handler with a /login
// route) while the upstream answers with answer, and returns the login
// code and what the client received.
func loginWithAnswer(t *testing.T, h *Handler, sim *mpsim.Sim, user string, answer func(http.ResponseWriter, *http.Request) error) (mpsim.LoginResult, *httptest.ResponseRecorder) {
	t.Helper()
	lr, err := sim.Login(wxApp, user)
	if err != nil {
		t.Fatal(err)
	}
	up := &upstream{answer: answer}
	w, mpErr := serveOnLoopback(t, h, jsonRequest("POST", "/login", `{"code":"`+lr.Code+`"}`), up)
	if up.calls() != 1 || mpErr != nil {
		t.Fatalf("login of %s: %d %s, mp_error %v, upstream calls %d", user, w.Code, w.Body, mpErr, up.calls())
	}
	return lr, w
}

// phoneRequest is a phone request with user's encrypted number (and the
// login code when code is set), with extra headers.
func phoneRequest(t *testing.T, sim *mpsim.Sim, user, number, code string, hdr ...string) *http.Request {
	t.Helper()
	ed, iv, err := sim.EncryptPhone(wxApp, user, number)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{"encryptedData": ed, "iv": iv}
	if code != "" {
		m["code"] = code
	}
	b, _ := json.Marshal(m)
	return jsonRequest("POST", "/phone", string(b), hdr...)
}

// wantPhone serves req and checks that the upstream received number
// for openid, or, when openid is "", that the handler answered errCode
// itself (not reaching the upstream).
func wantPhone(t *testing.T, what string, h *Handler, req *http.Request, openid, number, errCode string) {
	t.Helper()
	up := &upstream{}
	w, mpErr := serveOnLoopback(t, h, req, up)
	if errCode != "" {
		if up.calls() != 0 || mpErr != errCode || !strings.Contains(w.Body.String(), `"error":"`+errCode+`"`) {
			t.Errorf("%s: %d %s, mp_error %v, upstream calls %d; want %s", what, w.Code, w.Body, mpErr, up.calls(), errCode)
		}
		return
	}
	r, body := up.last(t)
	if w.Code != 200 || mpErr != nil || r == nil {
		t.Errorf("%s: %d %s, mp_error %v; want forwarded", what, w.Code, w.Body, mpErr)
		return
	}
	if r.Header.Get(HeaderOpenID) != openid || r.Header.Get(HeaderPhone) != number || body[FieldPhoneNumber] != number || body[FieldOpenID] != openid {
		t.Errorf("%s: forwarded %v %v, want %s for %s", what, r.Header, body, number, openid)
	}
}

func TestTokenBindingConfigValidate(t *testing.T) {
	for _, c := range []struct {
		cfg   TokenBindingConfig
		field string // "" when valid
	}{
		{TokenBindingConfig{From: TokenSource{JSON: "data.token"}}, ""},
		{TokenBindingConfig{From: TokenSource{JSON: "token"}, MaxResponseSize: 1}, ""},
		{TokenBindingConfig{From: TokenSource{Header: "X-Token"}, Request: &TokenCarrier{Header: "X-Auth"}}, ""},
		{TokenBindingConfig{From: TokenSource{Cookie: "sid"}, Request: &TokenCarrier{Bearer: true}}, ""},
		{TokenBindingConfig{From: TokenSource{Cookie: "sid"}, Request: &TokenCarrier{}}, ""},
		{TokenBindingConfig{}, "token_binding.from"},
		{TokenBindingConfig{From: TokenSource{JSON: "a", Header: "X-A"}}, "token_binding.from"},
		{TokenBindingConfig{From: TokenSource{Header: "X-A", Cookie: "a"}}, "token_binding.from"},
		{TokenBindingConfig{From: TokenSource{JSON: "data..token"}}, "token_binding.from"},
		{TokenBindingConfig{From: TokenSource{JSON: ".token"}}, "token_binding.from"},
		{TokenBindingConfig{From: TokenSource{JSON: "token."}}, "token_binding.from"},
		{TokenBindingConfig{From: TokenSource{Header: "X Token"}}, "token_binding.from"},
		{TokenBindingConfig{From: TokenSource{Cookie: "sid;"}}, "token_binding.from"},
		{TokenBindingConfig{From: TokenSource{JSON: "t"}, Request: &TokenCarrier{Bearer: true, Header: "X-A"}}, "token_binding.request"},
		{TokenBindingConfig{From: TokenSource{JSON: "t"}, Request: &TokenCarrier{Header: "X-A", Cookie: "a"}}, "token_binding.request"},
		{TokenBindingConfig{From: TokenSource{JSON: "t"}, Request: &TokenCarrier{Header: "X:A"}}, "token_binding.request"},
		{TokenBindingConfig{From: TokenSource{JSON: "t"}, Request: &TokenCarrier{Cookie: "a=b"}}, "token_binding.request"},
		{TokenBindingConfig{From: TokenSource{JSON: "t"}, MaxResponseSize: -1}, "token_binding.max_response_size"},
		{TokenBindingConfig{From: TokenSource{JSON: "t"}, MaxResponseSize: MaxMaxResponseSize + 1}, "token_binding.max_response_size"},
	} {
		err := c.cfg.Validate()
		var fe *FieldError
		switch {
		case c.field == "" && err != nil:
			t.Errorf("%+v: %v", c.cfg, err)
		case c.field != "" && (!errors.As(err, &fe) || fe.Field != c.field):
			t.Errorf("%+v: err %v, want a field error of %s", c.cfg, err, c.field)
		}
	}
	for name, ok := range map[string]bool{
		"X-Token": true, "sid": true, "!#$%&'*+-.^_`|~09azAZ": true,
		"": false, "a b": false, "a:b": false, "a\x00": false, "é": false, "a/b": false, `a"`: false,
	} {
		if ValidTokenName(name) != ok {
			t.Errorf("ValidTokenName(%q) = %v", name, !ok)
		}
	}
	// Token binding needs the login route.
	_, err := provisionJSON(t, `{"platform":"wechat","app_id":"wx1","app_secret":"s","phone":"/phone","token_binding":{"from":{"json":"token"}}}`)
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "token_binding" {
		t.Errorf("token_binding without login: %v", err)
	}
}

// jsonToken follows the configured path: objects by key, arrays by index;
// a string (trimmed, "Bearer " dropped) or a number; nothing else.
func TestJSONTokenPath(t *testing.T) {
	b := &tokenBinding{jsonPath: strings.Split("data.tokens.1", ".")}
	for body, want := range map[string]string{
		`{"data":{"tokens":["a","b"]}}`:                  "b",
		`{"data":{"tokens":["a"," Bearer  z "]}}`:        "z",
		`{"data":{"tokens":["a",12345678901234567890]}}`: "12345678901234567890",
		`{"data":{"tokens":{"1":"by-key"}}}`:             "by-key",
		`{"data":{"tokens":["a"]}}`:                      "",
		`{"data":{"tokens":["a",{"v":"x"}]}}`:            "",
		`{"data":{"tokens":["a",null]}}`:                 "",
		`{"data":{"tokens":["a",true]}}`:                 "",
		`{"data":{"tokens":"ab"}}`:                       "",
		`{"data":"x"}`:                                   "",
		`["data"]`:                                       "",
		`not json`:                                       "",
		``:                                               "",
	} {
		if got := b.jsonToken([]byte(body)); got != want {
			t.Errorf("%s: %q, want %q", body, got, want)
		}
	}
	neg := &tokenBinding{jsonPath: []string{"-1"}}
	if got := neg.jsonToken([]byte(`["a","b"]`)); got != "" {
		t.Errorf("index -1: %q", got)
	}
}

// From JSON (data.token, requests by bearer): the login answer reaches
// the client unchanged, and later phone requests find the session by the
// token; a token the store does not know is session_not_found, even with
// a valid login code beside it.
func TestBindingFromJSON(t *testing.T) {
	sim := mpsim.New(mpsim.Options{})
	h := metricsHandler(t, sim)
	const answer = `{"data":{"token":"tok-json-1","name":"\u00e9"},  "n": 1.50}`
	lr, err := sim.Login(wxApp, "bind-json")
	if err != nil {
		t.Fatal(err)
	}
	up := &upstream{answer: func(w http.ResponseWriter, r *http.Request) error {
		w.Header().Set("X-Upstream", "1")
		w.Header().Add("Set-Cookie", "a=b")
		return answerJSON(201, answer)(w, r)
	}}
	req := jsonRequest("POST", "/login", `{"code":"`+lr.Code+`"}`, "Accept-Encoding", "gzip, br")
	w, mpErr := serveOnLoopback(t, h, req, up)
	if w.Code != 201 || w.Body.String() != answer || mpErr != nil {
		t.Fatalf("login answer changed: %d %q, mp_error %v", w.Code, w.Body, mpErr)
	}
	if w.Header().Get("X-Upstream") != "1" || w.Header().Get("Set-Cookie") != "a=b" || w.Header().Get("Content-Length") != fmt.Sprint(len(answer)) {
		t.Fatalf("login answer headers: %v", w.Header())
	}
	if r, _ := up.last(t); r.Header.Get("Accept-Encoding") != "" || r.Header.Get(HeaderOpenID) != lr.OpenID {
		t.Fatalf("the login request upstream: %v", r.Header)
	}

	wantPhone(t, "bearer token", h, phoneRequest(t, sim, "bind-json", "13800138001", "", "Authorization", "Bearer tok-json-1"), lr.OpenID, "13800138001", "")
	wantPhone(t, "bearer, any case and spaces", h, phoneRequest(t, sim, "bind-json", "13800138001", "", "Authorization", "  bEARER   tok-json-1 "), lr.OpenID, "13800138001", "")
	wantPhone(t, "no token: the login code", h, phoneRequest(t, sim, "bind-json", "13800138001", lr.Code), lr.OpenID, "13800138001", "")
	wantPhone(t, "another scheme: the login code", h, phoneRequest(t, sim, "bind-json", "13800138001", lr.Code, "Authorization", "Basic dG9rLWpzb24tMQ=="), lr.OpenID, "13800138001", "")
	wantPhone(t, "unknown token and a valid code", h, phoneRequest(t, sim, "bind-json", "13800138001", lr.Code, "Authorization", "Bearer tok-json-2"), "", "", "session_not_found")
	wantPhone(t, "the token in another carrier", h, phoneRequest(t, sim, "bind-json", "13800138001", "", "X-Token", "tok-json-1"), "", "", "bad_request")
	wantPhone(t, "no token, no code", h, phoneRequest(t, sim, "bind-json", "13800138001", ""), "", "", "bad_request")
}

// Which login answers bind their JSON token: only a 2xx, uncompressed
// JSON answer with a string or number at the path. Every answer reaches
// the client unchanged.
func TestBindingJSONAnswers(t *testing.T) {
	sim := mpsim.New(mpsim.Options{})
	h := metricsHandler(t, sim)
	for i, c := range []struct {
		status int
		ctype  string
		encode string
		body   string
		token  string // the token the answer carries
		bound  bool
	}{
		{200, "application/json", "", `{"data":{"token":"Bearer tk-a-1"}}`, "tk-a-1", true},
		{200, "application/vnd.api+json", "", `{"data":{"token":"tk-a-2"}}`, "tk-a-2", true},
		{200, "text/json", "identity", `{"data":{"token":"tk-a-3"}}`, "tk-a-3", true},
		{201, "application/json", "", `{"data":{"token":98765432109876543210}}`, "98765432109876543210", true},
		{401, "application/json", "", `{"data":{"token":"tk-a-5"}}`, "tk-a-5", false},
		{302, "application/json", "", `{"data":{"token":"tk-a-6"}}`, "tk-a-6", false},
		{200, "text/plain", "", `{"data":{"token":"tk-a-7"}}`, "tk-a-7", false},
		{200, "", "", `{"data":{"token":"tk-a-8"}}`, "tk-a-8", false},
		{200, "application/json", "gzip", `{"data":{"token":"tk-a-9"}}`, "tk-a-9", false},
		{200, "application/json", "", `{"token":"tk-a-10"}`, "tk-a-10", false},
		{200, "application/json", "", `{"data":{"token":["tk-a-11"]}}`, "tk-a-11", false},
		{200, "application/json", "", `{"data":{"token":"tk-a-12"}`, "tk-a-12", false},
		{204, "application/json", "", ``, "tk-a-13", false},
	} {
		user := fmt.Sprintf("bind-answer-%d", i)
		lr, w := loginWithAnswer(t, h, sim, user, func(w http.ResponseWriter, r *http.Request) error {
			if c.ctype != "" {
				w.Header().Set("Content-Type", c.ctype)
			}
			if c.encode != "" {
				w.Header().Set("Content-Encoding", c.encode)
			}
			w.WriteHeader(c.status)
			if c.body == "" {
				return nil
			}
			_, err := io.WriteString(w, c.body)
			return err
		})
		if w.Code != c.status || w.Body.String() != c.body || w.Header().Get("Content-Encoding") != c.encode {
			t.Errorf("%d: the client got %d %q %v, want the upstream's answer", i, w.Code, w.Body, w.Header())
		}
		if c.bound {
			wantPhone(t, fmt.Sprintf("%d: bound", i), h, phoneRequest(t, sim, user, "13800138002", "", "Authorization", "Bearer "+c.token), lr.OpenID, "13800138002", "")
		} else {
			wantPhone(t, fmt.Sprintf("%d: not bound", i), h, phoneRequest(t, sim, user, "13800138002", "", "Authorization", "Bearer "+c.token), "", "", "session_not_found")
		}
	}

	// An upstream that writes nothing, and one that fails after writing:
	// nothing bound, and the failure is the server's to answer.
	_, w := loginWithAnswer(t, h, sim, "bind-silent", func(http.ResponseWriter, *http.Request) error { return nil })
	if w.Code != 200 || w.Body.Len() != 0 {
		t.Errorf("silent upstream: %d %q", w.Code, w.Body)
	}
	lr, err := sim.Login(wxApp, "bind-failing")
	if err != nil {
		t.Fatal(err)
	}
	errUp := errors.New("upstream broke")
	up := &upstream{answer: func(w http.ResponseWriter, r *http.Request) error {
		answerJSON(200, `{"data":{"token":"tk-failing"}}`)(w, r)
		return errUp
	}}
	req := jsonRequest("POST", "/login", `{"code":"`+lr.Code+`"}`)
	rw := httptest.NewRecorder()
	req = caddyhttp.PrepareRequest(req, caddy.NewReplacer(), rw, nil)
	if err := h.ServeHTTP(rw, req, up); !errors.Is(err, errUp) || rw.Body.Len() != 0 {
		t.Fatalf("failing upstream: err %v, client got %q", err, rw.Body)
	}
	wantPhone(t, "failed login answer", h, phoneRequest(t, sim, "bind-failing", "13800138002", "", "Authorization", "Bearer tk-failing"), "", "", "session_not_found")
}

// From a response header, sent back in a request header of another name.
func TestBindingFromHeader(t *testing.T) {
	sim := mpsim.New(mpsim.Options{})
	h := provisionAt(t, sim, `{"platform":"wechat","app_id":"`+wxApp+`","app_secret":"`+wxSecret+`","api_base":"@API@",
		"login":"/login","phone":"/phone","store":{"type":"memory","max_sessions":100},
		"token_binding":{"from":{"header":"x-token"},"request":{"header":"X-Auth"}}}`)
	answer := func(status int, token string) func(http.ResponseWriter, *http.Request) error {
		return func(w http.ResponseWriter, r *http.Request) error {
			if token != "" {
				w.Header().Set("X-Token", token)
			}
			w.Header().Set("Content-Type", "text/plain")
			w.WriteHeader(status)
			_, err := io.WriteString(w, "welcome")
			return err
		}
	}
	lr, w := loginWithAnswer(t, h, sim, "bind-header", answer(200, "Bearer tk-h-1"))
	if w.Code != 200 || w.Body.String() != "welcome" || w.Header().Get("X-Token") != "Bearer tk-h-1" {
		t.Fatalf("login answer: %d %q %v", w.Code, w.Body, w.Header())
	}
	wantPhone(t, "header", h, phoneRequest(t, sim, "bind-header", "13800138003", "", "X-Auth", "tk-h-1"), lr.OpenID, "13800138003", "")
	wantPhone(t, "header with a scheme", h, phoneRequest(t, sim, "bind-header", "13800138003", "", "X-Auth", "Bearer tk-h-1"), lr.OpenID, "13800138003", "")
	wantPhone(t, "bearer is not the carrier", h, phoneRequest(t, sim, "bind-header", "13800138003", "", "Authorization", "Bearer tk-h-1"), "", "", "bad_request")
	wantPhone(t, "unknown header token", h, phoneRequest(t, sim, "bind-header", "13800138003", lr.Code, "X-Auth", "tk-h-0"), "", "", "session_not_found")

	loginWithAnswer(t, h, sim, "bind-header-500", answer(500, "tk-h-2"))
	wantPhone(t, "a 500's header", h, phoneRequest(t, sim, "bind-header-500", "13800138003", "", "X-Auth", "tk-h-2"), "", "", "session_not_found")
	lr3, w := loginWithAnswer(t, h, sim, "bind-header-none", answer(200, ""))
	if w.Code != 200 || w.Body.String() != "welcome" {
		t.Fatalf("login without a token: %d %q", w.Code, w.Body)
	}
	wantPhone(t, "no token bound: the code still works", h, phoneRequest(t, sim, "bind-header-none", "13800138003", lr3.Code), lr3.OpenID, "13800138003", "")
}

// A header token sent back in a cookie.
func TestBindingHeaderToCookie(t *testing.T) {
	sim := mpsim.New(mpsim.Options{})
	h := provisionAt(t, sim, `{"platform":"wechat","app_id":"`+wxApp+`","app_secret":"`+wxSecret+`","api_base":"@API@",
		"login":"/login","phone":"/phone","store":{"type":"memory","max_sessions":100},
		"token_binding":{"from":{"header":"X-Token"},"request":{"cookie":"tok"}}}`)
	lr, _ := loginWithAnswer(t, h, sim, "bind-h2c", func(w http.ResponseWriter, r *http.Request) error {
		w.Header().Set("X-Token", "tk-h2c")
		return answerJSON(200, `{}`)(w, r)
	})
	wantPhone(t, "cookie", h, phoneRequest(t, sim, "bind-h2c", "13800138007", "", "Cookie", "tok=tk-h2c"), lr.OpenID, "13800138007", "")
	wantPhone(t, "header is not the carrier", h, phoneRequest(t, sim, "bind-h2c", "13800138007", "", "X-Token", "tk-h2c"), "", "", "bad_request")
}

// From a cookie the answer sets, sent back as the same cookie: the last
// Set-Cookie of the name wins; a cookie being deleted is not bound.
func TestBindingFromCookie(t *testing.T) {
	sim := mpsim.New(mpsim.Options{})
	h := provisionAt(t, sim, `{"platform":"wechat","app_id":"`+wxApp+`","app_secret":"`+wxSecret+`","api_base":"@API@",
		"login":"/login","phone":"/phone","store":{"type":"memory","max_sessions":100},
		"token_binding":{"from":{"cookie":"sid"}}}`)
	setCookies := func(lines ...string) func(http.ResponseWriter, *http.Request) error {
		return func(w http.ResponseWriter, r *http.Request) error {
			for _, l := range lines {
				w.Header().Add("Set-Cookie", l)
			}
			return answerJSON(200, `{"ok":true}`)(w, r)
		}
	}
	for i, c := range []struct {
		lines []string
		bound string   // the token bound ("" for none)
		not   []string // tokens not bound
	}{
		{[]string{"sid=tk-c-1; Path=/; HttpOnly"}, "tk-c-1", nil},
		{[]string{`sid="tk-c-2"; Path=/`}, "tk-c-2", nil},
		{[]string{"sid=tk-c-3a; Path=/", "sid=tk-c-3b; Path=/"}, "tk-c-3b", []string{"tk-c-3a"}},
		{[]string{"sid=tk-c-4; Path=/", "sid=; Max-Age=0"}, "", []string{"tk-c-4"}},
		{[]string{"sid=tk-c-5; Expires=Thu, 01 Jan 1970 00:00:01 GMT"}, "", []string{"tk-c-5"}},
		{[]string{"other=tk-c-6"}, "", []string{"tk-c-6"}},
		{[]string{"sid=tk-c-7x", "sid=tk-c-7; Max-Age=3600", "other=x"}, "tk-c-7", []string{"tk-c-7x"}},
	} {
		user := fmt.Sprintf("bind-cookie-%d", i)
		lr, w := loginWithAnswer(t, h, sim, user, setCookies(c.lines...))
		if got := w.Header().Values("Set-Cookie"); strings.Join(got, "\n") != strings.Join(c.lines, "\n") {
			t.Errorf("%d: the client got Set-Cookie %q", i, got)
		}
		if c.bound != "" {
			wantPhone(t, fmt.Sprintf("%d: cookie %s", i, c.bound), h, phoneRequest(t, sim, user, "13800138004", "", "Cookie", "a=1; sid="+c.bound), lr.OpenID, "13800138004", "")
			wantPhone(t, fmt.Sprintf("%d: bearer is not the carrier", i), h, phoneRequest(t, sim, user, "13800138004", "", "Authorization", "Bearer "+c.bound), "", "", "bad_request")
		}
		for _, tok := range c.not {
			wantPhone(t, fmt.Sprintf("%d: cookie %s not bound", i, tok), h, phoneRequest(t, sim, user, "13800138004", lr.Code, "Cookie", "sid="+tok), "", "", "session_not_found")
		}
	}
}

// max_response_size: a larger JSON answer passes through unchanged and
// unbound, whether its Content-Length says so or it grows past the bound
// while written; one within the bound binds. Flushes reach the client
// only once the answer streams.
func TestBindingResponseSizeCap(t *testing.T) {
	sim := mpsim.New(mpsim.Options{})
	h := provisionAt(t, sim, `{"platform":"wechat","app_id":"`+wxApp+`","app_secret":"`+wxSecret+`","api_base":"@API@",
		"login":"/login","phone":"/phone","store":{"type":"memory","max_sessions":100},
		"token_binding":{"from":{"json":"token"},"max_response_size":64}}`)
	// A JSON answer of exactly n bytes carrying token.
	sized := func(token string, n int) string {
		s := `{"token":"` + token + `","pad":""}`
		s = s[:len(s)-2] + strings.Repeat("x", n-len(s)) + `"}`
		if len(s) != n {
			t.Fatalf("sized: %d bytes, want %d", len(s), n)
		}
		return s
	}
	for i, c := range []struct {
		body          string
		contentLength bool
		chunks        int // written in this many Writes
		bound         bool
	}{
		{sized("tk-s-1", 64), false, 1, true},
		{sized("tk-s-2", 64), true, 3, true},
		{sized("tk-s-3", 65), false, 1, false},
		{sized("tk-s-4", 65), true, 1, false},
		{sized("tk-s-5", 300), false, 5, false},
	} {
		token := fmt.Sprintf("tk-s-%d", i+1)
		user := fmt.Sprintf("bind-size-%d", i)
		lr, w := loginWithAnswer(t, h, sim, user, func(w http.ResponseWriter, r *http.Request) error {
			w.Header().Set("Content-Type", "application/json")
			if c.contentLength {
				w.Header().Set("Content-Length", fmt.Sprint(len(c.body)))
			}
			w.WriteHeader(201)
			step := (len(c.body) + c.chunks - 1) / c.chunks
			for p := c.body; p != ""; {
				n := min(step, len(p))
				if _, err := io.WriteString(w, p[:n]); err != nil {
					return err
				}
				p = p[n:]
			}
			return nil
		})
		if w.Code != 201 || w.Body.String() != c.body {
			t.Errorf("%d: the client got %d %q", i, w.Code, w.Body)
		}
		if c.bound {
			wantPhone(t, fmt.Sprintf("%d: bound", i), h, phoneRequest(t, sim, user, "13800138005", "", "Authorization", "Bearer "+token), lr.OpenID, "13800138005", "")
		} else {
			wantPhone(t, fmt.Sprintf("%d: not bound", i), h, phoneRequest(t, sim, user, "13800138005", "", "Authorization", "Bearer "+token), "", "", "session_not_found")
		}
	}

	// Flushes: suppressed while the answer is buffered, passed on once it
	// streams.
	lr, err := sim.Login(wxApp, "bind-flush")
	if err != nil {
		t.Fatal(err)
	}
	client := httptest.NewRecorder()
	var flushedWhileBuffered, flushedStreaming bool
	first, rest := `{"token":"tk-flush","pad":"`, strings.Repeat("y", 100)+`"}`
	up := &upstream{answer: func(w http.ResponseWriter, r *http.Request) error {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, first)
		if err := http.NewResponseController(w).Flush(); err != nil {
			return err
		}
		flushedWhileBuffered = client.Flushed || client.Body.Len() > 0
		io.WriteString(w, rest)
		if err := http.NewResponseController(w).Flush(); err != nil {
			return err
		}
		flushedStreaming = client.Flushed
		return nil
	}}
	req := jsonRequest("POST", "/login", `{"code":"`+lr.Code+`"}`)
	req = req.WithContext(context.WithValue(req.Context(), http.LocalAddrContextKey, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9001}))
	req = caddyhttp.PrepareRequest(req, caddy.NewReplacer(), client, nil)
	if err := h.ServeHTTP(client, req, up); err != nil {
		t.Fatal(err)
	}
	if flushedWhileBuffered || !flushedStreaming || client.Body.String() != first+rest {
		t.Fatalf("flushes: while buffered %v, streaming %v; body %q", flushedWhileBuffered, flushedStreaming, client.Body)
	}
	wantPhone(t, "spilled answer", h, phoneRequest(t, sim, "bind-flush", "13800138005", "", "Authorization", "Bearer tk-flush"), "", "", "session_not_found")

	// An answer whose Content-Length is over the bound streams from its
	// first byte.
	lr, err = sim.Login(wxApp, "bind-long")
	if err != nil {
		t.Fatal(err)
	}
	client = httptest.NewRecorder()
	var streamedAtOnce bool
	up = &upstream{answer: func(w http.ResponseWriter, r *http.Request) error {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", fmt.Sprint(len(first+rest)))
		io.WriteString(w, first)
		if err := http.NewResponseController(w).Flush(); err != nil {
			return err
		}
		streamedAtOnce = client.Flushed && client.Body.String() == first
		_, err := io.WriteString(w, rest)
		return err
	}}
	req = jsonRequest("POST", "/login", `{"code":"`+lr.Code+`"}`)
	req = caddyhttp.PrepareRequest(req, caddy.NewReplacer(), client, nil)
	if err := h.ServeHTTP(client, req, up); err != nil {
		t.Fatal(err)
	}
	if !streamedAtOnce || client.Body.String() != first+rest {
		t.Fatalf("long answer: streamed at once %v, body %q", streamedAtOnce, client.Body)
	}
}

// With Redis: a bind that fails (the store went down after the exchange)
// leaves the login answer as it was and is logged; a token looked up while
// the store is down is store_unavailable, never a fall-back to the code.
func TestBindingStoreDown(t *testing.T) {
	rs := redistest.Start(t)
	sim := mpsim.New(mpsim.Options{})
	h := provisionAt(t, sim, `{"platform":"wechat","app_id":"`+wxApp+`","app_secret":"`+wxSecret+`","api_base":"@API@",
		"login":"/login","phone":"/phone","store":{"type":"redis","url":"`+rs.URL()+`"},
		"token_binding":{"from":{"json":"data.token"}}}`)
	core, logs := observer.New(zapcore.DebugLevel)
	h.logger = zap.New(core)

	lr, _ := loginWithAnswer(t, h, sim, "bind-redis", answerJSON(200, `{"data":{"token":"tk-r-1"}}`))
	wantPhone(t, "bound in Redis", h, phoneRequest(t, sim, "bind-redis", "13800138006", "", "Authorization", "Bearer tk-r-1"), lr.OpenID, "13800138006", "")

	const answer = `{"data":{"token":"tk-r-2"}}`
	_, w := loginWithAnswer(t, h, sim, "bind-redis-2", func(w http.ResponseWriter, r *http.Request) error {
		rs.Kill() // after the exchange was saved, before the bind
		return answerJSON(200, answer)(w, r)
	})
	if w.Code != 200 || w.Body.String() != answer {
		t.Fatalf("login answer with a failed bind: %d %q", w.Code, w.Body)
	}
	if n := logs.FilterMessageSnippet("could not bind").FilterLevelExact(zapcore.WarnLevel).Len(); n != 1 {
		t.Errorf("%d warnings of the failed bind, want 1", n)
	}
	for _, e := range logs.AllUntimed() {
		if b, _ := json.Marshal(e.ContextMap()); strings.Contains(string(b), "tk-r-") {
			t.Errorf("a token in the log: %s %s", e.Message, b)
		}
	}
	wantPhone(t, "token while the store is down", h, phoneRequest(t, sim, "bind-redis", "13800138006", "", "Authorization", "Bearer tk-r-1"), "", "", "store_unavailable")
}

// README (token binding): "When a request carries a token, the token
// decides (an unknown token is session_not_found even if a code is
// present)"; binding.go: "an unknown or expired token is 401
// session_not_found, whatever else the request carries". On the phone
// route with a WeChat phone code that does not hold: phoneCodeOpenID
// (phonecode.go) treats the unknown token as "no session" and goes on.
func TestBindingUnknownTokenWithPhoneCode(t *testing.T) {
	sim := mpsim.New(mpsim.Options{})
	h := metricsHandler(t, sim)
	code := phoneCode(t, sim, "bind-unknown-pc", "13800138008")
	wantPhone(t, "unknown token, phone code", h, jsonRequest("POST", "/phone", `{"code":"`+code+`"}`, "Authorization", "Bearer never-bound"), "", "", "session_not_found")
	btn, err := sim.PhoneButton(wxApp, "bind-unknown-pc", "13800138008")
	if err != nil {
		t.Fatal(err)
	}
	detail, _ := json.Marshal(btn)
	wantPhone(t, "unknown token, e.detail", h, jsonRequest("POST", "/phone", string(detail), "Authorization", "Bearer never-bound"), "", "", "session_not_found")

	own := provisionAt(t, sim, `{"platform":"wechat","app_id":"`+wxApp+`","app_secret":"`+wxSecret+`","api_base":"@API@",
		"login":"/login","phone":"/phone","store":{"type":"memory","max_sessions":100},"fields":{"phone_code":"phone_code"},
		"token_binding":{"from":{"json":"data.token"}}}`)
	lr, _ := loginWithAnswer(t, own, sim, "bind-unknown-own", nil)
	code = phoneCode(t, sim, "bind-unknown-own", "13800138009")
	wantPhone(t, "unknown token, login code and phone code", own, jsonRequest("POST", "/phone", `{"code":"`+lr.Code+`","phone_code":"`+code+`"}`, "Authorization", "Bearer never-bound"), "", "", "session_not_found")
}
