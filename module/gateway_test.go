package module

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/mpsim"
)

// A gateway handler over the simulator, with no route but the gateway: the
// shared token is provisioned all the same.
func gatewayHandler(t *testing.T, sim *mpsim.Sim, extra string) *Handler {
	t.Helper()
	return provisionAt(t, sim, `{"platform":"wechat","app_id":"`+wxApp+`","app_secret":"`+wxSecret+`","api_base":"@API@",
		"gateway":{"prefix":"/mp-api","allow":["/cgi-bin/message/subscribe/send"]`+extra+`}}`)
}

func TestGatewayRelaysWithSharedToken(t *testing.T) {
	sim := mpsim.New(mpsim.Options{})
	h := gatewayHandler(t, sim, `,"host_mode":true`)
	lr, err := sim.Login(wxApp, "gwen")
	if err != nil {
		t.Fatal(err)
	}
	next := caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error {
		t.Error("a gateway request reached the next handler")
		return nil
	})
	body := `{"touser":"` + lr.OpenID + `","template_id":"T","data":{"a":{"value":"1"}}}`
	before := metricValue(t, metrics.gatewayCalls, map[string]string{"platform": "wechat", "api": "/cgi-bin/message/subscribe/send", "errcode": "0"})
	for _, target := range []string{
		"/mp-api/cgi-bin/message/subscribe/send?access_token=stale",
		"http://api.weixin.qq.com/cgi-bin/message/subscribe/send", // host mode
	} {
		w, mpErr := serveOnLoopback(t, h, jsonRequest("POST", target, body), next)
		if w.Code != 200 || mpErr != nil || !strings.Contains(w.Body.String(), `"errmsg":"ok"`) {
			t.Fatalf("%s: %d %s (mp_error %v)", target, w.Code, w.Body, mpErr)
		}
	}
	if got := metricValue(t, metrics.gatewayCalls, map[string]string{"platform": "wechat", "api": "/cgi-bin/message/subscribe/send", "errcode": "0"}); got-before != 2 {
		t.Fatalf("gateway_requests_total grew by %v, want 2", got-before)
	}
	// Off the allow-list, a never-relayed path under a listed prefix, and
	// the prefix alone: 403, no platform call.
	calls := sim.AllCalls()
	for _, target := range []string{"/mp-api/wxa/msg_sec_check", "/mp-api/sns/jscode2session", "/mp-api", "http://api.weixin.qq.com/cgi-bin/token"} {
		w, mpErr := serveOnLoopback(t, h, jsonRequest("POST", target, "{}"), next)
		if w.Code != 403 || mpErr != "forbidden" {
			t.Fatalf("%s: %d %s (mp_error %v)", target, w.Code, w.Body, mpErr)
		}
	}
	if sim.Calls(mpsim.EndpointJSCode2Session) != calls[mpsim.EndpointJSCode2Session] || sim.Calls(mpsim.EndpointToken) != 0 {
		t.Fatalf("refused requests reached the platform: %v", sim.AllCalls())
	}
	if n := sim.Calls(mpsim.EndpointStableToken); n != 1 {
		t.Fatalf("stable_token calls %d, want 1", n)
	}

	// A connection other than loopback: 403 before anything.
	req := jsonRequest("POST", "/mp-api/cgi-bin/message/subscribe/send", body)
	req = req.WithContext(context.WithValue(req.Context(), http.LocalAddrContextKey, &net.TCPAddr{IP: net.IPv4(10, 0, 0, 5), Port: 9001}))
	w := httptest.NewRecorder()
	req = caddyhttp.PrepareRequest(req, caddy.NewReplacer(), w, nil)
	if err := h.ServeHTTP(w, req, next); err != nil || w.Code != 403 || !strings.Contains(w.Body.String(), "API gateway answers on loopback") {
		t.Fatalf("public connection: %v %d %s", err, w.Code, w.Body)
	}
}

func TestGatewayRefusesPublicListeners(t *testing.T) {
	h := &Handler{Platform: "wechat", AppID: "wxgatewaylisten1", AppSecret: "s", APIBase: "http://127.0.0.1:1",
		Store: &StoreConfig{Type: "memory", MaxSessions: 10}, Gateway: &GatewayConfig{Prefix: "/mp-api", Allow: []string{"/wxa/msg_sec_check"}}}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.WithValue(context.Background(), caddyhttp.ServerCtxKey, &caddyhttp.Server{Listen: []string{":9001"}})})
	defer cancel()
	err := h.Provision(ctx)
	_ = h.Cleanup() // as Caddy does after a failed Provision: the store handle
	if err == nil {
		t.Fatal("provisioned on a public listener")
	}
	if !strings.Contains(err.Error(), "API gateway") || !strings.Contains(err.Error(), "allow_public in the gateway block") {
		t.Fatalf("error %v", err)
	}
}
