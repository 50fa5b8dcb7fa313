// Command load is the Go side of the load test that bench/load.sh drives:
// a fast upstream, the preparation of requests (login codes, logged-in
// users' phone bodies), the Redis memory measurement, and the report.
//
//	load ports N                       print N free loopback ports
//	load upstream -listen ADDR         serve 200 "ok" to everything
//	load codes -sim URL -app ID -n N -users U -out FILE
//	                                   mint N login codes over U users
//	load phone -sim URL -app ID -login URL -users N -prefix P -out FILE
//	                                   log N users in through the plugin's
//	                                   login route, write one phone body each
//	load redismem -redis URL -n N      bytes per session in Redis
//	load measure -out FILE -label L -pid NAME=PID... -- CMD ARGS...
//	                                   run CMD (wrk) and append the CPU time
//	                                   the named processes, CMD and the rest
//	                                   of the machine used meanwhile
//	load report -results FILE -cpu FILE
//	                                   the table, the targets, the verdict
//
// Everything talks to 127.0.0.1 only.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/store"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: load ports|upstream|codes|phone|bound|redismem|redisfloor|report|measure ...")
		os.Exit(2)
	}
	cmds := map[string]func([]string) error{
		"ports":      cmdPorts,
		"upstream":   cmdUpstream,
		"codes":      cmdCodes,
		"phone":      cmdPhone,
		"bound":      cmdBound,
		"redisfloor": cmdRedisFloor,
		"redismem":   cmdRedisMem,
		"report":     cmdReport,
		"measure":    cmdMeasure,
	}
	f, ok := cmds[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "load: unknown command %q\n", os.Args[1])
		os.Exit(2)
	}
	if err := f(os.Args[2:]); err != nil {
		fmt.Fprintf(os.Stderr, "load %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

// cmdPorts prints n distinct free loopback ports, one a line. The
// listeners are held until all are chosen, so the ports differ.
func cmdPorts(args []string) error {
	n := 1
	if len(args) > 0 {
		var err error
		if n, err = strconv.Atoi(args[0]); err != nil || n < 1 {
			return fmt.Errorf("ports: want a count, not %q", args[0])
		}
	}
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		ls = append(ls, l)
		fmt.Println(l.Addr().(*net.TCPAddr).Port)
	}
	return nil
}

// cmdUpstream is the backend behind every site: it reads the request body
// and answers 200 "ok", as fast as net/http allows.
func cmdUpstream(args []string) error {
	fs := flag.NewFlagSet("upstream", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:0", "address")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	ok := []byte("ok")
	var issued atomic.Int64
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			h := w.Header()
			if r.Header.Get("X-Bench-Bind") != "" {
				// A login of the bound scenarios: a token for the
				// plugin's token_binding to bind.
				h["Content-Type"] = []string{"application/json"}
				fmt.Fprintf(w, `{"data":{"token":"bench-%d-%d"}}`, os.Getpid(), issued.Add(1))
				return
			}
			h["Content-Type"] = []string{"text/plain"}
			h["Content-Length"] = []string{"2"}
			_, _ = w.Write(ok)
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	fmt.Printf("upstream listening on %s\n", ln.Addr())
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

var client = &http.Client{
	Timeout:   10 * time.Second,
	Transport: &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true},
}

// postJSON posts v as JSON to url and decodes a 200 answer into out.
func postJSON(url string, v, out any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	resp, err := client.Post(url, "application/json", bytes.NewReader(b))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("POST %s: %s: %s", url, resp.Status, bytes.TrimSpace(body))
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(body, out)
}

type loginRes struct {
	Code   string `json:"code"`
	OpenID string `json:"openid"`
}

type phoneRes struct {
	EncryptedData string `json:"encryptedData"`
	IV            string `json:"iv"`
}

// parallel runs f(i) for i in [0, n) on workers goroutines; the first
// error stops it.
func parallel(n, workers int, f func(i int) error) error {
	var next atomic.Int64
	var firstErr error
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := f(i); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					next.Store(int64(n)) // stop the others
					return
				}
			}
		}()
	}
	wg.Wait()
	return firstErr
}

// cmdCodes mints n login codes with the simulator's control API, dealt to
// users round-robin (the simulator allows 100 code2session calls per user
// per minute), and writes one code a line.
func cmdCodes(args []string) error {
	fs := flag.NewFlagSet("codes", flag.ContinueOnError)
	sim := fs.String("sim", "", "simulator base URL")
	app := fs.String("app", "wxdemoapp0000001", "app id")
	n := fs.Int("n", 10000, "codes to mint")
	users := fs.Int("users", 0, "users to deal them to (default n/50)")
	prefix := fs.String("prefix", "login", "user name prefix")
	out := fs.String("out", "", "output file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *users <= 0 {
		*users = max(1, (*n+49)/50)
	}
	if per := (*n + *users - 1) / *users; per > 100 {
		return fmt.Errorf("%d codes over %d users is %d a user: over the simulator's 100 a minute", *n, *users, per)
	}
	codes := make([]string, *n)
	start := time.Now()
	err := parallel(*n, 8, func(i int) error {
		var res loginRes
		if err := postJSON(*sim+"/_sim/login", map[string]string{"appid": *app, "user": fmt.Sprintf("%s-%d", *prefix, i%*users)}, &res); err != nil {
			return err
		}
		codes[i] = res.Code
		return nil
	})
	if err != nil {
		return err
	}
	if err := os.WriteFile(*out, []byte(strings.Join(codes, "\n")+"\n"), 0o600); err != nil {
		return err
	}
	fmt.Printf("minted %d login codes over %d users in %s\n", *n, *users, time.Since(start).Round(time.Millisecond))
	return nil
}

// cmdBound logs users in through the plugin's login route with token
// binding (the upstream answers {"data":{"token":...}} to a request with
// X-Bench-Bind) and writes one bound token a line.
func cmdBound(args []string) error {
	fs := flag.NewFlagSet("bound", flag.ContinueOnError)
	sim := fs.String("sim", "", "simulator base URL")
	app := fs.String("app", "wxdemoapp0000001", "app id")
	login := fs.String("login", "", "the plugin's login URL")
	users := fs.Int("users", 1000, "users")
	prefix := fs.String("prefix", "bound", "user name prefix")
	out := fs.String("out", "", "output file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	tokens := make([]string, *users)
	start := time.Now()
	err := parallel(*users, 8, func(i int) error {
		var lr loginRes
		if err := postJSON(*sim+"/_sim/login", map[string]string{"appid": *app, "user": fmt.Sprintf("%s-%d", *prefix, i)}, &lr); err != nil {
			return err
		}
		b, _ := json.Marshal(map[string]string{"code": lr.Code})
		req, err := http.NewRequest(http.MethodPost, *login, strings.NewReader(string(b)))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Bench-Bind", "1")
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var ans struct {
			Data struct {
				Token string `json:"token"`
			} `json:"data"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&ans); err != nil || resp.StatusCode != 200 || ans.Data.Token == "" {
			return fmt.Errorf("login through the plugin: status %d, %v", resp.StatusCode, err)
		}
		tokens[i] = ans.Data.Token
		return nil
	})
	if err != nil {
		return err
	}
	if err := os.WriteFile(*out, []byte(strings.Join(tokens, "\n")+"\n"), 0o600); err != nil {
		return err
	}
	fmt.Printf("logged in %d users through %s in %s; tokens bound\n", *users, *login, time.Since(start).Round(time.Millisecond))
	return nil
}

// cmdPhone logs users in through the plugin's login route (a real
// code2session through Caddy), then asks the simulator for each user's
// phone payload, and writes one phone-route body a line:
// {"code":...,"encryptedData":...,"iv":...}.
func cmdPhone(args []string) error {
	fs := flag.NewFlagSet("phone", flag.ContinueOnError)
	sim := fs.String("sim", "", "simulator base URL")
	app := fs.String("app", "wxdemoapp0000001", "app id")
	login := fs.String("login", "", "the plugin's login URL")
	users := fs.Int("users", 1000, "users")
	prefix := fs.String("prefix", "phone", "user name prefix")
	out := fs.String("out", "", "output file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	lines := make([]string, *users)
	start := time.Now()
	err := parallel(*users, 8, func(i int) error {
		user := fmt.Sprintf("%s-%d", *prefix, i)
		var lr loginRes
		if err := postJSON(*sim+"/_sim/login", map[string]string{"appid": *app, "user": user}, &lr); err != nil {
			return err
		}
		if err := postJSON(*login, map[string]string{"code": lr.Code}, nil); err != nil {
			return fmt.Errorf("login through the plugin: %w", err)
		}
		var pr phoneRes
		phone := fmt.Sprintf("138%08d", i)
		if err := postJSON(*sim+"/_sim/phone", map[string]string{"appid": *app, "user": user, "phone": phone}, &pr); err != nil {
			return err
		}
		b, err := json.Marshal(map[string]string{"code": lr.Code, "encryptedData": pr.EncryptedData, "iv": pr.IV})
		if err != nil {
			return err
		}
		lines[i] = string(b)
		return nil
	})
	if err != nil {
		return err
	}
	if err := os.WriteFile(*out, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		return err
	}
	fmt.Printf("logged in %d users through %s in %s; phone bodies of %d bytes\n", *users, *login, time.Since(start).Round(time.Millisecond), len(lines[0]))
	return nil
}

// cmdRedisMem saves n sessions through store.Redis, as the plugin does at
// login (one user record with unionid and one ref, the keys and TTL the
// plugin uses), and reports INFO memory's used_memory difference per
// session. The database must be empty of other writers.
func cmdRedisMem(args []string) error {
	fs := flag.NewFlagSet("redismem", flag.ContinueOnError)
	url := fs.String("redis", "", "redis:// URL (a server of its own)")
	n := fs.Int("n", 100000, "sessions")
	if err := fs.Parse(args); err != nil {
		return err
	}
	r, err := store.OpenRedis(store.RedisOptions{URL: *url, Prefix: "mp:wechat:wxdemoapp0000001:", Timeout: 5 * time.Second}, nil)
	if err != nil {
		return err
	}
	defer r.Close()
	ctx := context.Background()
	c := r.Client()
	if err := c.FlushDB(ctx).Err(); err != nil {
		return err
	}
	used := func() (int64, error) {
		info, err := c.Info(ctx, "memory").Result()
		if err != nil {
			return 0, err
		}
		for _, line := range strings.Split(info, "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
				return strconv.ParseInt(v, 10, 64)
			}
		}
		return 0, errors.New("no used_memory in INFO memory")
	}
	before, err := used()
	if err != nil {
		return err
	}
	start := time.Now()
	err = parallel(*n, 16, func(i int) error {
		s := store.Session{
			OpenID:     fmt.Sprintf("oWx%025d", i),      // 28 chars, like a WeChat openid
			UnionID:    fmt.Sprintf("uWx%025d", i),      // 28 chars
			SessionKey: fmt.Sprintf("%022dA==", i)[:24], // base64 of 16 bytes
		}
		ref := fmt.Sprintf("%032x", uint64(i)*0x9E3779B97F4A7C15) // like the plugin's code ref: 32 hex chars
		_, err := r.Save(ctx, ref, s, 30*time.Minute)
		return err
	})
	if err != nil {
		return err
	}
	took := time.Since(start)
	after, err := used()
	if err != nil {
		return err
	}
	keys, err := c.DBSize(ctx).Result()
	if err != nil {
		return err
	}
	per := float64(after-before) / float64(*n)
	fmt.Printf("redis: %d sessions saved through store.Redis in %s (%d keys): used_memory %d -> %d: %.0f bytes/session\n",
		*n, took.Round(time.Millisecond), keys, before, after, per)
	fmt.Printf("RESULT\tredis_bytes_per_session\t%.0f\n", per)
	return nil
}

// result is one line of wrk.lua's results file: one scenario in one round.
type result struct {
	scenario                  string
	round                     string
	requests                  int64
	secs, rps                 float64
	p50, p90, p99             float64 // µs
	connect, read, write, tmo int64
	status                    int64
	wrapped                   int64
}

func (r result) errors() int64 { return r.connect + r.read + r.write + r.tmo }

// readResults reads the results; labels are "scenario#round".
func readResults(path string) ([]result, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []result
	for _, line := range strings.Split(string(data), "\n") {
		fs := strings.Split(line, "\t")
		if len(fs) != 13 {
			continue
		}
		var r result
		r.scenario, r.round, _ = strings.Cut(fs[0], "#")
		ints := []*int64{&r.requests, nil, nil, nil, nil, nil, &r.connect, &r.read, &r.write, &r.status, &r.tmo, &r.wrapped}
		floats := []*float64{nil, &r.secs, &r.rps, &r.p50, &r.p90, &r.p99}
		for i, s := range fs[1:] {
			if i < len(floats) && floats[i] != nil {
				v, err := strconv.ParseFloat(s, 64)
				if err != nil {
					return nil, fmt.Errorf("%s: %v", fs[0], err)
				}
				*floats[i] = v
				continue
			}
			v, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("%s: %v", fs[0], err)
			}
			*ints[i] = v
		}
		out = append(out, r)
	}
	return out, nil
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if n := len(s); n%2 == 1 {
		return s[n/2]
	} else {
		return (s[n/2-1] + s[n/2]) / 2
	}
}

// summary is a scenario over its rounds.
type summary struct {
	name                string
	rounds              int
	requests, status    int64
	errors, wrapped     int64
	secs                float64
	p50s, p99s          []float64
	byRound             map[string]result
	ratioGet, ratioLike []float64 // per round
	dp50Like            []float64 // per round, ms
	likeBase            string
	caddyUS, svcUS      []float64 // per round: CPU µs per request of caddy; of upstream+redis+mpsim
	dCaddyUS            []float64 // per round: caddy µs/req minus the baseline's
	others              []float64 // per round: share of all CPUs used by processes not of the bench
	perReqByRound       map[string]float64
}

func (s *summary) rps() float64 { return float64(s.requests) / s.secs }

// likeFor is each scenario's like-for-like baseline: the bare proxy given
// the same requests.
var likeFor = map[string]string{
	"passthrough":     "bare-get",
	"phone-memory":    "bare-post",
	"phone-redis":     "bare-post",
	"login":           "bare-post",
	"phone-memory-c1": "bare-post-c1",
	"bound-memory":    "bare-bearer",
	"bound-redis":     "bare-bearer",
}

// cmdReport prints the table and checks the targets and the error rate.
func cmdReport(args []string) error {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	path := fs.String("results", "", "wrk.lua results file")
	cpuPath := fs.String("cpu", "", "measure's CPU file")
	maxErr := fs.Float64("max-error-fraction", 0.001, "fail when a scenario has more errors than this fraction")
	if err := fs.Parse(args); err != nil {
		return err
	}
	results, err := readResults(*path)
	if err != nil {
		return err
	}
	cpu, err := readCPU(*cpuPath)
	if err != nil {
		return err
	}
	ncpu := float64(runtime.NumCPU())
	sums := map[string]*summary{}
	var order []string
	for _, r := range results {
		s := sums[r.scenario]
		if s == nil {
			s = &summary{name: r.scenario, byRound: map[string]result{}, perReqByRound: map[string]float64{}}
			sums[r.scenario] = s
			order = append(order, r.scenario)
		}
		s.rounds++
		s.requests += r.requests
		s.status += r.status
		s.errors += r.errors()
		s.wrapped += r.wrapped
		s.secs += r.secs
		s.p50s = append(s.p50s, r.p50/1000)
		s.p99s = append(s.p99s, r.p99/1000)
		s.byRound[r.round] = r
		if c, ok := cpu[r.scenario+"#"+r.round]; ok && r.requests > 0 {
			n := float64(r.requests)
			s.caddyUS = append(s.caddyUS, c.us["caddy"]/n)
			s.svcUS = append(s.svcUS, (c.us["upstream"]+c.us["redis"]+c.us["mpsim"])/n)
			ours := c.us["caddy"] + c.us["upstream"] + c.us["redis"] + c.us["mpsim"] + c.us["cmd"]
			s.others = append(s.others, max(0, c.us["busy"]-ours)/(c.wall*1e6*ncpu))
			s.perReqByRound[r.round] = c.us["caddy"] / n
		}
	}
	// Per-round ratios against the baseline measured in the same round.
	for _, s := range sums {
		s.likeBase = likeFor[s.name]
		if s.likeBase == "" {
			s.likeBase = s.name
		}
		for round, r := range s.byRound {
			if g, ok := sums["bare-get"]; ok {
				if b, ok := g.byRound[round]; ok {
					s.ratioGet = append(s.ratioGet, r.rps/b.rps)
				}
			}
			if l, ok := sums[s.likeBase]; ok {
				if b, ok := l.byRound[round]; ok {
					s.ratioLike = append(s.ratioLike, r.rps/b.rps)
					s.dp50Like = append(s.dp50Like, (r.p50-b.p50)/1000)
					if c, ok := s.perReqByRound[round]; ok {
						if cb, ok := l.perReqByRound[round]; ok {
							s.dCaddyUS = append(s.dCaddyUS, c-cb)
						}
					}
				}
			}
		}
	}
	sort.SliceStable(order, func(i, j int) bool { return rank(order[i]) < rank(order[j]) })

	fmt.Println()
	fmt.Printf("%-16s %6s %8s %7s %8s %6s %6s %-11s %8s %12s %7s %7s %7s %7s %8s %6s\n",
		"scenario", "rounds", "req/s", "p50 ms", "p99 ms", "×GET", "×bare", "(min–max)", "Δp50 ms", "baseline",
		"caddy", "Δcaddy", "svc", "others", "non-2xx", "errors")
	fmt.Printf("%-16s %6s %8s %7s %8s %6s %6s %-11s %8s %12s %7s %7s %7s %7s %8s %6s\n",
		"", "", "", "", "", "", "", "", "", "", "µs/req", "µs/req", "µs/req", "CPU %", "", "")
	var failed []string
	for _, name := range order {
		s := sums[name]
		lo, hi := minMax(s.ratioLike)
		fmt.Printf("%-16s %6d %8.0f %7.3f %8.3f %6.3f %6.3f %-11s %+8.3f %12s %7.1f %+7.1f %7.1f %7.0f %8d %6d\n",
			name, s.rounds, s.rps(), median(s.p50s), median(s.p99s), median(s.ratioGet), median(s.ratioLike),
			fmt.Sprintf("(%.2f–%.2f)", lo, hi), median(s.dp50Like), s.likeBase,
			median(s.caddyUS), median(s.dCaddyUS), median(s.svcUS), 100*median(s.others), s.status, s.errors)
		if frac := float64(s.status+s.errors) / float64(max(s.requests, 1)); frac > *maxErr {
			failed = append(failed, fmt.Sprintf("%s: %d non-2xx and %d socket errors in %d requests (%.3f%%, limit %.3f%%)",
				name, s.status, s.errors, s.requests, 100*frac, 100**maxErr))
		}
		if s.wrapped > 0 {
			fmt.Printf("  note: %s ran out of prepared codes %d times and reused them (store hits): raise LOGIN_RATE\n", name, s.wrapped)
		}
	}
	fmt.Println("\nreq/s: all rounds' requests over their time; p50, p99, ratios, Δp50: medians over the rounds;")
	fmt.Println("×GET (vs bare-get) and ×bare (vs the bare proxy given the same requests: column baseline) are taken within each round.")
	fmt.Println("caddy µs/req: caddy's CPU time per request; Δcaddy: minus the baseline's (what the plugin costs in CPU, robust to")
	fmt.Println("other load); svc µs/req: CPU of upstream+redis+mpsim per request; others CPU %: share of all CPUs used by")
	fmt.Println("processes outside the bench during the run (noise: colleagues' tests).")

	type target struct {
		name, got string
		ok        bool
	}
	var ts []target
	get := func(name string) (*summary, bool) { s, ok := sums[name]; return s, ok && len(s.ratioLike) > 0 }
	if s, ok := get("passthrough"); ok {
		v := median(s.ratioLike)
		ts = append(ts, target{"pass-through ≥ 0.95× bare", fmt.Sprintf("%.3f×", v), v >= 0.95})
	}
	if s, ok := get("phone-memory"); ok {
		v, d := median(s.ratioLike), median(s.dp50Like)
		ts = append(ts, target{"phone/memory ≥ 0.85× bare", fmt.Sprintf("%.3f× bare POST (%.3f× bare GET)", v, median(s.ratioGet)), v >= 0.85})
		ts = append(ts, target{"phone/memory p50 ≤ bare + 0.2 ms (32 conns)", fmt.Sprintf("%+.3f ms", d), d <= 0.2})
	}
	if s, ok := get("phone-memory-c1"); ok {
		d := median(s.dp50Like)
		ts = append(ts, target{"phone/memory p50 ≤ bare + 0.2 ms (1 conn)", fmt.Sprintf("%+.3f ms", d), d <= 0.2})
	}
	if s, ok := get("phone-redis"); ok {
		v := median(s.ratioLike)
		ts = append(ts, target{"phone/redis ≥ 0.7× bare", fmt.Sprintf("%.3f× bare POST (%.3f× bare GET)", v, median(s.ratioGet)), v >= 0.7})
	}
	if s, ok := get("bound-memory"); ok {
		d := median(s.dCaddyUS)
		ts = append(ts, target{"bound/memory ≤ bare + 3 µs caddy CPU", fmt.Sprintf("%+.1f µs/req (%.3f× bare with the same requests)", d, median(s.ratioLike)), d <= 3})
	}
	if s, ok := get("bound-redis"); ok {
		d := median(s.dCaddyUS)
		ts = append(ts, target{"bound/redis ≤ bare + 25 µs caddy CPU", fmt.Sprintf("%+.1f µs/req (%.3f× bare with the same requests)", d, median(s.ratioLike)), d <= 25})
	}
	fmt.Println()
	for _, t := range ts {
		mark := "MET "
		if !t.ok {
			mark = "MISS"
		}
		fmt.Printf("[%s] %-44s %s\n", mark, t.name, t.got)
	}
	if len(failed) > 0 {
		fmt.Println()
		for _, f := range failed {
			fmt.Println("FAIL:", f)
		}
		return errors.New("too many errors")
	}
	return nil
}

func rank(name string) int {
	for i, n := range []string{"bare-get", "passthrough", "bare-bearer", "bound-memory", "bound-redis", "bare-post", "phone-memory", "phone-redis", "login", "bare-post-c1", "phone-memory-c1"} {
		if n == name {
			return i
		}
	}
	return 100
}

func minMax(v []float64) (lo, hi float64) {
	if len(v) == 0 {
		return math.NaN(), math.NaN()
	}
	lo, hi = v[0], v[0]
	for _, x := range v {
		lo, hi = min(lo, x), max(hi, x)
	}
	return lo, hi
}

// clockTicks is USER_HZ, the unit of /proc's CPU times (100 on Linux).
const clockTicks = 100

// procTicks is utime+stime of a process, all its threads, in clock ticks.
func procTicks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces: count from its ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("bad /proc stat")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, errors.New("short /proc stat")
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64) // field 14
	s, err2 := strconv.ParseInt(f[12], 10, 64) // field 15
	if err1 != nil || err2 != nil {
		return 0, errors.New("bad /proc stat times")
	}
	return u + s, nil
}

// machineTicks is the busy and idle time of all CPUs, in clock ticks.
func machineTicks() (busy, idle int64, err error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return 0, 0, errors.New("bad /proc/stat")
	}
	for i, v := range f[1:] {
		if i >= 8 { // guest times are already in user
			break
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, 0, err
		}
		if i == 3 || i == 4 { // idle, iowait
			idle += n
		} else {
			busy += n
		}
	}
	return busy, idle, nil
}

type pidFlags []string

func (p *pidFlags) String() string     { return strings.Join(*p, ",") }
func (p *pidFlags) Set(v string) error { *p = append(*p, v); return nil }

// cmdMeasure runs a command (wrk) and appends to -out one line:
// label, wall seconds, then NAME=µs for each -pid process, cmd=µs for the
// command itself (its rusage), busy=µs and idle=µs of the whole machine
// over the same time.
func cmdMeasure(args []string) error {
	fs := flag.NewFlagSet("measure", flag.ContinueOnError)
	out := fs.String("out", "", "file to append the line to")
	label := fs.String("label", "", "label")
	var pids pidFlags
	fs.Var(&pids, "pid", "NAME=PID of a process to account (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cmdArgs := fs.Args()
	if len(cmdArgs) == 0 {
		return errors.New("no command")
	}
	type proc struct {
		name   string
		pid    int
		before int64
	}
	var procs []proc
	for _, p := range pids {
		name, v, ok := strings.Cut(p, "=")
		pid, err := strconv.Atoi(v)
		if !ok || err != nil {
			return fmt.Errorf("-pid %q: want NAME=PID", p)
		}
		procs = append(procs, proc{name: name, pid: pid})
	}
	for i := range procs {
		t, err := procTicks(procs[i].pid)
		if err != nil {
			return fmt.Errorf("%s: %v", procs[i].name, err)
		}
		procs[i].before = t
	}
	busy0, idle0, err := machineTicks()
	if err != nil {
		return err
	}
	start := time.Now()
	cmd := exec.Command(cmdArgs[0], cmdArgs[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	runErr := cmd.Run()
	wall := time.Since(start)
	busy1, idle1, err := machineTicks()
	if err != nil {
		return err
	}
	const usPerTick = 1e6 / clockTicks
	fields := []string{*label, strconv.FormatFloat(wall.Seconds(), 'f', 3, 64)}
	for _, p := range procs {
		t, err := procTicks(p.pid)
		if err != nil {
			return fmt.Errorf("%s: %v", p.name, err)
		}
		fields = append(fields, fmt.Sprintf("%s=%d", p.name, (t-p.before)*usPerTick))
	}
	if cmd.ProcessState != nil {
		fields = append(fields, fmt.Sprintf("cmd=%d", (cmd.ProcessState.UserTime()+cmd.ProcessState.SystemTime()).Microseconds()))
	}
	fields = append(fields, fmt.Sprintf("busy=%d", (busy1-busy0)*usPerTick), fmt.Sprintf("idle=%d", (idle1-idle0)*usPerTick))
	if *out != "" {
		f, err := os.OpenFile(*out, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(f, strings.Join(fields, "\t"))
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	return runErr
}

// cpuLine is one line of measure's output.
type cpuLine struct {
	wall float64
	us   map[string]float64 // name → µs of CPU
}

func readCPU(path string) (map[string]cpuLine, error) {
	out := map[string]cpuLine{}
	if path == "" {
		return out, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Split(line, "\t")
		if len(f) < 3 {
			continue
		}
		wall, err := strconv.ParseFloat(f[1], 64)
		if err != nil {
			continue
		}
		c := cpuLine{wall: wall, us: map[string]float64{}}
		for _, kv := range f[2:] {
			k, v, _ := strings.Cut(kv, "=")
			n, err := strconv.ParseFloat(v, 64)
			if err == nil {
				c.us[k] = n
			}
		}
		out[f[0]] = c
	}
	return out, nil
}

// cmdRedisFloor measures the client-side CPU of one Redis round trip, the
// floor under any per-request session lookup on Redis: n operations from
// c goroutines, this process's CPU time (getrusage) per operation, for a
// bare go-redis GET and for store.Redis's Lookup (what a bound request
// does). Run against the bench's redis-server.
func cmdRedisFloor(args []string) error {
	fs := flag.NewFlagSet("redisfloor", flag.ContinueOnError)
	url := fs.String("redis", "", "redis:// URL")
	n := fs.Int("n", 50000, "operations per measurement")
	c := fs.Int("c", 32, "concurrent callers")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx := context.Background()
	opt, err := redis.ParseURL(*url)
	if err != nil {
		return err
	}
	opt.PoolSize = *c
	rc := redis.NewClient(opt)
	defer rc.Close()
	if err := rc.Set(ctx, "mp-floor:key", "o-floor-openid-0123456789abcdef", time.Minute).Err(); err != nil {
		return err
	}
	st, err := store.OpenRedis(store.RedisOptions{URL: *url, Prefix: "mp-floor:wechat:wxdemoapp0000001:", Timeout: 5 * time.Second}, nil)
	if err != nil {
		return err
	}
	defer st.Close()
	if _, err := st.Save(ctx, "floor-ref", store.Session{OpenID: "o-floor-openid-0123456789abcdef", UnionID: "u-floor", SessionKey: "c2Vzc2lvbi1rZXktMTIzNA=="}, time.Minute); err != nil {
		return err
	}
	measure := func(name string, op func() error) error {
		var ru0, ru1 syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru0); err != nil {
			return err
		}
		start := time.Now()
		if err := parallel(*n, *c, func(int) error { return op() }); err != nil {
			return err
		}
		wall := time.Since(start)
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru1); err != nil {
			return err
		}
		cpu := time.Duration(ru1.Utime.Nano()-ru0.Utime.Nano()) + time.Duration(ru1.Stime.Nano()-ru0.Stime.Nano())
		fmt.Printf("redis floor: %-28s %6.1f µs CPU/op (client side), %6.0f ops/s, %d ops from %d callers\n",
			name, float64(cpu.Microseconds())/float64(*n), float64(*n)/wall.Seconds(), *n, *c)
		return nil
	}
	if err := measure("go-redis GET", func() error { return rc.Get(ctx, "mp-floor:key").Err() }); err != nil {
		return err
	}
	return measure("store.Redis Lookup", func() error { _, err := st.Lookup(ctx, "floor-ref"); return err })
}
