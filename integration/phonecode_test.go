package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/mpsim"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/redistest"
)

// WeChat's phone code flow: the front end's getPhoneNumber gives a code,
// which the handler exchanges with getuserphonenumber and an access token
// shared by every instance.

func phoneCode(t testing.TB, s *Sim, user, phone string) string {
	t.Helper()
	code, err := s.PhoneCode(wxApp, user, phone)
	if err != nil {
		t.Fatal(err)
	}
	return code
}

// currentStableToken asks the simulator, as anyone with the secret could,
// for the app's current stable token (without force_refresh: it neither
// changes nor invalidates it), so that tests can look for it in the logs.
func currentStableToken(t testing.TB, s *Sim) string {
	t.Helper()
	b, _ := json.Marshal(map[string]any{"grant_type": "client_credential", "appid": wxApp, "secret": wxSecret, "force_refresh": false})
	resp, err := http.Post(s.URL+"/cgi-bin/stable_token", "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil || v.AccessToken == "" {
		t.Fatalf("stable_token: %v %+v", err, v)
	}
	return v.AccessToken
}

// wantPhoneHeaders checks the injected phone headers; openid "" means
// X-Mp-Openid must be absent.
func wantPhoneHeaders(t testing.TB, got Recorded, phone, openid string) {
	t.Helper()
	h := got.Header
	if h.Get("X-Mp-Phone") != phone || h.Get("X-Mp-Pure-Phone") != phone || h.Get("X-Mp-Country-Code") != "86" {
		t.Fatalf("phone headers: %v", h)
	}
	if h.Get("X-Mp-Platform") != "wechat" || h.Get("X-Mp-App-Id") != wxApp {
		t.Fatalf("platform/app headers: %v", h)
	}
	if g := h.Get("X-Mp-Openid"); g != openid {
		t.Fatalf("X-Mp-Openid %q, want %q", g, openid)
	}
}

func wantPhoneFields(t testing.TB, get func(string) (string, bool), phone string) {
	t.Helper()
	for k, want := range map[string]string{"phoneNumber": phone, "purePhoneNumber": phone, "countryCode": "86"} {
		if v, ok := get(k); !ok || v != want {
			t.Fatalf("forwarded %s = %q (present %v), want %q", k, v, ok, want)
		}
	}
}

// checkPhoneLogs: no secret in the logs (noSecrets), and no data race
// reported by a -race caddy.
func checkPhoneLogs(t testing.TB, logs string, secrets ...string) {
	t.Helper()
	noSecrets(t, logs, secrets...)
	if strings.Contains(logs, "WARNING: DATA RACE") {
		t.Errorf("caddy reported a data race:\n%s", logs)
	}
}

func jsonGetter(m map[string]any) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		s, _ := v.(string)
		return s, ok
	}
}

func formGetter(f url.Values) func(string) (string, bool) {
	return func(k string) (string, bool) {
		_, ok := f[k]
		return f.Get(k), ok
	}
}

// (a) A phone code alone, with the default field names (the phone code and
// the login code are both "code"): JSON and form bodies.
func TestPhoneCodeJSONAndForm(t *testing.T) {
	e := newEnv(t, "wechat")

	pc := phoneCode(t, e.sim, "pia", "13800138100")
	r := postJSON(t, e.url("/api/phone"), map[string]any{"code": pc, "keep": "x", "phoneNumber": "spoofed", "openid": "spoofed"},
		"X-Mp-Openid", "evil", "X-Mp-Phone", "evil")
	wantOK(t, r)
	got := e.up.Last(t)
	if got.Path != "/api/phone" {
		t.Fatalf("path %q", got.Path)
	}
	wantPhoneHeaders(t, got, "13800138100", "")
	body := got.JSON(t)
	wantPhoneFields(t, jsonGetter(body), "13800138100")
	if body["keep"] != "x" {
		t.Fatalf("other fields not kept: %v", body)
	}
	if _, ok := body["openid"]; ok {
		t.Fatalf("a client-sent openid was forwarded with no session behind it: %v", body)
	}
	// The shared "code" field is kept (see servePhoneCode).
	if body["code"] != pc {
		t.Fatalf("code field not kept: %v", body)
	}

	pc2 := phoneCode(t, e.sim, "pia", "13800138101")
	r = postForm(t, e.url("/api/phone"), url.Values{"code": {pc2}, "keep": {"y"}, "countryCode": {"1"}})
	wantOK(t, r)
	got = e.up.Last(t)
	if ct := got.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/x-www-form-urlencoded") {
		t.Fatalf("form became %q", ct)
	}
	wantPhoneHeaders(t, got, "13800138101", "")
	f := got.Form(t)
	wantPhoneFields(t, formGetter(f), "13800138101")
	if f.Get("keep") != "y" || f.Get("code") != pc2 || len(f["countryCode"]) != 1 {
		t.Fatalf("form forwarded %v", f)
	}

	if n := e.sim.Calls(mpsim.EndpointGetUserPhoneNumber); n != 2 {
		t.Fatalf("getuserphonenumber calls %d, want 2", n)
	}
	if n := e.sim.Calls(mpsim.EndpointStableToken); n != 1 {
		t.Fatalf("stable_token calls %d, want 1", n)
	}
	if n := e.sim.Calls(mpsim.EndpointJSCode2Session) + e.sim.Calls(mpsim.EndpointToken); n != 0 {
		t.Fatalf("unexpected jscode2session/token calls: %d", n)
	}
	tok := currentStableToken(t, e.sim)
	e.caddy.Stop()
	// (e) no phone code, number, token or secret in any log line.
	checkPhoneLogs(t, e.caddy.Logs(), pc, pc2, "13800138100", "13800138101", wxSecret, tok)
}

// (a) With a login code too (the phone code in a field of its own), the
// upstream learns whose number it is.
func TestPhoneCodeWithLoginCode(t *testing.T) {
	e := newEnv(t, "wechat", "field phone_code phone_code")
	lr := login(t, e.sim, wxApp, "quinn")
	wantOK(t, postJSON(t, e.url("/api/login"), map[string]any{"code": lr.Code}))

	pc := phoneCode(t, e.sim, "quinn", "13800138110")
	wantOK(t, postJSON(t, e.url("/api/phone"), map[string]any{"code": lr.Code, "phone_code": pc}))
	got := e.up.Last(t)
	wantPhoneHeaders(t, got, "13800138110", lr.OpenID)
	body := got.JSON(t)
	wantPhoneFields(t, jsonGetter(body), "13800138110")
	if body["openid"] != lr.OpenID || body["code"] != lr.Code {
		t.Fatalf("body %v", body)
	}
	if _, ok := body["phone_code"]; ok {
		t.Fatalf("the spent phone code (own field) was forwarded: %v", body)
	}

	pc2 := phoneCode(t, e.sim, "quinn", "13800138111")
	wantOK(t, postForm(t, e.url("/api/phone"), url.Values{"code": {lr.Code}, "phone_code": {pc2}}))
	got = e.up.Last(t)
	wantPhoneHeaders(t, got, "13800138111", lr.OpenID)
	f := got.Form(t)
	wantPhoneFields(t, formGetter(f), "13800138111")
	if f.Get("openid") != lr.OpenID || f.Has("phone_code") {
		t.Fatalf("form %v", f)
	}

	// No login code, or one that finds no session: the number still goes
	// through, without identity.
	pc3 := phoneCode(t, e.sim, "quinn", "13800138112")
	wantOK(t, postJSON(t, e.url("/api/phone"), map[string]any{"phone_code": pc3}))
	wantPhoneHeaders(t, e.up.Last(t), "13800138112", "")
	pc4 := phoneCode(t, e.sim, "quinn", "13800138113")
	wantOK(t, postJSON(t, e.url("/api/phone"), map[string]any{"phone_code": pc4, "code": "never-logged-in"}))
	wantPhoneHeaders(t, e.up.Last(t), "13800138113", "")

	// The encrypted flow on the same route is unchanged.
	ed, iv := phonePayload(t, e.sim, wxApp, "quinn", "13800138114")
	wantOK(t, postJSON(t, e.url("/api/phone"), map[string]any{"code": lr.Code, "encryptedData": ed, "iv": iv}))
	wantPhoneHeaders(t, e.up.Last(t), "13800138114", lr.OpenID)

	if n := e.sim.Calls(mpsim.EndpointGetUserPhoneNumber); n != 4 {
		t.Fatalf("getuserphonenumber calls %d, want 4", n)
	}
	e.caddy.Stop()
	checkPhoneLogs(t, e.caddy.Logs(), lr.Code, pc, pc2, pc3, pc4, wxSecret,
		"13800138110", "13800138111", "13800138112", "13800138113", "13800138114")
}

// (b) Two instances sharing one Redis: 50 phone codes spread over both,
// concurrently, share one access token: one stable_token call in all.
func TestPhoneCodeTwoInstancesOneToken(t *testing.T) {
	rs := redistest.Start(t)
	sim, up, a, b := twoInstances(t, rs)

	const n, workers = 50, 8
	codes := make([]string, n)
	phones := make([]string, n)
	for i := range n {
		phones[i] = fmt.Sprintf("139%08d", i)
		codes[i] = phoneCode(t, sim, fmt.Sprintf("user%02d", i), phones[i])
	}
	res := make([]Response, n)
	jobs := make(chan int)
	var wg sync.WaitGroup
	start := time.Now()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				target := a
				if i%2 == 1 {
					target = b
				}
				res[i] = postJSON(t, target.URL+"/api/phone", map[string]any{"code": codes[i], "i": i})
			}
		}()
	}
	for i := range n {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	took := time.Since(start)
	for i, r := range res {
		if r.Status != http.StatusOK {
			t.Fatalf("request %d: status %d %s", i, r.Status, r.Body)
		}
	}
	seen := make(map[int]bool)
	for _, rec := range up.Requests() {
		body := rec.JSON(t)
		fi, ok := body["i"].(float64)
		if !ok {
			t.Fatalf("upstream body without i: %v", body)
		}
		i := int(fi)
		seen[i] = true
		if got := rec.Header.Get("X-Mp-Phone"); got != phones[i] {
			t.Fatalf("request %d: X-Mp-Phone %q, want %q", i, got, phones[i])
		}
	}
	if len(seen) != n {
		t.Fatalf("the upstream saw %d distinct requests, want %d", len(seen), n)
	}
	stable, classic, calls := sim.Calls(mpsim.EndpointStableToken), sim.Calls(mpsim.EndpointToken), sim.Calls(mpsim.EndpointGetUserPhoneNumber)
	t.Logf("%d phone codes over 2 instances (%d at a time): stable_token %d, token %d, getuserphonenumber %d, in %v",
		n, workers, stable, classic, calls, took.Round(time.Millisecond))
	if stable != 1 || classic != 0 {
		t.Fatalf("token fetches: stable_token %d, token %d; want 1 and 0", stable, classic)
	}
	if calls != n {
		t.Fatalf("getuserphonenumber calls %d, want %d", calls, n)
	}

	// One phone code sent to both instances at once: one exchange, the
	// same number for every request.
	pc := phoneCode(t, sim, "twin", "13900009999")
	before := sim.Calls(mpsim.EndpointGetUserPhoneNumber)
	const m = 20
	res = make([]Response, m)
	for i := range m {
		target := a
		if i%2 == 1 {
			target = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			res[i] = postJSON(t, target.URL+"/api/phone", map[string]any{"code": pc})
		}()
	}
	wg.Wait()
	for i, r := range res {
		if r.Status != http.StatusOK {
			t.Fatalf("same code, request %d: status %d %s", i, r.Status, r.Body)
		}
	}
	if got := sim.Calls(mpsim.EndpointGetUserPhoneNumber) - before; got != 1 {
		t.Fatalf("%d requests with one phone code on two instances made %d getuserphonenumber calls, want 1", m, got)
	}
	for _, rec := range up.Requests()[n:] {
		if rec.Header.Get("X-Mp-Phone") != "13900009999" {
			t.Fatalf("same code: X-Mp-Phone %q", rec.Header.Get("X-Mp-Phone"))
		}
	}
	if n := sim.Calls(mpsim.EndpointStableToken); n != 1 {
		t.Fatalf("stable_token calls %d, want still 1", n)
	}

	// Redis holds neither a raw phone code (in a key or value) nor a phone
	// number in the clear (the retry cache is sealed).
	ctx := t.Context()
	rc := rs.Client()
	keys, err := rc.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	secrets := append(append([]string{pc, "13900009999"}, codes...), phones...)
	cached := 0
	for _, k := range keys {
		var vals []string
		switch typ, _ := rc.Type(ctx, k).Result(); typ {
		case "string":
			v, _ := rc.Get(ctx, k).Result()
			vals = []string{v}
		case "hash":
			for f, v := range rc.HGetAll(ctx, k).Val() {
				vals = append(vals, f, v)
			}
		}
		if strings.Contains(k, ":v:phone:") {
			cached++
		}
		for _, s := range secrets {
			if strings.Contains(k, s) {
				t.Fatalf("a Redis key holds a phone code or number: %s", k)
			}
			for _, v := range vals {
				if strings.Contains(v, s) {
					t.Fatalf("Redis key %s holds a phone code or number in the clear", k)
				}
			}
		}
	}
	if cached != n+1 {
		t.Fatalf("%d cached phone results in Redis, want %d", cached, n+1)
	}

	tok := currentStableToken(t, sim)
	a.Stop()
	b.Stop()
	checkPhoneLogs(t, a.Logs()+b.Logs(), append(secrets, wxSecret, tok)...)
}

// (c) A token the platform rejects is refreshed once and the request
// succeeds.
func TestPhoneCodeTokenRefresh(t *testing.T) {
	t.Run("stable", func(t *testing.T) {
		e := newEnv(t, "wechat")
		wantOK(t, postJSON(t, e.url("/api/phone"), map[string]any{"code": phoneCode(t, e.sim, "rae", "13800138120")}))
		stable0, calls0 := e.sim.Calls(mpsim.EndpointStableToken), e.sim.Calls(mpsim.EndpointGetUserPhoneNumber)
		if stable0 != 1 {
			t.Fatalf("stable_token calls %d, want 1", stable0)
		}
		// The platform says the token is invalid, once.
		e.sim.Inject(mpsim.Fault{Endpoint: mpsim.EndpointGetUserPhoneNumber, Errcode: 40001, Times: 1})
		pc := phoneCode(t, e.sim, "rae", "13800138121")
		wantOK(t, postJSON(t, e.url("/api/phone"), map[string]any{"code": pc}))
		wantPhoneHeaders(t, e.up.Last(t), "13800138121", "")
		// Two token calls: the plain one still gives the rejected token
		// (the simulated platform did not really drop it), so the manager
		// forces a refresh, which gives a new one.
		if got := e.sim.Calls(mpsim.EndpointStableToken) - stable0; got != 2 {
			t.Fatalf("stable_token calls after a rejected token: %d, want 2 (plain + forced)", got)
		}
		if got := e.sim.Calls(mpsim.EndpointGetUserPhoneNumber) - calls0; got != 2 {
			t.Fatalf("getuserphonenumber calls %d, want 2 (rejected + retried)", got)
		}
		// The new token serves the next request with no fetch.
		wantOK(t, postJSON(t, e.url("/api/phone"), map[string]any{"code": phoneCode(t, e.sim, "rae", "13800138122")}))
		if got := e.sim.Calls(mpsim.EndpointStableToken) - stable0; got != 2 {
			t.Fatalf("stable_token calls %d after the next request, want still 2", got)
		}
		tok := currentStableToken(t, e.sim)
		e.caddy.Stop()
		checkPhoneLogs(t, e.caddy.Logs(), pc, "13800138120", "13800138121", "13800138122", wxSecret, tok)
	})

	t.Run("classic", func(t *testing.T) {
		e := newEnv(t, "wechat", "access_token classic")
		wantOK(t, postJSON(t, e.url("/api/phone"), map[string]any{"code": phoneCode(t, e.sim, "sol", "13800138130")}))
		if n, s := e.sim.Calls(mpsim.EndpointToken), e.sim.Calls(mpsim.EndpointStableToken); n != 1 || s != 0 {
			t.Fatalf("token calls %d, stable_token %d; want 1 and 0", n, s)
		}
		// Someone fetches a token behind the plugin's back; past the grace
		// period the plugin's token is dead.
		resp, err := http.Get(e.sim.URL + "/cgi-bin/token?grant_type=client_credential&appid=" + wxApp + "&secret=" + wxSecret)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		e.sim.Advance(mpsim.TokenGrace + time.Minute)
		token0, calls0 := e.sim.Calls(mpsim.EndpointToken), e.sim.Calls(mpsim.EndpointGetUserPhoneNumber)

		pc := phoneCode(t, e.sim, "sol", "13800138131")
		wantOK(t, postJSON(t, e.url("/api/phone"), map[string]any{"code": pc}))
		wantPhoneHeaders(t, e.up.Last(t), "13800138131", "")
		if got := e.sim.Calls(mpsim.EndpointToken) - token0; got != 1 {
			t.Fatalf("token calls after the plugin's token died: %d, want exactly 1", got)
		}
		if got := e.sim.Calls(mpsim.EndpointGetUserPhoneNumber) - calls0; got != 2 {
			t.Fatalf("getuserphonenumber calls %d, want 2 (rejected + retried)", got)
		}
		wantOK(t, postJSON(t, e.url("/api/phone"), map[string]any{"code": phoneCode(t, e.sim, "sol", "13800138132")}))
		if got := e.sim.Calls(mpsim.EndpointToken) - token0; got != 1 {
			t.Fatalf("token calls %d after the next request, want still 1", got)
		}
		e.caddy.Stop()
		checkPhoneLogs(t, e.caddy.Logs(), pc, "13800138130", "13800138131", "13800138132", wxSecret)
	})
}

// (d) Dead phone codes are refused without calling the upstream; a phone
// code sent again is exchanged once and answered each time.
func TestPhoneCodeInvalidAndRepeated(t *testing.T) {
	e := newEnv(t, "wechat")
	phoneCalls := func() int { return e.sim.Calls(mpsim.EndpointGetUserPhoneNumber) }

	expired := phoneCode(t, e.sim, "tao", "13800138140")
	e.sim.Advance(5*time.Minute + 2*time.Second)
	before := e.up.Count()
	m := wantError(t, postJSON(t, e.url("/api/phone"), map[string]any{"code": expired}), 401, "invalid_code")
	if m["platform_errcode"] != 40029.0 {
		t.Fatalf("platform_errcode %v, want 40029", m["platform_errcode"])
	}
	// A dead code stays dead, without asking the platform again.
	calls := phoneCalls()
	m = wantError(t, postJSON(t, e.url("/api/phone"), map[string]any{"code": expired}), 401, "invalid_code")
	if m["platform_errcode"] != 40029.0 || phoneCalls() != calls {
		t.Fatalf("retried dead code: %v, calls %d -> %d", m, calls, phoneCalls())
	}
	m = wantError(t, postForm(t, e.url("/api/phone"), url.Values{"code": {"never-issued-phone-code"}}), 401, "invalid_code")
	if m["platform_errcode"] != 40029.0 {
		t.Fatalf("unknown code: %v", m)
	}

	// Used by someone else first (the legacy backend, say).
	used := phoneCode(t, e.sim, "tao", "13800138141")
	tok := currentStableToken(t, e.sim)
	resp, err := http.Post(e.sim.URL+"/wxa/business/getuserphonenumber?access_token="+url.QueryEscape(tok), "application/json",
		strings.NewReader(`{"code":"`+used+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	m = wantError(t, postJSON(t, e.url("/api/phone"), map[string]any{"code": used}), 401, "invalid_code")
	if m["platform_errcode"] != 40029.0 {
		t.Fatalf("used code: %v", m)
	}
	if e.up.Count() != before {
		t.Fatal("the upstream was called for a dead phone code")
	}

	// The same phone code twice in turn: one exchange, two answers.
	pc := phoneCode(t, e.sim, "tao", "13800138142")
	calls = phoneCalls()
	for range 2 {
		wantOK(t, postJSON(t, e.url("/api/phone"), map[string]any{"code": pc}))
		wantPhoneHeaders(t, e.up.Last(t), "13800138142", "")
	}
	if got := phoneCalls() - calls; got != 1 {
		t.Fatalf("one phone code sent twice made %d getuserphonenumber calls, want 1", got)
	}

	// And ten times at once.
	pc2 := phoneCode(t, e.sim, "tao", "13800138143")
	calls = phoneCalls()
	var wg sync.WaitGroup
	res := make([]Response, 10)
	for i := range res {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res[i] = postJSON(t, e.url("/api/phone"), map[string]any{"code": pc2})
		}()
	}
	wg.Wait()
	for _, r := range res {
		wantOK(t, r)
	}
	if got := phoneCalls() - calls; got != 1 {
		t.Fatalf("one phone code sent 10 times at once made %d getuserphonenumber calls, want 1", got)
	}
	for _, rec := range e.up.Requests()[e.up.Count()-10:] {
		if rec.Header.Get("X-Mp-Phone") != "13800138143" {
			t.Fatalf("X-Mp-Phone %q", rec.Header.Get("X-Mp-Phone"))
		}
	}

	e.caddy.Stop()
	checkPhoneLogs(t, e.caddy.Logs(), expired, used, pc, pc2, tok, wxSecret,
		"13800138140", "13800138141", "13800138142", "13800138143")
}

// Douyin has no phone code flow: a code alone on its phone route is a bad
// request (its numbers come encrypted).
func TestPhoneCodeDouyinRefused(t *testing.T) {
	e := newEnv(t, "douyin")
	wantError(t, postJSON(t, e.url("/api/phone"), map[string]any{"code": "some-code"}), 400, "bad_request")
	if e.up.Count() != 0 {
		t.Fatal("the upstream was called")
	}
}

// With the store down the phone code is refused before it is spent, and
// works once the store is back.
func TestPhoneCodeStoreDown(t *testing.T) {
	rs := redistest.Start(t)
	sim, up := newSim(t), newUpstream(t)
	c := startCaddy(t, mpBlock("wechat", wxApp, wxSecret, sim.URL, "store redis "+rs.URL())+"\n\treverse_proxy "+strings.TrimPrefix(up.URL, "http://"))
	pc := phoneCode(t, sim, "uma", "13800138150")
	rs.Kill()
	wantError(t, postJSON(t, c.URL+"/api/phone", map[string]any{"code": pc}), 503, "store_unavailable")
	if n := sim.Calls(mpsim.EndpointGetUserPhoneNumber); n != 0 || up.Count() != 0 {
		t.Fatalf("with the store down: getuserphonenumber calls %d, upstream requests %d; want 0 and 0", n, up.Count())
	}
	rs.Restart(t)
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := postJSON(t, c.URL+"/api/phone", map[string]any{"code": pc})
		if r.Status == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("phone code after the store came back: %d %s", r.Status, r.Body)
		}
		time.Sleep(200 * time.Millisecond)
	}
	wantPhoneHeaders(t, up.Last(t), "13800138150", "")
	if n := sim.Calls(mpsim.EndpointGetUserPhoneNumber); n != 1 {
		t.Fatalf("getuserphonenumber calls %d, want 1", n)
	}
	c.Stop()
	checkPhoneLogs(t, c.Logs(), pc, "13800138150", wxSecret)
}
