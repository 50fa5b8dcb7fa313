package integration

// Redis over TLS with a client certificate, and Sentinel with its own
// credentials, configured through the Caddyfile.

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/redistest"
)

// TLS with ca_file, cert_file and key_file to a redis-server that requires
// client certificates: login and phone work. A wrong ca_file stops Caddy
// at load with a message naming the CA file. A Redis down when Caddy
// starts does not stop it: the login answers 503 store_unavailable, then
// works once Redis is up. Sentinel with sentinel_username and
// sentinel_password (the sentinels' ACL user) and an ACL user on the data
// node works too.
func TestRedisTLSAndSentinelAuth(t *testing.T) {
	certs, other := redistest.NewCerts(t), redistest.NewCerts(t)
	rs := redistest.StartTLS(t, certs)
	sim, up := newSim(t), newUpstream(t)
	tlsStore := func(url, ca string) string {
		return fmt.Sprintf("store redis %s {\n\t\t\tca_file %s\n\t\t\tcert_file %s\n\t\t\tkey_file %s\n\t\t}",
			url, ca, certs.ClientCert, certs.ClientKey)
	}
	var secrets []string

	// The right CA and client certificate.
	good := startCaddy(t, topoSite(sim, up, tlsStore(rs.URL(), certs.CAFile)))
	lr := login(t, sim, wxApp, "tls-user")
	secrets = append(secrets, lr.Code)
	wantOK(t, postJSON(t, good.URL+"/api/login", map[string]any{"code": lr.Code}))
	ed, iv := phonePayload(t, sim, wxApp, "tls-user", "13500000009")
	secrets = append(secrets, ed)
	wantOK(t, postJSON(t, good.URL+"/api/phone", map[string]any{"code": lr.Code, "encryptedData": ed, "iv": iv}))
	if got := up.Last(t); got.Header.Get("X-Mp-Phone") != "13500000009" || got.Header.Get("X-Mp-Openid") != lr.OpenID {
		t.Fatalf("phone headers %v", got.Header)
	}
	if keys := topoKeys(t, rs.Client(), "mp:*:u:*"); len(keys) != 1 {
		t.Fatalf("user records on the TLS server: %v", keys)
	}
	if strings.Contains(good.Logs(), "not usable at load") {
		t.Errorf("a warning at load with Redis up:\n%s", good.Logs())
	}

	// A wrong CA: Caddy does not start, and says why.
	out := caddyFailsToStart(t, site(freePort(t), freePort(t), topoSite(sim, up, tlsStore(rs.URL(), other.CAFile))))
	if !strings.Contains(out, "server's certificate does not verify against the CA file "+other.CAFile) {
		t.Fatalf("wrong CA: the output does not say why:\n%s", out)
	}
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "does not verify") {
			t.Logf("wrong CA: %s", l)
		}
	}

	// Redis down at load.
	down := redistest.StartTLS(t, certs)
	down.Kill()
	late := startCaddy(t, topoSite(sim, up, tlsStore(down.URL(), certs.CAFile)))
	if !strings.Contains(late.Logs(), "not usable at load") {
		t.Errorf("no warning at load with Redis down:\n%s", late.Logs())
	}
	lr2 := login(t, sim, wxApp, "tls-late-user")
	secrets = append(secrets, lr2.Code)
	wantError(t, postJSON(t, late.URL+"/api/login", map[string]any{"code": lr2.Code}), http.StatusServiceUnavailable, "store_unavailable")
	down.Restart(t)
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := topoPost("login", late.URL+"/api/login", map[string]any{"code": lr2.Code})
		if r.Err == nil && r.Status == http.StatusOK {
			break
		}
		if !r.okOrUnavailable() || time.Now().After(deadline) {
			t.Fatalf("login once Redis is up: %v %s", r, r.Body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got := up.Last(t).Header.Get("X-Mp-Openid"); got != lr2.OpenID {
		t.Fatalf("late login openid %q", got)
	}

	// Sentinel with its own ACL user and password; an ACL user on the
	// data node.
	const dataPass, sentinelPass = "Dpw-5c1e9a7b3f2d", "Spw-8e4b2c6a0d1f"
	m := redistest.Start(t, "--requirepass", "admin-pw-31f0",
		"--user", "mp", "on", ">"+dataPass, "resetkeys", "~mp:*", "resetchannels", "-@all",
		"+get", "+set", "+del", "+hmget", "+hset", "+hdel", "+pexpire", "+persist", "+pttl", "+eval", "+evalsha", "+ping")
	ss := redistest.StartSentinels(t, "mymaster", m, 1, redistest.SentinelOptions{
		Conf: []string{"sentinel auth-pass mymaster admin-pw-31f0"},
		Args: []string{"--requirepass", "sentinel-admin-pw-77c2",
			"--user", "mp-sentinel", "on", ">" + sentinelPass, "-@all", "+sentinel|get-master-addr-by-name",
			"+sentinel|sentinels", "+subscribe", "+ping", "resetchannels", "&+switch-master", "&+replica-reconf-done"},
	})
	t.Setenv("MP_TEST_SENTINEL_PASSWORD", sentinelPass)
	sent := startCaddy(t, topoSite(sim, up, fmt.Sprintf(
		"store redis {\n\t\t\taddrs %s\n\t\t\tmaster_name mymaster\n\t\t\tusername mp\n\t\t\tpassword %s\n\t\t\tsentinel_username mp-sentinel\n\t\t\tsentinel_password {env.MP_TEST_SENTINEL_PASSWORD}\n\t\t}",
		ss.Addrs()[0], dataPass)))
	lr3 := login(t, sim, wxApp, "sentinel-user")
	secrets = append(secrets, lr3.Code)
	wantOK(t, postJSON(t, sent.URL+"/api/login", map[string]any{"code": lr3.Code}))
	if keys := topoKeys(t, m.Client(), "mp:*:u:*"); len(keys) != 1 {
		t.Fatalf("user records on the master: %v", keys)
	}

	for _, c := range []*Caddy{good, late, sent} {
		c.Stop()
		noSecrets(t, c.Logs(), append(secrets, wxSecret, dataPass, sentinelPass)...)
	}
}
