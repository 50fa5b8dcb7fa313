package integration

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// A login code is a bearer credential until its session expires: a GET
// login (wx.request's default puts the code in the query) must not leave
// it in any log line, with no log directive and a dead upstream (Caddy's
// error log would print the URI), or with an access log.
func TestCodeNotLoggedFromQuery(t *testing.T) {
	sim := newSim(t)
	dead := fmt.Sprintf("127.0.0.1:%d", freePort(t)) // nothing listens there
	mp := mpBlock("wechat", wxApp, wxSecret, sim.URL)

	t.Run("no log directive, dead upstream", func(t *testing.T) {
		port, admin := freePort(t), freePort(t)
		cf := fmt.Sprintf("{\n\tadmin 127.0.0.1:%d\n\tauto_https off\n\tpersist_config off\n}\n\nhttp://127.0.0.1:%d {\n%s\n\treverse_proxy %s\n}\n",
			admin, port, mp, dead)
		c := startCaddyfile(t, admin, cf, port)
		lr := login(t, sim, wxApp, "logq1")
		r := do(t, http.MethodGet, c.URL+"/api/login?code="+url.QueryEscape(lr.Code), "", nil)
		if r.Status != http.StatusBadGateway {
			t.Fatalf("login to a dead upstream: status %d, want 502; body %s", r.Status, r.Body)
		}
		c.Stop()
		logs := c.Logs()
		if !strings.Contains(logs, "upstream request failed") {
			t.Errorf("the handler did not log the upstream failure:\n%s", logs)
		}
		for _, s := range []string{lr.Code, url.QueryEscape(lr.Code)} {
			if strings.Contains(logs, s) {
				t.Errorf("a code from the query appears in the logs:\n%s", logs)
			}
		}
	})

	t.Run("access log", func(t *testing.T) {
		up := newUpstream(t)
		c := startCaddy(t, mp+"\n\treverse_proxy "+strings.TrimPrefix(up.URL, "http://"))
		lr := login(t, sim, wxApp, "logq2")
		wantOK(t, do(t, http.MethodGet, c.URL+"/api/login?code="+url.QueryEscape(lr.Code)+"&x=1", "", nil))
		// A route request without a query keeps Caddy's own line.
		wantOK(t, do(t, http.MethodPost, c.URL+"/api/login", "application/json", []byte(`{"code":"`+lr.Code+`"}`)))
		c.Stop()
		logs := c.Logs()
		var redacted, caddys int
		for _, l := range strings.Split(logs, "\n") {
			if !strings.Contains(l, `"logger":"http.log.access`) {
				continue
			}
			switch {
			case strings.Contains(l, `"uri":"/api/login?code=REDACTED&x=REDACTED"`):
				redacted++
			case strings.Contains(l, `"uri":"/api/login"`):
				caddys++
			}
		}
		if redacted != 1 || caddys != 1 {
			t.Errorf("access lines: %d redacted (want 1), %d of Caddy's own (want 1):\n%s", redacted, caddys, logs)
		}
		noSecrets(t, logs, lr.Code, url.QueryEscape(lr.Code))
	})
}
