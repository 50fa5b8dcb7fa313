package module

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/accesstoken"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/mperr"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/mpsim"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/redistest"
)

// phoneCode mints a WeChat phone code for user's number.
func phoneCode(t *testing.T, sim *mpsim.Sim, user, number string) string {
	t.Helper()
	code, err := sim.PhoneCode(wxApp, user, number)
	if err != nil {
		t.Fatal(err)
	}
	return code
}

// tokenAnswer is a login answer carrying token at data.token (the binding
// of metricsHandler).
func tokenAnswer(token string) func(http.ResponseWriter, *http.Request) error {
	return answerJSON(200, `{"data":{"token":"`+token+`"}}`)
}

// wantRefusal checks an answer the handler gave itself: status, error
// code and platform errcode (0: none).
func wantRefusal(t *testing.T, what string, w *httptest.ResponseRecorder, up *upstream, status int, code string, errcode int) {
	t.Helper()
	var b mperr.Body
	if err := json.Unmarshal(w.Body.Bytes(), &b); err != nil {
		t.Fatalf("%s: %d %q: %v", what, w.Code, w.Body, err)
	}
	got := 0
	if b.PlatformErrcode != nil {
		got = *b.PlatformErrcode
	}
	if w.Code != status || b.Error != mperr.Code(code) || got != errcode || up.calls() != 0 {
		t.Errorf("%s: %d %s (upstream calls %d), want %d %s errcode %d", what, w.Code, w.Body, up.calls(), status, code, errcode)
	}
}

// A phone code alone: exchanged once; a retry with the same code, on this
// instance or another sharing the store, gets the same number from the
// kept result without a platform call. The kept result is sealed.
func TestPhoneCodeRetryAnsweredFromCache(t *testing.T) {
	sim := mpsim.New(mpsim.Options{})
	h := metricsHandler(t, sim)
	h2 := metricsHandler(t, sim) // another instance: same app, same (pooled) memory store
	code := phoneCode(t, sim, "pc-cache", "13900001111")
	for i, hh := range []*Handler{h, h, h2} {
		up := &upstream{}
		ops := storeOps(t, metrics.storeTime, "memory")
		w, mpErr := serveOnLoopback(t, hh, jsonRequest("POST", "/phone", `{"code":"`+code+`","openid":"forged","phoneNumber":"1"}`), up)
		r, body := up.last(t)
		if w.Code != 200 || mpErr != nil || r == nil {
			t.Fatalf("request %d: %d %s, mp_error %v", i, w.Code, w.Body, mpErr)
		}
		// A retry reads the kept result and nothing else: no claim, whose
		// lapse would otherwise let it spend the code again.
		if got := diff(storeOps(t, metrics.storeTime, "memory"), ops); i > 0 && !reflect.DeepEqual(got, map[string]float64{"get": 1}) {
			t.Errorf("request %d: store operations %v, want one get", i, got)
		}
		for k, v := range map[string]string{HeaderPhone: "13900001111", HeaderPurePhone: "13900001111", HeaderCountryCode: "86",
			HeaderPlatform: "wechat", HeaderAppID: wxApp, HeaderOpenID: ""} {
			if r.Header.Get(k) != v {
				t.Errorf("request %d: %s %q, want %q", i, k, r.Header.Get(k), v)
			}
		}
		// No session: no openid, the forged one removed; the shared
		// "code" field kept for the upstream.
		if body[FieldPhoneNumber] != "13900001111" || body[FieldCountryCode] != "86" || body["code"] != code {
			t.Errorf("request %d: forwarded body %v", i, body)
		}
		if _, has := body[FieldOpenID]; has {
			t.Errorf("request %d: an openid was forwarded without a session: %v", i, body)
		}
	}
	if n := sim.Calls(mpsim.EndpointGetUserPhoneNumber); n != 1 {
		t.Fatalf("%d getuserphonenumber calls for one code, want 1", n)
	}
	if n := sim.Calls(mpsim.EndpointStableToken); n != 1 {
		t.Fatalf("%d token fetches, want 1", n)
	}
	sealed, err := h.store.Get(context.Background(), phoneCacheName(h.ref('p', code+"\x00")))
	if err != nil {
		t.Fatalf("no kept result: %v", err)
	}
	if bytes.Contains(sealed, []byte("13900001111")) || bytes.Contains(sealed, []byte(code)) {
		t.Fatal("the kept result shows the number or the code")
	}
	// A kept result that does not open (a tampered store) is an internal
	// error, never a number.
	if err := h.store.Set(context.Background(), phoneCacheName(h.ref('p', code+"\x00")), append(sealed[:len(sealed)-1:len(sealed)-1], sealed[len(sealed)-1]^1), time.Minute); err != nil {
		t.Fatal(err)
	}
	up := &upstream{}
	w, _ := serveOnLoopback(t, h, jsonRequest("POST", "/phone", `{"code":"`+code+`"}`), up)
	wantRefusal(t, "tampered kept result", w, up, 500, "internal_error", 0)
	if sim.Calls(mpsim.EndpointGetUserPhoneNumber) != 1 {
		t.Fatal("a tampered kept result spent the code again")
	}

	// Concurrent requests with a new code, on both instances, while the
	// platform takes its time: one platform call.
	code2 := phoneCode(t, sim, "pc-cache-2", "13900002222")
	sim.Inject(mpsim.Fault{Endpoint: mpsim.EndpointGetUserPhoneNumber, Delay: 300 * time.Millisecond, Times: 1})
	var wg sync.WaitGroup
	results := make([]string, 8)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			up := &upstream{}
			req := jsonRequest("POST", "/phone", `{"code":"`+code2+`"}`)
			rw := httptest.NewRecorder()
			req = caddyhttp.PrepareRequest(req, caddy.NewReplacer(), rw, nil)
			if err := []*Handler{h, h2}[i%2].ServeHTTP(rw, req, up); err != nil || up.calls() != 1 {
				results[i] = fmt.Sprintf("%v %d %s", err, rw.Code, rw.Body)
				return
			}
			up.mu.Lock()
			results[i] = up.reqs[0].Header.Get(HeaderPhone)
			up.mu.Unlock()
		}()
	}
	wg.Wait()
	for i, r := range results {
		if r != "13900002222" {
			t.Errorf("concurrent request %d: %s", i, r)
		}
	}
	if n := sim.Calls(mpsim.EndpointGetUserPhoneNumber); n != 2 {
		t.Fatalf("%d getuserphonenumber calls after 8 concurrent requests with one code, want 2", n)
	}
}

// Phone codes the platform refuses count against the client's bound of
// failed exchanges: over it, phone-code requests are refused before any
// platform call.
func TestPhoneCodeFailuresBounded(t *testing.T) {
	sim := mpsim.New(mpsim.Options{})
	h := provisionAt(t, sim, `{"platform":"wechat","app_id":"`+wxApp+`","app_secret":"`+wxSecret+`","api_base":"@API@",
		"phone":"/phone","store":{"type":"memory","max_sessions":100},"max_failed_exchanges":"2/1h"}`)
	for i := range 2 {
		up := &upstream{}
		w, _ := serveOnLoopback(t, h, jsonRequest("POST", "/phone", fmt.Sprintf(`{"code":"made-up-%d"}`, i)), up)
		wantRefusal(t, fmt.Sprintf("made-up code %d", i), w, up, 401, "invalid_code", 40029)
	}
	up := &upstream{}
	w, mpErr := serveOnLoopback(t, h, jsonRequest("POST", "/phone", `{"code":"`+phoneCode(t, sim, "pc-bounded", "13900002468")+`"}`), up)
	wantRefusal(t, "over the bound", w, up, 429, "too_many_failures", 0)
	if mpErr != "too_many_failures" || w.Header().Get("Retry-After") == "" {
		t.Errorf("over the bound: mp_error %v, headers %v", mpErr, w.Header())
	}
	if n := sim.Calls(mpsim.EndpointGetUserPhoneNumber); n != 2 {
		t.Fatalf("%d getuserphonenumber calls, want 2", n)
	}
}

// The openid of the request's session goes to the platform with the phone
// code and is part of the kept result's name: another user's phone code
// is refused, and a result is never handed to a request naming another
// user.
func TestPhoneCodeAnotherUsersOpenID(t *testing.T) {
	sim := mpsim.New(mpsim.Options{})
	h := metricsHandler(t, sim)
	loginWithAnswer(t, h, sim, "pc-alice", tokenAnswer("tk-alice"))
	bob, _ := loginWithAnswer(t, h, sim, "pc-bob", tokenAnswer("tk-bob"))
	bobsCode := phoneCode(t, sim, "pc-bob", "13900003333")
	calls := func() int { return sim.Calls(mpsim.EndpointGetUserPhoneNumber) }
	serve := func(token string) (*httptest.ResponseRecorder, *upstream) {
		up := &upstream{}
		var hdr []string
		if token != "" {
			hdr = []string{"Authorization", "Bearer " + token}
		}
		w, _ := serveOnLoopback(t, h, jsonRequest("POST", "/phone", `{"code":"`+bobsCode+`"}`, hdr...), up)
		return w, up
	}

	w, up := serve("tk-alice")
	wantRefusal(t, "alice with bob's code", w, up, 401, "invalid_code", 40003)
	if calls() != 1 {
		t.Fatalf("%d calls", calls())
	}
	w, up = serve("tk-bob")
	r, body := up.last(t)
	if w.Code != 200 || r == nil || r.Header.Get(HeaderOpenID) != bob.OpenID || r.Header.Get(HeaderPhone) != "13900003333" || body[FieldOpenID] != bob.OpenID {
		t.Fatalf("bob with his code: %d %s", w.Code, w.Body)
	}
	if calls() != 2 {
		t.Fatalf("%d calls", calls())
	}
	// Bob's result is kept; Alice asking again gets her own recorded
	// refusal, without a call, and never Bob's number.
	w, up = serve("tk-alice")
	wantRefusal(t, "alice again", w, up, 401, "invalid_code", 40003)
	if strings.Contains(w.Body.String(), "13900003333") || calls() != 2 {
		t.Fatalf("alice again: %s, %d calls", w.Body, calls())
	}
	w, up = serve("tk-bob")
	if r, _ := up.last(t); w.Code != 200 || r.Header.Get(HeaderOpenID) != bob.OpenID || calls() != 2 {
		t.Fatalf("bob again: %d %s, %d calls", w.Code, w.Body, calls())
	}
	// Without a session the kept result (Bob's) is not handed out: the
	// code is asked for again, and it is spent.
	w, up = serve("")
	wantRefusal(t, "no session", w, up, 401, "invalid_code", 40029)
	if calls() != 3 {
		t.Fatalf("%d calls", calls())
	}
}

// With the phone code in a field of its own, the login code beside it
// names the session: its openid goes to the platform and the upstream;
// the phone code is removed from the forwarded body. An unknown login
// code is no error: the number comes without an openid.
func TestPhoneCodeOwnField(t *testing.T) {
	sim := mpsim.New(mpsim.Options{})
	h := provisionAt(t, sim, `{"platform":"wechat","app_id":"`+wxApp+`","app_secret":"`+wxSecret+`","api_base":"@API@",
		"login":"/login","phone":"/phone","store":{"type":"memory","max_sessions":100},"fields":{"phone_code":"phone_code"}}`)
	alice, _ := loginWithAnswer(t, h, sim, "pc-own-alice", nil)
	aliceCode := phoneCode(t, sim, "pc-own-alice", "13900004444")
	bobsCode := phoneCode(t, sim, "pc-own-bob", "13900005555")

	up := &upstream{}
	w, _ := serveOnLoopback(t, h, jsonRequest("POST", "/phone", `{"code":"`+alice.Code+`","phone_code":"`+aliceCode+`"}`), up)
	r, body := up.last(t)
	if w.Code != 200 || r == nil || r.Header.Get(HeaderOpenID) != alice.OpenID || body[FieldOpenID] != alice.OpenID ||
		body[FieldPhoneNumber] != "13900004444" || body["code"] != alice.Code {
		t.Fatalf("login code and phone code: %d %s, forwarded %v", w.Code, w.Body, body)
	}
	if _, has := body["phone_code"]; has {
		t.Errorf("the spent phone code was forwarded: %v", body)
	}

	up = &upstream{}
	w, _ = serveOnLoopback(t, h, jsonRequest("POST", "/phone", `{"code":"`+alice.Code+`","phone_code":"`+bobsCode+`"}`), up)
	wantRefusal(t, "alice's login code, bob's phone code", w, up, 401, "invalid_code", 40003)

	up = &upstream{}
	w, _ = serveOnLoopback(t, h, jsonRequest("POST", "/phone", `{"code":"unknown-login-code","phone_code":"`+bobsCode+`"}`), up)
	if r, body := up.last(t); w.Code != 200 || r.Header.Get(HeaderOpenID) != "" || r.Header.Get(HeaderPhone) != "13900005555" || body[FieldOpenID] != nil {
		t.Fatalf("unknown login code: %d %s, forwarded %v", w.Code, w.Body, body)
	}
	up = &upstream{}
	w, _ = serveOnLoopback(t, h, jsonRequest("POST", "/phone", `{"code":"`+alice.Code+`"}`), up)
	wantRefusal(t, "a login code without phone code or payload", w, up, 400, "bad_request", 0)
	up = &upstream{}
	w, _ = serveOnLoopback(t, h, jsonRequest("POST", "/phone", `{"code":"`+alice.Code+`","Code":"x","phone_code":"`+bobsCode+`"}`), up)
	wantRefusal(t, "the login code twice", w, up, 400, "bad_request", 0)
}

// A refused phone code's failure is recorded: a retry, here or on another
// instance, gets the same answer without a platform call.
func TestPhoneCodeFailureRecordedAndShared(t *testing.T) {
	sim := mpsim.New(mpsim.Options{})
	h := metricsHandler(t, sim)
	h2 := metricsHandler(t, sim)
	calls := func() int { return sim.Calls(mpsim.EndpointGetUserPhoneNumber) }
	for i, hh := range []*Handler{h, h, h2} {
		up := &upstream{}
		w, mpErr := serveOnLoopback(t, hh, jsonRequest("POST", "/phone", `{"code":"never-issued-phone-code"}`), up)
		wantRefusal(t, fmt.Sprintf("bad code, request %d", i), w, up, 401, "invalid_code", 40029)
		if mpErr != "invalid_code" {
			t.Errorf("request %d: mp_error %v", i, mpErr)
		}
	}
	if calls() != 1 {
		t.Fatalf("%d calls for one bad code asked three times, want 1", calls())
	}

	blocked := phoneCode(t, sim, "pc-blocked", "13900006666")
	sim.Inject(mpsim.Fault{Endpoint: mpsim.EndpointGetUserPhoneNumber, Errcode: 40226, Times: 1})
	for i, hh := range []*Handler{h, h2} {
		up := &upstream{}
		w, _ := serveOnLoopback(t, hh, jsonRequest("POST", "/phone", `{"code":"`+blocked+`"}`), up)
		wantRefusal(t, fmt.Sprintf("blocked user, request %d", i), w, up, 403, "user_blocked", 40226)
	}
	if calls() != 2 {
		t.Fatalf("%d calls, want 2", calls())
	}
}

// A token the platform rejects is refreshed and the call retried, once.
func TestPhoneCodeTokenRejected(t *testing.T) {
	sim := mpsim.New(mpsim.Options{})
	h := metricsHandler(t, sim)
	ctx := context.Background()
	calls := func() int { return sim.Calls(mpsim.EndpointGetUserPhoneNumber) }

	// The shared record holds a token the platform does not know (another
	// instance's, revoked): rejected, refreshed, retried.
	now := time.Now()
	rec, _ := json.Marshal(map[string]any{"token": "revoked-token", "fetched_at": now, "expires_at": now.Add(2 * time.Hour)})
	if err := h.store.Set(ctx, accesstoken.StoreName, rec, 2*time.Hour); err != nil {
		t.Fatal(err)
	}
	up := &upstream{}
	w, _ := serveOnLoopback(t, h, jsonRequest("POST", "/phone", `{"code":"`+phoneCode(t, sim, "pc-token", "13900007777")+`"}`), up)
	if r, _ := up.last(t); w.Code != 200 || r.Header.Get(HeaderPhone) != "13900007777" {
		t.Fatalf("after a rejected token: %d %s", w.Code, w.Body)
	}
	if calls() != 2 || sim.Calls(mpsim.EndpointStableToken) != 1 {
		t.Fatalf("calls %v, want 2 getuserphonenumber and 1 stable_token", sim.AllCalls())
	}
	b, err := h.store.Get(ctx, accesstoken.StoreName)
	if err != nil || bytes.Contains(b, []byte("revoked-token")) {
		t.Fatalf("the shared record after the refresh: %s %v", b, err)
	}

	// Expired (42001) once: refreshed (forced: stable_token gives the same
	// token until forced), retried.
	sim.Inject(mpsim.Fault{Endpoint: mpsim.EndpointGetUserPhoneNumber, Errcode: 42001, Times: 1})
	up = &upstream{}
	w, _ = serveOnLoopback(t, h, jsonRequest("POST", "/phone", `{"code":"`+phoneCode(t, sim, "pc-token", "13900008888")+`"}`), up)
	if r, _ := up.last(t); w.Code != 200 || r.Header.Get(HeaderPhone) != "13900008888" || calls() != 4 {
		t.Fatalf("after 42001: %d %s, calls %v", w.Code, w.Body, sim.AllCalls())
	}

	// Rejected every time: one retry, then the failure.
	sim.Inject(mpsim.Fault{Endpoint: mpsim.EndpointGetUserPhoneNumber, Errcode: 40001})
	defer sim.ClearFaults()
	up = &upstream{}
	w, mpErr := serveOnLoopback(t, h, jsonRequest("POST", "/phone", `{"code":"`+phoneCode(t, sim, "pc-token", "13900009999")+`"}`), up)
	wantRefusal(t, "token always rejected", w, up, 502, "platform_error", 40001)
	if calls() != 6 || mpErr != "platform_error" {
		t.Fatalf("token always rejected: %d getuserphonenumber calls (want 6: one retry), mp_error %v", calls(), mpErr)
	}
}

// watermarkRewriter serves the simulator, with getuserphonenumber's
// watermark naming another app.
type watermarkRewriter struct {
	sim *mpsim.Sim
	mu  sync.Mutex
	n   int // answers rewritten
}

func (p *watermarkRewriter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !strings.HasSuffix(r.URL.Path, "/getuserphonenumber") {
		p.sim.ServeHTTP(w, r)
		return
	}
	rec := httptest.NewRecorder()
	p.sim.ServeHTTP(rec, r)
	body := strings.Replace(rec.Body.String(), `"appid":"`+wxApp+`"`, `"appid":"wxotherapp0000001"`, 1)
	if body != rec.Body.String() {
		p.mu.Lock()
		p.n++
		p.mu.Unlock()
	}
	w.Header().Set("Content-Type", rec.Header().Get("Content-Type"))
	w.WriteHeader(rec.Code)
	_, _ = w.Write([]byte(body))
}

// A number whose watermark names another app is refused, and the refusal
// is recorded for the code.
func TestPhoneCodeWatermarkMismatch(t *testing.T) {
	sim := mpsim.New(mpsim.Options{})
	p := &watermarkRewriter{sim: sim}
	h := provisionAt(t, p, `{"platform":"wechat","app_id":"`+wxApp+`","app_secret":"`+wxSecret+`","api_base":"@API@",
		"phone":"/phone","store":{"type":"memory","max_sessions":100}}`)
	code := phoneCode(t, sim, "pc-watermark", "13900001234")
	for i := range 2 {
		up := &upstream{}
		w, mpErr := serveOnLoopback(t, h, jsonRequest("POST", "/phone", `{"code":"`+code+`"}`), up)
		wantRefusal(t, fmt.Sprintf("request %d", i), w, up, 422, "watermark_mismatch", 0)
		if mpErr != "watermark_mismatch" || strings.Contains(w.Body.String(), "13900001234") {
			t.Errorf("request %d: mp_error %v, body %s", i, mpErr, w.Body)
		}
	}
	if n := sim.Calls(mpsim.EndpointGetUserPhoneNumber); n != 1 || p.n != 1 {
		t.Fatalf("%d getuserphonenumber calls (%d rewritten), want 1", n, p.n)
	}
}

// The store is read before the phone code is spent: while it is down a
// phone-code request is store_unavailable with no platform call, and the
// same code works once it is back. Compat's code2session answers -1.
func TestPhoneCodeStoreDownBeforeSpending(t *testing.T) {
	rs := redistest.Start(t)
	sim := mpsim.New(mpsim.Options{})
	h := provisionAt(t, sim, `{"platform":"wechat","app_id":"`+wxApp+`","app_secret":"`+wxSecret+`","api_base":"@API@",
		"login":"/login","phone":"/phone","store":{"type":"redis","url":"`+rs.URL()+`"},
		"token_binding":{"from":{"json":"data.token"}},"compat":{"prefix":"/mp-compat"}}`)
	loginWithAnswer(t, h, sim, "pc-redis", tokenAnswer("tk-redis"))
	code := phoneCode(t, sim, "pc-redis", "13900004321")
	lr, err := sim.Login(wxApp, "pc-redis-compat")
	if err != nil {
		t.Fatal(err)
	}
	platformCalls := sim.AllCalls()

	rs.Kill()
	for _, hdr := range [][]string{{"Authorization", "Bearer tk-redis"}, nil} {
		up := &upstream{}
		w, mpErr := serveOnLoopback(t, h, jsonRequest("POST", "/phone", `{"code":"`+code+`"}`, hdr...), up)
		wantRefusal(t, fmt.Sprintf("store down, headers %v", hdr), w, up, 503, "store_unavailable", 0)
		if mpErr != "store_unavailable" {
			t.Errorf("store down: mp_error %v", mpErr)
		}
	}
	w, m, mpErr := compatCall(t, h, compatGet("/sns/jscode2session", wxCode2SessionQuery(lr.Code)))
	wantWxErr(t, "compat, store down", w, m, -1, "system error")
	if mpErr != "store_unavailable" {
		t.Errorf("compat, store down: mp_error %v", mpErr)
	}
	if got := sim.AllCalls(); fmt.Sprint(got) != fmt.Sprint(platformCalls) {
		t.Fatalf("platform calls while the store was down: %v, before %v", got, platformCalls)
	}

	rs.Restart(t)
	// The handler's connection pool notices the restart within a moment.
	deadline := time.Now().Add(5 * time.Second)
	for {
		up := &upstream{}
		w, _ := serveOnLoopback(t, h, jsonRequest("POST", "/phone", `{"code":"`+code+`"}`), up)
		if w.Code == 503 && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		if r, _ := up.last(t); w.Code != 200 || r.Header.Get(HeaderPhone) != "13900004321" {
			t.Fatalf("after the store came back: %d %s", w.Code, w.Body)
		}
		break
	}
	if n := sim.Calls(mpsim.EndpointGetUserPhoneNumber); n != 1 {
		t.Fatalf("%d getuserphonenumber calls, want 1", n)
	}
}

// The getPhoneNumber button's e.detail forwarded whole, for a user whose
// session the handler does not know: the phone code is exchanged; a code
// that is neither a known login code nor a valid phone code beside a
// payload is session_not_found.
func TestPhoneCodeEDetailWhole(t *testing.T) {
	sim := mpsim.New(mpsim.Options{})
	h := metricsHandler(t, sim)
	btn, err := sim.PhoneButton(wxApp, "pc-detail", "13900005678")
	if err != nil {
		t.Fatal(err)
	}
	detail, _ := json.Marshal(btn)
	up := &upstream{}
	w, _ := serveOnLoopback(t, h, jsonRequest("POST", "/phone", string(detail)), up)
	r, body := up.last(t)
	if w.Code != 200 || r == nil || r.Header.Get(HeaderPhone) != "13900005678" || body["encryptedData"] != nil || body["iv"] != nil || body["cloudID"] != btn.CloudID {
		t.Fatalf("e.detail: %d %s, forwarded %v", w.Code, w.Body, body)
	}
	if n := sim.Calls(mpsim.EndpointGetUserPhoneNumber); n != 1 {
		t.Fatalf("%d calls", n)
	}
	btn.Code = "neither-login-nor-phone-code"
	detail, _ = json.Marshal(btn)
	up = &upstream{}
	w, _ = serveOnLoopback(t, h, jsonRequest("POST", "/phone", string(detail)), up)
	wantRefusal(t, "bad code with a payload", w, up, 401, "session_not_found", 40029)
}

// A platform that does not answer in time: platform_timeout, within the
// configured bound.
func TestPhoneCodePlatformTimeout(t *testing.T) {
	sim := mpsim.New(mpsim.Options{})
	h := provisionAt(t, sim, `{"platform":"wechat","app_id":"`+wxApp+`","app_secret":"`+wxSecret+`","api_base":"@API@",
		"phone":"/phone","platform_timeout":"200ms","platform_retries":0,"store":{"type":"memory","max_sessions":100}}`)
	sim.Inject(mpsim.Fault{Endpoint: mpsim.EndpointGetUserPhoneNumber, Delay: 5 * time.Second})
	defer sim.ClearFaults()
	up := &upstream{}
	w, mpErr := serveOnLoopback(t, h, jsonRequest("POST", "/phone", `{"code":"`+phoneCode(t, sim, "pc-slow", "13900001357")+`"}`), up)
	wantRefusal(t, "slow platform", w, up, 504, "platform_timeout", 0)
	if mpErr != "platform_timeout" {
		t.Errorf("mp_error %v", mpErr)
	}
}

func TestPhoneCodeErr(t *testing.T) {
	timeoutMp := mperr.Wrap(mperr.PlatformTimeout, "the platform did not answer", context.DeadlineExceeded)
	for _, c := range []struct {
		err  error
		code mperr.Code
		same bool // the error itself comes back
	}{
		{accesstoken.ErrWaitTimeout, mperr.PlatformTimeout, false},
		{fmt.Errorf("waiting: %w", context.DeadlineExceeded), mperr.PlatformTimeout, false},
		{context.Canceled, mperr.PlatformTimeout, false},
		{timeoutMp, mperr.PlatformTimeout, true},
		{mperr.Platform(mperr.InvalidCode, 40029, "bad"), mperr.InvalidCode, false},
		{fmt.Errorf("accesstoken: fetch (stable): %w", mperr.Platform(mperr.PlatformError, 40013, "appid")), mperr.PlatformError, false},
		{errors.New("accesstoken: fetch (stable): the platform gave no usable token"), mperr.PlatformError, false},
	} {
		e := tokenCallErr(c.err)
		if e.Code != c.code || (c.same && e != c.err) {
			t.Errorf("tokenCallErr(%v) = %v, want %s", c.err, e, c.code)
		}
		if e.Code == mperr.PlatformError && !e.HasErrcode && !errors.Is(e, c.err) {
			t.Errorf("tokenCallErr(%v) lost its cause", c.err)
		}
	}
}

// access_token is WeChat's, and its settings are checked when the config
// loads.
func TestAccessTokenConfigChecked(t *testing.T) {
	for _, c := range []struct{ json, field string }{
		{`{"platform":"douyin","app_id":"tt1","app_secret":"s","phone":"/p","access_token":{}}`, "access_token"},
		{`{"platform":"wechat","app_id":"wx1","app_secret":"s","phone":"/p","access_token":{"mode":"fast"}}`, "access_token.mode"},
		{`{"platform":"wechat","app_id":"wx1","app_secret":"s","phone":"/p","access_token":{"refresh":1.5}}`, "access_token.refresh"},
		{`{"platform":"wechat","app_id":"wx1","app_secret":"s","phone":"/p","access_token":{"refresh":-0.1}}`, "access_token.refresh"},
	} {
		_, err := provisionJSON(t, c.json)
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != c.field {
			t.Errorf("%s: err %v, want a field error of %s", c.json, err, c.field)
		}
	}
	for _, mode := range []string{"stable", "classic", ""} {
		if _, err := provisionJSON(t, `{"platform":"wechat","app_id":"wx1","app_secret":"s","phone":"/p","access_token":{"mode":"`+mode+`","refresh":0.5}}`); err != nil {
			t.Errorf("mode %q: %v", mode, err)
		}
	}
}
