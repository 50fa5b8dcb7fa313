package module

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/mpsim"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/store"
)

// threeApps is a handler of three apps of the simulator's (WeChat, Douyin,
// QQ) sharing one login and phone route; extra is more top-level JSON.
func threeApps(extra string) string {
	return `{"apps":[
		{"name":"wx","platform":"wechat","app_id":"wxdemoapp0000001","app_secret":"demo-wechat-secret","api_base":"@API@"},
		{"name":"tt","platform":"douyin","app_id":"ttdemoapp0000001","app_secret":"demo-douyin-secret","api_base":"@API@"},
		{"platform":"qq","app_id":"qqdemoapp0000001","app_secret":"demo-qq-secret","api_base":"@API@","paths":["/qq/*"]}
	],"select_app":[{"by":"header","name":"X-Mp-App"},{"by":"query","name":"mp_app"},{"by":"path"},{"by":"referer"}],
	"login":"/api/login","phone":"/api/phone","store":{"type":"memory","max_sessions":100}` + extra + `}`
}

func TestAppsValidate(t *testing.T) {
	good := strings.ReplaceAll(threeApps(""), "@API@", "http://127.0.0.1:9")
	h := new(Handler)
	if err := json.Unmarshal([]byte(good), h); err != nil {
		t.Fatal(err)
	}
	if err := h.Validate(); err != nil {
		t.Fatalf("good config: %v", err)
	}
	checkVariants(t, good, []configVariant{
		{"platform at the top", `"login":`, `"platform":"wechat","login":`, "miniprogram: platform: goes in each app"},
		{"access_token at the top", `"login":`, `"access_token":{},"login":`, "access_token: goes in each app"},
		{"gateway", `"login":`, `"gateway":{"prefix":"/mp-api","allow":["/wxa/msg_sec_check"]},"login":`, ""}, // each app of a platform with a gateway relays (gatewayapps_test.go)
		{"no select_app", `"select_app":[{"by":"header","name":"X-Mp-App"},{"by":"query","name":"mp_app"},{"by":"path"},{"by":"referer"}],`, ``, "select_app: is needed"},
		{"unknown selector", `{"by":"referer"}`, `{"by":"cookie"}`, `unknown selector "cookie"`},
		{"header without a name", `{"by":"header","name":"X-Mp-App"}`, `{"by":"header"}`, "header needs a name"},
		{"header Content-Type", `{"by":"header","name":"X-Mp-App"}`, `{"by":"header","name":"content-type"}`, "header content-type cannot name the app"},
		{"path without paths", `,"paths":["/qq/*"]`, ``, "path needs apps with paths"},
		{"two apps named alike", `"name":"tt"`, `"name":"wx"`, `apps[wx]: "wx" names app 1 too`},
		{"a name that is another app id", `"name":"tt"`, `"name":"wxdemoapp0000001"`, `names app 1 too`},
		{"a bad name", `"name":"tt"`, `"name":"t.t"`, `apps[t.t].name: "t.t" is not an app name`},
		{"an app's own rule", `"app_secret":"demo-douyin-secret",`, ``, "apps[tt]: missing required field(s): app_secret"},
		{"an app's field", `"platform":"qq",`, `"platform":"qq","private_key":"/k.pem",`, "apps[qqdemoapp0000001].private_key:"},
		{"a shared rule", `"login":"/api/login"`, `"login":"/api/login","session_ttl":"1s"`, "miniprogram: session_ttl:"},
		{"compat on none", `"login":`, `"compat":{"prefix":"/c"},"login":`, ""},
	})
	// Compat needs an app whose platform has compat endpoints.
	only := `{"apps":[{"platform":"qq","app_id":"q1","app_secret":"s"}],"select_app":[{"by":"referer"}],"login":"/l","compat":{"prefix":"/c"}}`
	h = new(Handler)
	_ = json.Unmarshal([]byte(only), h)
	if err := h.Validate(); err == nil || !strings.Contains(err.Error(), "none of the apps' platforms has compat") {
		t.Errorf("compat with QQ only: %v", err)
	}
	// select_app without apps.
	h = &Handler{Platform: "wechat", AppID: "wx1", AppSecret: "s", Login: "/l", SelectApp: []AppSelector{{By: "referer"}}}
	if err := h.Validate(); err == nil || !strings.Contains(err.Error(), "select_app: is for several apps") {
		t.Errorf("select_app alone: %v", err)
	}
}

func TestRefererAppID(t *testing.T) {
	for _, c := range []struct {
		ref, platform, id string
	}{
		{"https://servicewechat.com/wx1234/0/page-frame.html", "wechat", "wx1234"},
		{"https://servicewechat.com/wx1234/devtools/page-frame.html", "wechat", "wx1234"},
		{"https://appservice.qq.com/1110000000/12/page-frame.html", "qq", "1110000000"},
		{"https://smartapps.cn/AbCdKey/3/page-frame.html", "baidu", "AbCdKey"},
		{"https://smartapp.baidu.com/AbCdKey/3/page-frame.html", "baidu", "AbCdKey"},
		{"https://tmaservice.developer.toutiao.com/?appid=tt123&version=1.0.0", "douyin", "tt123"},
		{"https://tmaservice.developer.toutiao.com?appid=cli_1&version=1", "douyin", "cli_1"},
		{"https://2021000000000001.hybrid.alipay-eco.com/2021000000000001/0.2.1/index.html", "alipay", "2021000000000001"},
		{"https://2021000000000001.hybrid.alipay-eco.com/index.html", "alipay", "2021000000000001"},
		{"http://servicewechat.com/wx1234/0/page-frame.html", "", ""}, // not https
		{"https://servicewechat.com.evil.example/wx1234/0/page-frame.html", "", ""},
		{"https://evil.example/servicewechat.com/wx1234", "", ""},
		{"https://servicewechat.com:8443/wx1234/0/page-frame.html", "", ""},
		{"https://a.b.hybrid.alipay-eco.com/index.html", "", ""},
		{"https://www.example.com/", "", ""},
		{"", "", ""},
		{"::not a url", "", ""},
	} {
		ps, id := refererAppID(c.ref)
		got := ""
		if len(ps) > 0 {
			got = ps[0]
		}
		if got != c.platform || id != c.id {
			t.Errorf("%q: %v %q, want %s %q", c.ref, ps, id, c.platform, c.id)
		}
	}
}

func TestSessionTokenTag(t *testing.T) {
	now := time.Now()
	tok, err := newSessionToken(now, "wx")
	if err != nil {
		t.Fatal(err)
	}
	if sessionTokenTag(tok) != "wx" {
		t.Fatalf("tag of %s", tok[:12])
	}
	if at, ok := sessionIssuedAt(tok, "wx"); !ok || at.UnixMilli() != now.UnixMilli() {
		t.Fatal("own tag refused")
	}
	if _, ok := sessionIssuedAt(tok, "tt"); ok {
		t.Fatal("a token tagged wx accepted by tt")
	}
	if _, ok := sessionIssuedAt(tok, ""); ok {
		t.Fatal("a tagged token accepted by a handler of one app")
	}
	plain, _ := newSessionToken(now, "")
	if sessionTokenTag(plain) != "" || len(plain) != sessionTokenLen {
		t.Fatal("untagged token")
	}
	if _, ok := sessionIssuedAt(plain, "tt"); !ok {
		t.Fatal("an untagged token (issued before several apps) is not read")
	}
	if sessionTokenTag(plain+".") != "" || sessionTokenTag("mps1.x.wx") != "" {
		t.Fatal("malformed tokens have no tag")
	}
}

// Several apps in one handler, in process against the simulator: one
// login route, the app picked by header, query, path and Referer; a
// mismatch refused by the other app; sessions per app.
func TestAppsInProcess(t *testing.T) {
	sim := mpsim.New(mpsim.Options{})
	h := provisionAt(t, sim, threeApps(`,"session":{},"require_session":["/api/me"],"header_names":"mp"`))
	if h.apps == nil || len(h.apps.apps) != 3 {
		t.Fatal("apps not provisioned")
	}
	var seen *http.Request
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		seen = r
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusOK) // the answer's headers as sent
		return nil
	})
	serve := func(method, target, body string, hdr ...string) *httptest.ResponseRecorder {
		t.Helper()
		seen = nil
		req := httptest.NewRequest(method, target, bytes.NewBufferString(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Mp-Openid", "spoofed")
		var orig string
		for i := 0; i+1 < len(hdr); i += 2 {
			if hdr[i] == "@orig" { // the path before a uri strip_prefix
				orig = hdr[i+1]
				continue
			}
			req.Header.Set(hdr[i], hdr[i+1])
		}
		w := httptest.NewRecorder()
		req = caddyhttp.PrepareRequest(req, caddy.NewReplacer(), w, nil)
		if orig != "" {
			or := httptest.NewRequest(method, orig, nil)
			req = req.WithContext(context.WithValue(req.Context(), caddyhttp.OriginalRequestCtxKey, *or))
		}
		if err := h.ServeHTTP(w, req, next); err != nil {
			t.Fatal(err)
		}
		return w
	}
	login := func(appID, user string, hdr ...string) (openid, token string) {
		t.Helper()
		lr, err := sim.Login(appID, user)
		if err != nil {
			t.Fatal(err)
		}
		target := "/api/login"
		if len(hdr) == 1 { // a path or query of its own
			target, hdr = hdr[0], nil
		}
		w := serve("POST", target, `{"code":"`+lr.Code+`"}`, hdr...)
		if seen == nil || w.Code != 200 {
			t.Fatalf("login %s: %d %s", appID, w.Code, w.Body)
		}
		if got := seen.Header.Get("X-Mp-Openid"); got != lr.OpenID || seen.Header.Get("X-Mp-App-Id") != appID {
			t.Fatalf("login %s: openid %q app %q", appID, got, seen.Header.Get("X-Mp-App-Id"))
		}
		if seen.Header.Get("X-Mp-App") != "" {
			t.Fatal("the selector header reached the upstream")
		}
		return lr.OpenID, w.Result().Header.Get("X-Mp-Session")
	}

	wxOpenID, wxToken := login("wxdemoapp0000001", "u1", "X-Mp-App", "wx")
	ttOpenID, ttToken := login("ttdemoapp0000001", "u1", "Referer", "https://tmaservice.developer.toutiao.com/?appid=ttdemoapp0000001&version=1.0.0")
	login("qqdemoapp0000001", "u1", "Referer", "https://appservice.qq.com/qqdemoapp0000001/0/page-frame.html")
	login("wxdemoapp0000001", "u2", "/api/login?mp_app=wxdemoapp0000001")
	login("qqdemoapp0000001", "u2", "@orig", "/qq/api/login") // as after uri strip_prefix /qq

	if !strings.HasSuffix(wxToken, ".wx") || !strings.HasSuffix(ttToken, ".tt") {
		t.Fatalf("session tokens are not tagged with their app")
	}

	// The header decides before the Referer (select_app's order).
	lr, _ := sim.Login("wxdemoapp0000001", "u3")
	w := serve("POST", "/api/login", `{"code":"`+lr.Code+`"}`, "X-Mp-App", "tt", "Referer", "https://servicewechat.com/wxdemoapp0000001/0/page-frame.html")
	if seen != nil || w.Code != 401 || !strings.Contains(w.Body.String(), `"invalid_code"`) {
		t.Fatalf("a WeChat code sent as Douyin's: %d %s", w.Code, w.Body)
	}
	// No app named: 400 unknown_app, the upstream not called.
	lr, _ = sim.Login("wxdemoapp0000001", "u4")
	for _, hdr := range [][]string{nil, {"X-Mp-App", "nope"}, {"Referer", "https://servicewechat.com/wxother/0/page-frame.html"}} {
		w = serve("POST", "/api/login", `{"code":"`+lr.Code+`"}`, hdr...)
		if seen != nil || w.Code != 400 || !strings.Contains(w.Body.String(), `"unknown_app"`) {
			t.Fatalf("no app %v: %d %s", hdr, w.Code, w.Body)
		}
	}
	// A CORS preflight passes.
	w = serve("OPTIONS", "/api/login", "")
	if seen == nil {
		t.Fatalf("preflight: %d %s", w.Code, w.Body)
	}

	// Off the routes, the session token finds its app, whatever the
	// selectors say.
	for _, c := range []struct {
		token, openid, appID string
		hdr                  []string
	}{
		{wxToken, wxOpenID, "wxdemoapp0000001", nil},
		{wxToken, wxOpenID, "wxdemoapp0000001", []string{"X-Mp-App", "tt"}},
		{ttToken, ttOpenID, "ttdemoapp0000001", []string{"Referer", "https://servicewechat.com/wxdemoapp0000001/0/page-frame.html"}},
	} {
		w = serve("GET", "/api/me", "", append([]string{"Authorization", "Bearer " + c.token}, c.hdr...)...)
		if seen == nil || seen.Header.Get("X-Mp-Openid") != c.openid || seen.Header.Get("X-Mp-App-Id") != c.appID || seen.Header.Get("Authorization") != "" {
			t.Fatalf("token of %s: %d %s %v", c.appID, w.Code, w.Body, seen)
		}
	}
	// A token of app A never gives app B's identity: retagged, it finds
	// nothing; untagged (the handler of one app's form) with B selected,
	// nothing either.
	for _, c := range []struct {
		token string
		hdr   []string
	}{
		{strings.TrimSuffix(wxToken, ".wx") + ".tt", nil},
		{strings.TrimSuffix(wxToken, ".wx") + ".qqdemoapp0000001", nil},
		{strings.TrimSuffix(wxToken, ".wx") + ".nope", nil},
		{strings.TrimSuffix(wxToken, ".wx"), []string{"X-Mp-App", "tt"}},
		{strings.TrimSuffix(wxToken, ".wx"), nil},
	} {
		w = serve("GET", "/api/me", "", append([]string{"Authorization", "Bearer " + c.token}, c.hdr...)...)
		if seen != nil || w.Code != 401 || !strings.Contains(w.Body.String(), `"session_not_found"`) {
			t.Fatalf("token %q: %d %s", c.token[len(c.token)-6:], w.Code, w.Body)
		}
		serve("GET", "/other", "", append([]string{"Authorization", "Bearer " + c.token}, c.hdr...)...)
		if seen == nil || seen.Header.Get("X-Mp-Openid") != "" || seen.Header.Get("Authorization") != "" {
			t.Fatalf("token %q off the protected paths: identity %q", c.token[len(c.token)-6:], seen.Header.Get("X-Mp-Openid"))
		}
	}
	// On the phone route, the selected app looks the token up: app A's
	// session is not found under app B.
	ed, iv, err := sim.EncryptPhone("wxdemoapp0000001", "u1", "13800138000")
	if err != nil {
		t.Fatal(err)
	}
	body := `{"encryptedData":"` + ed + `","iv":"` + iv + `"}`
	w = serve("POST", "/api/phone", body, "Authorization", "Bearer "+wxToken, "X-Mp-App", "tt")
	if seen != nil || w.Code != 401 || !strings.Contains(w.Body.String(), `"session_not_found"`) {
		t.Fatalf("WeChat session on Douyin's phone route: %d %s", w.Code, w.Body)
	}
	w = serve("POST", "/api/phone", body, "Authorization", "Bearer "+wxToken, "X-Mp-App", "wx")
	if seen == nil || seen.Header.Get("X-Mp-Phone") != "13800138000" {
		t.Fatalf("WeChat session on WeChat's phone route: %d %s", w.Code, w.Body)
	}
	// Spoofed identity never passes, with or without an app.
	serve("GET", "/other", "")
	if seen == nil || seen.Header.Get("X-Mp-Openid") != "" {
		t.Fatal("spoofed header passed")
	}
}

// Compat endpoints are answered by the app the request's appid names.
func TestAppsCompat(t *testing.T) {
	sim := mpsim.New(mpsim.Options{})
	raw := `{"apps":[
		{"name":"wx","platform":"wechat","app_id":"wxdemoapp0000001","app_secret":"demo-wechat-secret","api_base":"@API@"},
		{"name":"tt","platform":"douyin","app_id":"ttdemoapp0000001","app_secret":"demo-douyin-secret","api_base":"@API@"},
		{"name":"qq","platform":"qq","app_id":"qqdemoapp0000001","app_secret":"demo-qq-secret","api_base":"@API@"}
	],"select_app":[{"by":"header","name":"X-Mp-App"}],"login":"/api/login","compat":{"prefix":"/mp-compat"}}`
	h := provisionAt(t, sim, raw)
	next := caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return nil })
	// Log in through each app, then the backend asks compat.
	codes := map[string]string{}
	for _, c := range []struct{ name, appID string }{{"wx", "wxdemoapp0000001"}, {"tt", "ttdemoapp0000001"}} {
		lr, err := sim.Login(c.appID, "u1")
		if err != nil {
			t.Fatal(err)
		}
		codes[c.name] = lr.Code
		w, _ := serveOnLoopback(t, h, jsonRequest("POST", "/api/login", `{"code":"`+lr.Code+`"}`, "X-Mp-App", c.name), next)
		if w.Code != 200 {
			t.Fatalf("login %s: %d %s", c.name, w.Code, w.Body)
		}
	}
	q := url.Values{"appid": {"wxdemoapp0000001"}, "secret": {"demo-wechat-secret"}, "js_code": {codes["wx"]}, "grant_type": {"authorization_code"}}
	_, m, _ := compatCall(t, h, compatGet("/sns/jscode2session", q))
	if str(m, "openid") == "" || str(m, "session_key") == "" {
		t.Fatalf("WeChat compat: %v", m)
	}
	_, m, _ = compatCall(t, h, ttV2(`{"appid":"ttdemoapp0000001","secret":"demo-douyin-secret","code":"`+codes["tt"]+`"}`))
	if n, _ := num(m, "err_no"); n != 0 {
		t.Fatalf("Douyin compat: %v", m)
	}
	// Douyin's code asked of WeChat's endpoint with WeChat's credentials:
	// WeChat's answer (not seen, exchanged for real, refused).
	q.Set("js_code", codes["tt"])
	_, m, _ = compatCall(t, h, compatGet("/sns/jscode2session", q))
	if n, _ := num(m, "errcode"); n == 0 {
		t.Fatalf("a Douyin code through WeChat's compat: %v", m)
	}
	// An unknown appid: the endpoint's dialect refuses it.
	q.Set("appid", "wxother")
	w, m, _ := compatCall(t, h, compatGet("/sns/jscode2session", q))
	wantWxErr(t, "unknown appid", w, m, 40013, "invalid appid")
	_, m, _ = compatCall(t, h, ttV2(`{"appid":"ttother","secret":"x","code":"c"}`))
	if n, _ := num(m, "err_no"); n != 40015 {
		t.Fatalf("unknown Douyin appid: %v", m)
	}
}

// appsRig serves requests through a handler of several apps; seen is the
// request the upstream got (nil: not called), which answers 200 with
// X-Token: token (the backend's own login token; default
// backend-token-1).
type appsRig struct {
	t     *testing.T
	h     *Handler
	seen  *http.Request
	token string
}

func (g *appsRig) serve(method, target, body string, hdr ...string) *httptest.ResponseRecorder {
	g.t.Helper()
	g.seen = nil
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		g.seen = r
		_, _ = io.Copy(io.Discard, r.Body)
		tok := g.token
		if tok == "" {
			tok = "backend-token-1"
		}
		w.Header().Set("X-Token", tok)
		w.WriteHeader(http.StatusOK)
		return nil
	})
	req := httptest.NewRequest(method, target, bytes.NewBufferString(body))
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	req = caddyhttp.PrepareRequest(req, caddy.NewReplacer(), w, nil)
	if err := g.h.ServeHTTP(w, req, next); err != nil {
		g.t.Fatal(err)
	}
	return w
}

// A logout naming no app (an H5 build: no Referer, no selector header)
// still ends the session of the token it carries, in the app that knows
// it: a bound token, and an untagged session token issued before the
// handler served several apps. The backend, told of the logout, gets the
// identity of the session that ended, and the token finds nothing after.
func TestAppsLogoutWithoutSelectorEndsSession(t *testing.T) {
	sim := mpsim.New(mpsim.Options{})
	h := provisionAt(t, sim, threeApps(`,"session":{},"token_binding":{"from":{"header":"X-Token"}},"logout":["/api/logout"]`))
	g := &appsRig{t: t, h: h}
	lr, _ := sim.Login("ttdemoapp0000001", "u1")
	if w := g.serve("POST", "/api/login", `{"code":"`+lr.Code+`"}`, "X-Mp-App", "tt"); w.Code != 200 {
		t.Fatalf("login %d %s", w.Code, w.Body)
	}
	// An untagged token of a WeChat user's session (the form a handler
	// of one app issues), stored as that handler stored it.
	wxLogin, _ := sim.Login("wxdemoapp0000001", "u2")
	g.token = "backend-token-2"
	if w := g.serve("POST", "/api/login", `{"code":"`+wxLogin.Code+`"}`, "X-Mp-App", "wx"); w.Code != 200 {
		t.Fatalf("login %d %s", w.Code, w.Body)
	}
	wx := h.apps.apps[0].h
	old, err := newSessionToken(time.Now(), "")
	if err != nil {
		t.Fatal(err)
	}
	if err := wx.store.Bind(context.Background(), wx.sessionRef(old), wxLogin.OpenID, time.Hour); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, auth, openid, app, appID string
	}{
		{"bound token", "Bearer backend-token-1", lr.OpenID, "tt", "ttdemoapp0000001"},
		{"untagged session token", "Bearer " + old, wxLogin.OpenID, "wx", "wxdemoapp0000001"},
	} {
		g.serve("GET", "/other", "", "Authorization", c.auth, "X-Mp-App", c.app)
		if g.seen == nil || g.seen.Header.Get("X-Mp-Openid") != c.openid {
			t.Fatalf("%s: no identity before the logout", c.name)
		}
		w := g.serve("POST", "/api/logout", "", "Authorization", c.auth)
		if g.seen == nil || w.Code != 200 || g.seen.Header.Get("X-Mp-Openid") != c.openid || g.seen.Header.Get("X-Mp-App-Id") != c.appID {
			t.Fatalf("%s: logout without a selector: %d %s, upstream %v", c.name, w.Code, w.Body, g.seen != nil)
		}
		for _, app := range []string{c.app, "wx", "tt", "qqdemoapp0000001"} {
			g.serve("GET", "/other", "", "Authorization", c.auth, "X-Mp-App", app)
			if g.seen == nil || g.seen.Header.Get("X-Mp-Openid") != "" {
				t.Fatalf("%s: after the logout the token still gives %q in app %s", c.name, g.seen.Header.Get("X-Mp-Openid"), app)
			}
		}
	}
	// A token no app knows: the logout passes without identity.
	w := g.serve("POST", "/api/logout", "", "Authorization", "Bearer "+old)
	if g.seen == nil || w.Code != 200 || g.seen.Header.Get("X-Mp-Openid") != "" {
		t.Fatalf("logout of an ended token: %d %s", w.Code, w.Body)
	}
	// One backend token bound in two apps, logged out naming a third:
	// ended in both.
	g.token = "backend-token-shared"
	for _, c := range []struct{ appID, app string }{{"wxdemoapp0000001", "wx"}, {"ttdemoapp0000001", "tt"}} {
		lr, _ := sim.Login(c.appID, "u3")
		if w := g.serve("POST", "/api/login", `{"code":"`+lr.Code+`"}`, "X-Mp-App", c.app); w.Code != 200 {
			t.Fatalf("login %d %s", w.Code, w.Body)
		}
	}
	auth := "Bearer backend-token-shared"
	w = g.serve("POST", "/api/logout", "", "Authorization", auth, "X-Mp-App", "qqdemoapp0000001")
	if g.seen == nil || w.Code != 200 || g.seen.Header.Get("X-Mp-Openid") == "" {
		t.Fatalf("logout of a shared token: %d %s", w.Code, w.Body)
	}
	for _, app := range []string{"wx", "tt"} {
		g.serve("GET", "/other", "", "Authorization", auth, "X-Mp-App", app)
		if g.seen == nil || g.seen.Header.Get("X-Mp-Openid") != "" {
			t.Fatalf("shared token: after the logout it still gives %q in app %s", g.seen.Header.Get("X-Mp-Openid"), app)
		}
	}
}

// A logout naming no app whose token's stores cannot be reached is
// refused (503 store_unavailable) before the backend is told of it: any
// of them may hold the session.
func TestAppsLogoutWithoutSelectorStoreDown(t *testing.T) {
	sim := mpsim.New(mpsim.Options{})
	raw := strings.Replace(threeApps(`,"token_binding":{"from":{"header":"X-Token"}},"logout":["/api/logout"]`),
		`"store":{"type":"memory","max_sessions":100}`, `"store":{"type":"redis","url":"redis://127.0.0.1:1/0","timeout":"200ms"}`, 1)
	h := provisionAt(t, sim, raw)
	g := &appsRig{t: t, h: h}
	w := g.serve("POST", "/api/logout", "", "Authorization", "Bearer backend-token-1")
	if g.seen != nil || w.Code != http.StatusServiceUnavailable || !strings.Contains(w.Body.String(), `"store_unavailable"`) {
		t.Fatalf("logout, stores down: %d %s, upstream %v", w.Code, w.Body, g.seen != nil)
	}
	// Without a token there is nothing to end: it passes.
	w = g.serve("POST", "/api/logout", "")
	if g.seen == nil || w.Code != 200 {
		t.Fatalf("logout without a token, stores down: %d %s", w.Code, w.Body)
	}
}

// A configuration whose second app fails to provision after its store was
// opened leaves no store referenced once Caddy cleans the handler up.
func TestAppsFailedLoadReleasesStores(t *testing.T) {
	sim := mpsim.New(mpsim.Options{})
	srv := httptest.NewServer(sim)
	defer srv.Close()
	raw := strings.ReplaceAll(`{"apps":[
		{"name":"qq","platform":"qq","app_id":"qqleak0000001","app_secret":"s","api_base":"@API@"},
		{"name":"wx","platform":"wechat","app_id":"wxleak0000001","app_secret":"s","api_base":"@API@"}
	],"select_app":[{"by":"header","name":"X-Mp-App"}],"login":"/api/login","compat":{"prefix":"/mp-compat"}}`, "@API@", srv.URL)
	h := new(Handler)
	if err := json.Unmarshal([]byte(raw), h); err != nil {
		t.Fatal(err)
	}
	// A public listener: the WeChat app's compat refuses it, after its
	// store was opened.
	base := context.WithValue(context.Background(), caddyhttp.ServerCtxKey, &caddyhttp.Server{Listen: []string{":8080"}})
	ctx, cancel := caddy.NewContext(caddy.Context{Context: base})
	defer cancel()
	if err := h.Provision(ctx); err == nil || !strings.Contains(err.Error(), "apps[wx]") {
		t.Fatalf("provision: %v, want the WeChat app's compat refused", err)
	}
	_ = h.Cleanup() // what Caddy does after a failed Provision
	for _, scope := range []string{"wechat:wxleak0000001", "qq:qqleak0000001"} {
		// A store still referenced keeps what was saved in it.
		m, err := store.OpenMemory(scope, store.MemoryOptions{MaxSessions: 10})
		if err != nil {
			t.Fatal(err)
		}
		_, _ = m.Save(context.Background(), "r", store.Session{OpenID: "o", SessionKey: "k"}, time.Hour)
		_ = m.Close()
		m, _ = store.OpenMemory(scope, store.MemoryOptions{MaxSessions: 10})
		_, err = m.Lookup(context.Background(), "r")
		_ = m.Close()
		if err == nil {
			t.Errorf("store %s still referenced after the failed load and Cleanup", scope)
		}
	}
}

// An app without a name is named by its app id as replaced: a
// placeholder's value, never the placeholder; a replaced value that is no
// name is refused at provisioning.
func TestAppsDefaultNameIsReplacedAppID(t *testing.T) {
	t.Setenv("APPS_TEST_WX_ID", "wxdemoapp0000001")
	sim := mpsim.New(mpsim.Options{})
	raw := strings.Replace(threeApps(`,"session":{}`), `"name":"wx","platform":"wechat","app_id":"wxdemoapp0000001"`, `"platform":"wechat","app_id":"{env.APPS_TEST_WX_ID}"`, 1)
	h := provisionAt(t, sim, raw)
	if got := h.apps.apps[0].name; got != "wxdemoapp0000001" {
		t.Fatalf("app name %q", got)
	}
	g := &appsRig{t: t, h: h}
	lr, _ := sim.Login("wxdemoapp0000001", "u1")
	w := g.serve("POST", "/api/login", `{"code":"`+lr.Code+`"}`, "X-Mp-App", "wxdemoapp0000001")
	tok := w.Result().Header.Get("X-Mp-Session")
	if w.Code != 200 || !strings.HasSuffix(tok, ".wxdemoapp0000001") {
		t.Fatalf("login %d, token tail %q", w.Code, tok[min(len(tok), sessionTokenLen):])
	}
	g.serve("GET", "/other", "", "Authorization", "Bearer "+tok)
	if g.seen == nil || g.seen.Header.Get("X-Mp-Openid") != lr.OpenID {
		t.Fatal("the token does not find its app")
	}
	// A name given as a placeholder is replaced too.
	t.Setenv("APPS_TEST_WX_NAME", "weixin")
	named := strings.Replace(threeApps(``), `"name":"wx"`, `"name":"{env.APPS_TEST_WX_NAME}"`, 1)
	if h := provisionAt(t, sim, named); h.apps.apps[0].name != "weixin" || h.apps.byName["weixin"] == nil {
		t.Fatalf("a placeholder name: %q", h.apps.apps[0].name)
	}
	// Replaced values that are no names.
	for _, c := range []struct{ from, to, env string }{
		{`"name":"wx","platform":"wechat","app_id":"wxdemoapp0000001"`, `"platform":"wechat","app_id":"{env.APPS_TEST_BAD}"`, "wx.demo"},
		{`"name":"wx"`, `"name":"{env.APPS_TEST_BAD}"`, "w x"},
	} {
		t.Setenv("APPS_TEST_BAD", c.env)
		raw := strings.ReplaceAll(strings.Replace(threeApps(``), c.from, c.to, 1), "@API@", "http://127.0.0.1:9")
		if _, err := provisionJSON(t, raw); err == nil || !strings.Contains(err.Error(), "is not an app name") {
			t.Errorf("%s = %q: %v", c.to, c.env, err)
		}
	}
}

// Path selectors must tell the apps apart: a pattern that another app's
// pattern covers (or equals) is refused, naming both apps.
func TestAppsPathsDoNotOverlap(t *testing.T) {
	for _, c := range []struct {
		wx, tt string
		want   string // "" accepted
	}{
		{`"/m/*"`, `"/m/*"`, `apps[tt].path: "/m/*" is covered by app wx's "/m/*"`},
		{`"/m/*"`, `"/m/tt/*"`, `apps[tt].path: "/m/tt/*" is covered by app wx's "/m/*"`},
		{`"/m/tt/*"`, `"/m/*"`, `apps[wx].path: "/m/tt/*" is covered by app tt's "/m/*"`},
		{`"/m*"`, `"/mtt/login"`, `apps[tt].path: "/mtt/login" is covered by app wx's "/m*"`},
		{`"/api/login"`, `"/API/login"`, `apps[tt].path: "/API/login" is covered by app wx's "/api/login"`},
		{`"/*"`, `"/tt/*"`, `apps[tt].path: "/tt/*" is covered by app wx's "/*"`},
		{`"/m/*"`, `"/mtt/*"`, ``},
		{`"/m"`, `"/m/*"`, ``}, // /m/* covers /m: refused below
		{`"/wx/*"`, `"/tt/*"`, ``},
		{`"/m*"`, `"/m/*"`, `apps[tt].path: "/m/*" is covered by app wx's "/m*"`},
		{`"/m/a*"`, `"/m/*"`, `apps[wx].path: "/m/a*" is covered by app tt's "/m/*"`},
	} {
		raw := `{"apps":[
			{"name":"wx","platform":"wechat","app_id":"wx1","app_secret":"s","paths":[` + c.wx + `]},
			{"name":"tt","platform":"douyin","app_id":"tt1","app_secret":"s","paths":[` + c.tt + `]}
		],"select_app":[{"by":"path"}],"login":"/api/login"}`
		h := new(Handler)
		if err := json.Unmarshal([]byte(raw), h); err != nil {
			t.Fatal(err)
		}
		err := h.Validate()
		if c.wx == `"/m"` {
			c.want = `apps[wx].path: "/m" is covered by app tt's "/m/*"`
		}
		if c.want == "" {
			if err != nil {
				t.Errorf("%s, %s: %v", c.wx, c.tt, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s, %s: %v, want %q", c.wx, c.tt, err, c.want)
		}
	}
	// One app's own patterns may overlap (they choose the same app).
	h := new(Handler)
	_ = json.Unmarshal([]byte(`{"apps":[{"name":"wx","platform":"wechat","app_id":"wx1","app_secret":"s","paths":["/m/*","/m/wx/*"]},
		{"name":"tt","platform":"douyin","app_id":"tt1","app_secret":"s","paths":["/t/*"]}],"select_app":[{"by":"path"}],"login":"/api/login"}`), h)
	if err := h.Validate(); err != nil {
		t.Errorf("one app's own overlapping paths: %v", err)
	}
}

// The selector's header and query parameter are the handler's: whatever
// their names, they never reach the upstream, which reads the app from
// X-Mp-App-Id.
func TestAppsSelectorNeverReachesUpstream(t *testing.T) {
	sim := mpsim.New(mpsim.Options{})
	raw := strings.Replace(threeApps(`,"session":{}`), `{"by":"header","name":"X-Mp-App"},{"by":"query","name":"mp_app"}`, `{"by":"query","name":"mp_app"},{"by":"header","name":"X-App"}`, 1)
	h := provisionAt(t, sim, raw)
	g := &appsRig{t: t, h: h}
	lr, _ := sim.Login("wxdemoapp0000001", "u1")
	w := g.serve("POST", "/api/login?mp_app=wx&page=2", `{"code":"`+lr.Code+`"}`, "X-App", "tt")
	if g.seen == nil || w.Code != 200 {
		t.Fatalf("login: %d %s", w.Code, w.Body)
	}
	check := func(what string) {
		t.Helper()
		if g.seen.Header.Get("X-App") != "" || g.seen.URL.Query().Has("mp_app") || g.seen.URL.Query().Get("page") != "2" {
			t.Errorf("%s: the upstream sees X-App %q, query %q", what, g.seen.Header.Get("X-App"), g.seen.URL.RawQuery)
		}
	}
	check("login")
	if g.seen.Header.Get("X-Mp-App-Id") != "wxdemoapp0000001" {
		t.Fatalf("login: X-Mp-App-Id %q", g.seen.Header.Get("X-Mp-App-Id"))
	}
	tok := w.Result().Header.Get("X-Mp-Session")
	// Off the routes: with a token, with a selector, with neither.
	g.serve("GET", "/other?mp_app=tt&page=2", "", "X-App", "wx", "Authorization", "Bearer "+tok)
	check("off the routes, with a token")
	if g.seen.Header.Get("X-Mp-App-Id") != "wxdemoapp0000001" {
		t.Fatalf("token's app: %q", g.seen.Header.Get("X-Mp-App-Id"))
	}
	g.serve("GET", "/other?mp_app=tt&page=2", "", "X-App", "wx")
	check("off the routes, selected")
	g.serve("GET", "/other?mp_app=nope&page=2", "", "X-App", "nope")
	check("off the routes, no app")
}

// On the phone route a request that names no app is served by the app its
// session token's tag names; a selector still decides first.
func TestAppsPhoneRouteUsesTokenTag(t *testing.T) {
	sim := mpsim.New(mpsim.Options{})
	h := provisionAt(t, sim, threeApps(`,"session":{}`))
	g := &appsRig{t: t, h: h}
	lr, _ := sim.Login("wxdemoapp0000001", "u1")
	w := g.serve("POST", "/api/login", `{"code":"`+lr.Code+`"}`, "X-Mp-App", "wx")
	tok := w.Result().Header.Get("X-Mp-Session")
	if w.Code != 200 || tok == "" {
		t.Fatalf("login: %d %s", w.Code, w.Body)
	}
	ed, iv, err := sim.EncryptPhone("wxdemoapp0000001", "u1", "13800138000")
	if err != nil {
		t.Fatal(err)
	}
	body := `{"encryptedData":"` + ed + `","iv":"` + iv + `"}`
	w = g.serve("POST", "/api/phone", body, "Authorization", "Bearer "+tok)
	if g.seen == nil || w.Code != 200 || g.seen.Header.Get("X-Mp-Phone") != "13800138000" || g.seen.Header.Get("X-Mp-App-Id") != "wxdemoapp0000001" {
		t.Fatalf("phone by the token's tag: %d %s", w.Code, w.Body)
	}
	// The selector decides first: Douyin's app does not know the token.
	w = g.serve("POST", "/api/phone", body, "Authorization", "Bearer "+tok, "X-Mp-App", "tt")
	if g.seen != nil || w.Code != 401 || !strings.Contains(w.Body.String(), `"session_not_found"`) {
		t.Fatalf("phone with another app selected: %d %s", w.Code, w.Body)
	}
	// A tag of no app, an untagged token, none: unknown_app.
	for _, auth := range []string{"Bearer " + strings.TrimSuffix(tok, ".wx") + ".nope", "Bearer " + strings.TrimSuffix(tok, ".wx"), ""} {
		w = g.serve("POST", "/api/phone", body, "Authorization", auth)
		if g.seen != nil || w.Code != 400 || !strings.Contains(w.Body.String(), `"unknown_app"`) {
			t.Fatalf("phone, %q: %d %s", auth[min(len(auth), 10):], w.Code, w.Body)
		}
	}
	// The login route never goes by a tag: a new login names its app.
	lr, _ = sim.Login("wxdemoapp0000001", "u2")
	w = g.serve("POST", "/api/login", `{"code":"`+lr.Code+`"}`, "Authorization", "Bearer "+tok)
	if g.seen != nil || w.Code != 400 || !strings.Contains(w.Body.String(), `"unknown_app"`) {
		t.Fatalf("login by a tag: %d %s", w.Code, w.Body)
	}
}

// configVariant is a JSON configuration made from a good one by replacing
// from (once) with to; want is a part of Validate's error, "" for none.
type configVariant struct{ name, from, to, want string }

// checkVariants validates each variant of good.
func checkVariants(t *testing.T, good string, cases []configVariant) {
	t.Helper()
	for _, c := range cases {
		raw := strings.Replace(good, c.from, c.to, 1)
		if raw == good {
			t.Fatalf("%s: the replacement did not apply", c.name)
		}
		h := new(Handler)
		if err := json.Unmarshal([]byte(raw), h); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		err := h.Validate()
		if c.want == "" {
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want %q", c.name, err, c.want)
		}
	}
}
