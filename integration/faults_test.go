package integration

// Faults and load (issue 5, item 4): Redis restarted under load, the
// platform slow or failing, caddy reloaded under load, and concurrency at
// scale. Every loop has a deadline, every pool of goroutines is bounded,
// everything listens on loopback only.
//
// Sizes: the default run is meant for CI on 2 cores with the -race-built
// caddy (about 35-60 s for the four tests, depending on how busy the
// machine is). -short scales every test down. TestScaleConcurrentLogins
// reads MP_SCALE_LOGINS (distinct-code logins; default: see scaleLogins),
// MP_SCALE_INFLIGHT (requests in flight, default 200) and
// MP_SCALE_REDIS_TIMEOUT (the store's timeout, default 2s: see there).

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/mpsim"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/redistest"
)

// Redis is killed for a while under a mixed load on two instances, then
// restarted (empty: no persistence).
func TestUnderLoadRedisRestarted(t *testing.T) {
	const (
		workers = 8
		bound   = 3 * time.Second // no request may take longer
		// After Restart returns, 503s may go on for a while: a go-redis
		// pool that failed more dials than its size re-probes the server
		// once a second.
		grace = 2 * time.Second
	)
	killAfter, outage, after := 1500*time.Millisecond, 2*time.Second, 2500*time.Millisecond
	if testing.Short() {
		killAfter, outage, after = time.Second, time.Second, 1500*time.Millisecond
	}

	rs := redistest.Start(t)
	sim, up, a, b := twoInstances(t, rs)
	inst := []*Caddy{a, b}
	lc := newLoadClient(t, 2*workers, bound+2*time.Second)

	type rec struct {
		loadResult
		sessionAt time.Time // phone: when the login of the code it uses answered
	}
	var (
		mu      sync.Mutex
		results []rec
	)
	add := func(r rec) {
		mu.Lock()
		results = append(results, r)
		mu.Unlock()
	}
	// Per worker: the last code that logged in, its user, and when.
	type session struct {
		code, user string
		at         time.Time
	}
	last := make([]session, workers)

	var killAt, killedAt, restartAt, restartedAt time.Time
	start := time.Now()
	loadDone := make(chan struct{})
	go func() {
		defer close(loadDone)
		runUntil(t.Context(), workers, start.Add(killAfter+outage+after), func(ctx context.Context, w, i int) {
			c, other := inst[(w+i)%2], inst[(w+i+1)%2]
			add(rec{loadResult: lc.do(t.Context(), "plain", c.URL+"/health", nil)})

			user := fmt.Sprintf("rr-%d-%d", w, i)
			lr, err := sim.Login(wxApp, user)
			if err != nil {
				panic(err) // only an unknown app fails
			}
			res := lc.do(t.Context(), "login", c.URL+"/api/login", map[string]any{"code": lr.Code})
			add(rec{loadResult: res})
			if res.Status == http.StatusOK {
				last[w] = session{lr.Code, user, res.End}
			}
			s := last[w]
			if s.code == "" {
				return
			}
			ed, iv, err := sim.EncryptPhone(wxApp, s.user, fmt.Sprintf("1380013%04d", (w*1000+i)%10000))
			if err != nil {
				panic(err)
			}
			add(rec{
				loadResult: lc.do(t.Context(), "phone", other.URL+"/api/phone", map[string]any{"code": s.code, "encryptedData": ed, "iv": iv}),
				sessionAt:  s.at,
			})
		})
	}()

	time.Sleep(killAfter)
	killAt = time.Now()
	rs.Kill()
	killedAt = time.Now()
	time.Sleep(outage)
	restartAt = time.Now()
	rs.Restart(t)
	restartedAt = time.Now()
	<-loadDone
	total := time.Since(start)

	var (
		tl                            tally
		bad                           []string
		durs                          = map[string][]time.Duration{}
		outage503                     = map[string]int{}
		okAfterRestart                = map[string]int{}
		last503                       time.Time
		firstOKAfter                  time.Duration = -1
		lost                          int
		upLogins, upPhones, upPlain   int
		wantLogins, wantPhones, wantP int
	)
	badf := func(format string, args ...any) {
		if len(bad) < 20 {
			bad = append(bad, fmt.Sprintf(format, args...))
		}
	}
	for _, r := range results {
		tl.add(r.Kind, r.Label())
		durs[r.Kind] = append(durs[r.Kind], r.Dur())
		if r.Dur() > bound {
			badf("%s took %v (bound %v): %s", r.Kind, r.Dur(), bound, r.Label())
		}
		if r.Err != nil {
			badf("%s failed at %v: %v", r.Kind, r.Start.Sub(start), r.Err)
			continue
		}
		if r.Status == 599 {
			badf("%s: the upstream saw a half-written request (599)", r.Kind)
		}
		if r.Kind == "plain" {
			if r.Status != http.StatusOK {
				badf("plain request: %s at %v", r.Label(), r.Start.Sub(start))
			} else {
				wantP++
			}
			continue
		}
		switch label := r.Label(); {
		case label == "200":
			if r.Kind == "login" {
				wantLogins++
			} else {
				wantPhones++
			}
			if r.Start.After(killedAt) && r.End.Before(restartAt) {
				badf("%s answered 200 while Redis was down", r.Kind)
			}
			if r.Start.After(restartedAt) && (firstOKAfter < 0 || r.End.Sub(restartedAt) < firstOKAfter) {
				firstOKAfter = r.End.Sub(restartedAt)
			}
			if r.Start.After(restartedAt) {
				okAfterRestart[r.Kind]++
			}
		case label == "503 store_unavailable":
			if r.End.Before(killAt) || r.Start.After(restartedAt.Add(grace)) {
				badf("%s: 503 store_unavailable outside the outage (at %v; kill at %v, restarted at %v)", r.Kind, r.Start.Sub(start), killAt.Sub(start), restartedAt.Sub(start))
			}
			outage503[r.Kind]++
			if r.End.After(last503) {
				last503 = r.End
			}
		case r.Kind == "phone" && label == "401 session_not_found":
			// The session was in the Redis that died (it keeps nothing).
			if !r.sessionAt.Before(restartedAt) {
				badf("phone: session_not_found for a login made after the restart")
			}
			lost++
		default:
			badf("%s: unexpected %s: %s", r.Kind, label, r.Body)
		}
	}
	for _, r := range up.Requests() {
		switch r.Path {
		case "/api/login":
			upLogins++
			if r.Header.Get("X-Mp-Openid") == "" {
				badf("a login reached the upstream without identity")
			}
		case "/api/phone":
			upPhones++
			if len(r.Header.Get("X-Mp-Phone")) != 11 || r.Header.Get("X-Mp-Openid") == "" {
				badf("a phone request reached the upstream without phone or identity")
			}
		default:
			upPlain++
		}
	}

	t.Logf("load: %d workers for %v, Redis killed at %v for %v (restart took %v); %d requests:%s",
		workers, total.Round(time.Millisecond), killAt.Sub(start).Round(time.Millisecond),
		restartedAt.Sub(killAt).Round(time.Millisecond), restartedAt.Sub(restartAt).Round(time.Millisecond), len(results), tl.String())
	for _, k := range []string{"plain", "login", "phone"} {
		t.Logf("latency %-5s %s", k, latencies(durs[k]))
	}
	t.Logf("503 during the outage: login %d, phone %d; phone session_not_found (session lost with Redis): %d",
		outage503["login"], outage503["phone"], lost)
	t.Logf("after restart: last 503 ended %v after Restart returned (negative: before), first 200 %v after; 200s since: login %d, phone %d",
		last503.Sub(restartedAt).Round(time.Millisecond), firstOKAfter.Round(time.Millisecond), okAfterRestart["login"], okAfterRestart["phone"])
	t.Logf("upstream: login %d, phone %d, plain %d; code2session calls %d", upLogins, upPhones, upPlain, sim.Calls("jscode2session"))

	if upLogins != wantLogins || upPhones != wantPhones || upPlain != wantP {
		badf("the upstream received login %d, phone %d, plain %d; clients got 200 for %d, %d, %d",
			upLogins, upPhones, upPlain, wantLogins, wantPhones, wantP)
	}
	if outage503["login"] == 0 || outage503["phone"] == 0 {
		badf("the outage was not seen: 503s login %d, phone %d", outage503["login"], outage503["phone"])
	}
	if okAfterRestart["login"] == 0 || okAfterRestart["phone"] == 0 {
		badf("nothing succeeded after the restart: login %d, phone %d", okAfterRestart["login"], okAfterRestart["phone"])
	}
	if len(bad) > 0 {
		t.Fatalf("%d problem(s), first ones:\n\t%s", len(bad), strings.Join(bad, "\n\t"))
	}

	// And, load over, a fresh login on one and phone on the other.
	lr := login(t, sim, wxApp, "after-restart")
	wantOK(t, postJSON(t, a.URL+"/api/login", map[string]any{"code": lr.Code}))
	ed, iv := phonePayload(t, sim, wxApp, "after-restart", "13800138099")
	wantOK(t, postJSON(t, b.URL+"/api/phone", map[string]any{"code": lr.Code, "encryptedData": ed, "iv": iv}))

	// go-redis's own lines go through Caddy's JSON log, not around it.
	for _, c := range inst {
		for _, l := range strings.Split(c.Logs(), "\n") {
			if strings.HasPrefix(l, "redis: ") {
				t.Errorf("a plain-text go-redis line in Caddy's log: %.200s", l)
				break
			}
		}
	}
}

// The platform slow or failing: timeouts and retries are bounded.
func TestFaultPlatformSlowOrFailing(t *testing.T) {
	e := newEnv(t, "wechat", "platform_timeout 1s", "platform_retries 2")
	const ep = mpsim.EndpointJSCode2Session
	cases := []struct {
		name   string
		fault  mpsim.Fault
		status int
		code   string
		errno  any // platform_errcode, nil = absent
		calls  int
		min    time.Duration
		max    time.Duration
	}{
		{"delay 3s", mpsim.Fault{Endpoint: ep, Delay: 3 * time.Second}, 504, "platform_timeout", nil, 1, 900 * time.Millisecond, 2 * time.Second},
		{"busy twice then ok", mpsim.Fault{Endpoint: ep, Errcode: -1, Times: 2}, 200, "", nil, 3, 0, time.Second},
		{"busy forever", mpsim.Fault{Endpoint: ep, Errcode: -1}, 502, "platform_error", -1.0, 3, 0, time.Second},
		{"rate limited", mpsim.Fault{Endpoint: ep, Errcode: 45011}, 429, "rate_limited", 45011.0, 1, 0, time.Second},
		{"http 500 forever", mpsim.Fault{Endpoint: ep, HTTPStatus: 500}, 502, "platform_error", nil, 3, 0, time.Second},
		{"invalid code", mpsim.Fault{Endpoint: ep, Errcode: 40029}, 401, "invalid_code", 40029.0, 1, 0, time.Second},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e.sim.ClearFaults()
			defer e.sim.ClearFaults()
			lr := login(t, e.sim, wxApp, "slow-"+strings.ReplaceAll(c.name, " ", "-"))
			e.sim.Inject(c.fault)
			calls, ups := e.sim.Calls(ep), e.up.Count()
			start := time.Now()
			r := postJSON(t, e.url("/api/login"), map[string]any{"code": lr.Code})
			took := time.Since(start)
			got := e.sim.Calls(ep) - calls
			t.Logf("%s: %d %s after %d call(s) in %v", c.name, r.Status, r.Body, got, took.Round(time.Millisecond))
			if c.status == 200 {
				wantOK(t, r)
				if h := e.up.Last(t).Header.Get("X-Mp-Openid"); h != lr.OpenID {
					t.Fatalf("openid %q, want %q", h, lr.OpenID)
				}
			} else {
				m := wantError(t, r, c.status, c.code)
				if m["platform_errcode"] != c.errno {
					t.Fatalf("platform_errcode %v, want %v", m["platform_errcode"], c.errno)
				}
				if e.up.Count() != ups {
					t.Fatal("the upstream was called")
				}
			}
			if got != c.calls {
				t.Fatalf("%d code2session calls, want exactly %d", got, c.calls)
			}
			if took < c.min || took > c.max {
				t.Fatalf("took %v, want within [%v, %v]", took, c.min, c.max)
			}
		})
	}
}

// caddy reload under load: nothing fails, sessions survive, the Redis
// client is reused.
func TestReloadUnderLoad(t *testing.T) {
	const (
		workers  = 6
		reloads  = 3
		preUsers = 16
		bound    = 5 * time.Second
	)
	settle := 700 * time.Millisecond
	if testing.Short() {
		settle = 300 * time.Millisecond
	}
	rs := redistest.Start(t)
	sim, up := newSim(t), newUpstream(t)
	body := func(redis bool, ttl string) string {
		extra := []string{"session_ttl " + ttl}
		if redis {
			extra = append(extra, "store redis "+rs.URL())
		}
		return mpBlock("wechat", wxApp, wxSecret, sim.URL, extra...) + "\n\treverse_proxy " + strings.TrimPrefix(up.URL, "http://")
	}
	mem := startCaddy(t, body(false, "30m"))
	red := startCaddy(t, body(true, "30m"))
	inst := []*Caddy{mem, red}
	names := []string{"memory", "redis"}

	// Sessions made before any reload, used during and after them.
	type pre struct{ code, user string }
	pres := make([][]pre, 2)
	for k, c := range inst {
		for j := range preUsers {
			user := fmt.Sprintf("pre-%s-%d", names[k], j)
			lr := login(t, sim, wxApp, user)
			wantOK(t, postJSON(t, c.URL+"/api/login", map[string]any{"code": lr.Code}))
			pres[k] = append(pres[k], pre{lr.Code, user})
		}
	}

	lc := newLoadClient(t, 2*workers, bound)
	lc.replayable = true
	start := time.Now()
	var (
		tl      tally
		mu      sync.Mutex
		bad     []string
		durs    []time.Duration
		n       int
		replays int
		fresh   int
	)
	// check counts a result and tells whether it is a success.
	check := func(r loadResult, where string) bool {
		tl.add(where+" "+r.Kind, r.Label())
		mu.Lock()
		defer mu.Unlock()
		n++
		replays += r.Replays
		fresh += r.FreshRetries
		durs = append(durs, r.Dur())
		ok := r.Err == nil && r.Status == http.StatusOK
		if !ok && len(bad) < 20 {
			bad = append(bad, fmt.Sprintf("%s %s at %v: %s %s (%v; %s)", where, r.Kind, r.Start.Sub(start), r.Label(), r.Body, r.Err, r.Conn))
		}
		return ok
	}
	stop := make(chan struct{})
	loadDone := make(chan struct{})
	go func() {
		defer close(loadDone)
		ctx, cancel := context.WithCancel(t.Context())
		go func() { <-stop; cancel() }()
		// The deadline only bounds a run whose main goroutine died.
		runUntil(ctx, workers, start.Add(60*time.Second), func(ctx context.Context, w, i int) {
			k := w % 2
			c := inst[k]
			check(lc.do(t.Context(), "plain", c.URL+"/health", nil), names[k])

			user := fmt.Sprintf("rl-%d-%d", w, i)
			lr, err := sim.Login(wxApp, user)
			if err != nil {
				panic(err)
			}
			if r := lc.do(t.Context(), "login", c.URL+"/api/login", map[string]any{"code": lr.Code}); check(r, names[k]) {
				ed, iv, err := sim.EncryptPhone(wxApp, user, "13800138050")
				if err != nil {
					panic(err)
				}
				check(lc.do(t.Context(), "phone", c.URL+"/api/phone", map[string]any{"code": lr.Code, "encryptedData": ed, "iv": iv}), names[k])
			}

			p := pres[k][(w*7+i)%preUsers]
			ed, iv, err := sim.EncryptPhone(wxApp, p.user, "13800138051")
			if err != nil {
				panic(err)
			}
			check(lc.do(t.Context(), "phone", c.URL+"/api/phone", map[string]any{"code": p.code, "encryptedData": ed, "iv": iv}), names[k])
		})
	}()
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		<-loadDone
	}()

	time.Sleep(settle)
	clients0, ids0 := redisClients(t, rs)
	clients := []int{clients0}
	var reloadTook []time.Duration
	ttls := []string{"31m", "30m", "31m"}
	for k := range reloads {
		ttl := ttls[k%len(ttls)]
		rstart := time.Now()
		if err := reloadAll(inst, []string{body(false, ttl), body(true, ttl)}); err != nil {
			t.Fatal(err)
		}
		reloadTook = append(reloadTook, time.Since(rstart).Round(time.Millisecond))
		time.Sleep(settle)
		n, _ := redisClients(t, rs)
		clients = append(clients, n)
	}
	close(stop)
	<-loadDone
	total := time.Since(start)
	clientsEnd, idsEnd := redisClients(t, rs)
	kept := 0
	for id := range ids0 {
		if idsEnd[id] {
			kept++
		}
	}

	t.Logf("load: %d workers for %v, %d reloads of both instances at once (took %v); %d requests (%s), %d sent again by the client's transport (keep-alive connection closed by the reload before any answer), %d sent again by the client (a new connection closed by the reload before any answer):%s",
		workers, total.Round(time.Millisecond), reloads, reloadTook, n, latencies(durs), replays, fresh, tl.String())
	t.Logf("redis connected_clients (this probe included): before reloads %d, after each %v, at end %d; %d of %d connections from before the reloads still open",
		clients0, clients[1:], clientsEnd, kept, len(ids0))
	if len(bad) > 0 {
		t.Fatalf("%d request(s) failed, first ones:\n\t%s", len(bad), strings.Join(bad, "\n\t"))
	}
	// A connection closed without an answer could also be a handler that
	// panicked: none did.
	for j, c := range inst {
		if strings.Contains(strings.ToLower(c.Logs()), "panic") {
			t.Errorf("%s: a panic in the log", names[j])
		}
	}
	for j, c := range inst {
		if got := strings.Count(c.Logs(), "miniprogram handler provisioned"); got != 1+reloads {
			t.Errorf("%s: handler provisioned %d times, want %d (did the reloads happen?)", names[j], got, 1+reloads)
		}
	}
	for _, v := range append(clients, clientsEnd) {
		if v > clients0+3 {
			t.Errorf("redis connected_clients grew across reloads: %d before, then %v, %d at end", clients0, clients[1:], clientsEnd)
			break
		}
	}
	if len(ids0) == 0 || kept == 0 {
		t.Errorf("no Redis connection from before the reloads survived them (%d before): the client was not reused", len(ids0))
	}

	// Every session made before the reloads still works after them.
	for k, c := range inst {
		for _, p := range pres[k] {
			ed, iv := phonePayload(t, sim, wxApp, p.user, "13800138052")
			r := postJSON(t, c.URL+"/api/phone", map[string]any{"code": p.code, "encryptedData": ed, "iv": iv})
			if r.Status != http.StatusOK {
				t.Fatalf("%s: a session made before the reloads: %d %s", names[k], r.Status, r.Body)
			}
		}
	}
	if u := up.Count(); u < n {
		t.Fatalf("the upstream received %d requests for %d sent", u, n)
	}
}

// scaleLogins is the number of distinct-code logins of
// TestScaleConcurrentLogins: MP_SCALE_LOGINS when set; 500 with -short;
// 2,000 when this test binary is itself built with -race (`make test`:
// the race-instrumented load generator, simulator and upstream then set
// the pace, about 270 logins/s on 2 cores, so 10,000 would take ~40 s);
// else 10,000 (about 10 s against a -race caddy on 2 idle cores, 30 s on
// a busy shared machine).
func scaleLogins(t *testing.T) int {
	if v := os.Getenv("MP_SCALE_LOGINS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			t.Fatalf("MP_SCALE_LOGINS=%q is not a positive number", v)
		}
		return n
	}
	switch {
	case testing.Short():
		return 500
	case raceBuilt():
		return 2000
	}
	return 10000
}

// Many concurrent logins over two instances sharing Redis: one exchange
// per code, distinct codes and one code alike.
func TestScaleConcurrentLogins(t *testing.T) {
	inflight := 200
	if v := os.Getenv("MP_SCALE_INFLIGHT"); v != "" {
		var err error
		if inflight, err = strconv.Atoi(v); err != nil || inflight <= 0 {
			t.Fatalf("MP_SCALE_INFLIGHT=%q is not a positive number", v)
		}
	}
	n := scaleLogins(t)
	same := 1000
	if testing.Short() {
		same = 200
	}
	// The store's timeout: the default (500ms) bounds how long a request
	// waits for a dead Redis; here Redis is alive and the bound would
	// rather measure how starved of CPU a -race caddy on a shared 2-core
	// machine is (at a load average of 12, 200 in flight, 5-7% of the
	// logins took longer than 500ms for a store operation and answered
	// 503). This test is about one exchange per code and the right
	// identity at scale, so it gives the store room: MP_SCALE_REDIS_TIMEOUT
	// sets another value.
	storeTimeout := "2s"
	if v := os.Getenv("MP_SCALE_REDIS_TIMEOUT"); v != "" {
		storeTimeout = v
	}
	rs := redistest.Start(t)
	sim, up := newSim(t), newUpstream(t)
	cfg := mpBlock("wechat", wxApp, wxSecret, sim.URL, "store redis "+rs.URL()+" {\n\t\t\ttimeout "+storeTimeout+"\n\t\t}") +
		"\n\treverse_proxy " + strings.TrimPrefix(up.URL, "http://")
	a, b := startCaddy(t, cfg), startCaddy(t, cfg)
	inst := []*Caddy{a, b}
	// The upstream echoes the identity it received.
	up.mu.Lock()
	up.Respond = func(w http.ResponseWriter, r *http.Request, _ []byte) {
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprint(w, r.Header.Get("X-Mp-Openid"))
	}
	up.mu.Unlock()

	// Distinct users (the platform limits code2session per user), codes
	// minted in advance.
	codes := make([]mpsim.LoginResult, n)
	for i := range codes {
		codes[i] = login(t, sim, wxApp, fmt.Sprintf("scale-%06d", i))
	}
	lc := newLoadClient(t, inflight, 30*time.Second)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()

	run := func(name string, count int, body func(i int) (string, mpsim.LoginResult)) {
		var (
			tl   tally
			mu   sync.Mutex
			bad  []string
			durs = make([]time.Duration, count)
		)
		calls := sim.Calls("jscode2session")
		dials := redisInfo(t, rs, "total_connections_received")
		start := time.Now()
		ran := runN(ctx, count, inflight, func(i int) {
			u, lr := body(i)
			r := lc.do(ctx, "login", u, map[string]any{"code": lr.Code})
			durs[i] = r.Dur()
			tl.add("login", r.Label())
			if r.Err == nil && r.Status == http.StatusOK && string(r.Body) == lr.OpenID {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if len(bad) < 10 {
				if r.Status == http.StatusOK {
					bad = append(bad, fmt.Sprintf("request %d: identity %q, want %q", i, r.Body, lr.OpenID))
				} else {
					bad = append(bad, fmt.Sprintf("request %d: %s %s", i, r.Label(), r.Body))
				}
			}
		})
		took := time.Since(start)
		got := sim.Calls("jscode2session") - calls
		t.Logf("%s: %d requests (%d in flight) in %v, %.0f req/s; %s; code2session calls %d; Redis connections opened %d, open at end %d:%s",
			name, ran, inflight, took.Round(time.Millisecond), float64(ran)/took.Seconds(), latencies(durs[:ran]), got,
			redisInfo(t, rs, "total_connections_received")-dials-1, redisInfo(t, rs, "connected_clients")-1, tl.String())
		if ran != count {
			t.Fatalf("%s: only %d of %d requests ran before the deadline", name, ran, count)
		}
		if len(bad) > 0 {
			t.Fatalf("%s: failures:\n\t%s\ncauses logged:%s", name, strings.Join(bad, "\n\t"), causes(a.Logs(), b.Logs()))
		}
	}

	calls := sim.Calls("jscode2session")
	run("distinct codes", n, func(i int) (string, mpsim.LoginResult) {
		return inst[i%2].URL + "/api/login", codes[i]
	})
	if got := sim.Calls("jscode2session") - calls; got != n {
		t.Fatalf("%d logins with distinct codes made %d code2session calls, want %d", n, got, n)
	}

	lr := login(t, sim, wxApp, "scale-one-code")
	calls = sim.Calls("jscode2session")
	run("one code", same, func(i int) (string, mpsim.LoginResult) {
		return inst[i%2].URL + "/api/login", lr
	})
	if got := sim.Calls("jscode2session") - calls; got != 1 {
		t.Fatalf("%d logins with one code on two instances made %d code2session calls, want 1", same, got)
	}
	if got, want := up.Count(), n+same; got != want {
		t.Fatalf("the upstream received %d logins, want %d", got, want)
	}
}
