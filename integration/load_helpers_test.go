package integration

// Helpers for the fault and load tests (faults_test.go): a load client
// that never calls t.Fatal from a worker goroutine, bounded worker pools,
// and a tally of outcomes by kind.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/redistest"
)

// loadResult is one request of a load run.
type loadResult struct {
	Kind       string // "plain", "login", "phone"
	Status     int    // 0 when the request failed at the HTTP level
	Code       string // the "error" field of an error answer
	Err        error  // transport error (connection refused, reset, timeout)
	Start, End time.Time
	Body       []byte
	// Replays is how often the transport sent the request again because
	// a reused keep-alive connection was closed before any answer (only
	// for a replayable request: see loadClient.replayable).
	Replays int
	// FreshRetries is how often the request was sent again (replayable
	// only) because a connection dialed for it was closed before any
	// answer: a caddy reload can close an accepted connection before it
	// reads the request (EOF on a new connection, which net/http's
	// Transport does not retry).
	FreshRetries int
	Conn         string // the connection used last, for failure reports

	gotAnswer, reused bool
}

func (r loadResult) Dur() time.Duration { return r.End.Sub(r.Start) }

// Label is the outcome as counted: "200", "503 store_unavailable",
// "error: ..." (transport errors reduced to their kind).
func (r loadResult) Label() string {
	if r.Err != nil {
		return "error: " + errKind(r.Err)
	}
	if r.Code != "" {
		return strconv.Itoa(r.Status) + " " + r.Code
	}
	return strconv.Itoa(r.Status)
}

// errKind names a transport error without addresses or ports.
func errKind(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "EOF"
	}
	s := err.Error()
	for _, k := range []string{"connection refused", "connection reset", "broken pipe", "server closed idle connection"} {
		if strings.Contains(s, k) {
			return k
		}
	}
	return s
}

// loadClient sends load requests: a transport of its own (so that a test's
// idle connections do not leak into another's), every request bounded by
// timeout.
type loadClient struct {
	hc      *http.Client
	timeout time.Duration
	// replayable marks POSTs with an Idempotency-Key, which lets
	// net/http's Transport send a request again when the server closed
	// the reused connection before answering anything (the HTTP/1.1
	// keep-alive race of a server shutting down gracefully, as on a
	// config reload), like browsers do. Only for requests that are safe
	// to repeat: a login with the same code gives the same identity
	// (README, "Eager and single"), a phone request decrypts again.
	replayable bool
}

func newLoadClient(t testing.TB, conns int, timeout time.Duration) *loadClient {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		// Below the 5 s after which a server shutting down (a caddy
		// reload) closes a connection that never carried a request: the
		// Transport may dial a connection it then leaves unused, and
		// does not resend a request that fails on a connection it had
		// not used before.
		IdleConnTimeout: 3 * time.Second,
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &loadClient{hc: &http.Client{Transport: tr}, timeout: timeout}
}

// do sends one request; body nil means GET. A replayable request whose
// fresh connection was closed before any answer is sent once more.
func (c *loadClient) do(ctx context.Context, kind, u string, body any) loadResult {
	r := c.do1(ctx, kind, u, body)
	if c.replayable && r.Err != nil && !r.gotAnswer && !r.reused && (errors.Is(r.Err, io.EOF) || errKind(r.Err) == "connection reset") {
		start := r.Start
		r = c.do1(ctx, kind, u, body)
		r.Start = start
		r.FreshRetries++
	}
	return r
}

func (c *loadClient) do1(ctx context.Context, kind, u string, body any) loadResult {
	var (
		method = http.MethodGet
		rd     io.Reader
	)
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			panic(err)
		}
		method, rd = http.MethodPost, bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	res := loadResult{Kind: kind, Start: time.Now()}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		panic(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
		if c.replayable {
			req.Header.Set("Idempotency-Key", strconv.FormatInt(res.Start.UnixNano(), 36))
		}
	}
	conns := 0
	var lastConn httptrace.GotConnInfo
	req = req.WithContext(httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		GotConn:              func(i httptrace.GotConnInfo) { conns++; lastConn = i },
		GotFirstResponseByte: func() { res.gotAnswer = true },
	}))
	resp, err := c.hc.Do(req)
	res.Replays = max(0, conns-1)
	res.reused = lastConn.Reused
	res.Conn = fmt.Sprintf("conns=%d reused=%t wasIdle=%t idle=%v", conns, lastConn.Reused, lastConn.WasIdle, lastConn.IdleTime)
	if err != nil {
		res.End, res.Err = time.Now(), err
		return res
	}
	res.Body, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	res.End, res.Status = time.Now(), resp.StatusCode
	if err != nil {
		res.Err = err
		return res
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(res.Body, &e) == nil {
			res.Code = e.Error
		}
	}
	return res
}

// tally counts outcomes by "kind label".
type tally struct {
	mu sync.Mutex
	m  map[string]int
}

func (t *tally) add(kind, label string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil {
		t.m = map[string]int{}
	}
	t.m[kind+" "+label]++
}

// String lists the counts, sorted.
func (t *tally) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	keys := make([]string, 0, len(t.m))
	for k := range t.m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "\n\t%-40s %6d", k, t.m[k])
	}
	return b.String()
}

// runUntil runs workers goroutines, each calling fn(worker, iteration)
// until the deadline passes or ctx ends. It returns when all are done.
func runUntil(ctx context.Context, workers int, deadline time.Time, fn func(ctx context.Context, w, i int)) {
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				fn(ctx, w, i)
			}
		})
	}
	wg.Wait()
}

// runN runs fn(i) for i in [0, n) on at most inflight goroutines; it stops
// handing out work when ctx ends and returns how many ran.
func runN(ctx context.Context, n, inflight int, fn func(i int)) int {
	var next, ran atomic.Int64
	var wg sync.WaitGroup
	for range min(inflight, n) {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				fn(i)
				ran.Add(1)
			}
		})
	}
	wg.Wait()
	return int(ran.Load())
}

// latencies summarizes durations: p50, p99, max.
func latencies(d []time.Duration) string {
	if len(d) == 0 {
		return "n/a"
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	q := func(p float64) time.Duration { return s[min(len(s)-1, int(p*float64(len(s))))] }
	r := func(d time.Duration) time.Duration { return d.Round(time.Millisecond) }
	return fmt.Sprintf("p50 %v, p99 %v, max %v", r(q(0.50)), r(q(0.99)), r(s[len(s)-1]))
}

// redisClients returns connected_clients of INFO clients, and the ids of
// the connections other than the asking one's own. It asks on a one-off
// connection, so that (as long as the test does not use rs.Client) what
// it sees besides itself are Caddy's connections.
func redisClients(t testing.TB, rs *redistest.Server) (int, map[string]bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	c := redis.NewClient(&redis.Options{Addr: rs.Addr(), PoolSize: 1, DisableIdentity: true})
	defer c.Close()
	info, err := c.Info(ctx, "clients").Result()
	if err != nil {
		t.Fatalf("INFO clients: %v", err)
	}
	n := -1
	for _, l := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "connected_clients:"); ok {
			n, _ = strconv.Atoi(v)
		}
	}
	if n < 0 {
		t.Fatalf("INFO clients has no connected_clients: %q", info)
	}
	self, err := c.ClientID(ctx).Result()
	if err != nil {
		t.Fatalf("CLIENT ID: %v", err)
	}
	list, err := c.ClientList(ctx).Result()
	if err != nil {
		t.Fatalf("CLIENT LIST: %v", err)
	}
	ids := map[string]bool{}
	for _, l := range strings.Split(list, "\n") {
		for _, f := range strings.Fields(l) {
			if id, ok := strings.CutPrefix(f, "id="); ok && id != strconv.FormatInt(self, 10) {
				ids[id] = true
			}
		}
	}
	return n, ids
}

// causes counts the distinct "error"/"cause" pairs of the handler's
// failure log lines (no user values appear in them), for a failing test's
// report.
func causes(logs ...string) *tally {
	var tl tally
	for _, l := range logs {
		for _, line := range strings.Split(l, "\n") {
			if !strings.Contains(line, `"msg":"request failed"`) {
				continue
			}
			var m struct {
				Error string `json:"error"`
				Cause string `json:"cause"`
			}
			if json.Unmarshal([]byte(line[strings.IndexByte(line, '{'):]), &m) == nil {
				tl.add(m.Error, m.Cause)
			}
		}
	}
	return &tl
}

// redisInfo returns one numeric field of INFO (e.g. "total_connections_received").
func redisInfo(t testing.TB, rs *redistest.Server, field string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	c := redis.NewClient(&redis.Options{Addr: rs.Addr(), PoolSize: 1, DisableIdentity: true})
	defer c.Close()
	info, err := c.Info(ctx).Result()
	if err != nil {
		t.Fatalf("INFO: %v", err)
	}
	for _, l := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), field+":"); ok {
			n, err := strconv.Atoi(v)
			if err != nil {
				t.Fatalf("INFO %s: %q", field, v)
			}
			return n
		}
	}
	t.Fatalf("INFO has no %s", field)
	return 0
}

// reloadAll runs `caddy reload` (as Caddy.Reload does) on every instance
// at once, each with its own body, and returns the first error.
func reloadAll(insts []*Caddy, bodies []string) error {
	errs := make([]error, len(insts))
	var wg sync.WaitGroup
	for i, c := range insts {
		wg.Go(func() {
			cf := filepath.Join(c.dir, "Caddyfile")
			if err := os.WriteFile(cf, []byte(site(c.admin, c.port, bodies[i])), 0o600); err != nil {
				errs[i] = err
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, caddyBin, "reload", "--config", cf, "--adapter", "caddyfile", "--address", fmt.Sprintf("127.0.0.1:%d", c.admin)).CombinedOutput()
			if err != nil {
				errs[i] = fmt.Errorf("caddy reload: %v\n%s", err, out)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// raceBuilt tells whether this test binary was built with -race.
func raceBuilt() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}
