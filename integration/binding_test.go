package integration

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/mpsim"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/redistest"
)

// Token binding: the upstream answers the login with its own token, and the
// phone and decrypt routes find the session by that token.

func newTok(t testing.TB) string {
	t.Helper()
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return "tok-" + hex.EncodeToString(b[:])
}

// setRespond installs the upstream's answer for the login route; every
// other path gets the default answer.
func (u *Upstream) setLoginRespond(f func(w http.ResponseWriter, r *http.Request, body []byte)) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.Respond = func(w http.ResponseWriter, r *http.Request, body []byte) {
		if r.URL.Path == "/api/login" {
			f(w, r, body)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"ok":true}`)
	}
}

// tokenIssuer answers logins like a legacy backend: a fresh token per
// login, inside a JSON body whose exact bytes the test can check.
type tokenIssuer struct {
	t      testing.TB
	status int
	mu     sync.Mutex
	tokens []string
	bodies [][]byte
}

func (ti *tokenIssuer) respond(w http.ResponseWriter, r *http.Request, body []byte) {
	tok := newTok(ti.t)
	// Odd spacing, escapes and key order: what the client gets must be
	// these bytes, not a re-encoding.
	out := []byte(fmt.Sprintf("{\"code\" : 0,\n \"data\":{\"user\":{\"nick\":\"Zo\\u00eb\"},\"token\":%q, \"n\":1.50},\"list\":[3,1,2]}\n", tok))
	ti.mu.Lock()
	ti.tokens = append(ti.tokens, tok)
	ti.bodies = append(ti.bodies, out)
	ti.mu.Unlock()
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(out)))
	w.Header().Set("X-Upstream", "legacy")
	w.Header().Add("Set-Cookie", "theme=dark; Path=/")
	status := ti.status
	if status == 0 {
		status = http.StatusOK
	}
	w.WriteHeader(status)
	w.Write(out)
}

func (ti *tokenIssuer) last(t testing.TB) (string, []byte) {
	t.Helper()
	ti.mu.Lock()
	defer ti.mu.Unlock()
	if len(ti.tokens) == 0 {
		t.Fatal("no token issued")
	}
	return ti.tokens[len(ti.tokens)-1], ti.bodies[len(ti.bodies)-1]
}

func bearer(tok string) []string { return []string{"Authorization", "Bearer " + tok} }

// wantUnchanged checks the client got the upstream's answer as it was.
func wantUnchanged(t testing.TB, r Response, status int, body []byte) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status %d, want %d; body %s", r.Status, status, r.Body)
	}
	if !bytes.Equal(r.Body, body) {
		t.Fatalf("body changed:\ngot  %q\nwant %q", r.Body, body)
	}
	if cl := r.Header.Get("Content-Length"); cl != strconv.Itoa(len(body)) {
		t.Fatalf("Content-Length %q, want %d", cl, len(body))
	}
}

// pluginLogsClean fails if a secret appears in a log line other than
// Caddy's access log and reverse_proxy's debug lines (which log some
// request and response headers verbatim: Caddy's, not the plugin's).
func pluginLogsClean(t testing.TB, logs string, secrets ...string) {
	t.Helper()
	for _, l := range strings.Split(logs, "\n") {
		if strings.Contains(l, `"logger":"http.log.access`) ||
			(strings.Contains(l, `"logger":"http.handlers.reverse_proxy"`) && strings.Contains(l, `"level":"debug"`)) {
			continue
		}
		for _, s := range secrets {
			if s != "" && strings.Contains(l, s) {
				t.Errorf("a secret (starts %q) appears in a log line: %s", s[:min(6, len(s))], l)
			}
		}
	}
}

// noRace fails if the race detector reported in caddy's output (the
// harness builds caddy with -race unless MP_CADDY_NORACE is set).
func noRace(t testing.TB, logs string) {
	t.Helper()
	if i := strings.Index(logs, "WARNING: DATA RACE"); i >= 0 {
		t.Errorf("caddy reported a data race:\n%s", logs[i:min(len(logs), i+4000)])
	}
}

func TestBindingJSONBearer(t *testing.T) {
	e := newEnv(t, "wechat", "token_binding {", "\tfrom json data.token", "}")
	ti := &tokenIssuer{t: t}
	e.up.setLoginRespond(ti.respond)

	lr := login(t, e.sim, wxApp, "tess")
	r := postJSON(t, e.url("/api/login"), map[string]any{"code": lr.Code})
	tok, want := ti.last(t)
	wantUnchanged(t, r, 200, want)
	if r.Header.Get("X-Upstream") != "legacy" || r.Header.Get("Content-Type") != "application/json; charset=utf-8" ||
		r.Header.Get("Set-Cookie") != "theme=dark; Path=/" {
		t.Fatalf("response headers changed: %v", r.Header)
	}
	if got := e.up.Last(t); got.Header.Get("X-Mp-Openid") != lr.OpenID {
		t.Fatalf("login forwarded without identity: %v", got.Header)
	}

	// Later: only the token, no login code.
	e.sim.Advance(10 * time.Minute)
	ed, iv := phonePayload(t, e.sim, wxApp, "tess", "13800138040")
	wantOK(t, postJSON(t, e.url("/api/phone"), map[string]any{"encryptedData": ed, "iv": iv}, bearer(tok)...))
	got := e.up.Last(t)
	if b := got.JSON(t); b["phoneNumber"] != "13800138040" || b["openid"] != lr.OpenID {
		t.Fatalf("phone body %v", b)
	}
	if got.Header.Get("X-Mp-Openid") != lr.OpenID || got.Header.Get("X-Mp-Phone") != "13800138040" {
		t.Fatalf("phone headers %v", got.Header)
	}
	if got.Header.Get("Authorization") != "Bearer "+tok {
		t.Fatal("the client's Authorization did not reach the upstream unchanged")
	}
	// The scheme is case-insensitive; the decrypt route works the same.
	ed2, iv2, err := e.sim.Encrypt(wxApp, "tess", map[string]any{"x": 1}, mpsim.EncryptOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wantOK(t, postJSON(t, e.url("/api/decrypt"), map[string]any{"encryptedData": ed2, "iv": iv2}, "Authorization", "bearer  "+tok))
	if b := e.up.Last(t).JSON(t); b["openid"] != lr.OpenID || b["decryptedData"] == nil {
		t.Fatalf("decrypt body %v", b)
	}

	before := e.up.Count()
	// An unknown token: log in again (even with a good code beside it: the
	// token, when present, decides).
	wantError(t, postJSON(t, e.url("/api/phone"), map[string]any{"encryptedData": ed, "iv": iv}, bearer(newTok(t))...), 401, "session_not_found")
	wantError(t, postJSON(t, e.url("/api/phone"), map[string]any{"code": lr.Code, "encryptedData": ed, "iv": iv}, bearer("tok-forged")...), 401, "session_not_found")
	// Neither token nor code.
	wantError(t, postJSON(t, e.url("/api/phone"), map[string]any{"encryptedData": ed, "iv": iv}), 400, "bad_request")
	wantError(t, postJSON(t, e.url("/api/phone"), map[string]any{"encryptedData": ed, "iv": iv}, "Authorization", "Basic dXNlcjpwYXNz"), 400, "bad_request")
	if e.up.Count() != before {
		t.Fatal("the upstream was called for a refused request")
	}
	// No token: the login code still works.
	wantOK(t, postJSON(t, e.url("/api/phone"), map[string]any{"code": lr.Code, "encryptedData": ed, "iv": iv}))
	wantOK(t, postJSON(t, e.url("/api/phone"), map[string]any{"code": lr.Code, "encryptedData": ed, "iv": iv}, "Authorization", "Basic dXNlcjpwYXNz"))

	// A new login: a new token; the old one still points at the user (and
	// so at the new key).
	lr2 := login(t, e.sim, wxApp, "tess")
	wantOK(t, postJSON(t, e.url("/api/login"), map[string]any{"code": lr2.Code}))
	tok2, _ := ti.last(t)
	ed3, iv3 := phonePayload(t, e.sim, wxApp, "tess", "13800138041")
	for _, tk := range []string{tok2, tok} {
		wantOK(t, postJSON(t, e.url("/api/phone"), map[string]any{"encryptedData": ed3, "iv": iv3}, bearer(tk)...))
		if b := e.up.Last(t).JSON(t); b["phoneNumber"] != "13800138041" {
			t.Fatalf("phone body %v", b)
		}
	}
	if n := e.sim.Calls("jscode2session"); n != 2 {
		t.Fatalf("code2session calls %d, want 2", n)
	}
	e.caddy.Stop()
	noRace(t, e.caddy.Logs())
	noSecrets(t, e.caddy.Logs(), tok, tok2, lr.Code, lr2.Code, wxSecret, "13800138040", "13800138041", ed, iv)
}

// A client that accepts gzip gets the same answer (identity-encoded), and
// the token is bound; other routes are not affected.
func TestBindingGzipClient(t *testing.T) {
	e := newEnv(t, "wechat", "token_binding {", "\tfrom json data.token", "}")
	var mu sync.Mutex
	var plain []byte
	var sawAE []string
	tok := newTok(t)
	e.up.mu.Lock()
	e.up.Respond = func(w http.ResponseWriter, r *http.Request, body []byte) {
		out := []byte(`{"data":{"token":"` + tok + `","pad":"` + strings.Repeat("abc", 500) + `"}}`)
		mu.Lock()
		plain = out
		sawAE = append(sawAE, r.URL.Path+" "+r.Header.Get("Accept-Encoding"))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Vary", "Accept-Encoding")
		if strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
			w.Header().Set("Content-Encoding", "gzip")
			zw := gzip.NewWriter(w)
			zw.Write(out)
			zw.Close()
			return
		}
		w.Write(out)
	}
	e.up.mu.Unlock()

	lr := login(t, e.sim, wxApp, "gil")
	r := do(t, http.MethodPost, e.url("/api/login"), "application/json", []byte(`{"code":"`+lr.Code+`"}`), "Accept-Encoding", "gzip, deflate, br")
	body := r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if body, err = io.ReadAll(zr); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	want := plain
	mu.Unlock()
	if r.Status != 200 || !bytes.Equal(body, want) {
		t.Fatalf("login answer %d %q, want 200 %q", r.Status, body, want)
	}
	if cl := r.Header.Get("Content-Length"); cl != "" && cl != strconv.Itoa(len(r.Body)) {
		t.Fatalf("Content-Length %s for %d bytes", cl, len(r.Body))
	}
	ed, iv := phonePayload(t, e.sim, wxApp, "gil", "13800138042")
	wantOK(t, postJSON(t, e.url("/api/phone"), map[string]any{"encryptedData": ed, "iv": iv}, bearer(tok)...))
	if b := e.up.Last(t).JSON(t); b["phoneNumber"] != "13800138042" {
		t.Fatalf("phone body %v", b)
	}

	// A plain route keeps the client's Accept-Encoding: gzip passes through.
	r = do(t, http.MethodGet, e.url("/other"), "", nil, "Accept-Encoding", "gzip")
	if r.Status != 200 || r.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("plain route: %d, Content-Encoding %q", r.Status, r.Header.Get("Content-Encoding"))
	}
	mu.Lock()
	t.Logf("Accept-Encoding seen upstream: %q", sawAE)
	for _, s := range sawAE {
		if strings.HasPrefix(s, "/api/login ") && strings.Contains(s, "br") {
			t.Errorf("the client's Accept-Encoding reached the upstream on the login route: %q", s)
		}
	}
	mu.Unlock()
	e.caddy.Stop()
	noRace(t, e.caddy.Logs())
	noSecrets(t, e.caddy.Logs(), tok, lr.Code, ed)
}

// Answers that do not bind pass through unchanged.
func TestBindingNotBound(t *testing.T) {
	e := newEnv(t, "wechat", "token_binding {", "\tfrom json data.token", "\tmax_response_size 1KiB", "}")
	var mu sync.Mutex
	var answer func(w http.ResponseWriter) []byte
	var sent []byte
	e.up.setLoginRespond(func(w http.ResponseWriter, r *http.Request, _ []byte) {
		mu.Lock()
		f := answer
		mu.Unlock()
		out := f(w)
		mu.Lock()
		sent = out
		mu.Unlock()
	})
	try := func(name string, status int, f func(w http.ResponseWriter) []byte, wantBound bool) {
		t.Run(name, func(t *testing.T) {
			mu.Lock()
			answer = f
			mu.Unlock()
			lr := login(t, e.sim, wxApp, "nick-"+strings.ReplaceAll(name, " ", "-"))
			r := postJSON(t, e.url("/api/login"), map[string]any{"code": lr.Code})
			mu.Lock()
			out := sent
			mu.Unlock()
			if r.Status != status || !bytes.Equal(r.Body, out) {
				t.Fatalf("got %d %q, want %d %q", r.Status, r.Body, status, out)
			}
			tok := name // see the answers below: the token is the case's name, dashed
			tok = "tok-" + strings.ReplaceAll(tok, " ", "-")
			ed, iv := phonePayload(t, e.sim, wxApp, "nick-"+strings.ReplaceAll(name, " ", "-"), "13800138043")
			pr := postJSON(t, e.url("/api/phone"), map[string]any{"encryptedData": ed, "iv": iv}, bearer(tok)...)
			if wantBound {
				wantOK(t, pr)
			} else {
				wantError(t, pr, 401, "session_not_found")
			}
			// The login code always works.
			wantOK(t, postJSON(t, e.url("/api/phone"), map[string]any{"code": lr.Code, "encryptedData": ed, "iv": iv}))
		})
	}
	jsonAnswer := func(status int, tok, ct string, pad int, chunked bool) func(w http.ResponseWriter) []byte {
		return func(w http.ResponseWriter) []byte {
			out := []byte(`{"data":{"token":"` + tok + `"},"pad":"` + strings.Repeat("x", pad) + `"}`)
			w.Header().Set("Content-Type", ct)
			if !chunked {
				w.Header().Set("Content-Length", strconv.Itoa(len(out)))
			}
			w.WriteHeader(status)
			if chunked {
				// Two writes with a flush between: no Content-Length.
				w.Write(out[:len(out)/2])
				w.(http.Flusher).Flush()
				w.Write(out[len(out)/2:])
				return out
			}
			w.Write(out)
			return out
		}
	}
	try("ok", 201, jsonAnswer(201, "tok-ok", "application/json", 10, false), true)
	try("ok chunked", 200, jsonAnswer(200, "tok-ok-chunked", "application/vnd.api+json", 10, true), true)
	try("forbidden", 403, jsonAnswer(403, "tok-forbidden", "application/json", 10, false), false)
	try("server error", 500, jsonAnswer(500, "tok-server-error", "application/json", 10, false), false)
	try("text plain", 200, jsonAnswer(200, "tok-text-plain", "text/plain", 10, false), false)
	try("too big", 200, jsonAnswer(200, "tok-too-big", "application/json", 4000, false), false)
	try("too big chunked", 200, jsonAnswer(200, "tok-too-big-chunked", "application/json", 4000, true), false)
	try("no token", 200, func(w http.ResponseWriter) []byte {
		out := []byte(`{"data":{"msg":"tok-no-token is not here"}}`)
		w.Header().Set("Content-Type", "application/json")
		w.Write(out)
		return out
	}, false)
	try("not json", 200, func(w http.ResponseWriter) []byte {
		out := []byte(`{"data":{"token":"tok-not-json"`)
		w.Header().Set("Content-Type", "application/json")
		w.Write(out)
		return out
	}, false)
	e.caddy.Stop()
	noRace(t, e.caddy.Logs())
	if !strings.Contains(e.caddy.Logs(), "max_response_size") {
		t.Error("an oversize login answer was not logged")
	}
	noSecrets(t, e.caddy.Logs(), "tok-ok", "tok-ok-chunked")
}

// The token comes in a response header and goes back in a request header.
func TestBindingHeader(t *testing.T) {
	e := newEnv(t, "wechat", "token_binding {", "\tfrom header X-Token", "\trequest header X-Auth-Token", "}")
	tok := newTok(t)
	body := []byte("welcome\n")
	e.up.setLoginRespond(func(w http.ResponseWriter, r *http.Request, _ []byte) {
		w.Header().Set("X-Token", tok)
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Write(body)
	})
	lr := login(t, e.sim, wxApp, "hal")
	r := postJSON(t, e.url("/api/login"), map[string]any{"code": lr.Code})
	wantUnchanged(t, r, 200, body)
	if r.Header.Get("X-Token") != tok {
		t.Fatalf("X-Token %q", r.Header.Get("X-Token"))
	}
	ed, iv := phonePayload(t, e.sim, wxApp, "hal", "13800138044")
	wantOK(t, postJSON(t, e.url("/api/phone"), map[string]any{"encryptedData": ed, "iv": iv}, "X-Auth-Token", tok))
	if b := e.up.Last(t).JSON(t); b["phoneNumber"] != "13800138044" {
		t.Fatalf("phone body %v", b)
	}
	wantError(t, postJSON(t, e.url("/api/phone"), map[string]any{"encryptedData": ed, "iv": iv}, "X-Auth-Token", "nope"), 401, "session_not_found")
	// The bearer header is not where this configuration looks.
	wantError(t, postJSON(t, e.url("/api/phone"), map[string]any{"encryptedData": ed, "iv": iv}, bearer(tok)...), 400, "bad_request")
	e.caddy.Stop()
	noRace(t, e.caddy.Logs())
	// Caddy's access log shows custom headers such as X-Token (it redacts
	// only Authorization and cookies); the plugin's own lines must not.
	pluginLogsClean(t, e.caddy.Logs(), tok, lr.Code, ed, "13800138044")
}

// The token is a cookie; by default it comes back as the same cookie.
func TestBindingCookie(t *testing.T) {
	e := newEnv(t, "wechat", "token_binding {", "\tfrom cookie sid", "}")
	tok := newTok(t)
	var mu sync.Mutex
	del := false
	e.up.setLoginRespond(func(w http.ResponseWriter, r *http.Request, _ []byte) {
		mu.Lock()
		d := del
		mu.Unlock()
		w.Header().Add("Set-Cookie", "lang=zh; Path=/")
		if d {
			w.Header().Add("Set-Cookie", "sid=; Path=/; Max-Age=0")
		} else {
			w.Header().Add("Set-Cookie", "sid="+tok+"; Path=/; HttpOnly; SameSite=Lax")
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"ok":true}`)
	})
	lr := login(t, e.sim, wxApp, "ida")
	r := postJSON(t, e.url("/api/login"), map[string]any{"code": lr.Code})
	wantUnchanged(t, r, 200, []byte(`{"ok":true}`))
	if sc := r.Header.Values("Set-Cookie"); len(sc) != 2 || sc[0] != "lang=zh; Path=/" || sc[1] != "sid="+tok+"; Path=/; HttpOnly; SameSite=Lax" {
		t.Fatalf("Set-Cookie %q", sc)
	}
	ed, iv := phonePayload(t, e.sim, wxApp, "ida", "13800138045")
	wantOK(t, postJSON(t, e.url("/api/phone"), map[string]any{"encryptedData": ed, "iv": iv}, "Cookie", "lang=zh; sid="+tok))
	if b := e.up.Last(t).JSON(t); b["phoneNumber"] != "13800138045" {
		t.Fatalf("phone body %v", b)
	}
	wantError(t, postJSON(t, e.url("/api/phone"), map[string]any{"encryptedData": ed, "iv": iv}, "Cookie", "sid=other"), 401, "session_not_found")
	wantError(t, postJSON(t, e.url("/api/phone"), map[string]any{"encryptedData": ed, "iv": iv}, bearer(tok)...), 400, "bad_request")

	// An answer deleting the cookie binds nothing.
	mu.Lock()
	del = true
	mu.Unlock()
	lr2 := login(t, e.sim, wxApp, "ida")
	wantOK(t, postJSON(t, e.url("/api/login"), map[string]any{"code": lr2.Code}))
	wantError(t, postJSON(t, e.url("/api/phone"), map[string]any{"encryptedData": ed, "iv": iv}, "Cookie", "sid="), 400, "bad_request")
	e.caddy.Stop()
	noRace(t, e.caddy.Logs())
	noSecrets(t, e.caddy.Logs(), tok, lr.Code, lr2.Code, ed, "13800138045")
}

// With Redis: login on one instance, the token finds the session on the
// other; no key or value holds the raw token.
func TestBindingRedis(t *testing.T) {
	rs := redistest.Start(t)
	sim, up, a, b := twoInstances(t, rs, "token_binding {", "\tfrom json data.token", "}")
	ti := &tokenIssuer{t: t}
	up.setLoginRespond(ti.respond)
	lr := login(t, sim, wxApp, "jon")
	r := postJSON(t, a.URL+"/api/login", map[string]any{"code": lr.Code})
	tok, want := ti.last(t)
	wantUnchanged(t, r, 200, want)
	ed, iv := phonePayload(t, sim, wxApp, "jon", "13800138046")
	wantOK(t, postJSON(t, b.URL+"/api/phone", map[string]any{"encryptedData": ed, "iv": iv}, bearer(tok)...))
	if got := up.Last(t); got.Header.Get("X-Mp-Phone") != "13800138046" || got.Header.Get("X-Mp-Openid") != lr.OpenID {
		t.Fatalf("headers %v", got.Header)
	}
	wantError(t, postJSON(t, b.URL+"/api/phone", map[string]any{"encryptedData": ed, "iv": iv}, bearer(newTok(t))...), 401, "session_not_found")

	ctx := context.Background()
	c := rs.Client()
	keys, err := c.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	secret := strings.TrimPrefix(tok, "tok-")
	found := 0
	for _, k := range keys {
		if strings.Contains(k, secret) {
			t.Fatalf("a Redis key contains the raw token: %s", k)
		}
		typ, err := c.Type(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		var vals []string
		switch typ {
		case "string":
			v, _ := c.Get(ctx, k).Result()
			vals = append(vals, v)
			if v == lr.OpenID && strings.Contains(k, ":r:") {
				found++
			}
		case "hash":
			m, _ := c.HGetAll(ctx, k).Result()
			for f, v := range m {
				vals = append(vals, f, v)
			}
		}
		for _, v := range vals {
			if strings.Contains(v, secret) {
				t.Fatalf("Redis key %s holds the raw token", k)
			}
		}
	}
	if found < 2 { // the code's pointer and the token's
		t.Fatalf("%d pointers to the user in Redis, want 2 (keys %q)", found, keys)
	}

	// Redis down: the token cannot be looked up.
	rs.Kill()
	wantError(t, postJSON(t, b.URL+"/api/phone", map[string]any{"encryptedData": ed, "iv": iv}, bearer(tok)...), 503, "store_unavailable")
	a.Stop()
	b.Stop()
	noRace(t, a.Logs()+b.Logs())
	noSecrets(t, a.Logs()+b.Logs(), tok, lr.Code, ed, "13800138046", wxSecret)
}
