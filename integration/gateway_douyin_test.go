package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/redistest"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/mpsim"
)

// Douyin's gateway: two upstreams, each with its own shared token. A
// backend calls {prefix}/open.douyin.com/<path> (the client token goes in
// the access-token header) and {prefix}/developer.toutiao.com/<path> (the
// mini-app access_token goes in the JSON body), or, in host mode, the
// platform's URLs unchanged.

const dyGwBlock = `gateway ` + gwPrefix + ` {
			allow /open.douyin.com/api/apps/v1/censor/image/
			allow /developer.toutiao.com/api/apps/qrcode /developer.toutiao.com/api/apps/censor/image
			host_mode
		}`

func startDouyinGateway(t *testing.T, sim *Sim) *Caddy {
	t.Helper()
	admin, port := freePort(t), freePort(t)
	site := strings.Replace(gwSite(admin, port, sim, "bind 127.0.0.1", dyGwBlock), "platform wechat", "platform douyin", 1)
	site = strings.Replace(site, "app_id "+wxApp, "app_id "+ttApp, 1)
	site = strings.Replace(site, "app_secret "+wxSecret, "app_secret "+ttSecret, 1)
	return startCaddyfile(t, admin, site, port)
}

// dyCall posts JSON with an optional access-token header and Host.
func dyCall(t *testing.T, u, host, accessToken string, body any) (int, []byte, http.Header) {
	t.Helper()
	b, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(context.Background(), "POST", u, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if accessToken != "" {
		req.Header.Set("access-token", accessToken)
	}
	if host != "" {
		req.Host = host
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, raw, resp.Header
}

func dyField(raw []byte, field string) string {
	var m map[string]any
	if json.Unmarshal(raw, &m) != nil {
		return "not JSON"
	}
	return fmt.Sprint(m[field])
}

func TestGatewayDouyin(t *testing.T) {
	sim := newSim(t)
	c := startDouyinGateway(t, sim)
	base := c.URL + gwPrefix
	const staleClt, staleApp = "clt.stale-of-the-backend", "stale-app-token-of-the-backend"
	censor := map[string]any{"app_id": ttApp, "image": "https://img.example/cat.jpg"}

	// open.douyin.com: the client token in access-token, the backend's
	// own (header, query) replaced.
	st, raw, _ := dyCall(t, base+"/open.douyin.com/api/apps/v1/censor/image/?access_token="+staleClt, "", staleClt, censor)
	if st != 200 || dyField(raw, "err_no") != "0" || !strings.Contains(string(raw), `"predicts"`) {
		t.Fatalf("censor v3: %d %s", st, raw)
	}
	// developer.toutiao.com: the mini-app access_token in the body, the
	// backend's own member replaced; the answer a PNG, unchanged.
	st, raw, hdr := dyCall(t, base+"/developer.toutiao.com/api/apps/qrcode?access_token="+staleApp, "", staleClt,
		map[string]any{"access_token": staleApp, "appname": "douyin", "path": "pages/index", "width": 300})
	if st != 200 || hdr.Get("Content-Type") != "image/png" || !strings.HasPrefix(string(raw), "\x89PNG") ||
		!strings.Contains(string(raw), "app="+ttApp+" path=pages/index width=300") {
		t.Fatalf("qrcode: %d %v %q", st, hdr, raw)
	}
	st, raw, _ = dyCall(t, base+"/developer.toutiao.com/api/apps/censor/image", "", "", censor)
	if st != 200 || dyField(raw, "error") != "0" {
		t.Fatalf("censor v2: %d %s", st, raw)
	}
	if n, m := sim.Calls(mpsim.EndpointClientToken), sim.Calls(mpsim.EndpointTTAppToken); n != 1 || m != 1 {
		t.Fatalf("token fetches: client %d, app %d; want 1 each", n, m)
	}

	// Both tokens invalidated behind the gateway's back: each kind
	// refreshes its own once and retries once.
	if err := sim.InvalidateTokens(ttApp, false); err != nil {
		t.Fatal(err)
	}
	v3 := sim.Calls(mpsim.EndpointTTCensorImage)
	st, raw, _ = dyCall(t, base+"/open.douyin.com/api/apps/v1/censor/image/", "", "", censor)
	if st != 200 || dyField(raw, "err_no") != "0" {
		t.Fatalf("censor v3 after the invalidation: %d %s", st, raw)
	}
	if n := sim.Calls(mpsim.EndpointTTCensorImage) - v3; n != 2 {
		t.Fatalf("censor v3 calls %d, want 2 (one retry)", n)
	}
	qr := sim.Calls(mpsim.EndpointTTQRCode)
	st, raw, hdr = dyCall(t, base+"/developer.toutiao.com/api/apps/qrcode", "", "", map[string]any{"appname": "douyin", "path": "p"})
	if st != 200 || hdr.Get("Content-Type") != "image/png" {
		t.Fatalf("qrcode after the invalidation: %d %s", st, raw)
	}
	if n := sim.Calls(mpsim.EndpointTTQRCode) - qr; n != 2 {
		t.Fatalf("qrcode calls %d, want 2 (one retry)", n)
	}
	if n, m := sim.Calls(mpsim.EndpointClientToken), sim.Calls(mpsim.EndpointTTAppToken); n != 2 || m != 2 {
		t.Fatalf("token fetches after the invalidation: client %d, app %d; want 2 each", n, m)
	}

	// Host mode: each platform host, its path unchanged.
	st, raw, _ = dyCall(t, c.URL+"/api/apps/v1/censor/image/", "open.douyin.com", staleClt, censor)
	if st != 200 || dyField(raw, "err_no") != "0" {
		t.Fatalf("host mode, open.douyin.com: %d %s", st, raw)
	}
	st, raw, _ = dyCall(t, c.URL+"/api/apps/censor/image", "developer.toutiao.com:80", "", censor)
	if st != 200 || dyField(raw, "error") != "0" {
		t.Fatalf("host mode, developer.toutiao.com: %d %s", st, raw)
	}

	// Never relayed (token endpoints, code exchanges), off the list, or
	// naming no host: 403, no platform call.
	calls := sim.AllCalls()
	for _, r := range []struct{ path, host, want string }{
		{"/developer.toutiao.com/api/apps/v2/token", "", "never relayed"},
		{"/developer.toutiao.com/api/apps/token", "", "never relayed"},
		{"/developer.toutiao.com/api/apps/v2/jscode2session", "", "never relayed"},
		{"/developer.toutiao.com/api/apps/jscode2session", "", "never relayed"},
		{"/open.douyin.com/oauth/client_token/", "", "never relayed"},
		{"/open.douyin.com/api/apps/v1/get_phonenumber_info/", "", "never relayed"},
		{"/open.douyin.com/api/apps/v1/qrcode/create/", "", "allow-list"},
		{"/api/apps/qrcode", "", "names no API host"},
		{"/api/apps/v2/token", "developer.toutiao.com", "never relayed"},
		{"/oauth/client_token/", "open.douyin.com", "never relayed"},
	} {
		u := base + r.path
		if r.host != "" {
			u = c.URL + r.path
		}
		st, raw, _ := dyCall(t, u, r.host, "", map[string]any{"appid": ttApp})
		if st != http.StatusForbidden || !strings.Contains(string(raw), r.want) {
			t.Errorf("%s %s: %d %s", r.host, r.path, st, raw)
		}
	}
	if got := sim.AllCalls(); fmt.Sprint(got) != fmt.Sprint(calls) {
		t.Fatalf("refused requests reached the platform: %v, then %v", calls, got)
	}

	wantMetricLines(t, c,
		`caddy_miniprogram_gateway_requests_total{api="/open.douyin.com/api/apps/v1/censor/image/",errcode="0",platform="douyin"} 3`,
		`caddy_miniprogram_gateway_requests_total{api="/developer.toutiao.com/api/apps/qrcode",errcode="none",platform="douyin"} 2`,
		`caddy_miniprogram_gateway_token_errors_total{api="/open.douyin.com/api/apps/v1/censor/image/",outcome="retried",platform="douyin"} 1`,
		`caddy_miniprogram_gateway_token_errors_total{api="/developer.toutiao.com/api/apps/qrcode",outcome="retried",platform="douyin"} 1`,
		`caddy_miniprogram_gateway_requests_total{api="(refused)",errcode="forbidden",platform="douyin"} 10`,
	)
	// An access-log line to check (gateway requests are left out).
	if r := do(t, "GET", c.URL+"/healthz", "", nil); r.Status != 200 {
		t.Fatalf("off the gateway: %d", r.Status)
	}
	c.Stop()
	noSecrets(t, c.Logs(), ttSecret, staleClt, staleApp)
}

// Two instances on one Redis share each of Douyin's two tokens: one fetch
// per kind for both, and after both tokens are killed behind their backs,
// concurrent calls on both instances refresh each kind exactly once.
func TestGatewayDouyinTwoInstances(t *testing.T) {
	rs := redistest.Start(t)
	sim := newSim(t)
	start := func() *Caddy {
		admin, port := freePort(t), freePort(t)
		site := strings.Replace(gwSite(admin, port, sim, "bind 127.0.0.1", "store redis "+rs.URL()+"\n\t\t"+dyGwBlock), "platform wechat", "platform douyin", 1)
		site = strings.Replace(site, "app_id "+wxApp, "app_id "+ttApp, 1)
		site = strings.Replace(site, "app_secret "+wxSecret, "app_secret "+ttSecret, 1)
		return startCaddyfile(t, admin, site, port)
	}
	a, b := start(), start()
	censor := map[string]any{"app_id": ttApp, "image": "https://img.example/cat.jpg"}
	call := func(c *Caddy, kind int) (int, []byte) {
		if kind == 0 {
			st, raw, _ := dyCall(t, c.URL+gwPrefix+"/open.douyin.com/api/apps/v1/censor/image/", "", "", censor)
			if dyField(raw, "err_no") != "0" {
				return -st, raw
			}
			return st, raw
		}
		st, raw, _ := dyCall(t, c.URL+gwPrefix+"/developer.toutiao.com/api/apps/censor/image", "", "", censor)
		if dyField(raw, "error") != "0" {
			return -st, raw
		}
		return st, raw
	}
	for _, c := range []*Caddy{a, b} {
		for kind := range 2 {
			if st, raw := call(c, kind); st != 200 {
				t.Fatalf("warm-up kind %d: %d %s", kind, st, raw)
			}
		}
	}
	if n, m := sim.Calls(mpsim.EndpointClientToken), sim.Calls(mpsim.EndpointTTAppToken); n != 1 || m != 1 {
		t.Fatalf("two instances fetched client %d, app %d tokens; want 1 each", n, m)
	}
	if err := sim.InvalidateTokens(ttApp, false); err != nil {
		t.Fatal(err)
	}
	const n = 8
	var wg sync.WaitGroup
	sts := make([]int, n)
	raws := make([][]byte, n)
	for i := range n {
		c := a
		if i%2 == 1 {
			c = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sts[i], raws[i] = call(c, (i/2)%2)
		}()
	}
	wg.Wait()
	for i := range n {
		if sts[i] != 200 {
			t.Fatalf("request %d after the invalidation: %d %s", i, sts[i], raws[i])
		}
	}
	if n, m := sim.Calls(mpsim.EndpointClientToken), sim.Calls(mpsim.EndpointTTAppToken); n != 2 || m != 2 {
		t.Fatalf("token fetches after the invalidation: client %d, app %d; want 2 each (one refresh per kind across both instances)", n, m)
	}
}
