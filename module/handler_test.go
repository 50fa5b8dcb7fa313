package module

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/platform"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/routepath"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/mperr"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/mpsim"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/store"
)

func TestStripIdentityHeaders(t *testing.T) {
	h := http.Header{}
	for _, k := range []string{"X-Mp-Openid", "X-Mp-Phone", "X_Mp_Phone", "x_mp_unionid", "X-Mpx", "X-Other", "X-M"} {
		h[k] = []string{"v"}
	}
	stripIdentityHeaders(h)
	var left []string
	for k := range h {
		left = append(left, k)
	}
	if len(left) != 3 || h.Get("X-Other") == "" || h["X-Mpx"] == nil || h["X-M"] == nil {
		t.Fatalf("left %v", left)
	}
}

// Routes are recognised under the spellings backends route, on the
// request Caddy rewrote and on the one the client sent.
func TestRoute(t *testing.T) {
	m, err := routepath.NewMatcher("/api/login", "/api/phone", "")
	if err != nil {
		t.Fatal(err)
	}
	h := &Handler{routes: m, RouteParams: []string{"s"}}
	for _, c := range []struct {
		path, orig string
		want       route
	}{
		{"/api/login", "", routeLogin},
		{"/API/login/", "", routeLogin},
		{"/api//login;jsessionid=A", "", routeLogin},
		{"/x/..;/api/phone", "", routePhone},
		{"/index.php", "/api/login", routeLogin},
		{"/index.php", "/static/x.js", routeNone},
		{"/api/decrypt", "", routeNone},
		{"/api/loginx", "", routeNone},
		{"/index.php?s=/api/login", "", routeLogin},
		{"/index.php?a=1&s=api/Phone/", "", routePhone},
		{"/index.php", "/index.php?s=%2Fapi%2Flogin", routeLogin},
		{"/index.php?s=/api/loginx", "", routeNone},
	} {
		r := httptest.NewRequest("POST", "http://x"+c.path, nil)
		if c.orig != "" {
			or := httptest.NewRequest("POST", "http://x"+c.orig, nil)
			r = r.WithContext(context.WithValue(r.Context(), caddyhttp.OriginalRequestCtxKey, *or))
		}
		if got := h.route(r); got != c.want {
			t.Errorf("route(%s, original %q) = %v, want %v", c.path, c.orig, got, c.want)
		}
	}
}

func TestValidate(t *testing.T) {
	ok := Handler{Platform: "wechat", AppID: "wx1", AppSecret: "s", Login: "/l"}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mod := range map[string]func(*Handler){
		"no platform":    func(h *Handler) { h.Platform = "" },
		"bad platform":   func(h *Handler) { h.Platform = "taobao" },
		"no app id":      func(h *Handler) { h.AppID = "" },
		"no secret":      func(h *Handler) { h.AppSecret = "" },
		"bad api base":   func(h *Handler) { h.APIBase = "ftp://x" },
		"no route":       func(h *Handler) { h.Login = "" },
		"relative route": func(h *Handler) { h.Login = "api/login" },
		"bad store":      func(h *Handler) { h.Store = &StoreConfig{Type: "etcd"} },
		"redis no url":   func(h *Handler) { h.Store = &StoreConfig{Type: "redis"} },
		// The rules the Caddyfile parser applies hold for JSON configs too.
		"shadowed route":           func(h *Handler) { h.Login, h.Phone = "/api/*", "/api/phone" },
		"same route in two cases":  func(h *Handler) { h.Login, h.Phone = "/api/login", "/API/login" },
		"negative retries":         func(h *Handler) { n := -3; h.PlatformRetries = &n },
		"route with a dot segment": func(h *Handler) { h.Login = "/api/../login" },
		"bad route_param":          func(h *Handler) { h.RouteParams = []string{"s=1"} },
		"bad decrypt_watermark":    func(h *Handler) { h.DecryptWatermark = "maybe" },
		"watermark without route":  func(h *Handler) { h.DecryptWatermark = "optional" },
	} {
		h := ok
		mod(&h)
		if err := h.Validate(); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestRefHidesTheCode(t *testing.T) {
	a := &Handler{Platform: "wechat", AppID: "wx1"}
	b := &Handler{Platform: "wechat", AppID: "wx2"}
	code := "0716AVll20uHk94SLDml27etM946AVlq"
	r := a.codeRef(code)
	if strings.Contains(r, code) || len(r) != 32 {
		t.Fatalf("ref %q", r)
	}
	if r == b.codeRef(code) || r == a.ref('t', code) || r != a.codeRef(code) {
		t.Fatal("refs must be scoped by app and kind, and stable")
	}
}

func TestDecodeFailureRoundTrip(t *testing.T) {
	e := mperr.Platform(mperr.InvalidCode, 40163, "used")
	buf, _ := json.Marshal(e.Body())
	got, ok := mperr.As(decodeFailure(buf))
	if !ok || got.Code != mperr.InvalidCode || !got.HasErrcode || got.Errcode != 40163 {
		t.Fatalf("%v", got)
	}
	if got, _ := mperr.As(decodeFailure([]byte("garbage"))); got.Code != mperr.PlatformError {
		t.Fatalf("%v", got)
	}
}

// A provisioned handler on the memory store against the simulator, driven
// through ServeHTTP without a server.
func TestHandlerInProcess(t *testing.T) {
	sim := mpsim.New(mpsim.Options{})
	srv := httptest.NewServer(sim)
	defer srv.Close()
	h := &Handler{Platform: "wechat", AppID: "wxdemoapp0000001", AppSecret: "demo-wechat-secret", APIBase: srv.URL,
		Login: "/login", Phone: "/phone", Store: &StoreConfig{Type: "memory", MaxSessions: 10}}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	if err := h.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	defer h.Cleanup()

	var seen *http.Request
	var seenBody []byte
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		seen = r
		seenBody, _ = io.ReadAll(r.Body)
		return nil
	})
	serve := func(path, body string) *httptest.ResponseRecorder {
		seen = nil
		req := httptest.NewRequest("POST", path, bytes.NewBufferString(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Mp-Openid", "evil")
		w := httptest.NewRecorder()
		req = caddyhttp.PrepareRequest(req, caddy.NewReplacer(), w, nil)
		if err := h.ServeHTTP(w, req, next); err != nil {
			t.Fatal(err)
		}
		return w
	}

	lr, err := sim.Login("wxdemoapp0000001", "u1")
	if err != nil {
		t.Fatal(err)
	}
	serve("/login", `{"code":"`+lr.Code+`"}`)
	if seen == nil || seen.Header.Get("X-Mp-Openid") != lr.OpenID {
		t.Fatalf("login not forwarded with identity: %v", seen)
	}
	if int64(len(seenBody)) != seen.ContentLength {
		t.Fatalf("content length %d for %d bytes", seen.ContentLength, len(seenBody))
	}
	ed, iv, err := sim.EncryptPhone("wxdemoapp0000001", "u1", "13800138000")
	if err != nil {
		t.Fatal(err)
	}
	serve("/phone", `{"code":"`+lr.Code+`","encryptedData":"`+ed+`","iv":"`+iv+`"}`)
	if seen == nil || seen.Header.Get("X-Mp-Phone") != "13800138000" || !bytes.Contains(seenBody, []byte(`"phoneNumber":"13800138000"`)) {
		t.Fatalf("phone not injected: %s", seenBody)
	}
	w := serve("/phone", `{"code":"unknown","encryptedData":"`+ed+`","iv":"`+iv+`"}`)
	if seen != nil || w.Code != 401 || !strings.Contains(w.Body.String(), `"session_not_found"`) {
		t.Fatalf("unknown code: %d %s", w.Code, w.Body)
	}
	serve("/other", `{}`)
	if seen == nil || seen.Header.Get("X-Mp-Openid") != "" {
		t.Fatal("plain route: spoofed header kept")
	}
}

// An instance that claimed a code and died: the claim lapses, and a waiting
// request exchanges the code itself within its bound.
func TestLapsedClaimIsTakenOver(t *testing.T) {
	sim := mpsim.New(mpsim.Options{})
	srv := httptest.NewServer(sim)
	defer srv.Close()
	h := &Handler{Platform: "wechat", AppID: "wxdemoapp0000001", AppSecret: "demo-wechat-secret", APIBase: srv.URL,
		Login: "/login", Store: &StoreConfig{Type: "memory", MaxSessions: 10}, ExchangeWait: caddy.Duration(3e9)}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	if err := h.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	defer h.Cleanup()
	lr, err := sim.Login("wxdemoapp0000001", "dead-claim")
	if err != nil {
		t.Fatal(err)
	}
	if won, _, err := h.store.Claim(context.Background(), h.codeRef(lr.Code), 500*1e6); !won || err != nil {
		t.Fatalf("claim: %v %v", won, err)
	}
	s, err := h.exchange(context.Background(), platform.LoginCodes{Code: lr.Code})
	if err != nil || s.OpenID != lr.OpenID {
		t.Fatalf("exchange after a lapsed claim: %+v %v", s, err)
	}
	if n := sim.Calls("jscode2session"); n != 1 {
		t.Fatalf("calls %d", n)
	}

	// A claim that outlives exchange_wait: platform_timeout, no exchange.
	lr2, _ := sim.Login("wxdemoapp0000001", "dead-claim-2")
	h.store.Claim(context.Background(), h.codeRef(lr2.Code), 10*1e9)
	_, err = h.exchange(context.Background(), platform.LoginCodes{Code: lr2.Code})
	if e, ok := mperr.As(err); !ok || e.Code != mperr.PlatformTimeout {
		t.Fatalf("held claim: %v", err)
	}
	if n := sim.Calls("jscode2session"); n != 1 {
		t.Fatalf("calls %d", n)
	}
}

// failingSaves wraps a real store and fails its next Save calls, as a store
// that drops right after the platform answered.
type failingSaves struct {
	store.Store
	fail int
}

func (f *failingSaves) Save(ctx context.Context, ref string, s store.Session, ttl time.Duration) (store.Session, error) {
	if f.fail > 0 {
		f.fail--
		return store.Session{}, fmt.Errorf("%w: injected", store.ErrUnavailable)
	}
	return f.Store.Save(ctx, ref, s, ttl)
}

// A save that fails after the exchange does not burn the code: a retry on
// this instance saves the kept result, without a second exchange.
func TestFailedSaveKeepsTheExchange(t *testing.T) {
	sim := mpsim.New(mpsim.Options{})
	srv := httptest.NewServer(sim)
	defer srv.Close()
	h := &Handler{Platform: "wechat", AppID: "wxdemoapp0000001", AppSecret: "demo-wechat-secret", APIBase: srv.URL,
		Login: "/login", Store: &StoreConfig{Type: "memory", MaxSessions: 10}}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	if err := h.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	defer h.Cleanup()
	fs := &failingSaves{Store: h.store, fail: 2}
	h.store = fs
	lr, _ := sim.Login("wxdemoapp0000001", "flaky")
	if _, err := h.exchange(context.Background(), platform.LoginCodes{Code: lr.Code}); err == nil {
		t.Fatal("first exchange: no error although the save failed")
	} else if e, _ := mperr.As(err); e.Code != mperr.StoreUnavailable {
		t.Fatalf("first exchange: %v", err)
	}
	if _, err := h.exchange(context.Background(), platform.LoginCodes{Code: lr.Code}); err == nil {
		t.Fatal("second try: the store is still failing")
	}
	s, err := h.exchange(context.Background(), platform.LoginCodes{Code: lr.Code})
	if err != nil || s.OpenID != lr.OpenID || s.SessionKey == "" {
		t.Fatalf("retry after the store came back: %+v %v", s, err)
	}
	if n := sim.Calls("jscode2session"); n != 1 {
		t.Fatalf("code2session calls %d, want 1", n)
	}
	if _, err := h.store.Lookup(context.Background(), h.codeRef(lr.Code)); err != nil {
		t.Fatalf("not saved: %v", err)
	}
}

// An unset environment variable in a placeholder fails provisioning with
// the field named (not an indirect "app_secret is required").
func TestPlaceholderErrorsNameTheField(t *testing.T) {
	for _, c := range []struct {
		field string
		set   func(h *Handler)
	}{
		{"app_secret", func(h *Handler) { h.AppSecret = "{env.MP_TEST_SURELY_UNSET_1}" }},
		{"app_id", func(h *Handler) { h.AppID = "{env.MP_TEST_SURELY_UNSET_2}" }},
		{"store password", func(h *Handler) {
			h.Store = &StoreConfig{Type: "redis", URL: "redis://127.0.0.1:1/0", Password: "{env.MP_TEST_SURELY_UNSET_3}"}
		}},
	} {
		h := &Handler{Platform: "wechat", AppID: "wx1", AppSecret: "s", Login: "/l"}
		c.set(h)
		ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
		err := h.Provision(ctx)
		cancel()
		if err == nil || !strings.Contains(err.Error(), c.field+":") || !strings.Contains(err.Error(), "empty") {
			t.Errorf("%s: err = %v", c.field, err)
		}
	}
}
