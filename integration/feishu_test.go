package integration

import (
	"strings"
	"testing"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/mpsim"
)

// The simulator's Feishu and Lark demo apps.
const (
	fsApp      = "cli_demofeishu00001"
	fsSecret   = "demo-feishu-secret"
	larkApp    = "cli_demolark000001"
	larkSecret = "demo-lark-secret"
)

// feishuBlock is a miniprogram block with a login route only (Feishu has
// no phone or decrypt route).
func feishuBlock(platform, app, secret, apiBase string, extra ...string) string {
	return mpBlockLines(platform, app, secret, apiBase, append([]string{"login /api/login"}, extra...)...)
}

func newFeishuEnv(t *testing.T, platform, app, secret string, extra ...string) *env {
	t.Helper()
	e := &env{sim: newSim(t), up: newUpstream(t)}
	e.caddy = startCaddy(t, feishuBlock(platform, app, secret, e.sim.URL, extra...)+"\n\treverse_proxy "+strings.TrimPrefix(e.up.URL, "http://"))
	return e
}

// Feishu and Lark through the real Caddy: login with the app access token
// (fetched once, then shared), the upstream gets X-Mp-Openid,
// X-Mp-Tenant-Key and X-Mp-Employee-Id and the same body fields, never a
// client's own; a used code is invalid_code; later requests with the
// issued session carry the same identity, tenant included.
func TestFeishuLogin(t *testing.T) {
	for _, c := range []struct{ platform, app, secret string }{{"feishu", fsApp, fsSecret}, {"lark", larkApp, larkSecret}} {
		t.Run(c.platform, func(t *testing.T) {
			e := newFeishuEnv(t, c.platform, c.app, c.secret, "session")
			tenant, employee := mpsim.FeishuTenantKey(c.app), mpsim.FeishuEmployeeID(c.app, "fay")
			lr := login(t, e.sim, c.app, "fay")
			r := postJSON(t, e.url("/api/login?tenant_key=q-spoofed"), map[string]any{"code": lr.Code, "tenant_key": "spoofed", "Employee_ID": "spoofed", "openid": "spoofed"},
				"X-Mp-Tenant-Key", "spoofed", "X-Mp-Employee-Id", "spoofed", "X-Mp-Openid", "spoofed", "X-Mp-Platform", "wechat")
			wantOK(t, r)
			got := e.up.Last(t)
			h := got.Header
			if h.Get("X-Mp-Openid") != lr.OpenID || h.Get("X-Mp-Platform") != c.platform || h.Get("X-Mp-Tenant-Key") != tenant || h.Get("X-Mp-Employee-Id") != employee || h.Get("X-Mp-App-Id") != c.app {
				t.Fatalf("login headers: %v", h)
			}
			if len(h.Values("X-Mp-Tenant-Key")) != 1 || h.Get("X-Mp-Unionid") != "" {
				t.Fatalf("tenant key values %q, unionid %q", h.Values("X-Mp-Tenant-Key"), h.Get("X-Mp-Unionid"))
			}
			b := got.JSON(t)
			if b["openid"] != lr.OpenID || b["tenant_key"] != tenant || b["employee_id"] != employee || b["Employee_ID"] != nil {
				t.Fatalf("login body %v", b)
			}
			if q := got.Query.Encode(); strings.Contains(q, "spoofed") {
				t.Fatalf("the client's tenant_key reached the upstream: %s", q)
			}
			if n := e.sim.Calls(mpsim.EndpointAppAccessToken); n != 1 {
				t.Fatalf("%d app access token fetches, want 1", n)
			}

			// A later request with the issued session: the same identity.
			tok := r.Header.Get(sessionHdr)
			if tok == "" {
				t.Fatal("no session token")
			}
			wantOK(t, do(t, "GET", e.url("/api/orders"), "", nil, "Authorization", "Bearer "+tok, "X-Mp-Tenant-Key", "spoofed"))
			h = e.up.Last(t).Header
			if h.Get("X-Mp-Openid") != lr.OpenID || h.Get("X-Mp-Tenant-Key") != tenant || h.Get("X-Mp-Employee-Id") != employee {
				t.Fatalf("session request headers: %v", h)
			}
			// Without a session: none, whatever the client says.
			wantOK(t, do(t, "GET", e.url("/api/orders"), "", nil, "X-Mp-Tenant-Key", "spoofed", "X-Mp-Employee-Id", "spoofed"))
			h = e.up.Last(t).Header
			if h.Get("X-Mp-Tenant-Key") != "" || h.Get("X-Mp-Employee-Id") != "" || h.Get("X-Mp-Openid") != "" {
				t.Fatalf("a request without a session got identity: %v", h)
			}

			// A used code, and a made-up one: invalid_code, nothing upstream.
			n := e.up.Count()
			wantError(t, postJSON(t, e.url("/api/login"), map[string]any{"code": "made-up-code"}), 401, "invalid_code")
			if e.up.Count() != n {
				t.Fatal("a refused login reached the upstream")
			}
		})
	}
}

// An app access token Feishu revokes behind the handler's back (10202):
// one refresh and one retry, the login succeeds; a second login uses the
// new token with no further fetch.
func TestFeishuTokenRevoked(t *testing.T) {
	e := newFeishuEnv(t, "feishu", fsApp, fsSecret)
	wantOK(t, postJSON(t, e.url("/api/login"), map[string]any{"code": login(t, e.sim, fsApp, "fay").Code}))
	if err := e.sim.InvalidateTokens(fsApp, false); err != nil {
		t.Fatal(err)
	}
	tokens, logins := e.sim.Calls(mpsim.EndpointAppAccessToken), e.sim.Calls(mpsim.EndpointTokenLoginValidate)
	lr := login(t, e.sim, fsApp, "gus")
	wantOK(t, postJSON(t, e.url("/api/login"), map[string]any{"code": lr.Code}))
	if e.up.Last(t).Header.Get("X-Mp-Openid") != lr.OpenID {
		t.Fatal("wrong identity after the retry")
	}
	if dt, dl := e.sim.Calls(mpsim.EndpointAppAccessToken)-tokens, e.sim.Calls(mpsim.EndpointTokenLoginValidate)-logins; dt != 1 || dl != 2 {
		t.Fatalf("%d token fetches and %d login calls after the revocation, want 1 and 2", dt, dl)
	}
	wantOK(t, postJSON(t, e.url("/api/login"), map[string]any{"code": login(t, e.sim, fsApp, "hal").Code}))
	if dt := e.sim.Calls(mpsim.EndpointAppAccessToken) - tokens; dt != 1 {
		t.Fatalf("%d token fetches, want still 1", dt)
	}
	// A wrong secret: the token fetch fails, the login is a platform error.
	e2 := newFeishuEnv(t, "feishu", fsApp, "wrong-secret")
	wantError(t, postJSON(t, e2.url("/api/login"), map[string]any{"code": login(t, e2.sim, fsApp, "ian").Code}), 502, "platform_error")
}

// Feishu has no phone or decrypt route (its payload encryption is not
// published), no compat endpoints, no private_key or access_token
// settings: each is refused at load with a reason.
func TestFeishuRefusesWhatItLacks(t *testing.T) {
	sim := newSim(t)
	for _, c := range []struct{ extra, want string }{
		{"phone /api/phone", "Feishu has no phone route"},
		{"decrypt /api/decrypt", "Feishu has no decrypt route"},
		{"access_token classic", "is for platform wechat only"},
		{"private_key /etc/caddy/app_private.pem", `not \"feishu\"`},
		{"compat /mp-compat", `platform \"feishu\" has no compat endpoints`},
	} {
		out := caddyFailsToStart(t, site(freePort(t), freePort(t), feishuBlock("feishu", fsApp, fsSecret, sim.URL, c.extra)+"\n\trespond ok"))
		if !strings.Contains(out, c.want) {
			t.Errorf("%s: caddy said:\n%s", c.extra, out)
		}
	}
}
