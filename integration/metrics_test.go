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

// metricsText scrapes Caddy's /metrics.
func metricsText(t *testing.T, c *Caddy) string {
	t.Helper()
	r := do(t, http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/metrics", c.admin), "", nil)
	if r.Status != 200 {
		t.Fatalf("metrics: %d", r.Status)
	}
	return string(r.Body)
}

// metricLine returns the value of one exposed series (the whole name with
// its labels, as Prometheus writes them), or -1 when absent.
func metricLine(m, series string) float64 {
	for _, l := range strings.Split(m, "\n") {
		if v, ok := strings.CutPrefix(l, series+" "); ok {
			var f float64
			if _, err := fmt.Sscan(v, &f); err == nil {
				return f
			}
		}
	}
	return -1
}

// Every request on a route or a compat endpoint counts once in
// requests_total: a login with token binding, refusals, a request whose
// route cannot be told, a CORS preflight, and the compat endpoints under
// their own route labels; every store operation is timed, the
// access-token manager's too.
func TestMetricsEveryRequestCounted(t *testing.T) {
	e := newEnv(t, "wechat", "token_binding {", "\tfrom json data.token", "}", "compat /mp-compat")
	ti := &tokenIssuer{t: t}
	e.up.setLoginRespond(ti.respond)

	lr := login(t, e.sim, wxApp, "mona")
	wantOK(t, postJSON(t, e.url("/api/login"), map[string]any{"code": lr.Code}))
	tok, _ := ti.last(t)
	ed, iv := phonePayload(t, e.sim, wxApp, "mona", "13800138041")
	wantOK(t, postJSON(t, e.url("/api/phone"), map[string]any{"encryptedData": ed, "iv": iv}, bearer(tok)...))
	wantError(t, postJSON(t, e.url("/api/phone"), map[string]any{"encryptedData": ed, "iv": iv}, bearer(newTok(t))...), 401, "session_not_found")
	wantError(t, postJSON(t, e.url("/api/login"), map[string]any{"code": "never-issued"}), 401, "invalid_code")
	wantError(t, postJSON(t, e.url("/api/login?s=/api/phone"), map[string]any{"code": lr.Code}), 400, "bad_request")
	if r := do(t, http.MethodOptions, e.url("/api/login"), "", nil); r.Status != 200 {
		t.Fatalf("preflight: %d", r.Status)
	}

	base := e.caddy.URL + "/mp-compat"
	st, m, raw := sdkGet(t, wxCode2SessionURL(base, wxApp, wxSecret, lr.Code))
	wantWxSession(t, e.sim, st, m, raw, wxApp, "mona", lr)
	st, m, raw = sdkGet(t, wxCode2SessionURL(base, wxApp, "wrong-secret", lr.Code))
	wantWxErr(t, st, m, raw, 40125, "invalid appsecret")
	if st, m, raw = sdkGet(t, base+"/cgi-bin/token?grant_type=client_credential&appid="+wxApp+"&secret="+wxSecret); st != 200 || m["access_token"] == nil {
		t.Fatalf("compat token: %d %s", st, raw)
	}
	st, m, raw = sdkGet(t, base+"/no/such/endpoint")
	wantWxErr(t, st, m, raw, 40066, "invalid url")

	got := metricsText(t, e.caddy)
	for series, want := range map[string]float64{
		`caddy_miniprogram_requests_total{platform="wechat",result="ok",route="login"}`:                        1,
		`caddy_miniprogram_requests_total{platform="wechat",result="ok",route="phone"}`:                        1,
		`caddy_miniprogram_requests_total{platform="wechat",result="session_not_found",route="phone"}`:         1,
		`caddy_miniprogram_requests_total{platform="wechat",result="invalid_code",route="login"}`:              1,
		`caddy_miniprogram_requests_total{platform="wechat",result="bad_request",route="unclear"}`:             1,
		`caddy_miniprogram_requests_total{platform="wechat",result="preflight",route="login"}`:                 1,
		`caddy_miniprogram_requests_total{platform="wechat",result="ok",route="compat_code2session"}`:          1,
		`caddy_miniprogram_requests_total{platform="wechat",result="bad_request",route="compat_code2session"}`: 1,
		`caddy_miniprogram_requests_total{platform="wechat",result="ok",route="compat_token"}`:                 1,
		`caddy_miniprogram_requests_total{platform="wechat",result="bad_request",route="compat_other"}`:        1,
		`caddy_miniprogram_store_duration_seconds_count{op="bind",store="memory"}`:                             1,
		`caddy_miniprogram_store_duration_seconds_count{op="save",store="memory"}`:                             1,
	} {
		if v := metricLine(got, series); v != want {
			t.Errorf("%s = %v, want %v", series, v, want)
		}
	}
	// Every op was used by this sequence, and timed: the routes' (lookup,
	// claim, save, bind, fail), the phone-code cache's (get) and the
	// access-token manager's (get, lock, set, unlock).
	for _, op := range []string{"save", "lookup", "bind", "claim", "fail", "get", "set", "lock", "unlock"} {
		if v := metricLine(got, `caddy_miniprogram_store_duration_seconds_count{op="`+op+`",store="memory"}`); v < 1 {
			t.Errorf("store op %s: %v observations, want at least 1", op, v)
		}
	}
	if strings.Contains(got, `result="ok",route="compat"`) || strings.Contains(got, `route="none"`) {
		t.Error("an unbounded or stray route label")
	}
	for _, secret := range []string{lr.Code, lr.OpenID, tok, wxSecret} {
		if strings.Contains(got, secret) {
			t.Error("metrics contain a user value or a secret")
		}
	}
}

// The error code of a request the handler answered is {vars.mp_error} in
// log_append (Caddy's access log) and in a deferred response header, as is
// its long form {http.vars.mp_error}. Caddy's Caddyfile shorthand {vars.X}
// stops at a dot, hence the variable's name without one.
func TestErrorVarInLogAndHeader(t *testing.T) {
	sim, up := newSim(t), newUpstream(t)
	c := startCaddy(t, mpBlock("wechat", wxApp, wxSecret, sim.URL)+
		"\n\tlog_append mp_error {vars.mp_error}\n\tlog_append mp_error_long {http.vars.mp_error}"+
		"\n\theader >X-Error-Code {vars.mp_error}\n\treverse_proxy "+strings.TrimPrefix(up.URL, "http://"))

	lr := login(t, sim, wxApp, "vera")
	ok := postJSON(t, c.URL+"/api/login", map[string]any{"code": lr.Code}, "X-Req", "ok-1")
	wantOK(t, ok)
	if v := ok.Header.Get("X-Error-Code"); v != "" {
		t.Errorf("X-Error-Code %q on a success", v)
	}
	bad := postJSON(t, c.URL+"/api/login", map[string]any{"code": "never-issued"}, "X-Req", "bad-1")
	wantError(t, bad, 401, "invalid_code")
	if v := bad.Header.Get("X-Error-Code"); v != "invalid_code" {
		t.Errorf("X-Error-Code %q, want invalid_code", v)
	}
	unclear := postJSON(t, c.URL+"/api/login?s=/api/phone", map[string]any{"code": lr.Code})
	wantError(t, unclear, 400, "bad_request")
	if v := unclear.Header.Get("X-Error-Code"); v != "bad_request" {
		t.Errorf("X-Error-Code %q, want bad_request", v)
	}
	c.Stop()

	// Caddy's access lines carry mp_error: the code for the refusal,
	// nothing for the success.
	lines := map[string]string{}
	for _, l := range strings.Split(c.Logs(), "\n") {
		if !strings.Contains(l, `"logger":"http.log.access`) {
			continue
		}
		for _, id := range []string{"ok-1", "bad-1"} {
			if strings.Contains(l, `"X-Req":["`+id+`"]`) {
				lines[id] = l
			}
		}
	}
	for _, field := range []string{"mp_error", "mp_error_long"} {
		if l := lines["bad-1"]; !strings.Contains(l, `"`+field+`":"invalid_code"`) {
			t.Errorf("the refused login's access line lacks %s invalid_code: %q", field, l)
		}
		if l := lines["ok-1"]; l == "" || strings.Contains(l, `"`+field+`":"`) {
			t.Errorf("the successful login's access line has %s: %q", field, l)
		}
	}
	// Refusals are DEBUG lines of the handler, not INFO or above; each
	// code has one WARN summary line.
	for _, l := range strings.Split(c.Logs(), "\n") {
		if strings.Contains(l, `"msg":"request refused"`) && !strings.Contains(l, `"level":"debug"`) {
			t.Errorf("a refusal logged above DEBUG: %s", l)
		}
	}
	if n := strings.Count(c.Logs(), `"msg":"requests refused`); n != 2 {
		t.Errorf("%d refusal summary lines, want 2 (invalid_code, bad_request)", n)
	}
}
