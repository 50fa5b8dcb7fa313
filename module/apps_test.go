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
	for _, c := range []struct{ name, from, to, want string }{
		{"platform at the top", `"login":`, `"platform":"wechat","login":`, "miniprogram: platform: goes in each app"},
		{"access_token at the top", `"login":`, `"access_token":{},"login":`, "access_token: goes in each app"},
		{"gateway", `"login":`, `"gateway":{"prefix":"/mp-api","allow":["/wxa/msg_sec_check"]},"login":`, "gateway: not with several apps"},
		{"no select_app", `"select_app":[{"by":"header","name":"X-Mp-App"},{"by":"query","name":"mp_app"},{"by":"path"},{"by":"referer"}],`, ``, "select_app: is needed"},
		{"unknown selector", `{"by":"referer"}`, `{"by":"cookie"}`, `unknown selector "cookie"`},
		{"header without a name", `{"by":"header","name":"X-Mp-App"}`, `{"by":"header"}`, "header needs a name"},
		{"path without paths", `,"paths":["/qq/*"]`, ``, "path needs apps with paths"},
		{"two apps named alike", `"name":"tt"`, `"name":"wx"`, `apps[wx]: "wx" names app 1 too`},
		{"a name that is another app id", `"name":"tt"`, `"name":"wxdemoapp0000001"`, `names app 1 too`},
		{"a bad name", `"name":"tt"`, `"name":"t.t"`, `apps[t.t].name: "t.t" is not an app name`},
		{"an app's own rule", `"app_secret":"demo-douyin-secret",`, ``, "apps[tt]: missing required field(s): app_secret"},
		{"an app's field", `"platform":"qq",`, `"platform":"qq","private_key":"/k.pem",`, "apps[qqdemoapp0000001].private_key:"},
		{"a shared rule", `"login":"/api/login"`, `"login":"/api/login","session_ttl":"1s"`, "miniprogram: session_ttl:"},
		{"compat on none", `"login":`, `"compat":{"prefix":"/c"},"login":`, ""},
	} {
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
