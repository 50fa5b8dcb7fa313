package integration

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/mpsim"
)

// Random login codes each cost one code2session call: max_failed_exchanges
// bounds them per client IP, before any platform call.

// abuseEnv starts Caddy with max_failed_exchanges 3/1m and the given global
// options.
func abuseEnv(t *testing.T, global string) *env {
	t.Helper()
	e := &env{sim: newSim(t), up: newUpstream(t)}
	e.caddy = startCaddyWith(t, global, mpBlock("wechat", wxApp, wxSecret, e.sim.URL, "max_failed_exchanges 3/1m")+
		"\n\treverse_proxy "+strings.TrimPrefix(e.up.URL, "http://"))
	return e
}

func (e *env) code2sessionCalls() int { return e.sim.Calls(mpsim.EndpointJSCode2Session) }

// wantTooManyFailures checks the 429 answer and its Retry-After (20 s: one
// failure's share of 3/1m, as the bound was just reached).
func wantTooManyFailures(t *testing.T, r Response) {
	t.Helper()
	wantError(t, r, http.StatusTooManyRequests, "too_many_failures")
	if n, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || n < 1 || n > 20 {
		t.Fatalf("Retry-After %q, want 1..20 seconds", r.Header.Get("Retry-After"))
	}
}

// With trusted_proxies, the client is the X-Forwarded-For address: N bad
// codes from one client cost N platform calls, then 429 with no call;
// another client still logs in.
func TestAbuseFailedExchangesPerClient(t *testing.T) {
	e := abuseEnv(t, "\tservers {\n\t\ttrusted_proxies static 127.0.0.1/32\n\t}")
	from := func(ip string) []string { return []string{"X-Forwarded-For", ip} }
	attacker, other := from("203.0.113.7"), from("198.51.100.20")

	for i := range 3 {
		wantError(t, postJSON(t, e.url("/api/login"), map[string]any{"code": fmt.Sprintf("random-%d", i)}, attacker...), 401, "invalid_code")
	}
	if n := e.code2sessionCalls(); n != 3 {
		t.Fatalf("%d code2session calls for 3 bad codes, want 3", n)
	}
	for i := range 5 {
		wantTooManyFailures(t, postJSON(t, e.url("/api/login"), map[string]any{"code": fmt.Sprintf("more-%d", i)}, attacker...))
	}
	// A real code from the limited client is refused as well.
	lr := login(t, e.sim, wxApp, "mallory")
	wantTooManyFailures(t, postJSON(t, e.url("/api/login"), map[string]any{"code": lr.Code}, attacker...))
	if n := e.code2sessionCalls(); n != 3 {
		t.Fatalf("%d code2session calls after the bound, want still 3", n)
	}
	if n := e.up.Count(); n != 0 {
		t.Fatalf("the upstream got %d requests", n)
	}

	// Another client, through the same proxy, logs in.
	lr2 := login(t, e.sim, wxApp, "olivia")
	wantOK(t, postJSON(t, e.url("/api/login"), map[string]any{"code": lr2.Code}, other...))
	if got := e.up.Last(t).Header.Get("X-Mp-Openid"); got != lr2.OpenID {
		t.Fatalf("openid %q, want %q", got, lr2.OpenID)
	}

	r := do(t, http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/metrics", e.caddy.admin), "", nil)
	for _, want := range []string{
		`caddy_miniprogram_refused_total{platform="wechat",reason="too_many_failures"} 6`,
		`caddy_miniprogram_requests_total{platform="wechat",result="too_many_failures",route="login"} 6`,
		`caddy_miniprogram_code2session_total{outcome="invalid_code",platform="wechat"} 3`,
	} {
		if !strings.Contains(string(r.Body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	logs := e.caddy.Logs()
	if !strings.Contains(logs, "reached max_failed_exchanges") || !strings.Contains(logs, `"client":"203.0.113.7"`) {
		t.Errorf("no log line about the limited client")
	}
	e.caddy.Stop()
	noSecrets(t, e.caddy.Logs(), lr.Code, lr2.Code)
}

// Without trusted_proxies a client cannot buy a fresh allowance with a made
// up X-Forwarded-For: the connection's address counts. A second loopback
// address is another client.
func TestAbuseForwardedForNotTrusted(t *testing.T) {
	e := abuseEnv(t, "")
	for i := range 3 {
		wantError(t, postJSON(t, e.url("/api/login"), map[string]any{"code": fmt.Sprintf("random-%d", i)},
			"X-Forwarded-For", fmt.Sprintf("203.0.113.%d", i)), 401, "invalid_code")
	}
	wantTooManyFailures(t, postJSON(t, e.url("/api/login"), map[string]any{"code": "random-x"}, "X-Forwarded-For", "192.0.2.99"))
	if n := e.code2sessionCalls(); n != 3 {
		t.Fatalf("%d code2session calls, want 3", n)
	}

	// The same Caddy, reached from 127.0.0.2.
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}, Timeout: 5 * time.Second}
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DialContext: dialer.DialContext}}
	defer client.CloseIdleConnections()
	lr := login(t, e.sim, wxApp, "peggy")
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, e.url("/api/login"),
		strings.NewReader(fmt.Sprintf(`{"code":%q}`, lr.Code)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("from 127.0.0.2: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("from 127.0.0.2: status %d", resp.StatusCode)
	}
	if got := e.up.Last(t).Header.Get("X-Mp-Openid"); got != lr.OpenID {
		t.Fatalf("openid %q, want %q", got, lr.OpenID)
	}
}

// Made-up phone codes cost getuserphonenumber calls: they share the bound
// with login codes.
func TestAbuseFailedPhoneCodes(t *testing.T) {
	e := abuseEnv(t, "")
	calls := func() int { return e.sim.Calls(mpsim.EndpointGetUserPhoneNumber) + e.code2sessionCalls() }
	wantError(t, postJSON(t, e.url("/api/login"), map[string]any{"code": "random-login"}), 401, "invalid_code")
	for i := range 2 {
		wantError(t, postJSON(t, e.url("/api/phone"), map[string]any{"code": fmt.Sprintf("random-phone-%d", i)}), 401, "invalid_code")
	}
	if n := calls(); n != 3 {
		t.Fatalf("%d platform calls, want 3", n)
	}
	wantTooManyFailures(t, postJSON(t, e.url("/api/phone"), map[string]any{"code": "random-phone-x"}))
	wantTooManyFailures(t, postJSON(t, e.url("/api/login"), map[string]any{"code": "random-login-x"}))
	if n := calls(); n != 3 {
		t.Fatalf("%d platform calls after the bound, want still 3", n)
	}
}
