package integration

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/redistest"
)

// Sessions the handler issues itself: the token comes in the login answer
// (the upstream's own answer kept), gives identity on any path of any
// instance, never reaches the backend, is required on require_session
// paths and ended by a logout on every instance at once.

// sessionHdr is the login answer's header with the issued session token.
const sessionHdr = "X-Mp-Session"

// sessAuth is how later requests carry it by default: Authorization:
// Bearer, which Caddy's access log redacts.
func sessAuth(tok string) []string { return []string{"Authorization", "Bearer " + tok} }

// upstreamSawToken reports whether any header the upstream received
// holds tok.
func upstreamSawToken(rec Recorded, tok string) bool {
	for _, vs := range rec.Header {
		for _, v := range vs {
			if strings.Contains(v, tok) {
				return true
			}
		}
	}
	return false
}

// sessionLogFilter is the README's access-log filter for the session
// header (Caddy's access log redacts Authorization and cookies only).
const sessionLogFilter = `	log {
		output stderr
		format filter {
			request>headers>X-Mp-Session delete
		}
	}`

// twoFilteredInstances is twoInstances with the README's log filter.
func twoFilteredInstances(t *testing.T, rs *redistest.Server, extra ...string) (*Sim, *Upstream, *Caddy, *Caddy) {
	t.Helper()
	sim, up := newSim(t), newUpstream(t)
	extra = append([]string{"store redis " + rs.URL()}, extra...)
	body := mpBlock("wechat", wxApp, wxSecret, sim.URL, extra...) + "\n\treverse_proxy " + strings.TrimPrefix(up.URL, "http://")
	start := func() *Caddy {
		port, admin := freePort(t), freePort(t)
		cf := site(admin, port, body)
		plain := "\tlog {\n\t\toutput stderr\n\t}"
		if !strings.Contains(cf, plain) {
			t.Fatal("the harness's log block changed")
		}
		return startCaddyfile(t, admin, strings.Replace(cf, plain, sessionLogFilter, 1), port)
	}
	return sim, up, start(), start()
}

func TestSessionIssuedTwoInstances(t *testing.T) {
	rs := redistest.Start(t)
	// No log filter: by default the token travels as Authorization:
	// Bearer, which Caddy's access log redacts (noSecrets below).
	// identity_cache off: a logout takes effect on the other instance at
	// once (TestIdentityCacheStaleness covers the default).
	sim, up, a, b := twoInstances(t, rs, "session", "require_session /api/private/*", "logout /api/logout", "identity_cache off")
	ti := &tokenIssuer{t: t}
	up.setLoginRespond(ti.respond) // the backend's own login answer: headers, cookie, body
	lr := login(t, sim, wxApp, "sol")

	// Login on A: the answer carries the token and the upstream's answer
	// unchanged.
	r := postJSON(t, a.URL+"/api/login", map[string]any{"code": lr.Code})
	_, body := ti.last(t)
	wantUnchanged(t, r, 200, body)
	tok := r.Header.Get(sessionHdr)
	if len(tok) < 43 {
		t.Fatalf("login answer's session token %q: want at least 32 random bytes in base64url", tok)
	}
	if r.Header.Get("X-Upstream") != "legacy" || !strings.Contains(strings.Join(r.Header.Values("Set-Cookie"), "|"), "theme=dark") {
		t.Fatalf("the upstream's own headers were dropped: %v", r.Header)
	}
	// Another login gives another token.
	lr2 := login(t, sim, wxApp, "sol")
	tok2 := postJSON(t, b.URL+"/api/login", map[string]any{"code": lr2.Code}).Header.Get(sessionHdr)
	if tok2 == tok || tok2 == "" {
		t.Fatalf("second login's token %q (first %q)", tok2, tok)
	}

	spoof := []string{"X-Mp-Openid", "o-spoofed", "X-WX-OPENID", "o-spoofed", "x_mp_unionid", "u-spoofed"}
	want := map[string]string{"X-Mp-Openid": lr.OpenID, "X-Mp-Unionid": lr.UnionID, "X-Mp-Platform": "wechat", "X-Mp-App-Id": wxApp}
	none := map[string]string{}
	// A token of the right shape the handler never issued.
	forged := "mps1." + strings.Repeat("A", len(tok)-len("mps1."))
	check := func(name string, inst *Caddy, path string, hdr []string, want map[string]string) {
		t.Helper()
		before := up.Count()
		wantOK(t, do(t, "GET", inst.URL+path, "", nil, hdr...))
		if up.Count() != before+1 {
			t.Fatalf("%s: the upstream was not called once", name)
		}
		rec := up.Last(t)
		got := identityHeaders(rec.Header)
		if len(got) != len(want) {
			t.Fatalf("%s: identity headers %v, want %v", name, got, want)
		}
		for k, v := range want {
			if got[k] != v {
				t.Fatalf("%s: %s = %q, want %q (all: %v)", name, k, got[k], v, got)
			}
		}
		if upstreamSawToken(rec, tok) {
			t.Fatalf("%s: the backend saw the session token: %v", name, rec.Header)
		}
	}
	check("other path, same instance", a, "/api/orders", sessAuth(tok), want)
	check("other path, other instance, spoofed headers", b, "/api/cart", append(sessAuth(tok), spoof...), want)
	check("lower-case header name and scheme", b, "/x", []string{"authorization", "bearer " + tok}, want)
	// (tok2: a header the client chooses is logged by Caddy, whatever it
	// holds.)
	check("the answer's header is no carrier by default, and is stripped", b, "/x", []string{"X-Mp-Session", tok2}, none)
	check("underscore spelling is no carrier, and is stripped", b, "/x", []string{"X_Mp_Session", tok2}, none)
	if upstreamSawToken(up.Last(t), tok2) {
		t.Fatal("the misnamed session header reached the backend")
	}
	check("forged token", a, "/api/orders", append(sessAuth(forged), spoof...), none)
	check("garbage token", a, "/api/orders", sessAuth("not-a-token"), none)
	check("no token", b, "/api/orders", spoof, none)

	// The phone route finds the session by the token (no code).
	ed, iv := phonePayload(t, sim, wxApp, "sol", "13800138060")
	wantOK(t, postJSON(t, b.URL+"/api/phone", map[string]any{"encryptedData": ed, "iv": iv}, sessAuth(tok)...))
	if rec := up.Last(t); rec.Header.Get("X-Mp-Phone") != "13800138060" || rec.Header.Get("X-Mp-Openid") != lr.OpenID || upstreamSawToken(rec, tok) {
		t.Fatalf("phone by session token: %v", rec.Header)
	}
	// An unknown token on the phone route is session_not_found, code or not.
	wantError(t, postJSON(t, b.URL+"/api/phone", map[string]any{"code": lr.Code, "encryptedData": ed, "iv": iv}, sessAuth(forged)...), 401, "session_not_found")

	// Enforcement: 401 without a session, never reaching the upstream.
	for _, c := range []struct {
		name string
		hdr  []string
	}{{"no token", nil}, {"forged token", sessAuth(forged)}, {"spoofed identity", spoof}} {
		before := up.Count()
		wantError(t, do(t, "GET", b.URL+"/api/private/report", "", nil, c.hdr...), 401, "session_not_found")
		if up.Count() != before {
			t.Fatalf("protected path, %s: the upstream was called", c.name)
		}
	}
	check("protected path with the session", b, "/api/private/report", sessAuth(tok), want)

	// Logout on A: the backend is told who left; the token gives nothing
	// on B at once.
	r = do(t, "POST", a.URL+"/api/logout", "application/json", []byte(`{}`), sessAuth(tok)...)
	wantOK(t, r)
	if rec := up.Last(t); rec.Path != "/api/logout" || rec.Header.Get("X-Mp-Openid") != lr.OpenID || upstreamSawToken(rec, tok) {
		t.Fatalf("logout request upstream: %s %v", rec.Path, rec.Header)
	}
	check("after logout, other instance", b, "/api/orders", sessAuth(tok), none)
	wantError(t, do(t, "GET", b.URL+"/api/private/report", "", nil, sessAuth(tok)...), 401, "session_not_found")
	// A second logout with the ended token passes without identity.
	check("logout again", a, "/api/logout", sessAuth(tok), none)

	// The store down: protected paths answer 503, others pass without
	// identity.
	lr3 := login(t, sim, wxApp, "sol")
	tok3 := postJSON(t, a.URL+"/api/login", map[string]any{"code": lr3.Code}).Header.Get(sessionHdr)
	if tok3 == "" {
		t.Fatal("no token at the third login")
	}
	rs.Kill()
	before := up.Count()
	wantError(t, do(t, "GET", a.URL+"/api/private/report", "", nil, sessAuth(tok3)...), 503, "store_unavailable")
	wantError(t, do(t, "POST", b.URL+"/api/logout", "", nil, sessAuth(tok3)...), 503, "store_unavailable")
	if up.Count() != before {
		t.Fatal("the upstream was called on a protected or logout path while the store was down")
	}
	check("store down, unprotected path", b, "/api/orders", sessAuth(tok3), none)
	wantError(t, do(t, "GET", a.URL+"/api/private/report", "", nil), 401, "session_not_found")

	a.Stop()
	b.Stop()
	noSecrets(t, a.Logs()+b.Logs(), tok, tok3, lr.Code, wxSecret)
}

// A cookie carrier: Set-Cookie in the login answer next to the upstream's
// own cookies; the cookie finds the session and never reaches the backend
// (the other cookies do); a logout deletes it.
func TestSessionCookie(t *testing.T) {
	e := newEnv(t, "wechat", "session {", "\tcookie mp_sid", "}", "logout /api/logout")
	ti := &tokenIssuer{t: t}
	e.up.setLoginRespond(ti.respond)
	lr := login(t, e.sim, wxApp, "cam")
	r := postJSON(t, e.url("/api/login"), map[string]any{"code": lr.Code})
	wantOK(t, r)
	if r.Header.Get(sessionHdr) != "" {
		t.Fatalf("cookie only, yet a session header: %v", r.Header)
	}
	var tok string
	theme := false
	for _, line := range r.Header.Values("Set-Cookie") {
		c, err := http.ParseSetCookie(line)
		if err != nil {
			t.Fatal(err)
		}
		switch c.Name {
		case "mp_sid":
			tok = c.Value
			if !c.HttpOnly || !c.Secure || c.Path != "/" || c.SameSite != http.SameSiteLaxMode || c.MaxAge != 720*3600 {
				t.Fatalf("session cookie attributes: %q", line)
			}
		case "theme":
			theme = true
		}
	}
	if tok == "" || !theme {
		t.Fatalf("Set-Cookie %v: want mp_sid and the upstream's theme", r.Header.Values("Set-Cookie"))
	}
	wantOK(t, do(t, "GET", e.url("/api/me"), "", nil, "Cookie", "theme=dark; mp_sid="+tok+"; lang=zh", "X-Mp-Openid", "o-spoofed"))
	rec := e.up.Last(t)
	if rec.Header.Get("X-Mp-Openid") != lr.OpenID || upstreamSawToken(rec, tok) {
		t.Fatalf("cookie session: %v", rec.Header)
	}
	if c := rec.Header.Get("Cookie"); !strings.Contains(c, "theme=dark") || !strings.Contains(c, "lang=zh") {
		t.Fatalf("the other cookies were not kept: %q", c)
	}
	r = do(t, "POST", e.url("/api/logout"), "", nil, "Cookie", "mp_sid="+tok)
	wantOK(t, r)
	deleted := false
	for _, line := range r.Header.Values("Set-Cookie") {
		if c, err := http.ParseSetCookie(line); err == nil && c.Name == "mp_sid" && c.MaxAge < 0 {
			deleted = true
		}
	}
	if !deleted {
		t.Fatalf("logout answer does not delete the cookie: %v", r.Header.Values("Set-Cookie"))
	}
	wantOK(t, do(t, "GET", e.url("/api/me"), "", nil, "Cookie", "mp_sid="+tok))
	if got := identityHeaders(e.up.Last(t).Header); len(got) != 0 {
		t.Fatalf("identity after logout: %v", got)
	}
}

// pexpireCalls is the server's count of PEXPIRE commands (scripts' own
// included).
func pexpireCalls(t *testing.T, rs *redistest.Server) int {
	t.Helper()
	info, err := rs.Client().Info(t.Context(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(info, "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "cmdstat_pexpire:calls="); ok {
			n, _ := strconv.Atoi(strings.SplitN(rest, ",", 2)[0])
			return n
		}
	}
	return 0
}

// Sliding expiry across two instances: an idle session ends after ttl; an
// active one lives on, extended at most once per refresh_every (not a
// store write per request), until max_age after its login.
func TestSessionSlidingExpiryAndMaxAge(t *testing.T) {
	rs := redistest.Start(t)
	sim, up, a, b := twoInstances(t, rs, "session {", "\tttl 2s", "\trefresh_every 1s", "\tmax_age 5s", "}", "identity_cache off")
	loginTok := func(user string) (string, string, time.Time) {
		t.Helper()
		lr := login(t, sim, wxApp, user)
		start := time.Now()
		r := postJSON(t, a.URL+"/api/login", map[string]any{"code": lr.Code})
		wantOK(t, r)
		tok := r.Header.Get(sessionHdr)
		if tok == "" {
			t.Fatal("no session token")
		}
		return tok, lr.OpenID, start
	}
	identity := func(inst *Caddy, tok string) string {
		t.Helper()
		wantOK(t, do(t, "GET", inst.URL+"/api/orders", "", nil, sessAuth(tok)...))
		return up.Last(t).Header.Get("X-Mp-Openid")
	}

	// Idle: gone after ttl.
	idle, idleID, _ := loginTok("ida")
	if got := identity(b, idle); got != idleID {
		t.Fatalf("fresh session: openid %q", got)
	}
	time.Sleep(2500 * time.Millisecond)
	if got := identity(b, idle); got != "" {
		t.Fatalf("idle past ttl: openid %q, want none", got)
	}

	// Active, alternating instances every 300 ms: alive past ttl, until
	// max_age.
	tok, openid, start := loginTok("ada")
	calls := pexpireCalls(t, rs)
	requests := 0
	for i := 0; time.Since(start) < 4*time.Second; i++ {
		inst := a
		if i%2 == 1 {
			inst = b
		}
		if got := identity(inst, tok); got != openid {
			t.Fatalf("active session at %v after login: openid %q, want %q", time.Since(start).Round(time.Millisecond), got, openid)
		}
		requests++
		time.Sleep(300 * time.Millisecond)
	}
	touched := pexpireCalls(t, rs) - calls
	// About one extension per second over 4 s, whatever the request rate.
	if requests < 10 || touched < 2 || touched > 6 {
		t.Fatalf("%d requests made %d extensions (PEXPIRE), want 2 to 6", requests, touched)
	}
	// max_age: it ends 5 s after the login, however active.
	deadline := start.Add(8 * time.Second)
	for i := 0; ; i++ {
		inst := a
		if i%2 == 1 {
			inst = b
		}
		sent := time.Since(start)
		got := identity(inst, tok)
		age := time.Since(start)
		if got == "" {
			if age < 4500*time.Millisecond {
				t.Fatalf("active session ended %v after login, before max_age", age)
			}
			break
		}
		if sent > 5500*time.Millisecond {
			t.Fatalf("session still alive %v after login (max_age 5s)", sent)
		}
		if time.Now().After(deadline) {
			t.Fatal("bounded wait exceeded")
		}
		time.Sleep(200 * time.Millisecond)
	}
	if got := identity(b, tok); got != "" {
		t.Fatalf("past max_age on the other instance: openid %q", got)
	}
}

// request header: later requests send the token back in the answer's
// header (X-Mp-Session), which Caddy's access log shows unless the site's
// log filters it (the README's filter); the backend never sees it; a
// bearer token that is not one the handler issues (the backend's own)
// passes untouched.
func TestSessionRequestHeader(t *testing.T) {
	rs := redistest.Start(t)
	sim, up, a, _ := twoFilteredInstances(t, rs, "session {", "\trequest header", "}")
	lr := login(t, sim, wxApp, "hal")
	tok := postJSON(t, a.URL+"/api/login", map[string]any{"code": lr.Code}).Header.Get(sessionHdr)
	if tok == "" {
		t.Fatal("no session token")
	}
	wantOK(t, do(t, "GET", a.URL+"/api/orders", "", nil, sessionHdr, tok, "Authorization", "Bearer backend-own-token"))
	rec := up.Last(t)
	if rec.Header.Get("X-Mp-Openid") != lr.OpenID || upstreamSawToken(rec, tok) || rec.Header.Get("Authorization") != "Bearer backend-own-token" {
		t.Fatalf("upstream saw %v", rec.Header)
	}
	// Bearer is not this configuration's carrier: the token there gives
	// nothing (and is the backend's business).
	wantOK(t, do(t, "GET", a.URL+"/api/orders", "", nil, sessAuth(tok)...))
	if got := up.Last(t).Header.Get("X-Mp-Openid"); got != "" {
		t.Fatalf("a bearer session token with request header: identity %q", got)
	}
	a.Stop()
	noSecrets(t, a.Logs(), lr.Code, wxSecret)
	if strings.Contains(a.Logs(), strings.TrimPrefix(tok, "mps1.")) {
		// Only the second request (the token as a bearer, which is
		// redacted) and the filtered header: it must not show.
		t.Fatal("the session token reached Caddy's log")
	}
}

// require_session covers every spelling a backend may route to a
// protected path (case, ;params, //, dot segments, encoded slashes, PHP's
// PATH_INFO, a front controller's s parameter): without a session each is
// 401 and never reaches the upstream; with one, the identity arrives.
func TestRequireSessionSpellings(t *testing.T) {
	e := newEnv(t, "wechat", "session", "require_session /api/private/*")
	lr := login(t, e.sim, wxApp, "pia")
	tok := postJSON(t, e.url("/api/login"), map[string]any{"code": lr.Code}).Header.Get(sessionHdr)
	if tok == "" {
		t.Fatal("no session token")
	}
	addr := strings.TrimPrefix(e.caddy.URL, "http://")
	for _, target := range []string{
		"/api/private/report",
		"/API/Private/report",
		"/api;jsessionid=1/private/report",
		"//api//private/report",
		"/api/./private/report",
		"/x/../api/private/report",
		"/api%2Fprivate%2Freport",
		"/api/%70rivate/report",
		"/index.php/api/private/report",
		"/index.php?s=/api/private/report",
		"/api/private",
	} {
		before := e.up.Count()
		r, err := sendRaw(addr, rawRequest{method: "GET", target: target, headers: [][2]string{{"X-WX-OPENID", "o-spoofed"}}})
		if err != nil {
			t.Fatal(err)
		}
		if r.Status != http.StatusUnauthorized || e.up.Count() != before {
			t.Errorf("%s without a session: %d, upstream called %d times", target, r.Status, e.up.Count()-before)
		}
		r, err = sendRaw(addr, rawRequest{method: "GET", target: target, headers: [][2]string{{"Authorization", "Bearer " + tok}}})
		if err != nil {
			t.Fatal(err)
		}
		if r.Status == http.StatusUnauthorized {
			t.Errorf("%s with the session: 401", target)
		} else if e.up.Count() > before && e.up.Last(t).Header.Get("X-Mp-Openid") != lr.OpenID {
			t.Errorf("%s with the session: no identity upstream", target)
		}
	}
	// Not protected: passes without a session.
	wantOK(t, do(t, "GET", e.url("/api/public/x"), "", nil))
}

// The identity cache (default 1s with Redis): repeated requests with a
// token cost no store round trip each; a logout takes effect at once on
// the instance that served it and within identity_cache on the others.
func TestIdentityCacheStaleness(t *testing.T) {
	rs := redistest.Start(t)
	sim, up, a, b := twoInstances(t, rs, "session", "logout /api/logout")
	lr := login(t, sim, wxApp, "stan")
	tok := postJSON(t, a.URL+"/api/login", map[string]any{"code": lr.Code}).Header.Get(sessionHdr)
	if tok == "" {
		t.Fatal("no session token")
	}
	identity := func(inst *Caddy) string {
		t.Helper()
		wantOK(t, do(t, "GET", inst.URL+"/api/orders", "", nil, sessAuth(tok)...))
		return up.Last(t).Header.Get("X-Mp-Openid")
	}
	lookups := func() int {
		t.Helper()
		info, err := rs.Client().Info(context.Background(), "commandstats").Result()
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, l := range strings.Split(info, "\n") {
			if strings.HasPrefix(l, "cmdstat_evalsha:") || strings.HasPrefix(l, "cmdstat_eval:") {
				f := strings.TrimPrefix(strings.SplitN(l, ",", 2)[0], strings.SplitN(l, ":", 2)[0]+":calls=")
				v, _ := strconv.Atoi(f)
				n += v
			}
		}
		return n
	}
	if identity(b) != lr.OpenID {
		t.Fatal("no identity on b")
	}
	before := lookups()
	for range 20 {
		if identity(b) != lr.OpenID {
			t.Fatal("identity lost")
		}
	}
	if n := lookups() - before; n > 2 {
		t.Errorf("20 requests within the cache's second cost %d store scripts, want at most 2", n)
	}

	wantOK(t, do(t, "POST", a.URL+"/api/logout", "application/json", []byte(`{}`), sessAuth(tok)...))
	loggedOut := time.Now()
	if got := identity(a); got != "" {
		t.Fatalf("after logout, same instance: identity %q", got)
	}
	// b may still give it for up to identity_cache (1s); then never.
	deadline := loggedOut.Add(5 * time.Second)
	for identity(b) != "" {
		if time.Now().After(deadline) {
			t.Fatal("b still gives the ended session's identity 5s after the logout")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The entry expires 1s after b's last store read at the latest; the
	// margin is for a loaded machine's request latency.
	took := time.Since(loggedOut)
	t.Logf("b stopped giving the ended session's identity %v after the logout", took)
	if took > 2500*time.Millisecond {
		t.Errorf("b gave the ended session's identity for %v after the logout (identity_cache 1s)", took)
	}
}
