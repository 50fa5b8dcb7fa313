package module

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/mpsim"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/store"
)

// metricValue reads one series of a metric vector: a counter's value, or
// a histogram's count of observations; 0 when the series does not exist.
func metricValue(t *testing.T, c prometheus.Collector, labels map[string]string) float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	if err := reg.Register(c); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
	series:
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) != len(labels) {
				continue
			}
			for _, lp := range m.GetLabel() {
				if labels[lp.GetName()] != lp.GetValue() {
					continue series
				}
			}
			if h := m.GetHistogram(); h != nil {
				return float64(h.GetSampleCount())
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

// storeOps reads store_duration_seconds' count (or store_errors_total)
// of every op for a store kind.
func storeOps(t *testing.T, c prometheus.Collector, kind string) map[string]float64 {
	t.Helper()
	out := make(map[string]float64)
	for _, op := range storeOpNames {
		out[op] = metricValue(t, c, map[string]string{"store": kind, "op": op})
	}
	return out
}

func diff(after, before map[string]float64) map[string]float64 {
	d := make(map[string]float64)
	for k, v := range after {
		if v != before[k] {
			d[k] = v - before[k]
		}
	}
	return d
}

// brokenStore fails every operation as an unreachable store does.
type brokenStore struct{}

var errBroken = fmt.Errorf("%w: injected", store.ErrUnavailable)

func (brokenStore) Save(context.Context, string, store.Session, time.Duration) (store.Session, error) {
	return store.Session{}, errBroken
}
func (brokenStore) Lookup(context.Context, string) (store.Session, error) {
	return store.Session{}, errBroken
}
func (brokenStore) Bind(context.Context, string, string, time.Duration) error { return errBroken }
func (brokenStore) LookupTTL(context.Context, string) (store.Session, time.Duration, error) {
	return store.Session{}, 0, errBroken
}
func (brokenStore) Touch(context.Context, string, string, time.Duration) error { return errBroken }
func (brokenStore) Unbind(context.Context, string) error                       { return errBroken }
func (brokenStore) Claim(context.Context, string, time.Duration) (bool, []byte, error) {
	return false, nil, errBroken
}
func (brokenStore) Fail(context.Context, string, []byte, time.Duration) error { return errBroken }
func (brokenStore) Get(context.Context, string) ([]byte, error)               { return nil, errBroken }
func (brokenStore) Set(context.Context, string, []byte, time.Duration) error  { return errBroken }
func (brokenStore) SetIfAbsent(context.Context, string, []byte, time.Duration) ([]byte, bool, error) {
	return nil, false, errBroken
}
func (brokenStore) Lock(context.Context, string, time.Duration) (func(), bool, error) {
	return func() {}, false, errBroken
}
func (brokenStore) Close() error { return nil }

// Every method of store.Store but Close is timed once per call, under its
// own op; failures other than "not found" are counted.
func TestTimedStoreTimesEveryMethod(t *testing.T) {
	// Every method of the interface has an op named after it (a method
	// added to store.Store needs one).
	st := reflect.TypeOf((*store.Store)(nil)).Elem()
	ops := make(map[string]bool)
	for _, op := range storeOpNames {
		ops[op] = true
	}
	for i := range st.NumMethod() {
		name := strings.ToLower(st.Method(i).Name)
		if name != "close" && !ops[name] {
			t.Errorf("store.Store.%s has no op in storeOpNames", st.Method(i).Name)
		}
	}

	ctx := context.Background()
	const kind = "test-timed"
	ts := newTimedStore(store.NewMemory(store.MemoryOptions{MaxSessions: 10}), kind)
	before, beforeErr := storeOps(t, metrics.storeTime, kind), storeOps(t, metrics.storeErrors, kind)
	if _, err := ts.Save(ctx, "r1", store.Session{OpenID: "o1", SessionKey: "k"}, time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.Lookup(ctx, "r1"); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.Lookup(ctx, "absent"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("lookup of an absent ref: %v", err)
	}
	if err := ts.Bind(ctx, "t1", "o1", time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ts.LookupTTL(ctx, "t1"); err != nil {
		t.Fatal(err)
	}
	if err := ts.Touch(ctx, "t1", "o1", time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := ts.Unbind(ctx, "t1"); err != nil {
		t.Fatal(err)
	}
	if won, _, err := ts.Claim(ctx, "c1", time.Minute); !won || err != nil {
		t.Fatalf("claim: %v %v", won, err)
	}
	if err := ts.Fail(ctx, "c1", []byte(`{}`), time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.Get(ctx, "n1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("get of an absent name: %v", err)
	}
	if err := ts.Set(ctx, "n1", []byte("v"), time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.Get(ctx, "n1"); err != nil {
		t.Fatal(err)
	}
	unlock, ok, err := ts.Lock(ctx, "l1", time.Minute)
	if !ok || err != nil {
		t.Fatalf("lock: %v %v", ok, err)
	}
	if _, held, _ := ts.Lock(ctx, "l1", time.Minute); held {
		t.Fatal("a held lock was taken again")
	}
	unlock()
	unlock() // released once: observed once
	want := map[string]float64{"save": 1, "lookup": 2, "bind": 1, "lookupttl": 1, "touch": 1, "unbind": 1, "claim": 1, "fail": 1, "get": 2, "set": 1, "lock": 2, "unlock": 1}
	if got := diff(storeOps(t, metrics.storeTime, kind), before); !reflect.DeepEqual(got, want) {
		t.Errorf("store_duration_seconds counts %v, want %v", got, want)
	}
	if got := diff(storeOps(t, metrics.storeErrors, kind), beforeErr); len(got) != 0 {
		t.Errorf("store_errors_total %v for a working store (not found is no failure)", got)
	}

	// A store that cannot be reached: every op counted as a failure.
	const bkind = "test-broken"
	bs := newTimedStore(brokenStore{}, bkind)
	before, beforeErr = storeOps(t, metrics.storeTime, bkind), storeOps(t, metrics.storeErrors, bkind)
	bs.Save(ctx, "r", store.Session{}, time.Minute)
	bs.Lookup(ctx, "r")
	bs.Bind(ctx, "r", "o", time.Minute)
	bs.LookupTTL(ctx, "r")
	bs.Touch(ctx, "r", "o", time.Minute)
	bs.Unbind(ctx, "r")
	bs.Claim(ctx, "r", time.Minute)
	bs.Fail(ctx, "r", nil, time.Minute)
	bs.Get(ctx, "n")
	bs.Set(ctx, "n", nil, time.Minute)
	bs.Lock(ctx, "l", time.Minute)
	want = map[string]float64{"save": 1, "lookup": 1, "bind": 1, "lookupttl": 1, "touch": 1, "unbind": 1, "claim": 1, "fail": 1, "get": 1, "set": 1, "lock": 1}
	if got := diff(storeOps(t, metrics.storeTime, bkind), before); !reflect.DeepEqual(got, want) {
		t.Errorf("store_duration_seconds counts %v, want %v", got, want)
	}
	if got := diff(storeOps(t, metrics.storeErrors, bkind), beforeErr); !reflect.DeepEqual(got, want) {
		t.Errorf("store_errors_total %v, want %v", got, want)
	}
}

// metricsHandler provisions a WeChat handler with token binding and compat
// on the memory store, against the simulator.
func metricsHandler(t *testing.T, sim *mpsim.Sim) *Handler {
	t.Helper()
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	h := &Handler{Platform: "wechat", AppID: "wxdemoapp0000001", AppSecret: "demo-wechat-secret", APIBase: srv.URL,
		Login: "/login", Phone: "/phone", Store: &StoreConfig{Type: "memory", MaxSessions: 100},
		TokenBinding: &TokenBindingConfig{From: TokenSource{JSON: "data.token"}},
		// A session longer than session_ttl: its login also extends the
		// user's record (touch).
		Session: &SessionConfig{TTL: caddy.Duration(time.Hour)}, Logout: []string{"/logout"},
		Compat: &CompatConfig{Prefix: "/mp-compat"}}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if err := h.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Cleanup() })
	return h
}

// serveOnLoopback runs one request through h as a server on 127.0.0.1
// would (compat requests check the connection), and returns the answer
// and the request's mp_error variable (nil when unset).
func serveOnLoopback(t *testing.T, h *Handler, req *http.Request, next caddyhttp.Handler) (*httptest.ResponseRecorder, any) {
	t.Helper()
	req = req.WithContext(context.WithValue(req.Context(), http.LocalAddrContextKey, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9001}))
	w := httptest.NewRecorder()
	req = caddyhttp.PrepareRequest(req, caddy.NewReplacer(), w, nil)
	if err := h.ServeHTTP(w, req, next); err != nil {
		t.Fatal(err)
	}
	return w, caddyhttp.GetVar(req.Context(), errorVar)
}

func jsonRequest(method, target, body string, hdr ...string) *http.Request {
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return req
}

// requestCounts reads requests_total for the wechat platform.
func requestCounts(t *testing.T, series [][2]string) map[[2]string]float64 {
	t.Helper()
	out := make(map[[2]string]float64)
	for _, s := range series {
		out[s] = metricValue(t, metrics.requests, map[string]string{"platform": "wechat", "route": s[0], "result": s[1]})
	}
	return out
}

// Every request on a route or compat endpoint counts once in
// requests_total, under a bounded route label and its result; the error
// code the handler answered is {vars.mp_error}; every store operation,
// the access-token manager's too, is timed.
func TestRequestsAndStoreOpsCounted(t *testing.T) {
	sim := mpsim.New(mpsim.Options{})
	h := metricsHandler(t, sim)
	if _, ok := h.store.(*timedStore); !ok {
		t.Fatalf("the handler's store is a %T, not the timed store", h.store)
	}
	const tok = "tok-metrics-1"
	upstream := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/login" {
			io.WriteString(w, `{"data":{"token":"`+tok+`"}}`)
			return nil
		}
		io.WriteString(w, `{"ok":true}`)
		return nil
	})
	series := [][2]string{
		{"login", "ok"}, {"login", "invalid_code"}, {"login", "preflight"}, {"phone", "ok"}, {"phone", "session_not_found"},
		{"unclear", "bad_request"}, {"compat_code2session", "ok"}, {"compat_code2session", "bad_request"},
		{"compat_token", "ok"}, {"compat_other", "bad_request"}, {"compat_code2session", "forbidden"},
		{"logout", "ok"},
	}
	beforeReq := requestCounts(t, series)
	beforeOps := storeOps(t, metrics.storeTime, "memory")

	lr, err := sim.Login("wxdemoapp0000001", "metrics-user")
	if err != nil {
		t.Fatal(err)
	}
	// A login with token binding: forwarded, the answer's token bound.
	w, mpErr := serveOnLoopback(t, h, jsonRequest("POST", "/login", `{"code":"`+lr.Code+`"}`), upstream)
	if w.Code != 200 || !strings.Contains(w.Body.String(), tok) || mpErr != nil {
		t.Fatalf("login: %d %s, mp_error %v", w.Code, w.Body, mpErr)
	}
	sessionToken := w.Result().Header.Get(DefaultSessionHeader) // as sent (the live map no longer has it)
	if sessionToken == "" {
		t.Fatalf("login answer without a session token: %v", w.Header())
	}
	// A phone request by the bound token: exactly one store operation,
	// one lookup.
	ed, iv, err := sim.EncryptPhone("wxdemoapp0000001", "metrics-user", "13800138000")
	if err != nil {
		t.Fatal(err)
	}
	ops := storeOps(t, metrics.storeTime, "memory")
	w, mpErr = serveOnLoopback(t, h, jsonRequest("POST", "/phone", `{"encryptedData":"`+ed+`","iv":"`+iv+`"}`, "Authorization", "Bearer "+tok), upstream)
	if w.Code != 200 || mpErr != nil {
		t.Fatalf("phone by token: %d %s, mp_error %v", w.Code, w.Body, mpErr)
	}
	if got := diff(storeOps(t, metrics.storeTime, "memory"), ops); !reflect.DeepEqual(got, map[string]float64{"lookup": 1}) {
		t.Errorf("store operations of a phone request by token: %v, want one lookup", got)
	}
	// Compat's shared token: the access-token manager uses the timed store.
	ops = storeOps(t, metrics.storeTime, "memory")
	w, mpErr = serveOnLoopback(t, h, httptest.NewRequest("GET", "/mp-compat/cgi-bin/token?grant_type=client_credential&appid=wxdemoapp0000001&secret=demo-wechat-secret", nil), upstream)
	if w.Code != 200 || !strings.Contains(w.Body.String(), `"access_token"`) || mpErr != nil {
		t.Fatalf("compat token: %d %s, mp_error %v", w.Code, w.Body, mpErr)
	}
	// The manager fetched the first token (before any phone-code
	// exchange needed one): it read the store, took the
	// refresh lock, saved the token and released the lock, all timed.
	tokenOps := diff(storeOps(t, metrics.storeTime, "memory"), ops)
	for _, op := range []string{"get", "lock", "set", "unlock"} {
		if tokenOps[op] < 1 {
			t.Errorf("the access-token manager's %s is not timed (ops of the token request: %v)", op, tokenOps)
		}
	}
	// Refusals: mp_error is the code answered.
	w, mpErr = serveOnLoopback(t, h, jsonRequest("POST", "/phone", `{"code":"unknown","encryptedData":"`+ed+`","iv":"`+iv+`"}`), upstream)
	if w.Code != 401 || mpErr != "session_not_found" {
		t.Fatalf("unknown code: %d %s, mp_error %v", w.Code, w.Body, mpErr)
	}
	w, mpErr = serveOnLoopback(t, h, jsonRequest("POST", "/login", `{"code":"never-issued"}`), upstream)
	if w.Code != 401 || mpErr != "invalid_code" {
		t.Fatalf("invalid code: %d %s, mp_error %v", w.Code, w.Body, mpErr)
	}
	w, mpErr = serveOnLoopback(t, h, jsonRequest("POST", "/login?s=/phone", `{"code":"x"}`), upstream)
	if w.Code != 400 || mpErr != "bad_request" {
		t.Fatalf("unclear route: %d %s, mp_error %v", w.Code, w.Body, mpErr)
	}
	w, mpErr = serveOnLoopback(t, h, httptest.NewRequest("OPTIONS", "/login", nil), upstream)
	if w.Code != 200 || mpErr != nil {
		t.Fatalf("preflight: %d, mp_error %v", w.Code, mpErr)
	}

	// Compat: the backend's code2session, refusals.
	q := url.Values{"appid": {"wxdemoapp0000001"}, "secret": {"demo-wechat-secret"}, "js_code": {lr.Code}, "grant_type": {"authorization_code"}}
	w, mpErr = serveOnLoopback(t, h, httptest.NewRequest("GET", "/mp-compat/sns/jscode2session?"+q.Encode(), nil), upstream)
	if w.Code != 200 || !strings.Contains(w.Body.String(), `"session_key"`) || mpErr != nil {
		t.Fatalf("compat code2session: %d %s, mp_error %v", w.Code, w.Body, mpErr)
	}
	q.Set("secret", "wrong")
	w, mpErr = serveOnLoopback(t, h, httptest.NewRequest("GET", "/mp-compat/sns/jscode2session?"+q.Encode(), nil), upstream)
	if !strings.Contains(w.Body.String(), `"errcode":40125`) || mpErr != "bad_request" {
		t.Fatalf("compat wrong secret: %d %s, mp_error %v", w.Code, w.Body, mpErr)
	}
	w, mpErr = serveOnLoopback(t, h, httptest.NewRequest("GET", "/mp-compat/no/such/endpoint", nil), upstream)
	if !strings.Contains(w.Body.String(), `"errcode":40066`) || mpErr != "bad_request" {
		t.Fatalf("compat unknown path: %d %s, mp_error %v", w.Code, w.Body, mpErr)
	}
	// A compat request that did not come in on loopback.
	req := httptest.NewRequest("GET", "/mp-compat/sns/jscode2session", nil)
	req = req.WithContext(context.WithValue(req.Context(), http.LocalAddrContextKey, &net.TCPAddr{IP: net.IPv4(10, 0, 0, 5), Port: 9001}))
	rw := httptest.NewRecorder()
	req = caddyhttp.PrepareRequest(req, caddy.NewReplacer(), rw, nil)
	if err := h.ServeHTTP(rw, req, upstream); err != nil || rw.Code != 403 || caddyhttp.GetVar(req.Context(), errorVar) != "forbidden" {
		t.Fatalf("compat from outside: %v %d, mp_error %v", err, rw.Code, caddyhttp.GetVar(req.Context(), errorVar))
	}

	// A logout by the issued session token: the session is found
	// (lookupttl) and ended (unbind).
	var seen http.Header
	w, mpErr = serveOnLoopback(t, h, jsonRequest("POST", "/logout", `{}`, "Authorization", "Bearer "+sessionToken), caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		seen = r.Header.Clone()
		return nil
	}))
	if w.Code != 200 || mpErr != nil || seen.Get(HeaderOpenID) != lr.OpenID || seen.Get(DefaultSessionHeader) != "" {
		t.Fatalf("logout: %d %s, mp_error %v, upstream headers %v", w.Code, w.Body, mpErr, seen)
	}
	want := map[[2]string]float64{
		{"logout", "ok"}: 1,
		{"login", "ok"}:  1, {"login", "invalid_code"}: 1, {"login", "preflight"}: 1,
		{"phone", "ok"}: 1, {"phone", "session_not_found"}: 1, {"unclear", "bad_request"}: 1,
		{"compat_code2session", "ok"}: 1, {"compat_code2session", "bad_request"}: 1, {"compat_token", "ok"}: 1,
		{"compat_other", "bad_request"}: 1, {"compat_code2session", "forbidden"}: 1,
	}
	after := requestCounts(t, series)
	for _, s := range series {
		if got := after[s] - beforeReq[s]; got != want[s] {
			t.Errorf("requests_total{route=%q,result=%q} grew by %v, want %v", s[0], s[1], got, want[s])
		}
	}
	// The binding of an app-key phone payload (Alipay's, not served by
	// this WeChat handler) goes through the handler's store like the rest.
	if err := h.bindPayload(context.Background(), "payload-id", lr.OpenID); err != nil {
		t.Fatal(err)
	}
	// Over the whole sequence every op was used, and timed.
	all := diff(storeOps(t, metrics.storeTime, "memory"), beforeOps)
	for _, op := range storeOpNames {
		if all[op] < 1 {
			t.Errorf("op %s: no store_duration_seconds observation over the sequence (%v)", op, all)
		}
	}
}

// Refusals (4xx) are logged at DEBUG, failures (5xx) at ERROR, like
// Caddy's own server; refusals are summarised at WARN at most once per
// minute per code, with their count.
func TestLogLevelsAndRefusalSummary(t *testing.T) {
	sim := mpsim.New(mpsim.Options{})
	h := metricsHandler(t, sim)
	core, logs := observer.New(zapcore.DebugLevel)
	h.logger = zap.New(core)
	h.compat.logger = h.logger.Named("compat")
	now := time.Unix(1_700_000_000, 0)
	h.refusals = newRefusalSummary(h.logger)
	h.refusals.now = func() time.Time { return now }
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error { return nil })
	refuse := func() {
		t.Helper()
		w, _ := serveOnLoopback(t, h, jsonRequest("POST", "/phone", `{"code":"unknown","encryptedData":"AAAAAAAAAAAAAAAAAAAAAA==","iv":"AAAAAAAAAAAAAAAAAAAAAA=="}`), next)
		if w.Code != 401 {
			t.Fatalf("refusal: %d %s", w.Code, w.Body)
		}
	}
	summaries := func() []observer.LoggedEntry {
		return logs.FilterMessageSnippet("requests refused").AllUntimed()
	}

	for range 3 {
		refuse()
	}
	if n := logs.FilterMessage("request refused").FilterLevelExact(zapcore.DebugLevel).Len(); n != 3 {
		t.Errorf("%d refusals at DEBUG, want 3", n)
	}
	s := summaries()
	if len(s) != 1 || s[0].Level != zapcore.WarnLevel || s[0].ContextMap()["error"] != "session_not_found" || s[0].ContextMap()["count"] != int64(1) {
		t.Fatalf("summary after the first refusals: %v", s)
	}
	now = now.Add(30 * time.Second)
	refuse()
	if len(summaries()) != 1 {
		t.Fatal("a second summary line within the minute")
	}
	// Another code has its own line.
	w, _ := serveOnLoopback(t, h, httptest.NewRequest("GET", "/mp-compat/sns/jscode2session", nil), next)
	if !strings.Contains(w.Body.String(), `"errcode":41002`) {
		t.Fatalf("compat without appid: %s", w.Body)
	}
	if s := summaries(); len(s) != 2 || s[1].ContextMap()["error"] != "bad_request" || s[1].ContextMap()["route"] != "compat_code2session" {
		t.Fatalf("summary of another code: %v", s)
	}
	if n := logs.FilterMessage("compat request refused").FilterLevelExact(zapcore.DebugLevel).Len(); n != 1 {
		t.Errorf("%d compat refusals at DEBUG, want 1", n)
	}
	// After the minute: one line counting the refusals since the last.
	now = now.Add(31 * time.Second)
	refuse()
	s = summaries()
	if len(s) != 3 || s[2].ContextMap()["error"] != "session_not_found" || s[2].ContextMap()["count"] != int64(4) ||
		s[2].ContextMap()["since"] != time.Minute+time.Second {
		t.Fatalf("summary after a minute: %v", s)
	}

	// A store failure is an ERROR, not summarised. (The real store is
	// still closed at the end: it is pooled per app, and a handle left open
	// would hand its contents to the next test of the same app.)
	pooled := h.store
	t.Cleanup(func() { pooled.Close() })
	h.store = brokenStore{}
	w, mpErr := serveOnLoopback(t, h, jsonRequest("POST", "/phone", `{"code":"any","encryptedData":"AAAAAAAAAAAAAAAAAAAAAA==","iv":"AAAAAAAAAAAAAAAAAAAAAA=="}`), next)
	if w.Code != 503 || mpErr != "store_unavailable" {
		t.Fatalf("broken store: %d %s, mp_error %v", w.Code, w.Body, mpErr)
	}
	if n := logs.FilterMessage("request failed").FilterLevelExact(zapcore.ErrorLevel).Len(); n != 1 {
		t.Errorf("%d store failures at ERROR, want 1", n)
	}
	if len(summaries()) != 3 {
		t.Error("a failure went into the refusal summary")
	}
	// Nothing the handler logged carries the user's values.
	for _, e := range logs.AllUntimed() {
		var b bytes.Buffer
		for k, v := range e.ContextMap() {
			fmt.Fprintf(&b, "%s=%v ", k, v)
		}
		if strings.Contains(b.String(), "demo-wechat-secret") {
			t.Errorf("the app secret in a log line: %s %s", e.Message, b.String())
		}
	}
}

// The error code answered is the variable mp_error, and the placeholder
// {http.vars.mp_error} (the Caddyfile's {vars.mp_error}), as Caddy's vars
// matcher reads them after the handler ran; a success sets none of them.
func TestErrorVarInMatchers(t *testing.T) {
	sim := mpsim.New(mpsim.Options{})
	h := metricsHandler(t, sim)
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error { return nil })
	serve := func(body string) *http.Request {
		req := jsonRequest("POST", "/login", body)
		w := httptest.NewRecorder()
		req = caddyhttp.PrepareRequest(req, caddy.NewReplacer(), w, nil)
		if err := h.ServeHTTP(w, req, next); err != nil {
			t.Fatal(err)
		}
		return req
	}
	matches := func(req *http.Request, key, value string) bool {
		t.Helper()
		ok, err := caddyhttp.VarsMatcher{key: {value}}.MatchWithError(req)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	refused := serve(`{"code":"never-issued"}`)
	lr, err := sim.Login("wxdemoapp0000001", "matcher-user")
	if err != nil {
		t.Fatal(err)
	}
	passed := serve(`{"code":"` + lr.Code + `"}`)
	for _, key := range []string{"mp_error", "{http.vars.mp_error}"} {
		if !matches(refused, key, "invalid_code") {
			t.Errorf("vars %s invalid_code does not match the refused request", key)
		}
		if matches(refused, key, "bad_request") {
			t.Errorf("vars %s bad_request matches the refused request", key)
		}
		if matches(passed, key, "invalid_code") || !matches(passed, key, "") {
			t.Errorf("vars %s is set on a success", key)
		}
	}
}

// A login answer token_binding cannot bind (the backend's answer and the
// configuration disagree) is a DEBUG line per request and a WARN summary
// at most once a minute per reason, not an INFO line per login.
func TestNotBoundSummary(t *testing.T) {
	sim := mpsim.New(mpsim.Options{})
	h := metricsHandler(t, sim)
	core, logs := observer.New(zapcore.DebugLevel)
	h.logger = zap.New(core)
	h.unbound = newSummary(h.logger, "login answers not bound", "reason")
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		w.Header().Set("Content-Type", "application/json")
		_, err := w.Write([]byte(`{"data":{"user":"no token here"}}`))
		return err
	})
	for i := range 3 {
		lr, err := sim.Login("wxdemoapp0000001", fmt.Sprintf("unbound-%d", i))
		if err != nil {
			t.Fatal(err)
		}
		w, _ := serveOnLoopback(t, h, jsonRequest("POST", "/login", `{"code":"`+lr.Code+`"}`), next)
		if w.Code != 200 || !strings.Contains(w.Body.String(), "no token here") {
			t.Fatalf("login: %d %s", w.Code, w.Body)
		}
	}
	if n := logs.FilterMessage("login answer not bound to a token").FilterLevelExact(zapcore.DebugLevel).Len(); n != 3 {
		t.Errorf("%d DEBUG lines, want 3", n)
	}
	s := logs.FilterMessage("login answers not bound").AllUntimed()
	if len(s) != 1 || s[0].Level != zapcore.WarnLevel || s[0].ContextMap()["reason"] != "no token at the configured path" {
		t.Fatalf("summary: %v", s)
	}
	if n := logs.FilterLevelExact(zapcore.InfoLevel).Len(); n != 0 {
		t.Errorf("%d INFO lines for three logins: %v", n, logs.FilterLevelExact(zapcore.InfoLevel).AllUntimed())
	}
}
