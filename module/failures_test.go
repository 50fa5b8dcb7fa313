package module

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/mpsim"
)

func TestCheckMaxFailedExchanges(t *testing.T) {
	for _, c := range []struct {
		in string
		ok bool
	}{
		{"", true}, {"off", true}, {"30/1m", true}, {"1/1s", true},
		{"Off", false}, {"30", false}, {"0/1m", false}, {"30/0s", false}, {"30/1ms", false}, {"on", false},
	} {
		if err := CheckMaxFailedExchanges(c.in); (err == nil) != c.ok {
			t.Errorf("%q: %v", c.in, err)
		}
		h := Handler{Platform: "wechat", AppID: "wx1", AppSecret: "s", Login: "/l", MaxFailedExchanges: c.in}
		if err := h.Validate(); (err == nil) != c.ok {
			t.Errorf("Validate with %q: %v", c.in, err)
		}
	}
}

// loginAs posts a login with code from the client at remote (and a client
// IP Caddy determined, when clientIP is set).
func loginAs(t *testing.T, h *Handler, remote, clientIP, code string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest("POST", "/login", bytes.NewBufferString(`{"code":"`+code+`"}`))
	req.Header.Set("Content-Type", "application/json")
	req.RemoteAddr = remote
	w := httptest.NewRecorder()
	req = caddyhttp.PrepareRequest(req, caddy.NewReplacer(), w, nil)
	if clientIP != "" {
		caddyhttp.SetVar(req.Context(), caddyhttp.ClientIPVarKey, clientIP)
	}
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error { return nil })
	if err := h.ServeHTTP(w, req, next); err != nil {
		t.Fatal(err)
	}
	return w
}

func TestFailedExchangesBound(t *testing.T) {
	sim := mpsim.New(mpsim.Options{})
	srv := httptest.NewServer(sim)
	defer srv.Close()
	h := &Handler{Platform: "wechat", AppID: "wxdemoapp0000001", AppSecret: "demo-wechat-secret", APIBase: srv.URL,
		Login: "/login", Store: &StoreConfig{Type: "memory", MaxSessions: 100}, MaxFailedExchanges: "3/1m"}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	if err := h.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	defer h.Cleanup()
	calls := func() int { return sim.Calls(mpsim.EndpointJSCode2Session) }

	// Failures that are not the client's do not count.
	sim.Inject(mpsim.Fault{Endpoint: mpsim.EndpointJSCode2Session, HTTPStatus: 502, Times: 5 * 3})
	for i := range 5 {
		if w := loginAs(t, h, "192.0.2.1:1000", "", "transient-"+string(rune('a'+i))); w.Code != 502 {
			t.Fatalf("platform fault: %d %s", w.Code, w.Body)
		}
	}
	sim.ClearFaults()
	base := calls()

	for i := range 3 {
		if w := loginAs(t, h, "192.0.2.1:1000", "", "bad-"+string(rune('a'+i))); w.Code != 401 {
			t.Fatalf("bad code %d: %d %s", i, w.Code, w.Body)
		}
	}
	// The same dead code again is answered from the store: no call, no count.
	if w := loginAs(t, h, "192.0.2.2:1000", "", "bad-a"); w.Code != 401 || calls() != base+3 {
		t.Fatalf("replayed dead code: %d, %d calls", w.Code, calls()-base)
	}
	for range 2 {
		w := loginAs(t, h, "192.0.2.1:2000", "", "bad-z")
		if w.Code != 429 || !strings.Contains(w.Body.String(), `"too_many_failures"`) || w.Header().Get("Retry-After") != "20" {
			t.Fatalf("over the bound: %d %q %s", w.Code, w.Header().Get("Retry-After"), w.Body)
		}
	}
	if n := calls() - base; n != 3 {
		t.Fatalf("%d platform calls, want 3", n)
	}
	// A real login from the limited client is refused too; another client
	// logs in.
	lr, _ := sim.Login("wxdemoapp0000001", "u1")
	if w := loginAs(t, h, "192.0.2.1:3000", "", lr.Code); w.Code != 429 {
		t.Fatalf("limited client: %d", w.Code)
	}
	if w := loginAs(t, h, "192.0.2.2:3000", "", lr.Code); w.Code != 200 {
		t.Fatalf("other client: %d %s", w.Code, w.Body)
	}
	// The client IP Caddy determined decides, not the connection.
	if w := loginAs(t, h, "192.0.2.2:3000", "192.0.2.1", "bad-y"); w.Code != 429 {
		t.Fatalf("client IP 192.0.2.1 via a proxy: %d", w.Code)
	}
	if w := loginAs(t, h, "192.0.2.1:3000", "198.51.100.7", "bad-y"); w.Code != 401 {
		t.Fatalf("client IP 198.51.100.7 via 192.0.2.1: %d", w.Code)
	}
}

func TestFailedExchangesOff(t *testing.T) {
	sim := mpsim.New(mpsim.Options{})
	srv := httptest.NewServer(sim)
	defer srv.Close()
	h := &Handler{Platform: "wechat", AppID: "wxdemoapp0000001", AppSecret: "demo-wechat-secret", APIBase: srv.URL,
		Login: "/login", Store: &StoreConfig{Type: "memory", MaxSessions: 100}, MaxFailedExchanges: "off"}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	if err := h.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	defer h.Cleanup()
	for i := range 40 {
		if w := loginAs(t, h, "192.0.2.1:1000", "", "bad-"+strings.Repeat("x", i+1)); w.Code != 401 {
			t.Fatalf("bad code %d: %d %s", i, w.Code, w.Body)
		}
	}
}

func TestFailureLimitDefaultOn(t *testing.T) {
	h := &Handler{}
	h.provisionFailureLimit()
	if h.failures == nil {
		t.Fatal("no limiter by default")
	}
	for range 30 {
		h.failures.Fail("k")
	}
	if w := h.failures.Wait("k"); w <= 1.9e9 || w > 2e9 {
		t.Fatalf("after 30 failures wait %v, want 2s (30/1m)", w)
	}
	h.MaxFailedExchanges = "off"
	h.provisionFailureLimit()
	if h.failures != nil {
		t.Fatal("a limiter although off")
	}
}
