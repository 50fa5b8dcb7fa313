package accesstoken

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/mpsim"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/platform"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/redistest"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/store"
)

const (
	appID  = "wxdemoapp0000001"
	secret = "demo-wechat-secret"
	ttl    = mpsim.AccessTokenTTL
)

// env is a simulator behind a real HTTP server, and the tokens seen in the
// test (checked absent from every log line at the end).
type env struct {
	t    *testing.T
	sim  *mpsim.Sim
	url  string
	logs *observer.ObservedLogs
	log  *zap.Logger

	mu     sync.Mutex
	tokens map[string]bool
}

func newEnv(t *testing.T) *env {
	t.Helper()
	sim := mpsim.New(mpsim.Options{})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	core, logs := observer.New(zapcore.DebugLevel)
	e := &env{
		t: t, sim: sim, url: srv.URL, logs: logs,
		log:    zap.New(zapcore.NewTee(core, zaptest.NewLogger(t).Core())),
		tokens: map[string]bool{},
	}
	t.Cleanup(e.checkLogs)
	return e
}

// seen records a token, to be looked for in the logs.
func (e *env) seen(tok string) {
	e.mu.Lock()
	e.tokens[tok] = true
	e.mu.Unlock()
}

// checkLogs: no log line, message or field, carries a token.
func (e *env) checkLogs() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, entry := range e.logs.All() {
		text := entry.Message
		for k, v := range entry.ContextMap() {
			text += fmt.Sprintf(" %s=%v", k, v)
		}
		for tok := range e.tokens {
			if strings.Contains(text, tok) {
				e.t.Errorf("a log line carries a token: %q", entry.Message)
			}
		}
	}
}

// recordingTC is the real platform client, remembering every token it got.
type recordingTC struct {
	c *platform.WeChatClient
	e *env
}

func (r recordingTC) StableToken(ctx context.Context, force bool) (platform.Token, error) {
	t, err := r.c.StableToken(ctx, force)
	if err == nil {
		r.e.seen(t.AccessToken)
	}
	return t, err
}

func (r recordingTC) Token(ctx context.Context) (platform.Token, error) {
	t, err := r.c.Token(ctx)
	if err == nil {
		r.e.seen(t.AccessToken)
	}
	return t, err
}

func (e *env) client() *platform.WeChatClient {
	return platform.NewWeChat(platform.Config{AppID: appID, AppSecret: secret, APIBase: e.url, Logger: e.log})
}

// manager is one "instance": its own platform client, on st.
func (e *env) manager(st store.Store, o Options) *Manager {
	if o.Now == nil {
		o.Now = e.sim.Now
	}
	if o.Logger == nil {
		o.Logger = e.log
	}
	return New(recordingTC{c: e.client(), e: e}, st, o)
}

func (e *env) token(m *Manager) string {
	e.t.Helper()
	tok, err := m.Token(context.Background())
	if err != nil {
		e.t.Fatalf("Token: %v", err)
	}
	if tok == "" {
		e.t.Fatal("Token: empty token")
	}
	e.seen(tok)
	return tok
}

// calls checks the simulator's call counts of both token endpoints.
func (e *env) calls(stable, classic int) {
	e.t.Helper()
	if got := e.sim.Calls(mpsim.EndpointStableToken); got != stable {
		e.t.Errorf("stable_token calls = %d, want %d", got, stable)
	}
	if got := e.sim.Calls(mpsim.EndpointToken); got != classic {
		e.t.Errorf("token calls = %d, want %d", got, classic)
	}
}

// phone exchanges a fresh phone code through m.Do; it returns the error and
// how many times f ran.
func (e *env) phone(m *Manager) (int, error) {
	e.t.Helper()
	code, err := e.sim.PhoneCode(appID, "alice", "13800138000")
	if err != nil {
		e.t.Fatal(err)
	}
	pc := e.client()
	runs := 0
	err = m.Do(context.Background(), func(tok string) error {
		runs++
		e.seen(tok)
		p, err := pc.GetUserPhoneNumber(context.Background(), tok, code, "")
		if err != nil {
			return err
		}
		if p.PurePhoneNumber != "13800138000" {
			return fmt.Errorf("phone = %q", p.PurePhoneNumber)
		}
		return nil
	})
	return runs, err
}

// classicBehindTheBack fetches a classic token with the simulator's HTTP
// API, as a legacy backend would, superseding every earlier classic token.
func (e *env) classicBehindTheBack() {
	e.t.Helper()
	q := url.Values{"grant_type": {"client_credential"}, "appid": {appID}, "secret": {secret}}
	resp, err := http.Get(e.url + "/cgi-bin/token?" + q.Encode())
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body.AccessToken == "" {
		e.t.Fatalf("GET /cgi-bin/token: %v %+v", err, body)
	}
	e.seen(body.AccessToken)
}

func newRedis(t *testing.T, srv *redistest.Server, timeout time.Duration) store.Store {
	t.Helper()
	st, err := store.OpenRedis(store.RedisOptions{URL: srv.URL(), Prefix: "mp:wechat:" + appID + ":", Timeout: timeout}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

func memStore(e *env) store.Store {
	return store.NewMemory(store.MemoryOptions{Now: e.sim.Now})
}

func TestFetchOnceThenCached(t *testing.T) {
	for _, mode := range []string{ModeStable, ModeClassic} {
		t.Run(mode, func(t *testing.T) {
			e := newEnv(t)
			m := e.manager(memStore(e), Options{Mode: mode})
			tok := e.token(m)
			for range 100 {
				if got := e.token(m); got != tok {
					t.Fatal("token changed while fresh")
				}
			}
			if mode == ModeStable {
				e.calls(1, 0)
			} else {
				e.calls(0, 1)
			}
			if m.Refreshes() != 1 {
				t.Errorf("Refreshes = %d, want 1", m.Refreshes())
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	m := New(nil, nil, Options{Mode: "bogus", Refresh: 3, LockTTL: -1})
	if m.Mode() != ModeStable || m.refresh != DefaultRefresh || m.lockTTL != DefaultLockTTL || m.wait != DefaultWait {
		t.Errorf("defaults not applied: %s %v %v %v", m.Mode(), m.refresh, m.lockTTL, m.wait)
	}
	if err := (Options{Mode: "bogus"}).Validate(); err == nil {
		t.Error("Validate accepted a bad mode")
	}
	if err := (Options{Refresh: 1}).Validate(); err == nil {
		t.Error("Validate accepted refresh 1")
	}
	if err := (Options{Mode: ModeClassic, Refresh: 0.5}).Validate(); err != nil {
		t.Error(err)
	}
}

func TestRefreshAhead(t *testing.T) {
	at := func(frac float64) time.Duration { return time.Duration(frac * float64(ttl)) }

	t.Run(ModeStable, func(t *testing.T) {
		e := newEnv(t)
		st := memStore(e)
		m := e.manager(st, Options{})
		t1 := e.token(m)
		e.sim.Advance(at(0.79))
		if e.token(m) != t1 {
			t.Fatal("token changed before 80%")
		}
		e.calls(1, 0)

		e.sim.Advance(at(0.02)) // 81%: refresh; the platform still gives t1 (more than 5 min left)
		if e.token(m) != t1 {
			t.Fatal("stable_token gave another token with more than 5 minutes left")
		}
		e.calls(2, 0)
		if e.token(m) != t1 {
			t.Fatal("token changed")
		}
		e.calls(2, 0) // fresh again (80% of what was left)

		e.sim.Advance(at(0.16)) // 97%: under 5 minutes left, the platform rotates
		t2 := e.token(m)
		if t2 == t1 {
			t.Fatal("no new token once the platform rotated")
		}
		e.calls(3, 0)

		// The refreshed token went to the store: another instance takes it.
		m2 := e.manager(st, Options{})
		if e.token(m2) != t2 || m2.Refreshes() != 0 {
			t.Error("second instance did not take the stored token")
		}
		if n, err := e.phone(m); err != nil || n != 1 {
			t.Errorf("phone with the refreshed token: runs=%d err=%v", n, err)
		}
	})

	t.Run(ModeClassic, func(t *testing.T) {
		e := newEnv(t)
		m := e.manager(memStore(e), Options{Mode: ModeClassic, Refresh: 0.5})
		t1 := e.token(m)
		e.sim.Advance(at(0.49))
		if e.token(m) != t1 {
			t.Fatal("token changed before 50%")
		}
		e.sim.Advance(at(0.02))
		t2 := e.token(m)
		if t2 == t1 {
			t.Fatal("no refresh after 50%")
		}
		e.calls(0, 2)
		if n, err := e.phone(m); err != nil || n != 1 {
			t.Errorf("phone with the refreshed token: runs=%d err=%v", n, err)
		}
	})
}

// Two instances on one Redis: 50 concurrent calls, one fetch.
func TestSharedRedisOneFetch(t *testing.T) {
	srv := redistest.Start(t)
	for _, mode := range []string{ModeStable, ModeClassic} {
		t.Run(mode, func(t *testing.T) {
			e := newEnv(t)
			// Different timeouts: two connection pools, as two processes would have.
			prefix := "mp:" + mode + ":"
			open := func(timeout time.Duration) store.Store {
				st, err := store.OpenRedis(store.RedisOptions{URL: srv.URL(), Prefix: prefix, Timeout: timeout}, zaptest.NewLogger(t))
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = st.Close() })
				return st
			}
			ms := []*Manager{
				e.manager(open(500*time.Millisecond), Options{Mode: mode}),
				e.manager(open(600*time.Millisecond), Options{Mode: mode}),
			}
			start := make(chan struct{})
			var wg sync.WaitGroup
			got := make([]string, 50)
			errs := make([]error, 50)
			for i := range 50 {
				wg.Go(func() {
					<-start
					got[i], errs[i] = ms[i%2].Token(context.Background())
				})
			}
			close(start)
			wg.Wait()
			for i := range 50 {
				if errs[i] != nil {
					t.Fatalf("call %d: %v", i, errs[i])
				}
				e.seen(got[i])
				if got[i] != got[0] {
					t.Fatalf("call %d got another token", i)
				}
			}
			if mode == ModeStable {
				e.calls(1, 0)
			} else {
				e.calls(0, 1)
			}
			if n := ms[0].Refreshes() + ms[1].Refreshes(); n != 1 {
				t.Errorf("refreshes = %d, want 1", n)
			}

			// The stored record: JSON {token, expires_at, fetched_at}, TTL = expires_in.
			key := prefix + "v:" + StoreName
			raw, err := srv.Client().Get(context.Background(), key).Bytes()
			if err != nil {
				t.Fatal(err)
			}
			var rec map[string]any
			if err := json.Unmarshal(raw, &rec); err != nil {
				t.Fatal(err)
			}
			if rec["token"] != got[0] || rec["expires_at"] == nil || rec["fetched_at"] == nil || len(rec) != 3 {
				t.Errorf("stored record has fields %v", keys(rec))
			}
			pttl, err := srv.Client().PTTL(context.Background(), key).Result()
			if err != nil {
				t.Fatal(err)
			}
			if pttl > ttl || pttl < ttl-time.Minute {
				t.Errorf("stored TTL = %v, want about %v", pttl, ttl)
			}
		})
	}
}

func keys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// Classic mode: a second instance takes the stored token instead of fetching
// one (which would kill the first's).
func TestClassicSecondInstanceDoesNotFetch(t *testing.T) {
	srv := redistest.Start(t)
	e := newEnv(t)
	a := e.manager(newRedis(t, srv, 0), Options{Mode: ModeClassic})
	b := e.manager(newRedis(t, srv, 700*time.Millisecond), Options{Mode: ModeClassic})
	ta := e.token(a)
	tb := e.token(b)
	if ta != tb {
		t.Fatal("second instance has another token")
	}
	e.calls(0, 1)
	if b.Refreshes() != 0 {
		t.Errorf("second instance fetched %d tokens", b.Refreshes())
	}
	// Well past the 5-minute grace, both still work.
	e.sim.Advance(10 * time.Minute)
	for _, m := range []*Manager{a, b} {
		if n, err := e.phone(m); err != nil || n != 1 {
			t.Errorf("phone: runs=%d err=%v", n, err)
		}
	}
	e.calls(0, 1)
}

// A classic token superseded behind the manager's back dies after its grace:
// Do refreshes once and retries once.
func TestDoSupersededToken(t *testing.T) {
	e := newEnv(t)
	m := e.manager(memStore(e), Options{Mode: ModeClassic})
	t1 := e.token(m)
	e.classicBehindTheBack()
	e.sim.Advance(mpsim.TokenGrace + time.Second)
	runs, err := e.phone(m)
	if err != nil {
		t.Fatalf("Do: %v", err)
	}
	if runs != 2 {
		t.Errorf("f ran %d times, want 2", runs)
	}
	e.calls(0, 3) // ours, the one behind our back, the refresh
	if m.Refreshes() != 2 {
		t.Errorf("Refreshes = %d, want 2", m.Refreshes())
	}
	if got := e.sim.Calls(mpsim.EndpointGetUserPhoneNumber); got != 2 {
		t.Errorf("getuserphonenumber calls = %d, want 2", got)
	}
	if e.token(m) == t1 {
		t.Error("still the dead token")
	}
}

// Stable mode, a 40001 once: the plain stable_token call gives the same token,
// so the manager forces one refresh, then f succeeds.
func TestDoRejectedOnceStable(t *testing.T) {
	e := newEnv(t)
	m := e.manager(memStore(e), Options{})
	t1 := e.token(m)
	e.sim.Inject(mpsim.Fault{Endpoint: mpsim.EndpointGetUserPhoneNumber, Errcode: 40001, Times: 1})
	runs, err := e.phone(m)
	if err != nil {
		t.Fatalf("Do: %v", err)
	}
	if runs != 2 {
		t.Errorf("f ran %d times, want 2", runs)
	}
	e.calls(3, 0) // first, plain (same token), forced
	if m.ForcedRefreshes() != 1 {
		t.Errorf("forced refreshes = %d, want 1", m.ForcedRefreshes())
	}
	t2 := e.token(m)
	if t2 == t1 {
		t.Error("still the rejected token")
	}
	e.calls(3, 0)
}

// Stable mode, 42001 once, with the platform having rotated the token: the
// plain call gives a new one, no force needed.
func TestDoRejectedStableNoForceWhenRotated(t *testing.T) {
	e := newEnv(t)
	m := e.manager(memStore(e), Options{Refresh: 0.99})
	t1 := e.token(m)
	e.sim.Advance(ttl - mpsim.TokenGrace + time.Second) // the platform now gives a new token on a plain call
	e.sim.Inject(mpsim.Fault{Endpoint: mpsim.EndpointGetUserPhoneNumber, Errcode: 42001, Times: 1})
	runs, err := e.phone(m)
	if err != nil || runs != 2 {
		t.Fatalf("Do: runs=%d err=%v", runs, err)
	}
	if m.ForcedRefreshes() != 0 {
		t.Errorf("forced %d times, want 0", m.ForcedRefreshes())
	}
	e.calls(2, 0)
	if e.token(m) == t1 {
		t.Error("still the old token")
	}
}

// A persistent 40001: exactly one retry, then the error.
func TestDoPersistentRejection(t *testing.T) {
	for _, mode := range []string{ModeStable, ModeClassic} {
		t.Run(mode, func(t *testing.T) {
			e := newEnv(t)
			m := e.manager(memStore(e), Options{Mode: mode})
			e.sim.Inject(mpsim.Fault{Endpoint: mpsim.EndpointGetUserPhoneNumber, Errcode: 40001})
			runs, err := e.phone(m)
			if !errors.Is(err, platform.ErrTokenInvalid) {
				t.Fatalf("Do: err = %v, want ErrTokenInvalid", err)
			}
			if runs != 2 {
				t.Errorf("f ran %d times, want 2", runs)
			}
			if got := e.sim.Calls(mpsim.EndpointGetUserPhoneNumber); got != 2 {
				t.Errorf("getuserphonenumber calls = %d, want 2", got)
			}
			if mode == ModeStable {
				e.calls(3, 0)
			} else {
				e.calls(0, 2)
			}
			// Again at once: still one retry; in stable mode no second
			// force within 30 s (the platform would answer 45009).
			runs, err = e.phone(m)
			if !errors.Is(err, platform.ErrTokenInvalid) || runs != 2 {
				t.Errorf("second Do: runs=%d err=%v", runs, err)
			}
			if m.ForcedRefreshes() > 1 {
				t.Errorf("forced %d times", m.ForcedRefreshes())
			}
		})
	}
}

// Errors other than a token rejection are returned as they are, with no retry.
func TestDoOtherErrorNoRetry(t *testing.T) {
	e := newEnv(t)
	m := e.manager(memStore(e), Options{})
	boom := errors.New("boom")
	runs := 0
	err := m.Do(context.Background(), func(string) error { runs++; return boom })
	if !errors.Is(err, boom) || runs != 1 {
		t.Errorf("runs=%d err=%v", runs, err)
	}
	// A bad phone code (40029) is not a token problem either.
	pc := e.client()
	runs = 0
	err = m.Do(context.Background(), func(tok string) error {
		runs++
		_, err := pc.GetUserPhoneNumber(context.Background(), tok, "no-such-code", "")
		return err
	})
	if err == nil || errors.Is(err, platform.ErrTokenInvalid) || runs != 1 {
		t.Errorf("runs=%d err=%v", runs, err)
	}
	e.calls(1, 0)
}

// Invalidate when another instance already refreshed: take its token, no fetch.
func TestInvalidateTakesOthersRefresh(t *testing.T) {
	srv := redistest.Start(t)
	e := newEnv(t)
	a := e.manager(newRedis(t, srv, 0), Options{Mode: ModeClassic})
	b := e.manager(newRedis(t, srv, 700*time.Millisecond), Options{Mode: ModeClassic})
	t1 := e.token(a)
	if e.token(b) != t1 {
		t.Fatal("b has another token")
	}
	if err := b.Invalidate(context.Background(), t1); err != nil {
		t.Fatal(err)
	}
	t2 := e.token(b)
	if t2 == t1 {
		t.Fatal("b did not refresh")
	}
	e.calls(0, 2)
	if err := a.Invalidate(context.Background(), t1); err != nil {
		t.Fatal(err)
	}
	if e.token(a) != t2 {
		t.Error("a did not take b's token")
	}
	e.calls(0, 2)
	if a.Refreshes() != 1 || b.Refreshes() != 1 {
		t.Errorf("refreshes a=%d b=%d", a.Refreshes(), b.Refreshes())
	}
	// Invalidating a token that is not ours anymore changes nothing.
	if err := a.Invalidate(context.Background(), "some-old-token"); err != nil {
		t.Fatal(err)
	}
	if e.token(a) != t2 {
		t.Error("token changed")
	}
	e.calls(0, 2)
}

// An instance that loses the lock waits for the winner's token.
func TestLoserWaitsForWinner(t *testing.T) {
	e := newEnv(t)
	st := memStore(e)
	a := e.manager(st, Options{})
	b := e.manager(st, Options{})
	e.sim.Inject(mpsim.Fault{Endpoint: mpsim.EndpointStableToken, Delay: 300 * time.Millisecond, Times: 1})
	ta := make(chan string, 1)
	go func() {
		tok, err := a.Token(context.Background())
		if err != nil {
			t.Error(err)
		}
		ta <- tok
	}()
	waitFor(t, func() bool { return e.sim.Calls(mpsim.EndpointStableToken) == 1 })
	tb := e.token(b)
	if got := <-ta; got != tb {
		t.Error("instances got different tokens")
	}
	e.calls(1, 0)
	if b.Refreshes() != 0 {
		t.Errorf("loser fetched %d", b.Refreshes())
	}
}

// The winner gave up without storing anything (lock released): a waiter takes
// the lock and fetches itself, well before Wait.
func TestLoserTakesOverReleasedLock(t *testing.T) {
	e := newEnv(t)
	st := memStore(e)
	unlock, ok, err := st.Lock(context.Background(), LockName, time.Minute)
	if err != nil || !ok {
		t.Fatal("cannot take the lock", err)
	}
	time.AfterFunc(100*time.Millisecond, unlock)
	m := e.manager(st, Options{Wait: 10 * time.Second})
	start := time.Now()
	e.token(m)
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %v", d)
	}
	e.calls(1, 0)
}

// Waiting is bounded by Wait: with the lock held and no token anywhere, Token
// fails with ErrWaitTimeout and fetches nothing.
func TestWaitBounded(t *testing.T) {
	e := newEnv(t)
	st := memStore(e)
	if _, ok, err := st.Lock(context.Background(), LockName, time.Minute); err != nil || !ok {
		t.Fatal("cannot take the lock", err)
	}
	m := e.manager(st, Options{Wait: 300 * time.Millisecond})
	start := time.Now()
	_, err := m.Token(context.Background())
	d := time.Since(start)
	if !errors.Is(err, ErrWaitTimeout) {
		t.Fatalf("err = %v, want ErrWaitTimeout", err)
	}
	if d < 300*time.Millisecond || d > 3*time.Second {
		t.Errorf("waited %v", d)
	}
	e.calls(0, 0)

	// The caller's context ends the wait earlier.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	m2 := e.manager(st, Options{Wait: time.Second})
	if _, err := m2.Token(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want DeadlineExceeded", err)
	}
	// The shared flight goes on for later callers, bounded by Wait.
	waitFor(t, func() bool {
		m2.mu.Lock()
		defer m2.mu.Unlock()
		return m2.inflight == nil
	})
}

// Refreshing ahead elsewhere: an instance whose token is stale but valid does
// not wait for the lock holder.
func TestStaleTokenServedWhileOthersRefresh(t *testing.T) {
	e := newEnv(t)
	st := memStore(e)
	m := e.manager(st, Options{Wait: 10 * time.Second})
	t1 := e.token(m)
	e.sim.Advance(time.Duration(0.9 * float64(ttl)))
	if _, ok, err := st.Lock(context.Background(), LockName, time.Minute); err != nil || !ok {
		t.Fatal("cannot take the lock", err)
	}
	start := time.Now()
	if e.token(m) != t1 {
		t.Error("token changed")
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("waited %v", d)
	}
	e.calls(1, 0)
}

// Store down: tokens keep coming, from memory while valid, else fetched
// directly.
func TestStoreDown(t *testing.T) {
	srv := redistest.Start(t)
	e := newEnv(t)
	a := e.manager(newRedis(t, srv, 0), Options{})
	t1 := e.token(a)
	srv.Kill()

	// Fresh in memory: no store needed.
	if e.token(a) != t1 {
		t.Fatal("token changed")
	}
	e.calls(1, 0)

	// A new instance with nothing in memory fetches directly.
	b := e.manager(newRedis(t, srv, 700*time.Millisecond), Options{})
	if e.token(b) == "" || b.Refreshes() != 1 {
		t.Fatal("no direct fetch")
	}
	e.calls(2, 0)

	// Stale but valid: the memory token serves, without a fetch, and
	// without a store round trip for StoreRetryAfter.
	e.sim.Advance(time.Duration(0.9 * float64(ttl)))
	if e.token(a) != t1 {
		t.Fatal("memory token not used")
	}
	e.calls(2, 0)
	if n, err := e.phone(a); err != nil || n != 1 {
		t.Errorf("phone while the store is down: runs=%d err=%v", n, err)
	}

	// Expired: fetched directly.
	e.sim.Advance(time.Duration(0.2 * float64(ttl)))
	t2 := e.token(a)
	if t2 == t1 {
		t.Fatal("expired token served")
	}
	e.calls(3, 0)
	if n, err := e.phone(a); err != nil || n != 1 {
		t.Errorf("phone: runs=%d err=%v", n, err)
	}
	if !logged(e, "access token store unavailable") {
		t.Error("no warning logged")
	}

	// Back: a new instance goes through the store again.
	srv.Restart(t)
	e.sim.Advance(StoreRetryAfter + time.Second)
	c := e.manager(newRedis(t, srv, 800*time.Millisecond), Options{})
	t3 := e.token(c)
	d := e.manager(newRedis(t, srv, 900*time.Millisecond), Options{})
	if e.token(d) != t3 || d.Refreshes() != 0 {
		t.Error("store not used after it came back")
	}
}

// Store down while a token is rejected: Do still refreshes and retries.
func TestStoreDownDo(t *testing.T) {
	srv := redistest.Start(t)
	e := newEnv(t)
	m := e.manager(newRedis(t, srv, 0), Options{Mode: ModeClassic})
	e.token(m)
	srv.Kill()
	e.classicBehindTheBack()
	e.sim.Advance(mpsim.TokenGrace + time.Second)
	runs, err := e.phone(m)
	if err != nil || runs != 2 {
		t.Fatalf("Do: runs=%d err=%v", runs, err)
	}
	e.calls(0, 3)
}

// An unreadable stored record is ignored and overwritten.
func TestUnreadableRecord(t *testing.T) {
	e := newEnv(t)
	st := memStore(e)
	if err := st.Set(context.Background(), StoreName, []byte("not json"), time.Hour); err != nil {
		t.Fatal(err)
	}
	m := e.manager(st, Options{})
	tok := e.token(m)
	raw, err := st.Get(context.Background(), StoreName)
	if err != nil || !strings.Contains(string(raw), tok) {
		t.Errorf("record not overwritten: %v", err)
	}
}

// A platform failure is an error without the secret; a later call retries.
func TestFetchError(t *testing.T) {
	e := newEnv(t)
	m := e.manager(memStore(e), Options{})
	e.sim.Inject(mpsim.Fault{Endpoint: mpsim.EndpointStableToken, Errcode: 40013, Times: 1})
	_, err := m.Token(context.Background())
	if err == nil {
		t.Fatal("no error")
	}
	if strings.Contains(err.Error(), secret) {
		t.Error("error carries the secret")
	}
	e.token(m)
	e.calls(2, 0)
}

// No-store manager (nil store) works on its own.
func TestNilStore(t *testing.T) {
	e := newEnv(t)
	m := e.manager(nil, Options{})
	tok := e.token(m)
	if e.token(m) != tok {
		t.Error("not cached")
	}
	e.calls(1, 0)
}

// Many concurrent callers in one process share one flight.
func TestSingleFlightInProcess(t *testing.T) {
	e := newEnv(t)
	m := e.manager(memStore(e), Options{})
	e.sim.Inject(mpsim.Fault{Endpoint: mpsim.EndpointStableToken, Delay: 100 * time.Millisecond, Times: 1})
	var wg sync.WaitGroup
	var failures atomic.Int32
	for range 100 {
		wg.Go(func() {
			if _, err := m.Token(context.Background()); err != nil {
				failures.Add(1)
			}
		})
	}
	wg.Wait()
	if failures.Load() != 0 {
		t.Errorf("%d failures", failures.Load())
	}
	e.calls(1, 0)
}

func logged(e *env, substr string) bool {
	for _, entry := range e.logs.All() {
		if strings.Contains(entry.Message, substr) {
			return true
		}
	}
	return false
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in time")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A late rejection of an older token does not make a newer rejected one
// good again.
func TestLateRejectionKeepsNewerMark(t *testing.T) {
	e := newEnv(t)
	m := e.manager(memStore(e), Options{Mode: ModeClassic})
	ctx := context.Background()
	t1 := e.token(m)
	if err := m.Invalidate(ctx, t1); err != nil {
		t.Fatal(err)
	}
	t2 := e.token(m)
	if err := m.Invalidate(ctx, t2); err != nil {
		t.Fatal(err)
	}
	if err := m.Invalidate(ctx, t1); err != nil { // a slow caller, still on t1
		t.Fatal(err)
	}
	t3 := e.token(m)
	if t3 == t1 || t3 == t2 {
		t.Fatal("a rejected token came back")
	}
	e.calls(0, 3)
}

// TokenInfo tells a holder to keep the token until the manager's own
// refresh is due, and never closer to its expiry than KeepMargin; a second
// instance reading the shared record tells the same.
func TestTokenInfo(t *testing.T) {
	e := newEnv(t)
	st := memStore(e)
	m := e.manager(st, Options{Refresh: 0.5})
	start := e.sim.Now()
	tok, until, err := m.TokenInfo(context.Background())
	if err != nil || tok == "" {
		t.Fatal(tok, err)
	}
	want := start.Add(ttl / 2)
	if d := until.Sub(want); d < -time.Second || d > time.Second {
		t.Fatalf("keep until %v, want about %v", until, want)
	}
	m2 := e.manager(st, Options{Refresh: 0.5})
	if tok2, until2, err := m2.TokenInfo(context.Background()); err != nil || tok2 != tok || !until2.Equal(until) {
		t.Fatalf("second instance: %v %v %v", tok2 == tok, until2, err)
	}
	// Refresh 0.999: due after the expiry margin; the margin wins.
	m3 := e.manager(memStore(e), Options{Refresh: 0.999})
	start = e.sim.Now()
	if _, until, err = m3.TokenInfo(context.Background()); err != nil {
		t.Fatal(err)
	}
	if want := start.Add(ttl - KeepMargin); until.After(want.Add(time.Second)) {
		t.Fatalf("keep until %v, after expiry - margin %v", until, want)
	}
}
