package module

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/mpsim"
)

// selectorSpy passes requests to the simulator and remembers whether one
// carried select_app's header or query parameter.
type selectorSpy struct {
	sim  *mpsim.Sim
	mu   sync.Mutex
	seen []string
}

func (s *selectorSpy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	if v := r.Header.Get("X-Mp-App"); v != "" {
		s.seen = append(s.seen, "header X-Mp-App: "+v+" on "+r.URL.Path)
	}
	if r.URL.Query().Has("mp_app") {
		s.seen = append(s.seen, "query mp_app on "+r.URL.Path)
	}
	s.mu.Unlock()
	s.sim.ServeHTTP(w, r)
}

// gatewayApps is a handler of three apps (WeChat, Douyin, QQ: no gateway)
// with one gateway block whose allow-list has an entry for each platform
// with a gateway.
const gatewayApps = `{"apps":[
		{"name":"wx","platform":"wechat","app_id":"wxdemoapp0000001","app_secret":"demo-wechat-secret","api_base":"@API@"},
		{"name":"tt","platform":"douyin","app_id":"ttdemoapp0000001","app_secret":"demo-douyin-secret","api_base":"@API@"},
		{"name":"qq","platform":"qq","app_id":"qqdemoapp0000001","app_secret":"demo-qq-secret","api_base":"@API@"}
	],"select_app":[{"by":"header","name":"X-Mp-App"},{"by":"query","name":"mp_app"},{"by":"referer"}],
	"login":"/api/login","store":{"type":"memory","max_sessions":100},
	"gateway":{"prefix":"/mp-api","allow":["/cgi-bin/message/subscribe/send","/open.douyin.com/api/apps/v1/censor/image/"],"host_mode":true}}`

func TestAppsGatewayRelaysPerApp(t *testing.T) {
	sim := mpsim.New(mpsim.Options{})
	spy := &selectorSpy{sim: sim}
	h := provisionAt(t, spy, gatewayApps)
	next := caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error {
		t.Error("a gateway request reached the next handler")
		return nil
	})
	lr, err := sim.Login(wxApp, "gwen")
	if err != nil {
		t.Fatal(err)
	}
	wxBody := `{"touser":"` + lr.OpenID + `","template_id":"T","data":{"a":{"value":"1"}}}`
	ttBody := `{"app_id":"` + ttApp + `","image":"https://example.com/cat.png"}`
	wxLabels := map[string]string{"platform": "wechat", "api": "/cgi-bin/message/subscribe/send", "errcode": "0"}
	ttLabels := map[string]string{"platform": "douyin", "api": "/open.douyin.com/api/apps/v1/censor/image/", "errcode": "0"}
	wxBefore, ttBefore := metricValue(t, metrics.gatewayCalls, wxLabels), metricValue(t, metrics.gatewayCalls, ttLabels)

	// Each app relays its own calls with its own token: WeChat named by
	// the header (and by its app id, and in host mode), Douyin by the
	// query parameter (Douyin's censor refuses a client token of another
	// app than the body's app_id).
	for _, c := range []struct{ target, body, want string }{
		{"/mp-api/cgi-bin/message/subscribe/send?access_token=stale", wxBody, `"errmsg":"ok"`},
		{"http://api.weixin.qq.com/cgi-bin/message/subscribe/send", wxBody, `"errmsg":"ok"`},
		{"/mp-api/open.douyin.com/api/apps/v1/censor/image/?mp_app=tt", ttBody, `image censor success`},
		{"http://open.douyin.com/api/apps/v1/censor/image/?mp_app=ttdemoapp0000001", ttBody, `image censor success`},
	} {
		req := jsonRequest("POST", c.target, c.body)
		if !strings.Contains(c.target, "mp_app") {
			req.Header.Set("X-Mp-App", "wx")
		}
		w, mpErr := serveOnLoopback(t, h, req, next)
		if w.Code != 200 || mpErr != nil || !strings.Contains(w.Body.String(), c.want) {
			t.Fatalf("%s: %d %s (mp_error %v)", c.target, w.Code, w.Body, mpErr)
		}
	}
	if n := sim.Calls(mpsim.EndpointStableToken); n != 1 {
		t.Fatalf("WeChat stable_token calls %d, want 1 (one token for the wx app)", n)
	}
	if n := sim.Calls(mpsim.EndpointTTCensorImage); n != 2 {
		t.Fatalf("Douyin censor calls %d, want 2", n)
	}
	if d := metricValue(t, metrics.gatewayCalls, wxLabels) - wxBefore; d != 2 {
		t.Fatalf("wechat gateway_requests_total grew by %v, want 2", d)
	}
	if d := metricValue(t, metrics.gatewayCalls, ttLabels) - ttBefore; d != 2 {
		t.Fatalf("douyin gateway_requests_total grew by %v, want 2", d)
	}

	// Refused without a platform call: no app named (nothing, only a
	// Referer, an unknown name), an app without a gateway, another
	// platform's path (off that app's allow-list), a host of another
	// app's platform.
	calls := sim.AllCalls()
	unknown := map[string]string{"platform": "wechat", "route": "gateway", "result": "unknown_app"}
	unknownBefore := metricValue(t, metrics.requests, unknown)
	wxRef := "https://servicewechat.com/" + wxApp + "/0/page-frame.html"
	for _, c := range []struct {
		target  string
		hdr     []string
		status  int
		code    string
		message string
	}{
		{"/mp-api/cgi-bin/message/subscribe/send", nil, 400, "unknown_app", "names none of the configured apps (select_app: header X-Mp-App, query mp_app"},
		{"/mp-api/cgi-bin/message/subscribe/send", []string{"Referer", wxRef}, 400, "unknown_app", "names none"},
		{"/mp-api/cgi-bin/message/subscribe/send?mp_app=nope", nil, 400, "unknown_app", "names none"},
		{"http://api.weixin.qq.com/cgi-bin/message/subscribe/send", nil, 400, "unknown_app", "names none"},
		{"/mp-api/cgi-bin/message/subscribe/send", []string{"X-Mp-App", "qq"}, 400, "unknown_app", "app qq has no API gateway"},
		{"/mp-api/open.douyin.com/api/apps/v1/censor/image/", []string{"X-Mp-App", "wx"}, 403, "forbidden", ""},
		{"/mp-api/cgi-bin/message/subscribe/send", []string{"X-Mp-App", "tt"}, 403, "forbidden", ""},
		{"http://open.douyin.com/api/apps/v1/censor/image/", []string{"X-Mp-App", "wx"}, 403, "forbidden", ""},
	} {
		w, mpErr := serveOnLoopback(t, h, jsonRequest("POST", c.target, wxBody, c.hdr...), next)
		var m map[string]string
		_ = json.Unmarshal(w.Body.Bytes(), &m)
		if w.Code != c.status || mpErr != c.code || m["error"] != c.code || !strings.Contains(m["message"], c.message) {
			t.Errorf("%s %v: %d %s (mp_error %v)", c.target, c.hdr, w.Code, w.Body, mpErr)
		}
	}
	if d := metricValue(t, metrics.requests, unknown) - unknownBefore; d != 5 {
		t.Errorf("requests_total{route=gateway,result=unknown_app} grew by %v, want 5", d)
	}
	after := sim.AllCalls()
	for k, v := range after {
		if calls[k] != v {
			t.Fatalf("refused requests reached the platform: %v, before %v", after, calls)
		}
	}

	// Not on loopback: refused before the app is looked at.
	req := jsonRequest("POST", "/mp-api/cgi-bin/message/subscribe/send", wxBody)
	req = req.WithContext(context.WithValue(req.Context(), http.LocalAddrContextKey, &net.TCPAddr{IP: net.IPv4(10, 0, 0, 5), Port: 9001}))
	w := httptest.NewRecorder()
	req = caddyhttp.PrepareRequest(req, caddy.NewReplacer(), w, nil)
	if err := h.ServeHTTP(w, req, next); err != nil || w.Code != 403 || !strings.Contains(w.Body.String(), "API gateway answers on loopback") {
		t.Fatalf("public connection: %v %d %s", err, w.Code, w.Body)
	}

	spy.mu.Lock()
	defer spy.mu.Unlock()
	if len(spy.seen) > 0 {
		t.Fatalf("the selector reached the platform: %v", spy.seen)
	}
}

func TestAppsGatewayValidate(t *testing.T) {
	good := strings.ReplaceAll(gatewayApps, "@API@", "http://127.0.0.1:9")
	checkVariants(t, good, []configVariant{
		{"good", `"host_mode":true`, `"host_mode":false`, ""},
		{"no header or query selector", `{"by":"header","name":"X-Mp-App"},{"by":"query","name":"mp_app"},`, ``, "gateway: needs select_app header or query"},
		{"entries go to their platforms' apps", `"/cgi-bin/message/subscribe/send",`, `"/cgi-bin/message/subscribe/send","/developer.toutiao.com/api/apps/qrcode","/oauth/x/y",`, ""},
		{"a never-relayed WeChat path", `"/cgi-bin/message/subscribe/send"`, `"/sns/jscode2session"`, "gateway.allow: app wx: API path \"/sns/jscode2session\" is never relayed"},
		{"a never-relayed Douyin path", `"/open.douyin.com/api/apps/v1/censor/image/"`, `"/open.douyin.com/oauth/client_token/"`, "gateway.allow: app tt: API path \"/open.douyin.com/oauth/client_token/\" is never relayed"},
		{"no allow", `"allow":["/cgi-bin/message/subscribe/send","/open.douyin.com/api/apps/v1/censor/image/"],`, ``, "gateway.allow: needs at least one API path"},
		{"overlaps login", `"prefix":"/mp-api"`, `"prefix":"/api"`, "gateway: prefix \"/api\" overlaps the login path"},
		{"gateway only, with an app that has none", `"login":"/api/login",`, ``, "apps[qq]: has nothing to serve"},
	})
	// Douyin and QQ only: a WeChat-style entry is no app's.
	only := strings.Replace(strings.ReplaceAll(good, `"platform":"wechat"`, `"platform":"qq"`), `"app_id":"wxdemoapp0000001"`, `"app_id":"qqotherapp000001"`, 1)
	h := new(Handler)
	if err := json.Unmarshal([]byte(only), h); err != nil {
		t.Fatal(err)
	}
	if err := h.Validate(); err == nil || !strings.Contains(err.Error(), `gateway.allow: API path "/cgi-bin/message/subscribe/send" is for none of the apps' platforms (douyin)`) {
		t.Errorf("an entry for no app: %v", err)
	}
	// No app's platform has a gateway.
	qqOnly := `{"apps":[{"platform":"qq","app_id":"q1","app_secret":"s"}],"select_app":[{"by":"header","name":"X-Mp-App"}],"login":"/l","gateway":{"prefix":"/g","allow":["/x/y"]}}`
	h = new(Handler)
	_ = json.Unmarshal([]byte(qqOnly), h)
	if err := h.Validate(); err == nil || !strings.Contains(err.Error(), "none of the apps' platforms has an API gateway") {
		t.Errorf("gateway with QQ only: %v", err)
	}
}
