package integration

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/redistest"
)

// identityHeaders is every identity header an upstream request carries,
// of both families (X-Mp-*, X-Wx-*), by canonical name.
func identityHeaders(h http.Header) map[string]string {
	out := map[string]string{}
	for k, v := range h {
		if isMpName(k) {
			out[http.CanonicalHeaderKey(strings.ReplaceAll(k, "_", "-"))] = strings.Join(v, "|")
		}
	}
	return out
}

// With token binding, a request on any path carrying a bound token gets
// its session's identity, through two instances sharing Redis; a request
// with an unknown token, or none, gets none; the client's own never pass,
// whatever the token.
func TestIdentityOnEveryRequest(t *testing.T) {
	rs := redistest.Start(t)
	sim, up, a, b := twoInstances(t, rs, "token_binding {", "\tfrom json data.token", "}")
	ti := &tokenIssuer{t: t}
	up.setLoginRespond(ti.respond)
	lr := login(t, sim, wxApp, "iris")
	wantOK(t, postJSON(t, a.URL+"/api/login", map[string]any{"code": lr.Code}))
	tok, _ := ti.last(t)

	spoof := []string{"X-Mp-Openid", "o-spoofed", "X-WX-OPENID", "o-spoofed", "x_mp_unionid", "u-spoofed", "X-Wx-Appid", "wx-spoofed"}
	want := map[string]string{"X-Mp-Openid": lr.OpenID, "X-Mp-Unionid": lr.UnionID, "X-Mp-Platform": "wechat", "X-Mp-App-Id": wxApp}
	for _, c := range []struct {
		name   string
		inst   *Caddy
		method string
		path   string
		hdr    []string
		want   map[string]string
	}{
		{"GET other path, same instance", a, "GET", "/api/orders?page=2", bearer(tok), want},
		{"GET other path, other instance", b, "GET", "/api/orders", bearer(tok), want},
		{"POST with spoofed headers", b, "POST", "/api/cart", append(bearer(tok), spoof...), want},
		{"bearer in another case", a, "GET", "/x", []string{"Authorization", "bEaReR " + tok}, want},
		{"unknown token", b, "GET", "/api/orders", append(bearer(newTok(t)), spoof...), map[string]string{}},
		{"no token", a, "GET", "/api/orders", spoof, map[string]string{}},
		{"Basic auth", a, "GET", "/api/orders", append([]string{"Authorization", "Basic dXNlcjpwYXNz"}, spoof...), map[string]string{}},
	} {
		var r Response
		if c.method == "GET" {
			r = do(t, "GET", c.inst.URL+c.path, "", nil, c.hdr...)
		} else {
			r = do(t, "POST", c.inst.URL+c.path, "application/json", []byte(`{"openid":"body is the backend's own"}`), c.hdr...)
		}
		wantOK(t, r)
		got := identityHeaders(up.Last(t).Header)
		if len(got) != len(c.want) {
			t.Errorf("%s: identity headers %v, want %v", c.name, got, c.want)
			continue
		}
		for k, v := range c.want {
			if got[k] != v {
				t.Errorf("%s: %s = %q, want %q (all: %v)", c.name, k, got[k], v, got)
			}
		}
	}
	a.Stop()
	b.Stop()
	noSecrets(t, a.Logs()+b.Logs(), tok, lr.Code, wxSecret)
}

// header_names cloudrun injects the headers WeChat's hosted containers
// give (X-WX-OPENID, X-WX-UNIONID, X-WX-APPID) instead of X-Mp-*; both
// gives both; X-WX-SOURCE is never set. A token rebound on a refresh
// path keeps the identity.
func TestIdentityCloudRunNamesAndRebind(t *testing.T) {
	for _, names := range []string{"cloudrun", "both"} {
		t.Run(names, func(t *testing.T) {
			e := newEnv(t, "wechat", "header_names "+names, "token_binding {", "\tfrom json data.token", "\trebind /api/token/refresh", "}")
			ti := &tokenIssuer{t: t}
			e.up.mu.Lock()
			e.up.Respond = func(w http.ResponseWriter, r *http.Request, body []byte) {
				if r.URL.Path == "/api/login" || r.URL.Path == "/api/token/refresh" {
					ti.respond(w, r, body)
					return
				}
				w.Header().Set("Content-Type", "application/json")
				io.WriteString(w, `{"ok":true}`)
			}
			e.up.mu.Unlock()
			lr := login(t, e.sim, wxApp, "cora")
			wantOK(t, postJSON(t, e.url("/api/login"), map[string]any{"code": lr.Code}, "X-WX-SOURCE", "spoofed"))
			tok, _ := ti.last(t)

			want := map[string]string{"X-Wx-Openid": lr.OpenID, "X-Wx-Unionid": lr.UnionID, "X-Wx-Appid": wxApp}
			if names == "both" {
				for k, v := range map[string]string{"X-Mp-Openid": lr.OpenID, "X-Mp-Unionid": lr.UnionID, "X-Mp-Platform": "wechat", "X-Mp-App-Id": wxApp} {
					want[k] = v
				}
			}
			check := func(what string) {
				t.Helper()
				got := identityHeaders(e.up.Last(t).Header)
				if len(got) != len(want) {
					t.Fatalf("%s: identity headers %v, want %v", what, got, want)
				}
				for k, v := range want {
					if got[k] != v {
						t.Fatalf("%s: %s = %q, want %q", what, k, got[k], v)
					}
				}
			}
			check("login")
			wantOK(t, do(t, "GET", e.url("/api/profile"), "", nil, append(bearer(tok), "X-WX-SOURCE", "spoofed", "X-WX-OPENID", "o-spoofed")...))
			check("bound request")

			// The backend rotates its token on the refresh path: the new one
			// carries the identity too (and the old one still does).
			wantOK(t, do(t, "POST", e.url("/api/token/refresh"), "application/json", []byte(`{}`), bearer(tok)...))
			check("refresh request")
			tok2, _ := ti.last(t)
			if tok2 == tok {
				t.Fatal("no new token")
			}
			wantOK(t, do(t, "GET", e.url("/api/profile"), "", nil, bearer(tok2)...))
			check("rotated token")
			// A refresh with an unknown token binds nothing.
			wantOK(t, do(t, "POST", e.url("/api/token/refresh"), "application/json", []byte(`{}`), bearer(newTok(t))...))
			tok3, _ := ti.last(t)
			wantOK(t, do(t, "GET", e.url("/api/profile"), "", nil, bearer(tok3)...))
			if got := identityHeaders(e.up.Last(t).Header); len(got) != 0 {
				t.Fatalf("a token issued to an unknown session carries identity: %v", got)
			}
		})
	}
}

// identity routes keeps the old behaviour: a bound token finds the session
// on the phone and decrypt routes only.
func TestIdentityRoutesOnly(t *testing.T) {
	e := newEnv(t, "wechat", "token_binding {", "\tfrom json data.token", "\tidentity routes", "}")
	ti := &tokenIssuer{t: t}
	e.up.setLoginRespond(ti.respond)
	lr := login(t, e.sim, wxApp, "rita")
	wantOK(t, postJSON(t, e.url("/api/login"), map[string]any{"code": lr.Code}))
	tok, _ := ti.last(t)
	wantOK(t, do(t, "GET", e.url("/api/profile"), "", nil, bearer(tok)...))
	if got := identityHeaders(e.up.Last(t).Header); len(got) != 0 {
		t.Fatalf("identity routes: headers %v off the routes", got)
	}
	ed, iv := phonePayload(t, e.sim, wxApp, "rita", "13800138050")
	wantOK(t, postJSON(t, e.url("/api/phone"), map[string]any{"encryptedData": ed, "iv": iv}, bearer(tok)...))
	if got := e.up.Last(t).Header.Get("X-Mp-Openid"); got != lr.OpenID {
		t.Fatalf("phone by token: openid %q", got)
	}
}

// require_session with a bound token (token_binding, identity all): the
// backend's own login token is enough on a protected path; an unknown
// one, or none, is 401 and never reaches the upstream.
func TestRequireSessionBoundToken(t *testing.T) {
	e := newEnv(t, "wechat", "token_binding {", "\tfrom json data.token", "}", "require_session /api/private/*")
	ti := &tokenIssuer{t: t}
	e.up.setLoginRespond(ti.respond)
	lr := login(t, e.sim, wxApp, "bea")
	wantOK(t, postJSON(t, e.url("/api/login"), map[string]any{"code": lr.Code}))
	tok, _ := ti.last(t)
	wantOK(t, do(t, "GET", e.url("/api/private/report"), "", nil, bearer(tok)...))
	if got := e.up.Last(t).Header.Get("X-Mp-Openid"); got != lr.OpenID {
		t.Fatalf("protected path with the bound token: openid %q", got)
	}
	for _, hdr := range [][]string{nil, bearer(newTok(t)), {"X-Mp-Openid", lr.OpenID}} {
		n := e.up.Count()
		wantError(t, do(t, "GET", e.url("/api/private/report"), "", nil, hdr...), http.StatusUnauthorized, "session_not_found")
		if e.up.Count() != n {
			t.Fatalf("protected path with %v: the upstream was called", hdr)
		}
	}
}
