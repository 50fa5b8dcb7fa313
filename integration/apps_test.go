package integration

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/mpsim"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/redistest"
)

// appsBlock is a miniprogram block serving WeChat's, Douyin's and QQ's
// demo apps of the simulator behind one login and phone route, with
// store (a store line) and extra lines.
func appsBlock(apiBase, store string, extra ...string) string {
	return fmt.Sprintf(`	miniprogram {
		select_app header X-Mp-App referer
		app wx {
			platform wechat
			app_id %s
			app_secret %s
			api_base %s
		}
		app tt {
			platform douyin
			app_id %s
			app_secret %s
			api_base %s
		}
		app %s {
			platform qq
			app_id %s
			app_secret %s
			api_base %s
		}
		%s
		login /api/login
		phone /api/phone
		session
		require_session /api/me
		%s
	}`, wxApp, wxSecret, apiBase, ttApp, ttSecret, apiBase, qqApp, qqApp, qqSecret, apiBase, store, strings.Join(extra, "\n\t\t"))
}

// The Referers the platforms' runtimes set (see the README's "Several
// apps in one handler").
const (
	wxReferer = "https://servicewechat.com/" + wxApp + "/0/page-frame.html"
	ttReferer = "https://tmaservice.developer.toutiao.com/?appid=" + ttApp + "&version=1.0.0"
	qqReferer = "https://appservice.qq.com/" + qqApp + "/devtools/page-frame.html"
)

// Several apps of different platforms share one login route through the
// real Caddy, on the memory store and on Redis: the app picked by the
// Referer or a header; a code sent as another app's refused; no app named
// refused with 400 unknown_app; sessions isolated per app.
func TestSeveralAppsOneRoute(t *testing.T) {
	for _, storeKind := range []string{"memory", "redis"} {
		t.Run(storeKind, func(t *testing.T) {
			e := &env{sim: newSim(t), up: newUpstream(t)}
			store := "store memory"
			if storeKind == "redis" {
				store = "store redis " + redistest.Start(t).URL()
			}
			e.caddy = startCaddy(t, appsBlock(e.sim.URL, store)+"\n\treverse_proxy "+strings.TrimPrefix(e.up.URL, "http://"))

			type loggedIn struct{ openid, token, app string }
			var codes []string
			loginAs := func(app, user string, hdr ...string) loggedIn {
				t.Helper()
				lr := login(t, e.sim, app, user)
				codes = append(codes, lr.Code)
				r := postJSON(t, e.url("/api/login"), map[string]any{"code": lr.Code, "openid": "spoofed"}, append(hdr, "X-Mp-Openid", "spoofed")...)
				wantOK(t, r)
				got := e.up.Last(t)
				if h := got.Header; h.Get("X-Mp-Openid") != lr.OpenID || h.Get("X-Mp-App-Id") != app || h.Get("X-Mp-App") != "" {
					t.Fatalf("login of %s: openid %q app %q selector %q", app, h.Get("X-Mp-Openid"), h.Get("X-Mp-App-Id"), h.Get("X-Mp-App"))
				}
				if b := got.JSON(t); b["openid"] != lr.OpenID {
					t.Fatalf("login of %s: body openid %v", app, b["openid"])
				}
				tok := r.Header.Get("X-Mp-Session")
				if tok == "" {
					t.Fatalf("login of %s: no session token", app)
				}
				return loggedIn{lr.OpenID, tok, app}
			}
			wx := loginAs(wxApp, "alice", "Referer", wxReferer)
			tt := loginAs(ttApp, "alice", "Referer", ttReferer)
			qq := loginAs(qqApp, "alice", "X-Mp-App", qqApp)
			wx2 := loginAs(wxApp, "bob", "X-Mp-App", "wx", "Referer", ttReferer) // the header first
			qq2 := loginAs(qqApp, "bob", "Referer", qqReferer)
			if wx.openid == tt.openid || wx.openid == wx2.openid || qq.openid == qq2.openid {
				t.Fatal("openids not distinct")
			}

			// A code of one app sent as another's: refused by that
			// app's platform, the upstream not called.
			n := e.up.Count()
			lr := login(t, e.sim, wxApp, "carol")
			codes = append(codes, lr.Code)
			wantError(t, postJSON(t, e.url("/api/login"), map[string]any{"code": lr.Code}, "Referer", ttReferer), 401, "invalid_code")
			wantError(t, postJSON(t, e.url("/api/login"), map[string]any{"code": lr.Code}, "X-Mp-App", "qqdemoapp0000001"), 401, "invalid_code")
			// No app named (no Referer, as in devtools or an H5 build),
			// or one not configured: 400 unknown_app.
			wantError(t, postJSON(t, e.url("/api/login"), map[string]any{"code": lr.Code}), 400, "unknown_app")
			wantError(t, postJSON(t, e.url("/api/login"), map[string]any{"code": lr.Code}, "X-Mp-App", "nope"), 400, "unknown_app")
			wantError(t, postJSON(t, e.url("/api/login"), map[string]any{"code": lr.Code}, "Referer", "https://servicewechat.com/wxother/0/page-frame.html"), 400, "unknown_app")
			if e.up.Count() != n {
				t.Fatal("a refused login reached the upstream")
			}
			// The code was not spent by the refusals: its own app takes it.
			wantOK(t, postJSON(t, e.url("/api/login"), map[string]any{"code": lr.Code}, "Referer", wxReferer))

			// Sessions: each token gives its own app's identity, whatever
			// the request's selectors say.
			for _, s := range []loggedIn{wx, tt, qq, wx2, qq2} {
				for _, hdr := range [][]string{nil, {"Referer", ttReferer}, {"X-Mp-App", "wx"}} {
					wantOK(t, do(t, "GET", e.url("/api/me"), "", nil, append([]string{"Authorization", "Bearer " + s.token, "X-Mp-Openid", "spoofed"}, hdr...)...))
					got := e.up.Last(t)
					if got.Header.Get("X-Mp-Openid") != s.openid || got.Header.Get("X-Mp-App-Id") != s.app || got.Header.Get("Authorization") != "" {
						t.Fatalf("session of %s with %v: openid %q app %q", s.app, hdr, got.Header.Get("X-Mp-Openid"), got.Header.Get("X-Mp-App-Id"))
					}
				}
			}
			// A token of app A never gives app B's identity: retagged or
			// untagged, it finds nothing.
			base := strings.TrimSuffix(wx.token, ".wx")
			if base == wx.token {
				t.Fatalf("WeChat's token is not tagged with its app")
			}
			for _, c := range []struct {
				token string
				hdr   []string
			}{{base + ".tt", nil}, {base + "." + qqApp, nil}, {base, []string{"Referer", ttReferer}}, {base, []string{"Referer", wxReferer}}, {base + ".zz", nil}} {
				wantError(t, do(t, "GET", e.url("/api/me"), "", nil, append([]string{"Authorization", "Bearer " + c.token}, c.hdr...)...), 401, "session_not_found")
				wantOK(t, do(t, "GET", e.url("/other"), "", nil, append([]string{"Authorization", "Bearer " + c.token, "X-Mp-Openid", "spoofed"}, c.hdr...)...))
				if got := e.up.Last(t); got.Header.Get("X-Mp-Openid") != "" || got.Header.Get("Authorization") != "" {
					t.Fatalf("a changed token gave identity %q", got.Header.Get("X-Mp-Openid"))
				}
			}

			// The phone route: the selected app finds its own session
			// only.
			ed, iv := phonePayload(t, e.sim, wxApp, "alice", "13800138000")
			body := map[string]any{"encryptedData": ed, "iv": iv}
			wantError(t, postJSON(t, e.url("/api/phone"), body, "Authorization", "Bearer "+wx.token, "Referer", ttReferer), 401, "session_not_found")
			wantOK(t, postJSON(t, e.url("/api/phone"), body, "Authorization", "Bearer "+wx.token, "Referer", wxReferer))
			if got := e.up.Last(t); got.Header.Get("X-Mp-Phone") != "13800138000" || got.Header.Get("X-Mp-App-Id") != wxApp {
				t.Fatalf("phone: %v", got.Header)
			}
			ed, iv = phonePayload(t, e.sim, ttApp, "alice", "13900139000")
			wantOK(t, postJSON(t, e.url("/api/phone"), map[string]any{"encryptedData": ed, "iv": iv}, "Authorization", "Bearer "+tt.token, "X-Mp-App", "tt"))
			if got := e.up.Last(t); got.Header.Get("X-Mp-Phone") != "13900139000" || got.Header.Get("X-Mp-Platform") != "douyin" {
				t.Fatalf("Douyin phone: %v", got.Header)
			}

			// A plain request: no app, no identity, spoofed headers gone.
			wantOK(t, do(t, "GET", e.url("/static/x.js"), "", nil, "X-Mp-Openid", "spoofed", "X-Mp-App", "wx"))
			if got := e.up.Last(t); got.Header.Get("X-Mp-Openid") != "" || got.Header.Get("X-Mp-App") != "" {
				t.Fatal("spoofed headers passed")
			}
			if got := e.sim.Calls("jscode2session"); got < 6 {
				t.Fatalf("code2session calls %d", got)
			}
			secrets := append([]string{wxSecret, ttSecret, qqSecret, wx.token, tt.token, qq.token}, codes...)
			noSecrets(t, e.caddy.Logs(), secrets...)
		})
	}
}

// The API gateway of a handler of several apps, through the real Caddy:
// the WeChat and the Douyin app each relay a backend's call with their own
// token, the app named by the selector's header or query parameter, which
// never reaches the platform; a call that names no app (nothing, or only a
// Referer), or an app whose platform has no gateway (QQ), is refused with
// 400 unknown_app without a platform call. An allow-list entry for none of
// the apps' platforms is refused at load.
func TestSeveralAppsGateway(t *testing.T) {
	sim := newSim(t)
	var mu sync.Mutex
	var seen []string             // the selector, seen by the platform
	tokens := map[string]string{} // API path → the token it carried
	spy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		if v := r.Header.Get("X-Mp-App"); v != "" {
			seen = append(seen, "header X-Mp-App on "+r.URL.Path)
		}
		if r.URL.Query().Has("mp_app") {
			seen = append(seen, "query mp_app on "+r.URL.Path)
		}
		switch r.URL.Path {
		case "/wxa/msg_sec_check":
			tokens[r.URL.Path] = r.URL.Query().Get("access_token")
		case "/api/apps/v1/censor/image/":
			tokens[r.URL.Path] = r.Header.Get("access-token")
		}
		mu.Unlock()
		sim.ServeHTTP(w, r)
	}))
	t.Cleanup(spy.Close)
	block := strings.Replace(appsBlock(spy.URL, "store memory", "gateway /mp-api {",
		"\tallow /wxa/msg_sec_check /open.douyin.com/api/apps/v1/censor/image/", "}"),
		"select_app header X-Mp-App referer", "select_app header X-Mp-App query mp_app referer", 1)
	c := startCaddy(t, block+"\n\trespond 200")
	call := func(target string, body any, hdr ...string) (int, map[string]any, []byte) {
		t.Helper()
		st, m, raw, _ := gwCall(t, "POST", c.URL+target, "", body, hdr...)
		return st, m, raw
	}

	lr := login(t, sim, wxApp, "gina")
	check := map[string]any{"version": 2, "openid": lr.OpenID, "scene": 1, "content": "hello"}
	st, m, raw := call("/mp-api/wxa/msg_sec_check?access_token=stale", check, "X-Mp-App", "wx")
	wantWxOK(t, "wx msg_sec_check", st, m, raw)
	censor := map[string]any{"app_id": ttApp, "image": "https://example.com/cat.png"}
	st, _, raw = call("/mp-api/open.douyin.com/api/apps/v1/censor/image/?mp_app=tt", censor)
	if st != 200 || dyField(raw, "err_no") != "0" || dyField(raw, "err_msg") != "image censor success" {
		t.Fatalf("tt censor: %d %s", st, raw)
	}
	if sim.Calls(mpsim.EndpointStableToken) != 1 || sim.Calls(mpsim.EndpointClientToken) != 1 {
		t.Fatalf("token fetches: %v", sim.AllCalls())
	}
	mu.Lock()
	wxTok, ttTok := tokens["/wxa/msg_sec_check"], tokens["/api/apps/v1/censor/image/"]
	mu.Unlock()
	// (currentToken asks the platform: after the count above.)
	if cur := currentToken(t, sim); wxTok == "" || wxTok != cur || ttTok == "" || ttTok == wxTok {
		t.Fatalf("tokens: wx %d bytes (the app's current: %v), tt %d bytes", len(wxTok), wxTok == cur, len(ttTok))
	}

	// Refused, no platform call: no app named, a Referer only, an app
	// without a gateway, another platform's API for the named app.
	calls := sim.AllCalls()
	for _, r := range []struct {
		target string
		hdr    []string
		status int
		code   string
	}{
		{"/mp-api/wxa/msg_sec_check", nil, 400, "unknown_app"},
		{"/mp-api/wxa/msg_sec_check", []string{"Referer", wxReferer}, 400, "unknown_app"},
		{"/mp-api/wxa/msg_sec_check?mp_app=" + qqApp, nil, 400, "unknown_app"},
		{"/mp-api/open.douyin.com/api/apps/v1/censor/image/", []string{"X-Mp-App", "wx"}, 403, "forbidden"},
	} {
		st, m, raw := call(r.target, check, r.hdr...)
		if st != r.status || m["error"] != r.code {
			t.Fatalf("%s %v: %d %s", r.target, r.hdr, st, raw)
		}
	}
	if got := sim.AllCalls(); fmt.Sprint(got) != fmt.Sprint(calls) {
		t.Fatalf("refused requests reached the platform: %v, then %v", calls, got)
	}
	mu.Lock()
	if len(seen) > 0 {
		t.Fatalf("the selector reached the platform: %v", seen)
	}
	mu.Unlock()
	noSecretsIn(t, c.Logs(), wxSecret, ttSecret, qqSecret, wxTok, ttTok)

	// An entry the app of its platform never relays: refused at load,
	// naming the app.
	out := caddyFailsToStart(t, site(freePort(t), freePort(t), strings.Replace(appsBlock(sim.URL, "store memory", "gateway /mp-api {", "\tallow /wxa/msg_sec_check /open.douyin.com/oauth/client_token/", "}"),
		"select_app header X-Mp-App referer", "select_app header X-Mp-App", 1)+"\n\trespond 200"))
	if !strings.Contains(out, `gateway.allow: app tt: API path`) || !strings.Contains(out, `/open.douyin.com/oauth/client_token/`) || !strings.Contains(out, "is never relayed") {
		t.Fatalf("bad allow entry: %s", out)
	}
}

// Through the real Caddy on Redis: the selector's header and query
// parameter never reach the backend; a logout that names no app (an H5
// build: no Referer, no selector) ends the session of its bound token; a
// phone request that names no app goes by its session token's app.
func TestSeveralAppsLogoutWithoutSelector(t *testing.T) {
	e := &env{sim: newSim(t), up: newUpstream(t)}
	ti := &tokenIssuer{t: t}
	e.up.setLoginRespond(ti.respond)
	block := strings.Replace(appsBlock(e.sim.URL, "store redis "+redistest.Start(t).URL(), "token_binding {", "\tfrom json data.token", "}", "logout /api/logout"),
		"select_app header X-Mp-App referer", "select_app query app header X-App referer", 1)
	e.caddy = startCaddy(t, block+"\n\treverse_proxy "+strings.TrimPrefix(e.up.URL, "http://"))

	lr := login(t, e.sim, ttApp, "erin")
	r := postJSON(t, e.url("/api/login?app=tt&page=2"), map[string]any{"code": lr.Code}, "X-App", "wx")
	if r.Status != 200 {
		t.Fatalf("login: %d %s", r.Status, r.Body)
	}
	got := e.up.Last(t)
	if got.Header.Get("X-Mp-App-Id") != ttApp || got.Header.Get("X-App") != "" || got.Query.Has("app") || got.Query.Get("page") != "2" {
		t.Fatalf("login: app %q, X-App %q, query %v", got.Header.Get("X-Mp-App-Id"), got.Header.Get("X-App"), got.Query)
	}
	bound, _ := ti.last(t)
	session := r.Header.Get("X-Mp-Session")
	if !strings.HasSuffix(session, ".tt") {
		t.Fatal("no session token of Douyin's app")
	}

	// The phone route, no app named: the session token's app.
	ed, iv := phonePayload(t, e.sim, ttApp, "erin", "13900139001")
	wantOK(t, postJSON(t, e.url("/api/phone"), map[string]any{"encryptedData": ed, "iv": iv}, bearer(session)...))
	if got := e.up.Last(t); got.Header.Get("X-Mp-Phone") != "13900139001" || got.Header.Get("X-Mp-App-Id") != ttApp {
		t.Fatalf("phone by the token's app: %v", got.Header)
	}

	wantOK(t, do(t, "GET", e.url("/other"), "", nil, append(bearer(bound), "X-App", "tt")...))
	if got := e.up.Last(t); got.Header.Get("X-Mp-Openid") != lr.OpenID {
		t.Fatal("the bound token gives no identity")
	}
	wantOK(t, do(t, "POST", e.url("/api/logout"), "", nil, bearer(bound)...))
	if got := e.up.Last(t); got.Header.Get("X-Mp-Openid") != lr.OpenID || got.Header.Get("X-Mp-App-Id") != ttApp {
		t.Fatalf("logout naming no app: %v", got.Header)
	}
	for _, app := range []string{"tt", "wx", qqApp} {
		wantOK(t, do(t, "GET", e.url("/other"), "", nil, append(bearer(bound), "X-App", app)...))
		if got := e.up.Last(t); got.Header.Get("X-Mp-Openid") != "" {
			t.Fatalf("after the logout the bound token still gives %q in app %s", got.Header.Get("X-Mp-Openid"), app)
		}
	}
	noSecrets(t, e.caddy.Logs(), ttSecret, session, bound, lr.Code)
}
