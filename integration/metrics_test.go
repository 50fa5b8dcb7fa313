package integration

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// The plugin's metrics appear on Caddy's own /metrics (admin endpoint),
// with bounded labels.
func TestMetricsScraped(t *testing.T) {
	e := newEnv(t, "wechat")
	lr := login(t, e.sim, wxApp, "mia")
	wantOK(t, postJSON(t, e.url("/api/login"), map[string]any{"code": lr.Code}))
	wantOK(t, postJSON(t, e.url("/api/login"), map[string]any{"code": lr.Code}))
	ed, iv := phonePayload(t, e.sim, wxApp, "mia", "13800138040")
	wantOK(t, postJSON(t, e.url("/api/phone"), map[string]any{"code": lr.Code, "encryptedData": ed, "iv": iv}))
	wantError(t, postJSON(t, e.url("/api/login"), map[string]any{"code": "unknown-code"}), 401, "invalid_code")

	r := do(t, http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/metrics", e.caddy.admin), "", nil)
	if r.Status != 200 {
		t.Fatalf("metrics: %d", r.Status)
	}
	m := string(r.Body)
	for _, want := range []string{
		`caddy_miniprogram_code2session_total{outcome="ok",platform="wechat"} 1`,
		`caddy_miniprogram_code2session_total{outcome="invalid_code",platform="wechat"} 1`,
		`caddy_miniprogram_requests_total{platform="wechat",result="ok",route="login"} 2`,
		`caddy_miniprogram_requests_total{platform="wechat",result="ok",route="phone"} 1`,
		`caddy_miniprogram_requests_total{platform="wechat",result="invalid_code",route="login"} 1`,
		`caddy_miniprogram_exchange_dedup_total{kind="store",platform="wechat"} 1`,
		`caddy_miniprogram_code2session_duration_seconds_count{platform="wechat"} 2`,
		`caddy_miniprogram_store_duration_seconds_count{op="lookup",store="memory"}`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	for _, secret := range []string{lr.Code, lr.OpenID, "13800138040"} {
		if strings.Contains(m, secret) {
			t.Errorf("metrics contain a user value")
		}
	}
}
