package module

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/accesstoken"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/mperr"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/mpsim"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/store"
)

// provisionAt provisions the handler of the JSON config raw (through
// provisionJSON, as Caddy does) with its api_base, written "@API@" in raw,
// pointing at platform served by httptest on loopback. Both are cleaned up
// at the end of the test.
func provisionAt(t *testing.T, platform http.Handler, raw string) *Handler {
	t.Helper()
	srv := httptest.NewServer(platform)
	t.Cleanup(srv.Close)
	h, err := provisionJSON(t, strings.ReplaceAll(raw, "@API@", srv.URL))
	if err != nil {
		t.Fatalf("provision %s: %v", raw, err)
	}
	return h
}

// compatCall runs one compat request on a loopback connection
// (serveOnLoopback) and decodes its JSON answer. A compat request never
// reaches the next handler, and every answer is JSON of the length it
// says, not to be cached or sniffed.
func compatCall(t *testing.T, h *Handler, req *http.Request) (*httptest.ResponseRecorder, map[string]any, any) {
	t.Helper()
	what := req.Method + " " + req.URL.Path
	next := caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error {
		t.Errorf("compat request %s reached the next handler", what)
		return nil
	})
	w, mpErr := serveOnLoopback(t, h, req, next)
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(w.Body.Bytes()))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("%s: answer is not a JSON object: %v: %q", what, err, w.Body)
	}
	hdr := w.Header()
	if ct := hdr.Get("Content-Type"); ct != "application/json; charset=utf-8" {
		t.Errorf("%s: Content-Type %q", what, ct)
	}
	if hdr.Get("Cache-Control") != "no-store" || hdr.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("%s: headers %v", what, hdr)
	}
	if cl := hdr.Get("Content-Length"); cl != strconv.Itoa(w.Body.Len()) {
		t.Errorf("%s: Content-Length %q for %d bytes", what, cl, w.Body.Len())
	}
	return w, m, mpErr
}

// num reads an integer field of a decoded answer; ok is false when it is
// absent or not a number.
func num(m map[string]any, key string) (int, bool) {
	n, ok := m[key].(json.Number)
	if !ok {
		return 0, false
	}
	i, err := strconv.Atoi(n.String())
	return i, err == nil
}

// str reads a string field of a decoded answer ("" when absent).
func str(m map[string]any, key string) string {
	s, _ := m[key].(string)
	return s
}

func compatGet(path string, q url.Values) *http.Request {
	return httptest.NewRequest("GET", "/mp-compat"+path+"?"+q.Encode(), nil)
}

// wantWxErr checks a WeChat-shaped error: HTTP 200, errcode, errmsg with
// the platform's text and a rid, nothing else.
func wantWxErr(t *testing.T, what string, w *httptest.ResponseRecorder, m map[string]any, errcode int, msg string) {
	t.Helper()
	if n, ok := num(m, "errcode"); w.Code != 200 || !ok || n != errcode {
		t.Errorf("%s: %d %s, want HTTP 200 errcode %d", what, w.Code, w.Body, errcode)
		return
	}
	if em := str(m, "errmsg"); !strings.HasPrefix(em, msg+", rid: ") || len(em) <= len(msg+", rid: ") {
		t.Errorf("%s: errmsg %q, want %q and a rid", what, em, msg)
	}
	if len(m) != 2 {
		t.Errorf("%s: answer has more than errcode and errmsg: %s", what, w.Body)
	}
}

const (
	wxApp    = "wxdemoapp0000001"
	wxSecret = "demo-wechat-secret"
	ttApp    = "ttdemoapp0000001"
	ttSecret = "demo-douyin-secret"
)

func wxCode2SessionQuery(code string) url.Values {
	return url.Values{"appid": {wxApp}, "secret": {wxSecret}, "js_code": {code}, "grant_type": {"authorization_code"}}
}

// WeChat's jscode2session: each parameter is checked as the platform does,
// with its error number, before any platform call; a code is answered from
// the session the login route exchanged, without a platform call.
func TestCompatWeChatCode2SessionParameters(t *testing.T) {
	sim := mpsim.New(mpsim.Options{})
	h := metricsHandler(t, sim)
	lr, err := sim.Login(wxApp, "compat-params")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name    string
		method  string
		mod     func(q url.Values)
		errcode int
		msg     string
	}{
		{"no appid", "GET", func(q url.Values) { q.Del("appid") }, 41002, "appid missing"},
		{"no secret", "GET", func(q url.Values) { q.Del("secret") }, 41004, "appsecret missing"},
		{"no js_code", "GET", func(q url.Values) { q.Del("js_code") }, 41008, "missing code"},
		{"no grant_type", "GET", func(q url.Values) { q.Del("grant_type") }, 40002, "invalid grant_type"},
		{"token grant_type", "GET", func(q url.Values) { q.Set("grant_type", "client_credential") }, 40002, "invalid grant_type"},
		{"other appid", "GET", func(q url.Values) { q.Set("appid", "wxdemoapp0000002") }, 40013, "invalid appid"},
		{"appid prefix", "GET", func(q url.Values) { q.Set("appid", wxApp[:len(wxApp)-1]) }, 40013, "invalid appid"},
		{"wrong secret", "GET", func(q url.Values) { q.Set("secret", wxSecret+"x") }, 40125, "invalid appsecret"},
		{"both wrong", "GET", func(q url.Values) { q.Set("appid", "wx0"); q.Set("secret", "s") }, 40013, "invalid appid"},
		{"POST", "POST", func(url.Values) {}, 41002, "appid missing"},
	} {
		q := wxCode2SessionQuery(lr.Code)
		c.mod(q)
		req := httptest.NewRequest(c.method, "/mp-compat/sns/jscode2session?"+q.Encode(), nil)
		w, m, mpErr := compatCall(t, h, req)
		wantWxErr(t, c.name, w, m, c.errcode, c.msg)
		if mpErr != "bad_request" {
			t.Errorf("%s: mp_error %v, want bad_request", c.name, mpErr)
		}
	}
	if n := sim.Calls(mpsim.EndpointJSCode2Session); n != 0 {
		t.Fatalf("refused requests made %d platform calls", n)
	}

	// The same code, asked properly: one exchange, then the store.
	var first map[string]any
	for i := range 2 {
		w, m, mpErr := compatCall(t, h, compatGet("/sns/jscode2session", wxCode2SessionQuery(lr.Code)))
		if w.Code != 200 || mpErr != nil || str(m, "openid") != lr.OpenID || str(m, "unionid") != lr.UnionID || str(m, "session_key") == "" {
			t.Fatalf("ask %d: %d %s, mp_error %v", i, w.Code, w.Body, mpErr)
		}
		if _, has := m["errcode"]; has || len(m) != 3 {
			t.Errorf("ask %d: a success is openid, session_key, unionid only: %s", i, w.Body)
		}
		if first == nil {
			first = m
		} else if str(m, "session_key") != str(first, "session_key") {
			t.Errorf("ask %d: another session key than the first answer", i)
		}
	}
	if n := sim.Calls(mpsim.EndpointJSCode2Session); n != 1 {
		t.Fatalf("%d platform calls for one code asked twice, want 1", n)
	}
	s, err := h.store.Lookup(context.Background(), h.codeRef(lr.Code))
	if err != nil || s.SessionKey != str(first, "session_key") {
		t.Fatalf("the answered key is not the stored session's: %v", err)
	}
}

// A code the login route exchanged is answered from its session, however
// often; the request is kept out of the access log (its query holds the
// secret and the code).
func TestCompatWeChatCodeSeenAtLogin(t *testing.T) {
	sim := mpsim.New(mpsim.Options{})
	h := metricsHandler(t, sim)
	lr, err := sim.Login(wxApp, "compat-seen")
	if err != nil {
		t.Fatal(err)
	}
	up := &upstream{}
	w, mpErr := serveOnLoopback(t, h, jsonRequest("POST", "/login", `{"code":"`+lr.Code+`"}`), up)
	if w.Code != 200 || mpErr != nil || up.calls() != 1 {
		t.Fatalf("login: %d %s, mp_error %v", w.Code, w.Body, mpErr)
	}
	stored, err := h.store.Lookup(context.Background(), h.codeRef(lr.Code))
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		req := compatGet("/sns/jscode2session", wxCode2SessionQuery(lr.Code))
		_, m, _ := compatCall(t, h, req)
		if str(m, "openid") != lr.OpenID || str(m, "session_key") != stored.SessionKey || str(m, "unionid") != lr.UnionID {
			t.Fatalf("compat answer %v, want the login's session", m)
		}
	}
	if n := sim.Calls(mpsim.EndpointJSCode2Session); n != 1 {
		t.Fatalf("%d platform calls, want the login's one", n)
	}

	req := compatGet("/sns/jscode2session", wxCode2SessionQuery(lr.Code))
	req = req.WithContext(context.WithValue(req.Context(), http.LocalAddrContextKey, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9001}))
	rw := httptest.NewRecorder()
	req = caddyhttp.PrepareRequest(req, caddy.NewReplacer(), rw, nil)
	if err := h.ServeHTTP(rw, req, up); err != nil {
		t.Fatal(err)
	}
	if skip, _ := caddyhttp.GetVar(req.Context(), caddyhttp.LogSkipVar).(bool); !skip || rw.Code != 200 {
		t.Fatalf("compat request: %d, log_skip %v", rw.Code, skip)
	}
	if up.calls() != 1 {
		t.Fatal("a compat request reached the upstream")
	}
}

// The platform's own error number comes back to the backend as the
// platform gave it; a failure without one is -1 "system error". A dead
// code's failure is recorded: asking again makes no platform call.
func TestCompatWeChatErrcodeMapping(t *testing.T) {
	sim := mpsim.New(mpsim.Options{})
	h := metricsHandler(t, sim)
	for i, c := range []struct {
		fault   mpsim.Fault
		errcode int
		msg     string
		mpErr   string
		dead    bool // recorded for minutes: a second ask makes no call
	}{
		{mpsim.Fault{Errcode: 45011}, 45011, "api minute-quota reach limit mustslower retry next minute", "rate_limited", false},
		{mpsim.Fault{Errcode: 40226}, 40226, "code blocked", "user_blocked", true},
		{mpsim.Fault{Errcode: 40163}, 40163, "code been used", "invalid_code", true},
		{mpsim.Fault{Errcode: 40029}, 40029, "invalid code", "invalid_code", true},
		{mpsim.Fault{Errcode: 40013}, 40013, "invalid appid", "platform_error", false},
		{mpsim.Fault{Errcode: -1}, -1, "system error", "platform_error", false},
		{mpsim.Fault{HTTPStatus: 502}, -1, "system error", "platform_error", false},
		{mpsim.Fault{Errcode: 61234}, 61234, "system error", "platform_error", false},
	} {
		lr, err := sim.Login(wxApp, fmt.Sprintf("compat-map-%d", i))
		if err != nil {
			t.Fatal(err)
		}
		c.fault.Endpoint = mpsim.EndpointJSCode2Session
		sim.Inject(c.fault)
		before := sim.Calls(mpsim.EndpointJSCode2Session)
		what := fmt.Sprintf("fault %+v", c.fault)
		w, m, mpErr := compatCall(t, h, compatGet("/sns/jscode2session", wxCode2SessionQuery(lr.Code)))
		sim.ClearFaults()
		wantWxErr(t, what, w, m, c.errcode, c.msg)
		if mpErr != c.mpErr {
			t.Errorf("%s: mp_error %v, want %s", what, mpErr, c.mpErr)
		}
		if sim.Calls(mpsim.EndpointJSCode2Session) == before {
			t.Errorf("%s: no platform call", what)
		}
		if c.dead {
			calls := sim.Calls(mpsim.EndpointJSCode2Session)
			w, m, _ = compatCall(t, h, compatGet("/sns/jscode2session", wxCode2SessionQuery(lr.Code)))
			wantWxErr(t, what+", asked again", w, m, c.errcode, c.msg)
			if n := sim.Calls(mpsim.EndpointJSCode2Session); n != calls {
				t.Errorf("%s: asked again, %d more platform calls", what, n-calls)
			}
		}
	}
	// A code the platform never issued, without any fault.
	w, m, mpErr := compatCall(t, h, compatGet("/sns/jscode2session", wxCode2SessionQuery("never-issued")))
	wantWxErr(t, "unknown code", w, m, 40029, "invalid code")
	if mpErr != "invalid_code" {
		t.Errorf("unknown code: mp_error %v", mpErr)
	}
}

// The mapping of failures without a platform number onto the platforms'
// nearest one.
func TestCompatErrcodeFallbacks(t *testing.T) {
	for _, c := range []struct {
		err        error
		wx, tt, an int
	}{
		{mperr.Platform(mperr.InvalidCode, 40163, "used"), 40163, 40163, 40163},
		{mperr.New(mperr.InvalidCode, "replayed without a number"), 40029, 40018, 40019},
		{mperr.New(mperr.RateLimited, "429"), 45011, -1, -1},
		{mperr.New(mperr.MissingCode, "no code"), 41008, 40014, 40014},
		{mperr.Wrap(mperr.StoreUnavailable, "down", store.ErrUnavailable), -1, -1, -1},
		{mperr.New(mperr.PlatformTimeout, "slow"), -1, -1, -1},
		{&mperr.Error{Code: mperr.PlatformError, HasErrcode: true, Errcode: 0}, -1, -1, -1},
		{errors.New("anything"), -1, -1, -1},
	} {
		if got := wxErrcode(c.err); got != c.wx {
			t.Errorf("wxErrcode(%v) = %d, want %d", c.err, got, c.wx)
		}
		if got := ttErrcode(c.err, false); got != c.tt {
			t.Errorf("ttErrcode(%v, code) = %d, want %d", c.err, got, c.tt)
		}
		if got := ttErrcode(c.err, true); got != c.an {
			t.Errorf("ttErrcode(%v, anonymous only) = %d, want %d", c.err, got, c.an)
		}
	}
}

func tokenQuery() url.Values {
	return url.Values{"grant_type": {"client_credential"}, "appid": {wxApp}, "secret": {wxSecret}}
}

func stableTokenRequest(body string) *http.Request {
	return jsonRequest("POST", "/mp-compat/cgi-bin/stable_token", body)
}

// The token endpoints answer the handler's shared token: one platform
// fetch whatever the backend asks, force_refresh included, with an
// expires_in that ends when the handler refreshes it.
func TestCompatWeChatTokenEndpoints(t *testing.T) {
	sim := mpsim.New(mpsim.Options{})
	h := metricsHandler(t, sim)

	w, m, mpErr := compatCall(t, h, compatGet("/cgi-bin/token", tokenQuery()))
	tok := str(m, "access_token")
	exp, ok := num(m, "expires_in")
	// refresh 0.8 of 7200 s: 5760 s after the fetch.
	if w.Code != 200 || mpErr != nil || tok == "" || !ok || exp > 5760 || exp < 5700 || len(m) != 2 {
		t.Fatalf("token: %d %s, mp_error %v", w.Code, w.Body, mpErr)
	}
	for _, body := range []string{
		`{"grant_type":"client_credential","appid":"` + wxApp + `","secret":"` + wxSecret + `"}`,
		`{"grant_type":"client_credential","appid":"` + wxApp + `","secret":"` + wxSecret + `","force_refresh":true}`,
	} {
		w, m, mpErr = compatCall(t, h, stableTokenRequest(body))
		if w.Code != 200 || mpErr != nil || str(m, "access_token") != tok {
			t.Fatalf("stable_token %s: %d %s, mp_error %v", body, w.Code, w.Body, mpErr)
		}
	}
	w, m, _ = compatCall(t, h, compatGet("/cgi-bin/token", tokenQuery()))
	if str(m, "access_token") != tok {
		t.Fatalf("second token: %s", w.Body)
	}
	if n := sim.Calls(mpsim.EndpointStableToken) + sim.Calls(mpsim.EndpointToken); n != 1 {
		t.Fatalf("%d token fetches from the platform, want 1", n)
	}

	stableBody := func(mod func(m map[string]any)) string {
		m := map[string]any{"grant_type": "client_credential", "appid": wxApp, "secret": wxSecret}
		mod(m)
		b, _ := json.Marshal(m)
		return string(b)
	}
	big := stableBody(func(m map[string]any) { m["pad"] = strings.Repeat("a", DefaultMaxBodySize) })
	for _, c := range []struct {
		name    string
		req     *http.Request
		errcode int
		msg     string
	}{
		{"token by POST", httptest.NewRequest("POST", "/mp-compat/cgi-bin/token?"+tokenQuery().Encode(), nil), 43001, "require GET method"},
		{"token without appid", compatGet("/cgi-bin/token", url.Values{"grant_type": {"client_credential"}, "secret": {wxSecret}}), 41002, "appid missing"},
		{"token without secret", compatGet("/cgi-bin/token", url.Values{"grant_type": {"client_credential"}, "appid": {wxApp}}), 41004, "appsecret missing"},
		{"token, code grant", compatGet("/cgi-bin/token", url.Values{"grant_type": {"authorization_code"}, "appid": {wxApp}, "secret": {wxSecret}}), 40002, "invalid grant_type"},
		{"token, other appid", compatGet("/cgi-bin/token", url.Values{"grant_type": {"client_credential"}, "appid": {"wx0"}, "secret": {wxSecret}}), 40013, "invalid appid"},
		{"token, wrong secret", compatGet("/cgi-bin/token", url.Values{"grant_type": {"client_credential"}, "appid": {wxApp}, "secret": {"nope"}}), 40001, "invalid credential, access_token is invalid or not latest"},
		{"stable_token by GET", compatGet("/cgi-bin/stable_token", tokenQuery()), 43002, "require POST method"},
		{"stable_token not JSON", stableTokenRequest(`grant_type=client_credential`), 47001, "data format error"},
		{"stable_token over max_body_size", stableTokenRequest(big), 47001, "data format error"},
		{"stable_token over max_body_size, in spaces", stableTokenRequest(stableBody(func(map[string]any) {}) + strings.Repeat(" ", DefaultMaxBodySize)), 47001, "data format error"},
		{"stable_token without appid", stableTokenRequest(stableBody(func(m map[string]any) { delete(m, "appid") })), 41002, "appid missing"},
		{"stable_token without grant_type", stableTokenRequest(stableBody(func(m map[string]any) { delete(m, "grant_type") })), 40002, "invalid grant_type"},
		{"stable_token, wrong secret", stableTokenRequest(stableBody(func(m map[string]any) { m["secret"] = "nope" })), 40001, "invalid credential, access_token is invalid or not latest"},
		{"unknown path", compatGet("/cgi-bin/tokens", tokenQuery()), 40066, "invalid url"},
		{"the prefix itself", httptest.NewRequest("GET", "/mp-compat", nil), 40066, "invalid url"},
		{"Douyin's path", httptest.NewRequest("POST", "/mp-compat/api/apps/v2/jscode2session", strings.NewReader(`{}`)), 40066, "invalid url"},
	} {
		w, m, mpErr := compatCall(t, h, c.req)
		wantWxErr(t, c.name, w, m, c.errcode, c.msg)
		if mpErr != "bad_request" {
			t.Errorf("%s: mp_error %v", c.name, mpErr)
		}
		if strings.Contains(w.Body.String(), tok) {
			t.Errorf("%s: a refusal carries the token", c.name)
		}
	}
	if n := sim.Calls(mpsim.EndpointStableToken) + sim.Calls(mpsim.EndpointToken); n != 1 {
		t.Fatalf("%d token fetches after the refusals, want 1", n)
	}
}

// expires_in ends when the handler refreshes the token: the configured
// fraction of its lifetime, and at least 30 s before it expires. It falls
// back to 300 s when the shared record holds another token (another
// instance refreshed it) or is gone (evicted).
func TestCompatTokenExpiresIn(t *testing.T) {
	for _, c := range []struct {
		refresh  string
		min, max int
	}{
		{"0.5", 3540, 3600},
		{"0.999", 7110, 7170}, // 7192.8 s is later than 30 s before the end
	} {
		sim := mpsim.New(mpsim.Options{})
		h := provisionAt(t, sim, `{"platform":"wechat","app_id":"`+wxApp+`","app_secret":"`+wxSecret+`","api_base":"@API@",
			"store":{"type":"memory","max_sessions":1},"access_token":{"mode":"classic","refresh":`+c.refresh+`},"compat":{"prefix":"/mp-compat"}}`)
		_, m, _ := compatCall(t, h, compatGet("/cgi-bin/token", tokenQuery()))
		tok := str(m, "access_token")
		if exp, ok := num(m, "expires_in"); tok == "" || !ok || exp > c.max || exp < c.min {
			t.Fatalf("refresh %s: %v, want expires_in in [%d, %d]", c.refresh, m, c.min, c.max)
		}
		if sim.Calls(mpsim.EndpointToken) != 1 || sim.Calls(mpsim.EndpointStableToken) != 0 {
			t.Fatalf("classic mode: calls %v", sim.AllCalls())
		}
		ctx := context.Background()
		now := time.Now()
		rec, _ := json.Marshal(map[string]any{"token": "another-instance-token", "fetched_at": now, "expires_at": now.Add(2 * time.Hour)})
		if err := h.store.Set(ctx, accesstoken.StoreName, rec, 2*time.Hour); err != nil {
			t.Fatal(err)
		}
		_, m, _ = compatCall(t, h, compatGet("/cgi-bin/token", tokenQuery()))
		if exp, _ := num(m, "expires_in"); str(m, "access_token") != tok || exp != compatFallbackExpiresIn {
			t.Fatalf("record of another token: %v, want the same token for %d s", m, compatFallbackExpiresIn)
		}
		// max_sessions 1: another named value evicts the record.
		if err := h.store.Set(ctx, "some-other-name", []byte("x"), time.Hour); err != nil {
			t.Fatal(err)
		}
		if _, err := h.store.Get(ctx, accesstoken.StoreName); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("the record was not evicted: %v", err)
		}
		_, m, _ = compatCall(t, h, compatGet("/cgi-bin/token", tokenQuery()))
		if exp, _ := num(m, "expires_in"); str(m, "access_token") != tok || exp != compatFallbackExpiresIn {
			t.Fatalf("record evicted: %v, want the same token for %d s", m, compatFallbackExpiresIn)
		}
		if sim.Calls(mpsim.EndpointToken) != 1 {
			t.Fatalf("the backend's asks fetched tokens: %v", sim.AllCalls())
		}
	}
}

// A token the handler cannot obtain is answered with the platform's
// number (or -1), as a failure of the handler's side; the next ask
// fetches again.
func TestCompatTokenFetchFailure(t *testing.T) {
	sim := mpsim.New(mpsim.Options{})
	h := provisionAt(t, sim, `{"platform":"wechat","app_id":"`+wxApp+`","app_secret":"`+wxSecret+`","api_base":"@API@",
		"platform_retries":0,"store":{"type":"memory","max_sessions":100},"compat":{"prefix":"/mp-compat"}}`)
	for _, c := range []struct {
		fault   mpsim.Fault
		errcode int
		msg     string
		mpErr   string
	}{
		{mpsim.Fault{Errcode: 40013}, 40013, "invalid appid", "platform_error"},
		{mpsim.Fault{Errcode: 45009}, 45009, "reach max api daily quota limit", "rate_limited"},
		{mpsim.Fault{Errcode: -1}, -1, "system error", "platform_error"},
		{mpsim.Fault{HTTPStatus: 503}, -1, "system error", "platform_error"},
	} {
		c.fault.Endpoint = mpsim.EndpointStableToken
		sim.Inject(c.fault)
		w, m, mpErr := compatCall(t, h, compatGet("/cgi-bin/token", tokenQuery()))
		sim.ClearFaults()
		what := fmt.Sprintf("fault %+v", c.fault)
		wantWxErr(t, what, w, m, c.errcode, c.msg)
		if mpErr != c.mpErr {
			t.Errorf("%s: mp_error %v, want %s", what, mpErr, c.mpErr)
		}
	}
	calls := sim.Calls(mpsim.EndpointStableToken)
	if _, m, mpErr := compatCall(t, h, compatGet("/cgi-bin/token", tokenQuery())); str(m, "access_token") == "" || mpErr != nil {
		t.Fatalf("after the faults: %v, mp_error %v", m, mpErr)
	}
	if sim.Calls(mpsim.EndpointStableToken) != calls+1 {
		t.Fatal("a failed fetch was remembered instead of fetching again")
	}
}

// douyinCompat provisions a Douyin handler with a login route and compat.
func douyinCompat(t *testing.T, sim *mpsim.Sim) *Handler {
	t.Helper()
	return provisionAt(t, sim, `{"platform":"douyin","app_id":"`+ttApp+`","app_secret":"`+ttSecret+`","api_base":"@API@",
		"platform_retries":0,"login":"/login","store":{"type":"memory","max_sessions":100},"compat":{"prefix":"/mp-compat"}}`)
}

func ttV2(body string) *http.Request {
	return jsonRequest("POST", "/mp-compat/api/apps/v2/jscode2session", body)
}

func ttV2Body(code, anon string) string {
	b, _ := json.Marshal(map[string]string{"appid": ttApp, "secret": ttSecret, "code": code, "anonymous_code": anon})
	return string(b)
}

func ttV1(code, anon string) *http.Request {
	return compatGet("/api/apps/jscode2session", url.Values{"appid": {ttApp}, "secret": {ttSecret}, "code": {code}, "anonymous_code": {anon}})
}

// wantTTV2Err checks Douyin's v2 error shape: HTTP 200, err_no, err_tips,
// a log_id and data null.
func wantTTV2Err(t *testing.T, what string, w *httptest.ResponseRecorder, m map[string]any, errNo int, tips string) {
	t.Helper()
	n, ok := num(m, "err_no")
	data, hasData := m["data"]
	if w.Code != 200 || !ok || n != errNo || str(m, "err_tips") != tips || str(m, "log_id") == "" || !hasData || data != nil || len(m) != 4 {
		t.Errorf("%s: %d %s, want err_no %d %q, a log_id and data null", what, w.Code, w.Body, errNo, tips)
	}
}

func ttV2Data(t *testing.T, what string, w *httptest.ResponseRecorder, m map[string]any) map[string]any {
	t.Helper()
	d, _ := m["data"].(map[string]any)
	if n, ok := num(m, "err_no"); w.Code != 200 || !ok || n != 0 || str(m, "err_tips") != "success" || str(m, "log_id") == "" || d == nil {
		t.Fatalf("%s: %d %s", what, w.Code, w.Body)
	}
	for _, k := range []string{"session_key", "openid", "anonymous_openid", "unionid"} {
		if _, ok := d[k]; !ok {
			t.Errorf("%s: data has no %q: %s", what, k, w.Body)
		}
	}
	return d
}

// Douyin's v2 and legacy v1 endpoints: their success shapes, a login
// code (and anonymous code) the login route exchanged answered from the
// store, an unseen one exchanged once, an anonymous code alone.
func TestCompatDouyinAnswers(t *testing.T) {
	sim := mpsim.New(mpsim.Options{})
	h := douyinCompat(t, sim)
	ctx := context.Background()

	// Seen at login, with an anonymous code.
	lr, err := sim.Login(ttApp, "tt-seen")
	if err != nil {
		t.Fatal(err)
	}
	anon, err := sim.AnonymousLogin(ttApp, "device-1")
	if err != nil {
		t.Fatal(err)
	}
	up := &upstream{}
	if w, mpErr := serveOnLoopback(t, h, jsonRequest("POST", "/login", `{"code":"`+lr.Code+`","anonymous_code":"`+anon+`"}`), up); w.Code != 200 || mpErr != nil {
		t.Fatalf("login: %d %s %v", w.Code, w.Body, mpErr)
	}
	stored, err := h.store.Lookup(ctx, h.codeRef(lr.Code))
	if err != nil {
		t.Fatal(err)
	}
	aoid := mpsim.AnonymousOpenID(ttApp, "device-1")
	w, m, mpErr := compatCall(t, h, ttV2(ttV2Body(lr.Code, anon)))
	d := ttV2Data(t, "v2, seen at login", w, m)
	if mpErr != nil || str(d, "openid") != lr.OpenID || str(d, "session_key") != stored.SessionKey || str(d, "anonymous_openid") != aoid {
		t.Fatalf("v2, seen at login: %s", w.Body)
	}
	w, m, _ = compatCall(t, h, ttV1(lr.Code, ""))
	if str(m, "openid") != lr.OpenID || str(m, "session_key") != stored.SessionKey || m["err_no"] != nil || m["errcode"] != nil {
		t.Fatalf("v1, seen at login: %s", w.Body)
	}
	if n := sim.Calls(mpsim.EndpointJSCode2Session); n != 1 {
		t.Fatalf("%d platform calls, want the login's one", n)
	}

	// Unseen: one exchange each, then the store.
	lr2, _ := sim.Login(ttApp, "tt-unseen")
	for i := range 2 {
		w, m, _ := compatCall(t, h, ttV1(lr2.Code, ""))
		if w.Code != 200 || str(m, "openid") != lr2.OpenID || str(m, "session_key") == "" {
			t.Fatalf("v1 ask %d: %d %s", i, w.Code, w.Body)
		}
		if _, ok := m["anonymous_openid"]; !ok {
			t.Errorf("v1 ask %d: no anonymous_openid key: %s", i, w.Body)
		}
	}
	if n := sim.Calls(mpsim.EndpointJSCode2Session); n != 2 {
		t.Fatalf("%d platform calls, want 2", n)
	}

	// An anonymous code alone.
	anon2, _ := sim.AnonymousLogin(ttApp, "device-2")
	for i := range 2 {
		w, m, _ := compatCall(t, h, ttV2(ttV2Body("", anon2)))
		d := ttV2Data(t, "anonymous only", w, m)
		if str(d, "anonymous_openid") != mpsim.AnonymousOpenID(ttApp, "device-2") || str(d, "openid") != "" || str(d, "session_key") != "" {
			t.Fatalf("anonymous only, ask %d: %s", i, w.Body)
		}
	}
	if n := sim.Calls(mpsim.EndpointJSCode2Session); n != 3 {
		t.Fatalf("%d platform calls, want 3", n)
	}
}

// Douyin's parameter checks and error numbers, in each endpoint's own
// shape; refusals make no platform call.
func TestCompatDouyinErrors(t *testing.T) {
	sim := mpsim.New(mpsim.Options{})
	h := douyinCompat(t, sim)
	lr, _ := sim.Login(ttApp, "tt-errors")
	body := func(mod func(m map[string]string)) string {
		m := map[string]string{"appid": ttApp, "secret": ttSecret, "code": lr.Code}
		mod(m)
		b, _ := json.Marshal(m)
		return string(b)
	}
	for _, c := range []struct {
		name  string
		req   *http.Request
		errNo int
		tips  string
	}{
		{"GET", compatGet("/api/apps/v2/jscode2session", url.Values{"appid": {ttApp}, "secret": {ttSecret}, "code": {lr.Code}}), 40014, "bad params"},
		{"not JSON", ttV2(`appid=x`), 40014, "bad params"},
		{"over max_body_size", ttV2(body(func(m map[string]string) { m["pad"] = strings.Repeat("a", DefaultMaxBodySize) })), 40014, "bad params"},
		{"over max_body_size, in spaces", ttV2(body(func(map[string]string) {}) + strings.Repeat(" ", DefaultMaxBodySize)), 40014, "bad params"},
		{"empty object", ttV2(`{}`), 40014, "bad params"},
		{"no secret", ttV2(body(func(m map[string]string) { delete(m, "secret") })), 40014, "bad params"},
		{"no codes", ttV2(body(func(m map[string]string) { delete(m, "code") })), 40014, "bad params"},
		{"other appid", ttV2(body(func(m map[string]string) { m["appid"] = "ttdemoapp0000002" })), 40015, "bad appid"},
		{"wrong secret", ttV2(body(func(m map[string]string) { m["secret"] = "x" })), 40017, "bad secret"},
	} {
		w, m, mpErr := compatCall(t, h, c.req)
		wantTTV2Err(t, c.name, w, m, c.errNo, c.tips)
		if mpErr != "bad_request" {
			t.Errorf("%s: mp_error %v", c.name, mpErr)
		}
	}
	for _, c := range []struct {
		name    string
		req     *http.Request
		errcode int
		msg     string
	}{
		{"v1 POST", httptest.NewRequest("POST", "/mp-compat/api/apps/jscode2session", strings.NewReader(body(func(map[string]string) {}))), 40014, "bad params"},
		{"v1 no appid", compatGet("/api/apps/jscode2session", url.Values{"secret": {ttSecret}, "code": {lr.Code}}), 40014, "bad params"},
		{"v1 wrong secret", compatGet("/api/apps/jscode2session", url.Values{"appid": {ttApp}, "secret": {"x"}, "code": {lr.Code}}), 40017, "bad secret"},
	} {
		w, m, mpErr := compatCall(t, h, c.req)
		if n, ok := num(m, "errcode"); w.Code != 200 || !ok || n != c.errcode || str(m, "errmsg") != c.msg || len(m) != 2 || mpErr != "bad_request" {
			t.Errorf("%s: %d %s, mp_error %v; want errcode %d %q", c.name, w.Code, w.Body, mpErr, c.errcode, c.msg)
		}
	}
	for _, req := range []*http.Request{
		httptest.NewRequest("GET", "/mp-compat/sns/jscode2session?"+wxCode2SessionQuery(lr.Code).Encode(), nil),
		jsonRequest("POST", "/mp-compat/api/apps/v3/jscode2session", ttV2Body(lr.Code, "")),
	} {
		w, m, mpErr := compatCall(t, h, req)
		n, _ := num(m, "err_no")
		if w.Code != 404 || n != 404 || str(m, "err_tips") != "invalid url" || m["data"] != nil || mpErr != "bad_request" {
			t.Errorf("%s: %d %s, mp_error %v", req.URL.Path, w.Code, w.Body, mpErr)
		}
	}
	if n := sim.Calls(mpsim.EndpointJSCode2Session); n != 0 {
		t.Fatalf("refusals made %d platform calls", n)
	}

	// The platform's own numbers.
	w, m, mpErr := compatCall(t, h, ttV2(ttV2Body("never-issued", "")))
	wantTTV2Err(t, "unknown code", w, m, 40018, "bad code")
	if mpErr != "invalid_code" {
		t.Errorf("unknown code: mp_error %v", mpErr)
	}
	w, m, _ = compatCall(t, h, ttV2(ttV2Body("", "never-issued-anon")))
	wantTTV2Err(t, "unknown anonymous code", w, m, 40019, "bad anonymous_code")
	w, m, _ = compatCall(t, h, compatGet("/api/apps/jscode2session", url.Values{"appid": {ttApp}, "secret": {ttSecret}, "code": {"never-issued-2"}}))
	if n, _ := num(m, "errcode"); n != 40018 || str(m, "errmsg") != "bad code" {
		t.Errorf("v1 unknown code: %s", w.Body)
	}
	sim.Inject(mpsim.Fault{Endpoint: mpsim.EndpointJSCode2Session, Errcode: -1})
	w, m, mpErr = compatCall(t, h, ttV2(ttV2Body(lr.Code, "")))
	sim.ClearFaults()
	wantTTV2Err(t, "platform busy", w, m, -1, "system error")
	if mpErr != "platform_error" {
		t.Errorf("platform busy: mp_error %v", mpErr)
	}
	lr2, _ := sim.Login(ttApp, "tt-errors-2")
	sim.Inject(mpsim.Fault{Endpoint: mpsim.EndpointJSCode2Session, Errcode: 41234, Times: 1})
	w, m, _ = compatCall(t, h, ttV2(ttV2Body(lr2.Code, "")))
	wantTTV2Err(t, "a number of the platform's own", w, m, 41234, "error 41234")
}

// The compat prefix's shape and its overlaps with the routes are refused
// when the config loads.
func TestCompatPrefixChecked(t *testing.T) {
	for _, c := range []struct {
		prefix, login string
		ok            bool
	}{
		{"/mp-compat", "/api/login", true},
		{"/mp", "/mpx/login", true},
		{"/a/b", "/a/*", false},
		{"/mp-compat", "/mp-compat/login", false},
		{"/mp-compat", "/mp-compat", false},
		{"/mp-compat", "/mp*", false},
		{"/mp-compat", "/mp-compat/x/*", false},
		{"", "/api/login", false},
		{"/", "/api/login", false},
		{"mp-compat", "/api/login", false},
		{"/mp-compat/", "/api/login", false},
		{"/mp*", "/api/login", false},
		{"/mp?x", "/api/login", false},
		{"/a/../mp", "/api/login", false},
		{"//mp", "/api/login", false},
	} {
		raw := fmt.Sprintf(`{"platform":"douyin","app_id":"tt1","app_secret":"s","login":%q,"compat":{"prefix":%q}}`, c.login, c.prefix)
		_, err := provisionJSON(t, raw)
		var fe *FieldError
		switch {
		case c.ok && err != nil:
			t.Errorf("prefix %q, login %q: %v", c.prefix, c.login, err)
		case !c.ok && (!errors.As(err, &fe) || fe.Field != "compat"):
			t.Errorf("prefix %q, login %q: err %v, want a compat field error", c.prefix, c.login, err)
		}
	}
}
