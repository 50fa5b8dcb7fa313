package integration

// Redis beyond one server: Sentinel failover, Cluster, password and db.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/redistest"
)

// topoBound is how long any one request may take while Redis fails over
// or refuses us: an answer, even an error, must come within it.
const topoBound = 3 * time.Second

// topoTry is one request that may fail: it never calls t (it runs in
// goroutines) and is cut off after 10s so that a hang shows as an error.
type topoTry struct {
	What   string // "login", "phone" ...
	Status int
	Error  string // the "error" field of an error answer
	Body   []byte
	Dur    time.Duration
	Err    error // transport error
}

func (r topoTry) String() string {
	if r.Err != nil {
		return fmt.Sprintf("%s: %v after %v", r.What, r.Err, r.Dur.Round(time.Millisecond))
	}
	return fmt.Sprintf("%s: %d %s after %v", r.What, r.Status, r.Error, r.Dur.Round(time.Millisecond))
}

// okOrUnavailable: the two answers allowed while the store is in trouble.
func (r topoTry) okOrUnavailable() bool {
	return r.Err == nil && (r.Status == http.StatusOK || (r.Status == http.StatusServiceUnavailable && r.Error == "store_unavailable"))
}

func topoPost(what, u string, v any) topoTry {
	b, _ := json.Marshal(v)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	r := topoTry{What: what}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(b))
	if err != nil {
		r.Err = err
		return r
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := httpClient.Do(req)
	if err != nil {
		r.Err, r.Dur = err, time.Since(start)
		return r
	}
	r.Body, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	r.Dur, r.Status, r.Err = time.Since(start), resp.StatusCode, err
	if r.Status != http.StatusOK {
		var m map[string]any
		if json.Unmarshal(r.Body, &m) == nil {
			r.Error, _ = m["error"].(string)
		}
	}
	return r
}

// topoSite is a miniprogram block with the given store lines in front of up.
func topoSite(sim *Sim, up *Upstream, store string) string {
	return mpBlock("wechat", wxApp, wxSecret, sim.URL, store) + "\n\treverse_proxy " + strings.TrimPrefix(up.URL, "http://")
}

// topoUser is a user logged in through caddy.
type topoUser struct {
	Name, Code, OpenID string
}

// topoCheckUpstream checks that everything the upstream got is whole: every
// login carries the identity, every phone request the phone number.
func topoCheckUpstream(t *testing.T, up *Upstream) {
	t.Helper()
	for _, r := range up.Requests() {
		switch r.Path {
		case "/api/login":
			if r.Header.Get("X-Mp-Openid") == "" || r.JSON(t)["openid"] == nil {
				t.Errorf("a login reached the upstream without identity: %v %s", r.Header, r.Body)
			}
		case "/api/phone":
			body := r.JSON(t)
			if r.Header.Get("X-Mp-Phone") == "" || r.Header.Get("X-Mp-Openid") == "" || body["phoneNumber"] == nil || body["encryptedData"] != nil {
				t.Errorf("a phone request reached the upstream half-done: %v %s", r.Header, r.Body)
			}
		}
	}
}

// topoKeys lists the keys matching pattern on one server.
func topoKeys(t *testing.T, c redis.Cmdable, pattern string) []string {
	t.Helper()
	keys, err := c.Keys(t.Context(), pattern).Result()
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(keys)
	return keys
}

// A master, two replicas, three sentinels (quorum 2). 20 users log in; once
// the replicas hold their sessions the master is killed (or frozen, like a
// stalled network: connections open, nothing answers). While Sentinel
// fails over, traffic keeps coming: every answer is 200 or 503
// store_unavailable, each within topoBound, and nothing half-done reaches
// the upstream. Afterwards all 20 sessions (and every session acknowledged
// during the failover) serve phone requests, and new logins work.
func TestSentinelFailover(t *testing.T) {
	t.Run("kill", func(t *testing.T) { testSentinelFailover(t, false) })
	t.Run("freeze", func(t *testing.T) { testSentinelFailover(t, true) })
}

func testSentinelFailover(t *testing.T, freeze bool) {
	master := redistest.Start(t)
	replicas := []*redistest.Server{redistest.StartReplica(t, master), redistest.StartReplica(t, master)}
	ss := redistest.StartSentinels(t, "mymaster", master, 3, redistest.SentinelOptions{
		Quorum: 2, DownAfter: time.Second, FailoverTimeout: 3 * time.Second,
	})
	sim, up := newSim(t), newUpstream(t)
	c := startCaddy(t, topoSite(sim, up, fmt.Sprintf("store redis {\n\t\t\taddrs %s\n\t\t\tmaster_name mymaster\n\t\t}", strings.Join(ss.Addrs(), " "))))

	var oks atomic.Int64 // 200 answers, to compare with what the upstream saw
	var secrets []string
	var secretsMu sync.Mutex
	keep := func(s ...string) {
		secretsMu.Lock()
		secrets = append(secrets, s...)
		secretsMu.Unlock()
	}
	phoneOf := func(i int) string { return fmt.Sprintf("139%08d", i) }

	// 1. N users log in through caddy, on the master.
	const n = 20
	users := make([]topoUser, n)
	for i := range users {
		name := fmt.Sprintf("sentinel-user-%02d", i)
		lr := login(t, sim, wxApp, name)
		wantOK(t, postJSON(t, c.URL+"/api/login", map[string]any{"code": lr.Code}))
		oks.Add(1)
		if got := up.Last(t).Header.Get("X-Mp-Openid"); got != lr.OpenID {
			t.Fatalf("login %d: openid %q, want %q", i, got, lr.OpenID)
		}
		users[i] = topoUser{name, lr.Code, lr.OpenID}
		keep(lr.Code)
	}

	// 2. The replicas have every write: WAIT on one connection after a
	// marker write (replication is in order, so the marker's ack covers
	// caddy's earlier writes), then compare the key sets.
	ctx := t.Context()
	var wait *redis.Cmd
	if _, err := master.Client().Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, "topo:marker", "1", 0)
		wait = p.Do(ctx, "WAIT", len(replicas), 2000)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if acked, _ := wait.Int(); acked != len(replicas) {
		t.Fatalf("WAIT: %d replicas acknowledged, want %d", acked, len(replicas))
	}
	// Sessions: user records and the refs (code hashes) pointing at them;
	// claims are left out, they expire within seconds.
	if users := topoKeys(t, master.Client(), "mp:*:u:*"); len(users) != n {
		t.Fatalf("%d user records on the master, want %d", len(users), n)
	}
	for _, pattern := range []string{"mp:*:u:*", "mp:*:r:*"} {
		want := topoKeys(t, master.Client(), pattern)
		for _, r := range replicas {
			if got := topoKeys(t, r.Client(), pattern); strings.Join(got, " ") != strings.Join(want, " ") {
				t.Fatalf("replica %s holds %d keys %s, the master %d", r.Addr(), len(got), pattern, len(want))
			}
		}
	}

	// 3. Kill (freeze) the master; traffic goes on from two workers while Sentinel
	// promotes a replica.
	oldAddr := master.Addr()
	callsBefore := sim.Calls("jscode2session")
	if freeze {
		master.Freeze()
	} else {
		master.Kill()
	}
	killed := time.Now()

	var (
		mu        sync.Mutex
		tries     []topoTry
		firstOK   time.Time // first 200 after the kill
		windowNew []topoUser
	)
	record := func(r topoTry) {
		mu.Lock()
		defer mu.Unlock()
		tries = append(tries, r)
		if r.Status == http.StatusOK && r.Err == nil {
			oks.Add(1)
			if firstOK.IsZero() {
				firstOK = time.Now()
			}
		}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var stopOnce sync.Once
	halt := func() { stopOnce.Do(func() { close(stop) }); wg.Wait() }
	defer halt() // also when the test fails half-way
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if i%2 == 0 {
					// A phone request of an earlier user.
					k := (w*7 + i) % n
					ed, iv, err := sim.EncryptPhone(wxApp, users[k].Name, phoneOf(k))
					if err != nil {
						record(topoTry{What: "phone (sim)", Err: err})
						continue
					}
					keep(ed)
					record(topoPost("phone", c.URL+"/api/phone", map[string]any{"code": users[k].Code, "encryptedData": ed, "iv": iv}))
				} else {
					// A new user logs in (a fresh user each time: the
					// simulator rotates a user's key on every wx.login).
					name := fmt.Sprintf("window-%d-%03d", w, i)
					lr, err := sim.Login(wxApp, name)
					if err != nil {
						record(topoTry{What: "login (sim)", Err: err})
						continue
					}
					keep(lr.Code)
					r := topoPost("login", c.URL+"/api/login", map[string]any{"code": lr.Code})
					record(r)
					if r.Status == http.StatusOK {
						mu.Lock()
						windowNew = append(windowNew, topoUser{name, lr.Code, lr.OpenID})
						mu.Unlock()
					}
				}
				time.Sleep(50 * time.Millisecond)
			}
		}()
	}

	newAddr := ss.WaitNewMaster(t, oldAddr, 20*time.Second)
	promoted := time.Since(killed)
	// Let the traffic see the new master for a while (bounded).
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		recovered := !firstOK.IsZero()
		mu.Unlock()
		if recovered || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(time.Second)
	halt()

	var failed, slowest time.Duration
	var nOK, n503 int
	for _, r := range tries {
		if !r.okOrUnavailable() {
			t.Errorf("during failover: %v %s", r, r.Body)
		}
		if r.Dur >= topoBound {
			t.Errorf("during failover a request took %v (bound %v): %v", r.Dur, topoBound, r)
		}
		slowest = max(slowest, r.Dur)
		if r.Status == http.StatusOK {
			nOK++
		} else {
			n503++
			failed += r.Dur
		}
	}
	if firstOK.IsZero() {
		t.Fatalf("no request succeeded through caddy within 10s of the promotion (%d tries)", len(tries))
	}
	how := "killed"
	if freeze {
		how = "frozen"
	}
	t.Logf("master %s; sentinels named %s %v later; first 200 through caddy %v after the master was %s",
		how, newAddr, promoted.Round(time.Millisecond), firstOK.Sub(killed).Round(time.Millisecond), how)
	t.Logf("during the failover: %d requests, %d answered 200, %d answered 503 store_unavailable (mean %v), slowest %v",
		len(tries), nOK, n503, (failed / time.Duration(max(n503, 1))).Round(time.Millisecond), slowest.Round(time.Millisecond))
	// A login answered 503 after its code was exchanged would have spent
	// the code: count them.
	windowLogins := 0
	for _, r := range tries {
		if r.What == "login" {
			windowLogins++
		}
	}
	spent := sim.Calls("jscode2session") - callsBefore - len(windowNew)
	t.Logf("during the failover: %d logins, %d succeeded, %d codes exchanged without a session stored", windowLogins, len(windowNew), spent)
	if spent < 0 {
		t.Errorf("%d logins succeeded with fewer code2session calls", len(windowNew))
	}
	if nm := newAddr; nm != replicas[0].Addr() && nm != replicas[1].Addr() {
		t.Fatalf("new master %s is not one of the replicas", nm)
	}

	// 4. Every earlier session survived: a phone request for each of the
	// N users succeeds, at once.
	for i, u := range users {
		ed, iv := phonePayload(t, sim, wxApp, u.Name, phoneOf(i))
		keep(ed)
		r := topoPost("phone", c.URL+"/api/phone", map[string]any{"code": u.Code, "encryptedData": ed, "iv": iv})
		if r.Status != http.StatusOK || r.Dur >= topoBound {
			t.Fatalf("after failover, phone of user %d: %v %s", i, r, r.Body)
		}
		oks.Add(1)
		got := up.Last(t)
		if got.Header.Get("X-Mp-Phone") != phoneOf(i) || got.Header.Get("X-Mp-Openid") != u.OpenID {
			t.Fatalf("after failover, phone of user %d: headers %v", i, got.Header)
		}
	}
	// So did every session acknowledged during the failover (written on
	// the new master: the old one was dead).
	for i, u := range windowNew {
		ed, iv := phonePayload(t, sim, wxApp, u.Name, phoneOf(100+i))
		keep(ed)
		r := topoPost("phone", c.URL+"/api/phone", map[string]any{"code": u.Code, "encryptedData": ed, "iv": iv})
		if r.Status != http.StatusOK {
			t.Fatalf("after failover, phone of %s (logged in during the failover): %v %s", u.Name, r, r.Body)
		}
		oks.Add(1)
	}
	// New logins and phone requests work.
	for i := range 5 {
		name := fmt.Sprintf("after-%d", i)
		lr := login(t, sim, wxApp, name)
		keep(lr.Code)
		wantOK(t, postJSON(t, c.URL+"/api/login", map[string]any{"code": lr.Code}))
		oks.Add(1)
		ed, iv := phonePayload(t, sim, wxApp, name, phoneOf(200+i))
		keep(ed)
		wantOK(t, postJSON(t, c.URL+"/api/phone", map[string]any{"code": lr.Code, "encryptedData": ed, "iv": iv}))
		oks.Add(1)
		if got := up.Last(t); got.Header.Get("X-Mp-Phone") != phoneOf(200+i) || got.Header.Get("X-Mp-Openid") != lr.OpenID {
			t.Fatalf("after failover, new user %d: headers %v", i, got.Header)
		}
	}
	t.Logf("after the failover: %d earlier sessions and %d sessions made during it served phone requests; 5 new users logged in",
		n, len(windowNew))

	if freeze {
		// The old master comes back, still believing it is the master
		// until Sentinel turns it into a replica of the new one (and its
		// resync drops whatever it holds). Logins right after it is back
		// must go to the new master, or they would be lost then.
		master.Thaw()
		back := time.Now()
		var thawUsers []topoUser
		for i := range 5 {
			name := fmt.Sprintf("after-thaw-%d", i)
			lr := login(t, sim, wxApp, name)
			keep(lr.Code)
			wantOK(t, postJSON(t, c.URL+"/api/login", map[string]any{"code": lr.Code}))
			oks.Add(1)
			thawUsers = append(thawUsers, topoUser{name, lr.Code, lr.OpenID})
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			info, err := master.Client().Info(ctx, "replication").Result()
			if err == nil && strings.Contains(info, "role:slave") && strings.Contains(info, "master_link_status:up") &&
				strings.Contains(info, "master_port:"+newAddr[strings.LastIndexByte(newAddr, ':')+1:]) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the old master did not become a replica of %s: %v %q", newAddr, err, info)
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Logf("the old master, thawed, was a replica of the new one %v later", time.Since(back).Round(time.Millisecond))
		for i, u := range append(users, thawUsers...) {
			ed, iv := phonePayload(t, sim, wxApp, u.Name, phoneOf(300+i))
			keep(ed)
			wantOK(t, postJSON(t, c.URL+"/api/phone", map[string]any{"code": u.Code, "encryptedData": ed, "iv": iv}))
			oks.Add(1)
		}
		nm := redis.NewClient(&redis.Options{Addr: newAddr, DisableIdentity: true})
		defer nm.Close()
		// Every acknowledged login has its record (a login that failed
		// half-way may have left one more).
		recs := topoKeys(t, nm, "mp:*:u:*")
		if want := n + len(windowNew) + 5 + len(thawUsers); len(recs) < want {
			t.Errorf("the new master holds %d user records, want at least %d", len(recs), want)
		}
		t.Logf("after the old master's return: %d sessions (5 made while it came back) served phone requests", n+len(thawUsers))
	}

	// Nothing reached the upstream but whole requests, one per 200.
	topoCheckUpstream(t, up)
	if got, want := up.Count(), int(oks.Load()); got != want {
		t.Errorf("the upstream got %d requests, caddy answered 200 to %d", got, want)
	}
	c.Stop()
	secretsMu.Lock()
	defer secretsMu.Unlock()
	noSecrets(t, c.Logs(), append(secrets, wxSecret)...)
}

// Three cluster masters shared by two caddy instances: sessions spread over
// the slots, login on one instance and phone on the other, and one code
// sent to both at once is exchanged once.
func TestClusterTwoInstances(t *testing.T) {
	cl := redistest.StartCluster(t, 3)
	sim, up := newSim(t), newUpstream(t)
	body := topoSite(sim, up, "store redis {\n\t\t\taddrs "+strings.Join(cl.Addrs(), " ")+"\n\t\t}")
	a, b := startCaddy(t, body), startCaddy(t, body)
	var secrets []string

	const n = 60
	for i := range n {
		name := fmt.Sprintf("cluster-user-%02d", i)
		in, other := a, b
		if i%2 == 1 {
			in, other = b, a
		}
		lr := login(t, sim, wxApp, name)
		secrets = append(secrets, lr.Code)
		wantOK(t, postJSON(t, in.URL+"/api/login", map[string]any{"code": lr.Code}))
		phone := fmt.Sprintf("137%08d", i)
		ed, iv := phonePayload(t, sim, wxApp, name, phone)
		secrets = append(secrets, ed)
		wantOK(t, postJSON(t, other.URL+"/api/phone", map[string]any{"code": lr.Code, "encryptedData": ed, "iv": iv}))
		if got := up.Last(t); got.Header.Get("X-Mp-Phone") != phone || got.Header.Get("X-Mp-Openid") != lr.OpenID {
			t.Fatalf("user %d: headers %v", i, got.Header)
		}
	}
	if got := sim.Calls("jscode2session"); got != n {
		t.Fatalf("%d code2session calls for %d logins", got, n)
	}
	// The sessions are spread over the three masters.
	total := 0
	var spread []string
	for _, s := range cl.Nodes {
		users := topoKeys(t, s.Client(), "mp:*:u:*")
		if len(users) == 0 {
			t.Errorf("node %s holds no user record", s.Addr())
		}
		total += len(users)
		spread = append(spread, fmt.Sprint(len(users)))
	}
	if total != n {
		t.Fatalf("%d user records in the cluster, want %d", total, n)
	}
	t.Logf("%d users logged in on one instance and sent their phone to the other; user records per node: %s",
		n, strings.Join(spread, "/"))

	// One code to both instances at once, 20 requests each, five times.
	const rounds, each = 5, 20
	for round := range rounds {
		name := fmt.Sprintf("cluster-race-%d", round)
		lr := login(t, sim, wxApp, name)
		secrets = append(secrets, lr.Code)
		before := sim.Calls("jscode2session")
		res := make([]topoTry, 2*each)
		var wg sync.WaitGroup
		for i := range res {
			target := a
			if i%2 == 1 {
				target = b
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				res[i] = topoPost("login", target.URL+"/api/login", map[string]any{"code": lr.Code})
			}()
		}
		wg.Wait()
		for _, r := range res {
			if r.Status != http.StatusOK {
				t.Fatalf("round %d: %v %s", round, r, r.Body)
			}
		}
		if got := sim.Calls("jscode2session") - before; got != 1 {
			t.Fatalf("round %d: one code sent %d times to two instances made %d code2session calls, want 1", round, 2*each, got)
		}
		// The session is usable from either instance.
		phone := fmt.Sprintf("136%08d", round)
		ed, iv := phonePayload(t, sim, wxApp, name, phone)
		secrets = append(secrets, ed)
		wantOK(t, postJSON(t, []*Caddy{a, b}[round%2].URL+"/api/phone", map[string]any{"code": lr.Code, "encryptedData": ed, "iv": iv}))
		if got := up.Last(t); got.Header.Get("X-Mp-Phone") != phone || got.Header.Get("X-Mp-Openid") != lr.OpenID {
			t.Fatalf("round %d: phone headers %v", round, got.Header)
		}
	}
	t.Logf("%d rounds of one code sent %d times at once to both instances: one code2session call each", rounds, 2*each)
	topoCheckUpstream(t, up)
	a.Stop()
	b.Stop()
	noSecrets(t, a.Logs()+b.Logs(), append(secrets, wxSecret)...)
}

// A Redis with a password: caddy with the right one in the URL stores its
// keys in the URL's db; the block form (addrs, password, db) reaches the
// same data; with a wrong password the store answers 503 store_unavailable
// at once while plain routes still work; no password is ever logged.
func TestRedisAuthAndDB(t *testing.T) {
	const pass, wrong = "Rpw-7f3c9e21d4b8a6", "Wpw-0b5e8d2a7c9f13"
	rs := redistest.Start(t, "--requirepass", pass)
	sim, up := newSim(t), newUpstream(t)
	good := startCaddy(t, topoSite(sim, up, "store redis redis://:"+pass+"@"+rs.Addr()+"/3"))
	block := startCaddy(t, topoSite(sim, up, fmt.Sprintf("store redis {\n\t\t\taddrs %s\n\t\t\tpassword %s\n\t\t\tdb 3\n\t\t}", rs.Addr(), pass)))
	bad := startCaddy(t, topoSite(sim, up, "store redis redis://:"+wrong+"@"+rs.Addr()+"/3"))
	var secrets []string

	// Log in through the URL form, phone through the block form.
	lr := login(t, sim, wxApp, "auth-user")
	secrets = append(secrets, lr.Code)
	wantOK(t, postJSON(t, good.URL+"/api/login", map[string]any{"code": lr.Code}))
	ed, iv := phonePayload(t, sim, wxApp, "auth-user", "13500000001")
	secrets = append(secrets, ed)
	wantOK(t, postJSON(t, block.URL+"/api/phone", map[string]any{"code": lr.Code, "encryptedData": ed, "iv": iv}))
	if got := up.Last(t); got.Header.Get("X-Mp-Phone") != "13500000001" || got.Header.Get("X-Mp-Openid") != lr.OpenID {
		t.Fatalf("phone headers %v", got.Header)
	}

	// The keys are in db 3, and only there.
	for db := range 16 {
		rc := redis.NewClient(&redis.Options{Addr: rs.Addr(), Password: pass, DB: db, DisableIdentity: true})
		keys, users := topoKeys(t, rc, "*"), topoKeys(t, rc, "mp:*:u:*")
		rc.Close()
		if db == 3 && len(users) != 1 {
			t.Fatalf("db 3 holds %v, want one user record", keys)
		}
		if db != 3 && len(keys) != 0 {
			t.Fatalf("db %d holds keys %v", db, keys)
		}
	}

	// A wrong password: the store is unavailable, quickly, and nothing
	// reaches the upstream; other routes pass.
	before, calls := up.Count(), sim.Calls("jscode2session")
	lr2 := login(t, sim, wxApp, "auth-user-2")
	secrets = append(secrets, lr2.Code)
	for _, r := range []topoTry{
		topoPost("login", bad.URL+"/api/login", map[string]any{"code": lr2.Code}),
		topoPost("phone", bad.URL+"/api/phone", map[string]any{"code": lr.Code, "encryptedData": ed, "iv": iv}),
	} {
		if r.Err != nil || r.Status != http.StatusServiceUnavailable || r.Error != "store_unavailable" {
			t.Fatalf("wrong password: %v %s", r, r.Body)
		}
		wantError(t, Response{Status: r.Status, Header: http.Header{"Content-Type": {"application/json"}}, Body: r.Body}, 503, "store_unavailable")
		if r.Dur >= topoBound {
			t.Fatalf("wrong password: %v, bound %v", r, topoBound)
		}
		t.Logf("wrong password: %v", r)
	}
	if up.Count() != before {
		t.Fatal("the upstream was called through the store with the wrong password")
	}
	if got := sim.Calls("jscode2session"); got != calls {
		t.Fatalf("a code was exchanged (%d calls) though the session could not be stored", got-calls)
	}
	wantOK(t, do(t, http.MethodGet, bad.URL+"/health", "", nil))
	// The code was not spent: it works on the good instance.
	wantOK(t, postJSON(t, good.URL+"/api/login", map[string]any{"code": lr2.Code}))

	good.Stop()
	block.Stop()
	bad.Stop()
	// The operator can tell why.
	if !strings.Contains(bad.Logs(), "WRONGPASS") {
		t.Errorf("the logs do not say that Redis refused the password")
	}
	for _, c := range []*Caddy{good, block, bad} {
		noSecrets(t, c.Logs(), append(secrets, pass, wrong, wxSecret)...)
	}
}

// A Cluster has only db 0: asking for another is a configuration error,
// not keys silently landing in db 0.
func TestClusterRejectsDB(t *testing.T) {
	sim, up := newSim(t), newUpstream(t)
	cf := filepath.Join(t.TempDir(), "Caddyfile")
	body := topoSite(sim, up, "store redis {\n\t\t\taddrs 127.0.0.1:7001 127.0.0.1:7002 127.0.0.1:7003\n\t\t\tdb 3\n\t\t}")
	if err := os.WriteFile(cf, []byte(site(freePort(t), freePort(t), body)), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(caddyBin, "validate", "--config", cf, "--adapter", "caddyfile")
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "only db 0") {
		t.Fatalf("caddy validate: %v\n%s", err, out)
	}
}
