package module

// Benchmarks of the handler's own cost per request, without a server: a
// provisioned Handler (platform wechat, memory store, api_base an
// httptest mpsim), ServeHTTP on a prepared request, a no-op next handler.
//
//	go test -run '^$' -bench . -benchmem ./module
//
// Decryption alone is measured where it lives, not here:
// internal/wxcrypt BenchmarkOpenPhone (Open) and BenchmarkOpenParsePhone
// (Open + ParsePhone), in internal/wxcrypt/wxcrypt_test.go.
//
// What an iteration costs: everything ServeHTTP does for the route —
// header stripping, the request copy, reading and parsing the body, the
// store lookup (memory), decryption, ParsePhone, the rewrite of headers and
// body (Apply) — but not what Caddy does around it (PrepareRequest, the
// replacer, reverse_proxy). The request is prepared once and its body
// rewound every iteration, so the figures are the handler's alone.
//
// Logging is at Caddy's default level (INFO): the handler's Debug lines are
// not written, as in a default deployment. (A caddy.Context made in a test
// has no config, and its Logger is a development logger at DEBUG level,
// which would make the benchmark measure zap's console encoder.)

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/mpsim"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/redistest"
)

const (
	benchAppID  = "wxdemoapp0000001"
	benchSecret = "demo-wechat-secret"
	benchPhone  = "13800138000"
)

// rewindBody is a request body that can be served again without
// allocating: Close does nothing, rewind starts it over.
type rewindBody struct {
	bytes.Reader
	data []byte
}

func (b *rewindBody) Close() error { return nil }
func (b *rewindBody) rewind()      { b.Reset(b.data) }

// discardWriter is a ResponseWriter that keeps nothing (the handler writes
// only when it fails, and the benchmarks fail on any failure).
type discardWriter struct {
	h    http.Header
	code int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) WriteHeader(code int)        { w.code = code }

// benchEnv is a provisioned handler with one user logged in.
type benchEnv struct {
	h    *Handler
	sim  *mpsim.Sim
	code string // the user's login code, stored
}

func newBenchEnv(b *testing.B) *benchEnv { return newBenchEnvWith(b, nil) }

// newBenchEnvWith is newBenchEnv with the handler's configuration changed
// by opt before it is provisioned.
func newBenchEnvWith(b *testing.B, opt func(*Handler)) *benchEnv {
	b.Helper()
	sim := mpsim.New(mpsim.Options{})
	srv := httptest.NewServer(sim)
	b.Cleanup(srv.Close)
	h := &Handler{
		Platform:  "wechat",
		AppID:     benchAppID,
		AppSecret: benchSecret,
		APIBase:   srv.URL,
		Store:     &StoreConfig{Type: "memory"},
		Login:     "/api/login",
		Phone:     "/api/phone",
		Decrypt:   "/api/decrypt",
	}
	if opt != nil {
		opt(h)
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	b.Cleanup(cancel)
	// The context's development logger writes to stderr, which would
	// break up the benchmark lines: point it (and the platform client's
	// logger made from it) at /dev/null.
	devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { devnull.Close() })
	stderr := os.Stderr
	os.Stderr = devnull
	err = h.Provision(ctx)
	os.Stderr = stderr
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = h.Cleanup() })
	// Caddy's default level, discarded (see the file comment).
	h.logger = zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()),
		zapcore.AddSync(io.Discard), zapcore.InfoLevel))

	lr, err := sim.Login(benchAppID, "bench-user")
	if err != nil {
		b.Fatal(err)
	}
	env := &benchEnv{h: h, sim: sim, code: lr.Code}
	// Log in once through the login route: code2session with the
	// simulator, session stored.
	req, w := env.request(b, "/api/login", `{"code":"`+lr.Code+`"}`)
	var got http.Header
	if err := h.ServeHTTP(w, req.r, caddyhttp.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) error {
		got = r.Header
		return nil
	})); err != nil || got.Get(HeaderOpenID) != lr.OpenID {
		b.Fatalf("login: err %v, status %d, openid %q", err, w.code, got.Get(HeaderOpenID))
	}
	return env
}

// prepared is a request made once, served many times.
type prepared struct {
	r    *http.Request
	body *rewindBody
}

func (p *prepared) rewind() {
	if p.body != nil {
		p.body.rewind()
		// As a new request would: the handler wraps the body it is given.
		p.r.Body = p.body
	}
}

// request makes a POST (GET when body is "") with the headers a
// mini-program's request carries, prepared as Caddy's server does.
func (e *benchEnv) request(b *testing.B, path, body string) (*prepared, *discardWriter) {
	b.Helper()
	p := &prepared{}
	method := http.MethodGet
	var rd io.Reader
	if body != "" {
		method = http.MethodPost
		p.body = &rewindBody{data: []byte(body)}
		p.body.rewind()
		rd = p.body
	}
	r := httptest.NewRequest(method, "http://api.example.com"+path, rd)
	if p.body != nil {
		r.Body = p.body // keep our Close-less reader, not a NopCloser
		r.ContentLength = int64(len(body))
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set("Content-Length", strconv.Itoa(len(body)))
	}
	r.Header.Set("User-Agent", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 MicroMessenger/8.0.47(0x18002f2c) NetType/WIFI Language/zh_CN")
	r.Header.Set("Referer", "https://servicewechat.com/"+benchAppID+"/12/page-frame.html")
	r.Header.Set("Accept", "*/*")
	r.Header.Set("Accept-Encoding", "gzip, deflate, br")
	r.Header.Set("Authorization", "Bearer 0123456789abcdef0123456789abcdef")
	r.RemoteAddr = "127.0.0.1:50000"
	w := &discardWriter{h: make(http.Header)}
	p.r = caddyhttp.PrepareRequest(r, caddy.NewReplacer(), w, nil)
	return p, w
}

// serveLoop runs ServeHTTP on p b.N times; check, when set, runs on the
// first request next sees.
func serveLoop(b *testing.B, h *Handler, p *prepared, w *discardWriter, check func(r *http.Request, body []byte)) {
	b.Helper()
	var reached int
	var checked bool
	next := caddyhttp.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) error {
		reached++
		if !checked && check != nil {
			checked = true
			body, _ := io.ReadAll(r.Body)
			check(r, body)
		}
		return nil
	})
	// One request outside the timing, to check what the upstream gets.
	p.rewind()
	if err := h.ServeHTTP(w, p.r, next); err != nil || w.code != 0 || reached != 1 {
		b.Fatalf("first request: err %v, status %d, reached upstream %d", err, w.code, reached)
	}
	noop := caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error {
		reached++
		return nil
	})
	reached = 0
	n := 0
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		p.rewind()
		if err := h.ServeHTTP(w, p.r, noop); err != nil {
			b.Fatal(err)
		}
		n++
	}
	b.StopTimer()
	if w.code != 0 || reached != n {
		b.Fatalf("status %d, %d of %d requests reached the upstream", w.code, reached, n)
	}
}

// BenchmarkPhoneRoute: the whole phone route for one request — parse the
// JSON body, look the session up in the memory store by the login code,
// decrypt and check the payload, parse the phone, rewrite headers and body.
func BenchmarkPhoneRoute(b *testing.B) {
	e := newBenchEnv(b)
	ed, iv, err := e.sim.EncryptPhone(benchAppID, "bench-user", benchPhone)
	if err != nil {
		b.Fatal(err)
	}
	p, w := e.request(b, "/api/phone", `{"code":"`+e.code+`","encryptedData":"`+ed+`","iv":"`+iv+`"}`)
	serveLoop(b, e.h, p, w, func(r *http.Request, body []byte) {
		if r.Header.Get(HeaderPhone) != benchPhone || !bytes.Contains(body, []byte(`"phoneNumber":"`+benchPhone+`"`)) ||
			bytes.Contains(body, []byte("encryptedData")) || int64(len(body)) != r.ContentLength {
			b.Fatalf("phone not injected: %q %s", r.Header.Get(HeaderPhone), body)
		}
	})
}

// BenchmarkLoginRouteStoreHit: the login route with a code already
// exchanged (a retried login): the store answers, no platform call.
func BenchmarkLoginRouteStoreHit(b *testing.B) {
	e := newBenchEnv(b)
	calls := e.sim.Calls(mpsim.EndpointJSCode2Session)
	p, w := e.request(b, "/api/login", `{"code":"`+e.code+`"}`)
	serveLoop(b, e.h, p, w, func(r *http.Request, body []byte) {
		if r.Header.Get(HeaderOpenID) == "" || !bytes.Contains(body, []byte(`"openid":`)) {
			b.Fatalf("identity not injected: %s", body)
		}
	})
	if got := e.sim.Calls(mpsim.EndpointJSCode2Session); got != calls {
		b.Fatalf("%d code2session calls during the benchmark, want none", got-calls)
	}
}

// BenchmarkPassThrough: a request on no route of the handler: only the
// X-Mp-* headers are stripped. /spoofed re-adds one such header every
// iteration, so the deletion is measured too.
func BenchmarkPassThrough(b *testing.B) {
	e := newBenchEnv(b)
	b.Run("plain", func(b *testing.B) {
		p, w := e.request(b, "/api/orders", "")
		serveLoop(b, e.h, p, w, nil)
	})
	b.Run("spoofed", func(b *testing.B) {
		p, w := e.request(b, "/api/orders", "")
		var reached int
		noop := caddyhttp.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) error {
			if len(r.Header[HeaderPhone]) == 0 {
				reached++
			}
			return nil
		})
		v := []string{"13900000000"}
		b.ReportAllocs()
		for b.Loop() {
			p.r.Header[HeaderPhone] = v
			if err := e.h.ServeHTTP(w, p.r, noop); err != nil {
				b.Fatal(err)
			}
		}
		if reached == 0 {
			b.Fatal("the spoofed header reached the upstream")
		}
	})
}

// A request off the routes carrying a bound token (the bench requests'
// Authorization: Bearer): one store lookup, the identity headers set.
// Against BenchmarkPassThrough/plain, the cost of identity on every
// request on the memory store.
func BenchmarkBoundRequest(b *testing.B) { benchBoundRequest(b, nil) }

// BenchmarkBoundRequestRedis is BenchmarkBoundRequest on a real Redis
// (a redis-server of its own): the per-request cost of identity on every
// request when sessions live in Redis (one Lookup round trip).
func BenchmarkBoundRequestRedis(b *testing.B) {
	rs := redistest.Start(b)
	benchBoundRequest(b, &StoreConfig{Type: "redis", URL: rs.URL()})
}

// benchBoundRequest binds a token to a logged-in user in the store st
// (nil: the default memory store) and serves requests carrying it.
func benchBoundRequest(b *testing.B, st *StoreConfig) {
	e := newBenchEnvWith(b, func(h *Handler) {
		if st != nil {
			h.Store = st
		}
		h.TokenBinding = &TokenBindingConfig{From: TokenSource{JSON: "data.token"}}
	})
	ctx := context.Background()
	s, err := e.h.store.Lookup(ctx, e.h.codeRef(e.code))
	if err != nil {
		b.Fatal(err)
	}
	if err := e.h.store.Bind(ctx, e.h.tokenRef("0123456789abcdef0123456789abcdef"), s.OpenID, time.Hour); err != nil {
		b.Fatal(err)
	}
	p, w := e.request(b, "/api/orders", "")
	serveLoop(b, e.h, p, w, func(r *http.Request, _ []byte) {
		if r.Header.Get(HeaderOpenID) != s.OpenID {
			b.Fatalf("no identity: %v", r.Header)
		}
	})
}
