package integration

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/mpsim"
)

// env is one Caddy with the plugin in front of a recording upstream, the
// simulator as platform, on the memory store unless extra says otherwise.
type env struct {
	sim   *Sim
	up    *Upstream
	caddy *Caddy
}

func newEnv(t *testing.T, platform string, extra ...string) *env {
	t.Helper()
	e := &env{sim: newSim(t), up: newUpstream(t)}
	app, secret := wxApp, wxSecret
	switch platform {
	case "douyin":
		app, secret = ttApp, ttSecret
	case "baidu":
		app, secret = bdApp, bdSecret
	case "kuaishou":
		app, secret = ksApp, ksSecret
	case "qq":
		app, secret = qqApp, qqSecret
	}
	e.caddy = startCaddy(t, mpBlock(platform, app, secret, e.sim.URL, extra...)+"\n\treverse_proxy "+strings.TrimPrefix(e.up.URL, "http://"))
	return e
}

func (e *env) url(p string) string { return e.caddy.URL + p }

func login(t *testing.T, s *Sim, app, user string) mpsim.LoginResult {
	t.Helper()
	lr, err := s.Login(app, user)
	if err != nil {
		t.Fatal(err)
	}
	return lr
}

func phonePayload(t *testing.T, s *Sim, app, user, phone string) (string, string) {
	t.Helper()
	ed, iv, err := s.EncryptPhone(app, user, phone)
	if err != nil {
		t.Fatal(err)
	}
	return ed, iv
}

func TestLoginThenPhoneJSON(t *testing.T) {
	e := newEnv(t, "wechat")
	lr := login(t, e.sim, wxApp, "alice")

	r := postJSON(t, e.url("/api/login"), map[string]any{"code": lr.Code, "device": "ios"},
		"X-Mp-Openid", "spoofed", "X-Mp-Phone", "13900000000")
	wantOK(t, r)
	got := e.up.Last(t)
	if got.Path != "/api/login" {
		t.Fatalf("path %q", got.Path)
	}
	if h := got.Header.Get("X-Mp-Openid"); h != lr.OpenID {
		t.Fatalf("X-Mp-Openid %q, want %q", h, lr.OpenID)
	}
	if got.Header.Get("X-Mp-Phone") != "" {
		t.Fatal("a client-sent X-Mp-Phone reached the upstream")
	}
	if h := got.Header.Get("X-Mp-Unionid"); h == "" || h != lr.UnionID {
		t.Fatalf("X-Mp-Unionid %q, want %q", h, lr.UnionID)
	}
	if got.Header.Get("X-Mp-Platform") != "wechat" || got.Header.Get("X-Mp-App-Id") != wxApp {
		t.Fatalf("platform/app headers: %v", got.Header)
	}
	body := got.JSON(t)
	if body["openid"] != lr.OpenID || body["unionid"] != lr.UnionID || body["code"] != lr.Code || body["device"] != "ios" {
		t.Fatalf("login body forwarded: %v", body)
	}

	ed, iv := phonePayload(t, e.sim, wxApp, "alice", "13800138000")
	r = postJSON(t, e.url("/api/phone"), map[string]any{"code": lr.Code, "encryptedData": ed, "iv": iv, "keep": []int{1, 2}})
	wantOK(t, r)
	got = e.up.Last(t)
	body = got.JSON(t)
	if body["phoneNumber"] != "13800138000" || body["purePhoneNumber"] != "13800138000" || body["countryCode"] != "86" {
		t.Fatalf("phone body: %v", body)
	}
	if _, ok := body["encryptedData"]; ok {
		t.Fatal("encryptedData forwarded")
	}
	if _, ok := body["iv"]; ok {
		t.Fatal("iv forwarded")
	}
	if fmt.Sprint(body["keep"]) != "[1 2]" {
		t.Fatalf("other fields not kept: %v", body)
	}
	if got.Header.Get("X-Mp-Phone") != "13800138000" || got.Header.Get("X-Mp-Pure-Phone") != "13800138000" ||
		got.Header.Get("X-Mp-Country-Code") != "86" || got.Header.Get("X-Mp-Openid") != lr.OpenID {
		t.Fatalf("phone headers: %v", got.Header)
	}
	if e.sim.Calls("jscode2session") != 1 {
		t.Fatalf("code2session calls %d, want 1", e.sim.Calls("jscode2session"))
	}
	e.caddy.Stop()
	noSecrets(t, e.caddy.Logs(), lr.Code, wxSecret, "13800138000", ed, iv)
	if testing.Verbose() {
		for _, l := range strings.Split(e.caddy.Logs(), "\n") {
			if strings.Contains(l, "13800138000") {
				t.Log(l)
			}
		}
	}
}

// The seed's bug: the phone request comes long after the code expired.
func TestPhoneTenMinutesAfterLogin(t *testing.T) {
	for _, platform := range []string{"wechat", "douyin"} {
		t.Run(platform, func(t *testing.T) {
			e := newEnv(t, platform)
			app := wxApp
			if platform == "douyin" {
				app = ttApp
			}
			lr := login(t, e.sim, app, "bob")
			wantOK(t, postJSON(t, e.url("/api/login"), map[string]any{"code": lr.Code}))
			e.sim.Advance(10 * time.Minute)

			// The code itself is dead at the platform by now: a backend
			// exchanging it only now would fail.
			lr2 := login(t, e.sim, app, "carol")
			e.sim.Advance(10 * time.Minute)
			wantError(t, postJSON(t, e.url("/api/login"), map[string]any{"code": lr2.Code}), 401, "invalid_code")

			ed, iv := phonePayload(t, e.sim, app, "bob", "13800138001")
			wantOK(t, postJSON(t, e.url("/api/phone"), map[string]any{"code": lr.Code, "encryptedData": ed, "iv": iv}))
			if b := e.up.Last(t).JSON(t); b["phoneNumber"] != "13800138001" {
				t.Fatalf("phone body %v", b)
			}
		})
	}
}

func TestFormBodiesAndQueryCode(t *testing.T) {
	e := newEnv(t, "wechat")
	lr := login(t, e.sim, wxApp, "dora")
	wantOK(t, postForm(t, e.url("/api/login"), url.Values{"code": {lr.Code}, "x": {"1", "2"}}))
	f := e.up.Last(t).Form(t)
	if f.Get("openid") != lr.OpenID || f.Get("code") != lr.Code || len(f["x"]) != 2 {
		t.Fatalf("form login forwarded %v", f)
	}
	if ct := e.up.Last(t).Header.Get("Content-Type"); ct != "application/x-www-form-urlencoded" {
		t.Fatalf("content type changed: %q", ct)
	}

	// A query-string code on a GET login.
	lr2 := login(t, e.sim, wxApp, "dora")
	wantOK(t, do(t, http.MethodGet, e.url("/api/login?code="+url.QueryEscape(lr2.Code)), "", nil))
	if h := e.up.Last(t).Header.Get("X-Mp-Openid"); h != lr.OpenID {
		t.Fatalf("query login openid %q", h)
	}

	ed, iv := phonePayload(t, e.sim, wxApp, "dora", "+1 650 5550100")
	// Form encoding of base64 (+ / =) must survive the round trip.
	wantOK(t, postForm(t, e.url("/api/phone"), url.Values{"code": {lr2.Code}, "encryptedData": {ed}, "iv": {iv}, "phoneNumber": {"evil"}}))
	f = e.up.Last(t).Form(t)
	if f.Get("phoneNumber") != "+1 650 5550100" || len(f["phoneNumber"]) != 1 || f.Get("encryptedData") != "" {
		t.Fatalf("form phone forwarded %v", f)
	}
}

func TestRetriedAndConcurrentLoginOneExchange(t *testing.T) {
	e := newEnv(t, "wechat")
	lr := login(t, e.sim, wxApp, "erin")
	const n = 40
	var wg sync.WaitGroup
	results := make([]Response, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = postJSON(t, e.url("/api/login"), map[string]any{"code": lr.Code})
		}()
	}
	wg.Wait()
	for _, r := range results {
		wantOK(t, r)
	}
	// And again, in turn, later.
	e.sim.Advance(6 * time.Minute)
	wantOK(t, postJSON(t, e.url("/api/login"), map[string]any{"code": lr.Code}))
	for _, rec := range e.up.Requests() {
		if rec.Header.Get("X-Mp-Openid") != lr.OpenID {
			t.Fatalf("a login got openid %q", rec.Header.Get("X-Mp-Openid"))
		}
	}
	if got := e.sim.Calls("jscode2session"); got != 1 {
		t.Fatalf("%d logins with one code made %d code2session calls, want 1", n+1, got)
	}
	t.Logf("%d concurrent + 1 later logins with one code: %d code2session call(s)", n, e.sim.Calls("jscode2session"))
}

func TestSessionKeyRotation(t *testing.T) {
	e := newEnv(t, "wechat")
	lr1 := login(t, e.sim, wxApp, "fay")
	wantOK(t, postJSON(t, e.url("/api/login"), map[string]any{"code": lr1.Code}))
	// The front end got a payload under the first key...
	ed, iv := phonePayload(t, e.sim, wxApp, "fay", "13800138002")
	// ...then logged in again, which rotated the key.
	lr2 := login(t, e.sim, wxApp, "fay")
	wantOK(t, postJSON(t, e.url("/api/login"), map[string]any{"code": lr2.Code}))
	wantOK(t, postJSON(t, e.url("/api/phone"), map[string]any{"code": lr2.Code, "encryptedData": ed, "iv": iv}))
	if b := e.up.Last(t).JSON(t); b["phoneNumber"] != "13800138002" {
		t.Fatalf("phone body %v", b)
	}
	// The old code points at the same user record, so it finds the new key too.
	ed2, iv2 := phonePayload(t, e.sim, wxApp, "fay", "13800138003")
	wantOK(t, postJSON(t, e.url("/api/phone"), map[string]any{"code": lr1.Code, "encryptedData": ed2, "iv": iv2}))
	// Two rotations later the first key is gone.
	lr3 := login(t, e.sim, wxApp, "fay")
	wantOK(t, postJSON(t, e.url("/api/login"), map[string]any{"code": lr3.Code}))
	wantError(t, postJSON(t, e.url("/api/phone"), map[string]any{"code": lr3.Code, "encryptedData": ed, "iv": iv}), 422, "decrypt_failed")
}

func TestSpoofedHeadersAndFields(t *testing.T) {
	e := newEnv(t, "wechat")
	// A plain route: every X-Mp- header goes, whatever its spelling.
	r := do(t, http.MethodGet, e.url("/plain"), "", nil,
		"X-Mp-Openid", "evil", "x-mp-phone", "1", "X-MP-UNIONID", "evil", "X_Mp_Openid", "evil", "X-Other", "kept")
	wantOK(t, r)
	got := e.up.Last(t)
	for k := range got.Header {
		if strings.HasPrefix(strings.ToLower(strings.ReplaceAll(k, "_", "-")), "x-mp-") {
			t.Fatalf("client header %q reached the upstream", k)
		}
	}
	if got.Header.Get("X-Other") != "kept" {
		t.Fatal("unrelated header dropped")
	}

	lr := login(t, e.sim, wxApp, "gus")
	wantOK(t, postJSON(t, e.url("/api/login"), map[string]any{"code": lr.Code, "openid": "evil", "UnionID": "evil"}))
	b := e.up.Last(t).JSON(t)
	if b["openid"] != lr.OpenID || b["UnionID"] != nil {
		t.Fatalf("login spoofed fields survived: %v", b)
	}
	ed, iv := phonePayload(t, e.sim, wxApp, "gus", "13800138004")
	raw := fmt.Sprintf(`{"code":%q,"encryptedData":%q,"iv":%q,"phoneNumber":"evil","PhoneNumber":"evil","purePhoneNumber":"evil","countryCode":"evil","openid":"evil","decryptedData":{"x":1},"open\u0069d":"evil2"}`, lr.Code, ed, iv)
	wantOK(t, do(t, http.MethodPost, e.url("/api/phone"), "application/json", []byte(raw), "X-Mp-Phone", "evil"))
	got = e.up.Last(t)
	if strings.Contains(string(got.Body), "evil") || strings.Contains(string(got.Body), "decryptedData") {
		t.Fatalf("spoofed fields survived: %s", got.Body)
	}
	if got.Header.Get("X-Mp-Phone") != "13800138004" {
		t.Fatalf("X-Mp-Phone %q", got.Header.Get("X-Mp-Phone"))
	}
}

func TestDecryptRoute(t *testing.T) {
	e := newEnv(t, "wechat")
	lr := login(t, e.sim, wxApp, "hana")
	wantOK(t, postJSON(t, e.url("/api/login"), map[string]any{"code": lr.Code}))
	ed, iv, err := e.sim.Encrypt(wxApp, "hana", map[string]any{"stepInfoList": []any{map[string]any{"timestamp": 1, "step": 100}}}, mpsim.EncryptOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wantOK(t, postJSON(t, e.url("/api/decrypt"), map[string]any{"code": lr.Code, "encryptedData": ed, "iv": iv, "decryptedData": "evil"}))
	b := e.up.Last(t).JSON(t)
	dd, ok := b["decryptedData"].(map[string]any)
	if !ok {
		t.Fatalf("decryptedData not an object: %v", b)
	}
	if fmt.Sprint(dd["stepInfoList"]) != "[map[step:100 timestamp:1]]" {
		t.Fatalf("decryptedData %v", dd)
	}
	if wm, _ := dd["watermark"].(map[string]any); wm["appid"] != wxApp {
		t.Fatalf("watermark %v", dd["watermark"])
	}
	if b["openid"] != lr.OpenID {
		t.Fatalf("openid %v", b["openid"])
	}
}

func TestDouyinLoginWithAnonymousCode(t *testing.T) {
	e := newEnv(t, "douyin")
	lr := login(t, e.sim, ttApp, "ivan")
	anon, err := e.sim.AnonymousLogin(ttApp, "device-1")
	if err != nil {
		t.Fatal(err)
	}
	wantOK(t, postJSON(t, e.url("/api/login"), map[string]any{"code": lr.Code, "anonymous_code": anon}))
	got := e.up.Last(t)
	if got.Header.Get("X-Mp-Openid") != lr.OpenID || got.Header.Get("X-Mp-Platform") != "douyin" {
		t.Fatalf("douyin headers %v", got.Header)
	}
	if got.Header.Get("X-Mp-Anonymous-Openid") == "" {
		t.Fatal("no anonymous openid")
	}
	ed, iv := phonePayload(t, e.sim, ttApp, "ivan", "13800138005")
	wantOK(t, postJSON(t, e.url("/api/phone"), map[string]any{"code": lr.Code, "encryptedData": ed, "iv": iv}))
	if b := e.up.Last(t).JSON(t); b["phoneNumber"] != "13800138005" {
		t.Fatalf("phone body %v", b)
	}
}

// Douyin's anonymous-only login (tt.login outside a host-app login gives
// only anonymous_code): the upstream gets the anonymous openid and no
// openid, whatever the client sent; a retry with the same code gets the
// same answer from one platform call; WeChat has no such login.
func TestDouyinAnonymousOnlyLogin(t *testing.T) {
	e := newEnv(t, "douyin", "token_binding {", "\tfrom json data.token", "}")
	anon, err := e.sim.AnonymousLogin(ttApp, "device-2")
	if err != nil {
		t.Fatal(err)
	}
	want := mpsim.AnonymousOpenID(ttApp, "device-2")
	check := func(r Response, how string) {
		t.Helper()
		wantOK(t, r)
		got := e.up.Last(t)
		if got.Header.Get("X-Mp-Anonymous-Openid") != want {
			t.Fatalf("%s: X-Mp-Anonymous-Openid %q, want %q", how, got.Header.Get("X-Mp-Anonymous-Openid"), want)
		}
		for _, h := range []string{"X-Mp-Openid", "X-Mp-Unionid", "X-Mp-Phone"} {
			if v, ok := got.Header[h]; ok {
				t.Fatalf("%s: %s %q reached the upstream", how, h, v)
			}
		}
		if got.Header.Get("X-Mp-Platform") != "douyin" || got.Header.Get("X-Mp-App-Id") != ttApp {
			t.Fatalf("%s: headers %v", how, got.Header)
		}
		if got.Method == http.MethodPost {
			b := got.JSON(t)
			if _, ok := b["openid"]; ok || b["anonymous_openid"] != want {
				t.Fatalf("%s: body %v", how, b)
			}
		}
	}
	check(postJSON(t, e.url("/api/login"), map[string]any{"anonymous_code": anon, "openid": "o-chosen", "anonymous_openid": "chosen"},
		"X-Mp-Openid", "o-chosen", "X-Mp-Anonymous-Openid", "chosen"), "JSON")
	calls := e.code2sessionCalls()
	check(do(t, http.MethodGet, e.url("/api/login?anonymous_code="+url.QueryEscape(anon)), "", nil, "X-Mp-Openid", "o-chosen"), "GET retry")
	if n := e.code2sessionCalls(); n != calls {
		t.Fatalf("the retry called the platform again (%d calls, then %d)", calls, n)
	}
	if calls != 1 {
		t.Fatalf("%d platform calls for one anonymous code", calls)
	}
	// A bad anonymous code is the client's error; nothing reaches the upstream.
	n := e.up.Count()
	wantError(t, postJSON(t, e.url("/api/login"), map[string]any{"anonymous_code": "no-such-code"}), http.StatusUnauthorized, "invalid_code")
	// An anonymous user has no session: the phone route refuses.
	login(t, e.sim, ttApp, "ivy")
	ed, iv := phonePayload(t, e.sim, ttApp, "ivy", "13800138005")
	r := postJSON(t, e.url("/api/phone"), map[string]any{"anonymous_code": anon, "encryptedData": ed, "iv": iv})
	if r.Status == http.StatusOK {
		t.Fatalf("phone with an anonymous code only: %d %s", r.Status, r.Body)
	}
	if e.up.Count() != n {
		t.Fatal("a refused request reached the upstream")
	}

	w := newEnv(t, "wechat")
	wantError(t, postJSON(t, w.url("/api/login"), map[string]any{"anonymous_code": anon}), http.StatusBadRequest, "missing_code")
}

// A decrypted object naming another user (openId/unionId under any
// spelling a binder equates) is refused; the user's own ids pass.
func TestDecryptIdentityMustMatch(t *testing.T) {
	e := newEnv(t, "wechat")
	lr := login(t, e.sim, wxApp, "ida")
	wantOK(t, postJSON(t, e.url("/api/login"), map[string]any{"code": lr.Code}))
	for _, c := range []struct {
		data map[string]any
		ok   bool
	}{
		{map[string]any{"openId": lr.OpenID, "nickName": "x"}, true},
		{map[string]any{"openId": lr.OpenID, "unionId": lr.UnionID}, true},
		{map[string]any{"openId": "o-someone-else"}, false},
		{map[string]any{"OPEN_ID": "o-someone-else"}, false},
		{map[string]any{"unionId": "u-someone-else"}, false},
		{map[string]any{"union-id": "u-someone-else", "openId": lr.OpenID}, false},
	} {
		ed, iv, err := e.sim.Encrypt(wxApp, "ida", c.data, mpsim.EncryptOptions{})
		if err != nil {
			t.Fatal(err)
		}
		n := e.up.Count()
		r := postJSON(t, e.url("/api/decrypt"), map[string]any{"code": lr.Code, "encryptedData": ed, "iv": iv})
		if c.ok {
			wantOK(t, r)
			continue
		}
		wantError(t, r, 422, "decrypt_failed")
		if e.up.Count() != n {
			t.Fatalf("%v: the upstream was called", c.data)
		}
	}
}
