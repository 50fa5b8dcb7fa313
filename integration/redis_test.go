package integration

import (
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/redistest"
)

// Two Caddy instances sharing one real Redis.
func twoInstances(t *testing.T, rs *redistest.Server, extra ...string) (*Sim, *Upstream, *Caddy, *Caddy) {
	t.Helper()
	sim, up := newSim(t), newUpstream(t)
	extra = append([]string{"store redis " + rs.URL()}, extra...)
	body := mpBlock("wechat", wxApp, wxSecret, sim.URL, extra...) + "\n\treverse_proxy " + strings.TrimPrefix(up.URL, "http://")
	a := startCaddy(t, body)
	b := startCaddy(t, body)
	return sim, up, a, b
}

func TestRedisLoginOnOnePhoneOnOther(t *testing.T) {
	rs := redistest.Start(t)
	sim, up, a, b := twoInstances(t, rs)
	lr := login(t, sim, wxApp, "kim")
	wantOK(t, postJSON(t, a.URL+"/api/login", map[string]any{"code": lr.Code}))
	sim.Advance(10 * time.Minute)
	ed, iv := phonePayload(t, sim, wxApp, "kim", "13800138020")
	wantOK(t, postJSON(t, b.URL+"/api/phone", map[string]any{"code": lr.Code, "encryptedData": ed, "iv": iv}))
	if got := up.Last(t); got.Header.Get("X-Mp-Phone") != "13800138020" || got.Header.Get("X-Mp-Openid") != lr.OpenID {
		t.Fatalf("headers %v", got.Header)
	}
	// A retried login on the other instance: same identity, no new exchange.
	wantOK(t, postJSON(t, b.URL+"/api/login", map[string]any{"code": lr.Code}))
	if got := up.Last(t).Header.Get("X-Mp-Openid"); got != lr.OpenID {
		t.Fatalf("retried login openid %q", got)
	}
	if n := sim.Calls("jscode2session"); n != 1 {
		t.Fatalf("code2session calls %d, want 1", n)
	}
	// Nothing in Redis is named after the code, and no value is the raw code.
	keys, err := rs.Client().Keys(t.Context(), "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if strings.Contains(k, lr.Code) {
			t.Fatalf("a Redis key contains the raw code: %s", k)
		}
	}
	a.Stop()
	b.Stop()
	noSecrets(t, a.Logs()+b.Logs(), lr.Code, wxSecret, ed, "13800138020")
}

func TestRedisOneCodeToBothInstancesAtOnce(t *testing.T) {
	rs := redistest.Start(t)
	sim, up, a, b := twoInstances(t, rs)
	for round := range 5 {
		lr := login(t, sim, wxApp, "lee")
		before := sim.Calls("jscode2session")
		const n = 20
		var wg sync.WaitGroup
		res := make([]Response, 2*n)
		for i := range 2 * n {
			target := a
			if i%2 == 1 {
				target = b
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				res[i] = postJSON(t, target.URL+"/api/login", map[string]any{"code": lr.Code})
			}()
		}
		wg.Wait()
		for _, r := range res {
			wantOK(t, r)
		}
		if got := sim.Calls("jscode2session") - before; got != 1 {
			t.Fatalf("round %d: %d concurrent logins with one code on two instances made %d code2session calls, want 1", round, 2*n, got)
		}
	}
	for _, r := range up.Requests() {
		if r.Header.Get("X-Mp-Openid") == "" {
			t.Fatal("a login reached the upstream without identity")
		}
	}
}

func TestRedisKilledThenRestarted(t *testing.T) {
	rs := redistest.Start(t)
	sim, up, a, _ := twoInstances(t, rs)
	lr := login(t, sim, wxApp, "max")
	wantOK(t, postJSON(t, a.URL+"/api/login", map[string]any{"code": lr.Code}))

	rs.Kill()
	before := up.Count()
	lr2 := login(t, sim, wxApp, "max")
	start := time.Now()
	wantError(t, postJSON(t, a.URL+"/api/login", map[string]any{"code": lr2.Code}), 503, "store_unavailable")
	ed, iv := phonePayload(t, sim, wxApp, "max", "13800138030")
	wantError(t, postJSON(t, a.URL+"/api/phone", map[string]any{"code": lr.Code, "encryptedData": ed, "iv": iv}), 503, "store_unavailable")
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("store_unavailable took %v for two requests", d)
	}
	if up.Count() != before {
		t.Fatal("the upstream was called while the store was down")
	}
	// Plain routes keep working.
	wantOK(t, do(t, http.MethodGet, a.URL+"/health", "", nil))
	// The code was not spent while the store was down.
	if n := sim.Calls("jscode2session"); n != 1 {
		t.Fatalf("code2session calls %d while the store was down, want 1", n)
	}

	rs.Restart(t)
	// Redis came back empty (it keeps nothing on disk): the code that could
	// not be exchanged is still good, and works now.
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := postJSON(t, a.URL+"/api/login", map[string]any{"code": lr2.Code})
		if r.Status == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("login after Redis restart: %d %s", r.Status, r.Body)
		}
		time.Sleep(200 * time.Millisecond)
	}
	ed, iv = phonePayload(t, sim, wxApp, "max", "13800138031")
	wantOK(t, postJSON(t, a.URL+"/api/phone", map[string]any{"code": lr2.Code, "encryptedData": ed, "iv": iv}))
	if got := up.Last(t).Header.Get("X-Mp-Phone"); got != "13800138031" {
		t.Fatalf("phone after restart %q", got)
	}
}
