package mpsim

import (
	"bytes"
	"context"
	"fmt"
	"log"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestFaultErrcode(t *testing.T) {
	e := newEnv(t, Options{})
	code := e.login(wxApp, "alice").Code
	e.sim.Inject(Fault{Endpoint: EndpointJSCode2Session, Errcode: -1, Times: 2})
	for i := 0; i < 2; i++ {
		m := e.wxExchange(wxApp, wxSecret, code)
		wantErrcode(t, m, -1)
		if !strings.HasPrefix(str(m, "errmsg"), "system error, rid: ") {
			t.Fatal(m)
		}
	}
	// Times used up; the injected errors did not consume the code.
	if m := e.wxExchange(wxApp, wxSecret, code); str(m, "openid") == "" {
		t.Fatalf("after the fault: %v", m)
	}
	if e.sim.Calls(EndpointJSCode2Session) != 3 || len(e.sim.Faults()) != 0 {
		t.Fatalf("calls %d faults %v", e.sim.Calls(EndpointJSCode2Session), e.sim.Faults())
	}

	// Douyin shape, platform filter, until cleared.
	e.sim.Inject(Fault{Endpoint: EndpointJSCode2Session, Platform: Douyin, Errcode: -1})
	tc := e.login(ttApp, "alice").Code
	for i := 0; i < 3; i++ {
		_, raw := e.do("POST", "/api/apps/v2/jscode2session", ttBody("appid", ttApp, "secret", ttSecret, "code", tc))
		wantErrNo(t, raw, -1)
	}
	if m := e.wxExchange(wxApp, wxSecret, e.login(wxApp, "bob").Code); str(m, "openid") == "" {
		t.Fatal("douyin fault hit WeChat")
	}
	if m := e.json200("GET", "/api/apps/jscode2session?"+q("appid", ttApp, "secret", ttSecret, "code", tc), nil); num(m, "errcode") != -1 {
		t.Fatalf("legacy shape: %v", m)
	}
	e.sim.ClearFaults()
	if e.ttExchange(ttBody("appid", ttApp, "secret", ttSecret, "code", tc))["data"] == nil {
		t.Fatal("douyin code consumed by a fault")
	}

	// "*" and other endpoints.
	e.sim.Inject(Fault{Endpoint: EndpointAll, Errcode: 45011, Times: 3})
	wantErrcode(t, e.json200("GET", "/cgi-bin/token?"+q("grant_type", "client_credential", "appid", wxApp, "secret", wxSecret), nil), 45011)
	wantErrcode(t, e.stable(wxApp, wxSecret, false), 45011)
	wantErrcode(t, e.phone("whatever", map[string]any{"code": "x"}), 45011)
	e.wxToken(wxApp, wxSecret)
	tok := e.wxToken(wxApp, wxSecret)
	e.sim.Inject(Fault{Endpoint: EndpointGetUserPhoneNumber, Errcode: -1, Times: 1})
	pc := e.phoneCode(wxApp, "alice", "1")
	wantErrcode(t, e.phone(tok, map[string]any{"code": pc}), -1)
	if m := e.phone(tok, map[string]any{"code": pc}); num(m, "errcode") != 0 {
		t.Fatalf("phone code consumed by a fault: %v", m)
	}
}

func TestFaultHTTPStatus(t *testing.T) {
	e := newEnv(t, Options{})
	e.sim.Inject(Fault{Endpoint: EndpointToken, HTTPStatus: 502, Errcode: -1, Times: 1})
	st, raw := e.do("GET", "/cgi-bin/token?"+q("grant_type", "client_credential", "appid", wxApp, "secret", wxSecret), nil)
	if st != 502 || bytes.HasPrefix(raw, []byte("{")) {
		t.Fatalf("%d %s", st, raw)
	}
	e.wxToken(wxApp, wxSecret)
	if e.sim.Calls(EndpointToken) != 2 {
		t.Fatal(e.sim.Calls(EndpointToken))
	}
}

func TestFaultDelay(t *testing.T) {
	e := newEnv(t, Options{})
	e.sim.Inject(Fault{Endpoint: EndpointJSCode2Session, Delay: 150 * time.Millisecond, Times: 1})
	code := e.login(wxApp, "alice").Code
	start := time.Now()
	if m := e.wxExchange(wxApp, wxSecret, code); str(m, "openid") == "" {
		t.Fatal(m)
	}
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Fatalf("no delay: %v", d)
	}
	// Delay then error.
	e.sim.Inject(Fault{Endpoint: EndpointJSCode2Session, Delay: 50 * time.Millisecond, Errcode: 40226, Times: 1})
	wantErrcode(t, e.wxExchange(wxApp, wxSecret, "x"), 40226)

	// Cancellation ends the delay early, without an answer.
	var buf bytes.Buffer
	var mu sync.Mutex
	e2 := newEnv(t, Options{Logger: log.New(&lockedWriter{w: &buf, mu: &mu}, "", 0)})
	e2.sim.Inject(Fault{Endpoint: EndpointStableToken, Delay: 10 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "POST", e2.srv.URL+"/cgi-bin/stable_token", strings.NewReader("{}"))
	start = time.Now()
	if _, err := e2.srv.Client().Do(req); err == nil {
		t.Fatal("expected the client to give up")
	}
	deadline := time.Now().Add(3 * time.Second)
	for {
		mu.Lock()
		done := strings.Contains(buf.String(), "delay canceled")
		mu.Unlock()
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the handler did not notice the cancellation")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if time.Since(start) > 3*time.Second || e2.sim.Calls(EndpointStableToken) != 1 {
		t.Fatal("cancellation")
	}
}

type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestControlAPI(t *testing.T) {
	e := newEnv(t, Options{})
	ok := func(m map[string]any) {
		t.Helper()
		if m["ok"] != true {
			t.Fatal(m)
		}
	}
	ok(e.json200("POST", "/_sim/apps", map[string]any{"platform": "wechat", "appid": "wxctl", "secret": "ctl-secret"}))
	st, raw := e.do("GET", "/_sim/apps", nil)
	if st != 200 || !strings.Contains(string(raw), `"appid":"wxctl"`) || strings.Contains(string(raw), "secret") {
		t.Fatalf("apps: %s", raw)
	}

	lr := e.json200("POST", "/_sim/login", map[string]any{"appid": "wxctl", "user": "alice"})
	if str(lr, "code") == "" || str(lr, "openid") == "" || lr["unionid"] != "" {
		t.Fatal(lr)
	}
	key := str(e.wxExchange("wxctl", "ctl-secret", str(lr, "code")), "session_key")
	e.json200("POST", "/_sim/login", map[string]any{"appid": "wxctl", "user": "alice"})

	enc := e.json200("POST", "/_sim/encrypt", map[string]any{"appid": "wxctl", "user": "alice", "data": map[string]any{"openGId": "G"}, "previous": true, "watermark_appid": "wxelse"})
	got, err := decrypt(key, str(enc, "encryptedData"), str(enc, "iv"))
	if err != nil || got["openGId"] != "G" || got["watermark"].(map[string]any)["appid"] != "wxelse" {
		t.Fatalf("encrypt: %v %v", got, err)
	}
	key2 := str(e.wxExchange("wxctl", "ctl-secret", str(e.json200("POST", "/_sim/login", map[string]any{"appid": "wxctl", "user": "alice"}), "code")), "session_key")
	ph := e.json200("POST", "/_sim/phone", map[string]any{"appid": "wxctl", "user": "alice", "phone": "13800138000"})
	if got, err := decrypt(key2, str(ph, "encryptedData"), str(ph, "iv")); err != nil || got["purePhoneNumber"] != "13800138000" {
		t.Fatalf("phone: %v %v", got, err)
	}

	pc := e.json200("POST", "/_sim/phone_code", map[string]any{"appid": "wxctl", "user": "alice", "phone": "13800138000"})
	tok := e.wxToken("wxctl", "ctl-secret")
	if m := e.phone(tok, map[string]any{"code": str(pc, "code")}); m["phone_info"].(map[string]any)["phoneNumber"] != "13800138000" {
		t.Fatal(m)
	}

	al := e.json200("POST", "/_sim/anonymous_login", map[string]any{"appid": ttApp, "device": "dev"})
	d := e.ttExchange(ttBody("appid", ttApp, "secret", ttSecret, "anonymous_code", str(al, "anonymous_code")))["data"].(map[string]any)
	if d["anonymous_openid"] != al["anonymous_openid"] {
		t.Fatalf("anonymous: %v %v", d, al)
	}

	before := e.sim.Now()
	adv := e.json200("POST", "/_sim/advance", map[string]any{"duration": "10m"})
	now, err := time.Parse(time.RFC3339Nano, str(adv, "now"))
	if err != nil || now.Sub(before) < 10*time.Minute {
		t.Fatalf("advance: %v %v", adv, err)
	}

	ok(e.json200("POST", "/_sim/faults", map[string]any{"endpoint": "jscode2session", "errcode": -1, "delay": "1ms", "times": 1}))
	ok(e.json200("POST", "/_sim/faults", map[string]any{"Endpoint": "token", "HTTPStatus": 500, "Platform": "wechat"})) // Go field names work too
	fl := e.json200("GET", "/_sim/faults", nil)["faults"].([]any)
	if len(fl) != 2 || fl[0].(map[string]any)["delay"] != "1ms" {
		t.Fatal(fl)
	}
	wantErrcode(t, e.wxExchange(wxApp, wxSecret, "x"), -1)
	if st, _ := e.do("GET", "/cgi-bin/token?"+q("grant_type", "client_credential", "appid", wxApp, "secret", wxSecret), nil); st != 500 {
		t.Fatal(st)
	}
	ok(e.json200("DELETE", "/_sim/faults", nil))
	if len(e.sim.Faults()) != 0 {
		t.Fatal("faults not cleared")
	}

	stats := e.json200("GET", "/_sim/stats", nil)
	calls := stats["calls"].(map[string]any)
	if num(calls, "jscode2session") != 4 || num(calls, "token") != 2 || num(calls, "getuserphonenumber") != 1 || num(calls, "stable_token") != 0 || str(stats, "now") == "" {
		t.Fatalf("stats %v", stats)
	}

	ok(e.json200("POST", "/_sim/reset", nil))
	stats = e.json200("GET", "/_sim/stats", nil)
	if num(stats["calls"].(map[string]any), "jscode2session") != 0 {
		t.Fatal(stats)
	}
	if time.Until(e.sim.Now()) > time.Minute {
		t.Fatal("reset keeps the clock offset")
	}
	wantErrcode(t, e.wxExchange("wxctl", "ctl-secret", str(lr, "code")), 40029) // state cleared, app kept
	if _, err := e.sim.Login("wxctl", "alice"); err != nil {
		t.Fatal("reset dropped an added app")
	}

	// Errors.
	bad := func(method, path string, body any, status int, frag string) {
		t.Helper()
		st, raw := e.do(method, path, body)
		m := decodeObj(t, raw)
		if st != status || !strings.Contains(str(m, "error"), frag) {
			t.Fatalf("%s %s: %d %s", method, path, st, raw)
		}
	}
	bad("POST", "/_sim/login", "{", 400, "bad JSON")
	bad("POST", "/_sim/login", map[string]any{"appid": wxApp, "usr": "typo"}, 400, "unknown field")
	bad("POST", "/_sim/login", map[string]any{"appid": "nope", "user": "a"}, 400, "unknown app")
	bad("POST", "/_sim/login", map[string]any{"appid": wxApp}, 400, "user")
	bad("POST", "/_sim/apps", map[string]any{"platform": "taobao", "appid": "x", "secret": "y"}, 400, "platform")
	bad("POST", "/_sim/phone_code", map[string]any{"appid": qqApp, "user": "a", "phone": "13800138000"}, 400, "QQ documents no phone-code exchange")
	bad("POST", "/_sim/encrypt", map[string]any{"appid": wxApp, "user": "nobody", "data": map[string]any{}}, 400, "no session key")
	bad("POST", "/_sim/encrypt", map[string]any{"appid": wxApp, "user": "nobody"}, 400, "data")
	bad("POST", "/_sim/phone_code", map[string]any{"appid": ttApp, "user": "a"}, 400, "phone")
	bad("POST", "/_sim/public_key", map[string]any{"appid": ttApp, "public_key": "not PEM"}, 400, "PEM")
	bad("POST", "/_sim/public_key", map[string]any{"appid": wxApp, "public_key": testPublicKeyPEM}, 400, "Douyin")
	bad("POST", "/_sim/advance", map[string]any{"duration": "soon"}, 400, "duration")
	bad("POST", "/_sim/faults", map[string]any{"endpoint": "nope", "errcode": 1}, 400, "endpoint")
	bad("POST", "/_sim/faults", map[string]any{"endpoint": "token"}, 400, "needs")
	bad("POST", "/_sim/faults", map[string]any{"endpoint": "token", "delay": "x"}, 400, "delay")
	bad("GET", "/_sim/login", nil, 405, "method")
	bad("GET", "/_sim/nope", nil, 404, "unknown")
}

func TestReset(t *testing.T) {
	e := newEnv(t, Options{})
	e.sim.AddApp(App{Platform: Douyin, AppID: "ttnew", Secret: "s"})
	code := e.login(wxApp, "alice").Code
	e.sim.Advance(time.Hour)
	e.sim.Inject(Fault{Endpoint: EndpointAll, Errcode: -1})
	e.wxExchange(wxApp, wxSecret, code)
	e.sim.Reset()
	if len(e.sim.Faults()) != 0 || e.sim.Calls(EndpointJSCode2Session) != 0 || e.sim.Now().After(time.Now().Add(time.Minute)) {
		t.Fatal("reset")
	}
	wantErrcode(t, e.wxExchange(wxApp, wxSecret, code), 40029)
	if len(e.sim.Apps()) != len(DemoApps())+1 {
		t.Fatal(e.sim.Apps())
	}
}

func TestConcurrentLogins(t *testing.T) {
	e := newEnv(t, Options{})
	const workers, per = 16, 25
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[string]bool{}
	errs := make(chan error, workers*per)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < per; i++ {
				user := fmt.Sprintf("u%d", (w+i)%7)
				app, secret := wxApp, wxSecret
				if i%3 == 0 {
					app, secret = ttApp, ttSecret
				}
				lr, err := e.sim.Login(app, user)
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				if codes[lr.Code] {
					errs <- fmt.Errorf("duplicate code")
				}
				codes[lr.Code] = true
				mu.Unlock()
				var resp *http.Response
				if app == wxApp {
					resp, err = e.srv.Client().Get(e.srv.URL + "/sns/jscode2session?" + q("appid", app, "secret", secret, "js_code", lr.Code, "grant_type", "authorization_code"))
				} else {
					resp, err = e.srv.Client().Post(e.srv.URL+"/api/apps/v2/jscode2session", "application/json", strings.NewReader(fmt.Sprintf(`{"appid":%q,"secret":%q,"code":%q}`, app, secret, lr.Code)))
				}
				if err != nil {
					errs <- err
					return
				}
				var buf bytes.Buffer
				buf.ReadFrom(resp.Body)
				resp.Body.Close()
				if !strings.Contains(buf.String(), lr.OpenID) {
					errs <- fmt.Errorf("exchange: %s", buf.String())
				}
				if _, _, err := e.sim.Encrypt(app, user, map[string]any{"i": i}, EncryptOptions{}); err != nil {
					errs <- err
				}
				e.sim.AllCalls()
			}
		}(w)
	}
	// Meanwhile: control calls and the clock.
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 20; i++ {
			e.do("GET", "/_sim/stats", nil)
			e.sim.Advance(time.Millisecond)
			e.wxToken(wxApp, wxSecret)
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := e.sim.Calls(EndpointJSCode2Session); n != workers*per {
		t.Fatalf("calls %d", n)
	}
}

func TestLogHasNoSecrets(t *testing.T) {
	var buf bytes.Buffer
	var mu sync.Mutex
	e := newEnv(t, Options{Logger: log.New(&lockedWriter{w: &buf, mu: &mu}, "", 0)})
	lr := e.login(wxApp, "alice")
	m := e.wxExchange(wxApp, wxSecret, lr.Code)
	wantErrcode(t, e.wxExchange(wxApp, wxSecret, lr.Code), 40163)
	tok := e.wxToken(wxApp, wxSecret)
	pc := e.phoneCode(wxApp, "alice", "13800138000")
	e.phone(tok, map[string]any{"code": pc})
	e.json200("POST", "/_sim/login", map[string]any{"appid": wxApp, "user": "alice"})
	e.ttExchange(ttBody("appid", ttApp, "secret", ttSecret, "code", e.login(ttApp, "bob").Code))
	mu.Lock()
	out := buf.String()
	mu.Unlock()
	for _, secret := range []string{wxSecret, ttSecret, lr.Code, str(m, "session_key"), tok, pc, "13800138000", "js_code"} {
		if strings.Contains(out, secret) {
			t.Fatalf("log contains %q:\n%s", secret, out)
		}
	}
	if !strings.Contains(out, "GET /sns/jscode2session 200 errcode=40163") || strings.Count(out, "\n") != 6 {
		t.Fatalf("log:\n%s", out)
	}
}

func TestPrune(t *testing.T) {
	s := New(Options{})
	for i := 0; i < 50; i++ {
		s.Login(wxApp, fmt.Sprint("u", i))
		s.AnonymousLogin(ttApp, fmt.Sprint("d", i))
		s.PhoneCode(wxApp, "u", "1")
	}
	e := &env{t: t, sim: s}
	_ = e
	s.Advance(10 * time.Minute)
	s.Login(wxApp, "trigger")
	s.mu.Lock()
	n := len(s.codes) + len(s.anonCodes) + len(s.phoneCodes)
	s.mu.Unlock()
	if n != 1 {
		t.Fatalf("%d codes left", n)
	}

	// Dead tokens are remembered for a day, then forgotten.
	s.mu.Lock()
	now := s.nowLocked()
	s.tokens["dead"] = &token{appID: wxApp, kind: kindClassic, expires: now.Add(-time.Hour)}
	s.tokens["old"] = &token{appID: wxApp, kind: kindClassic, expires: now.Add(-25 * time.Hour)}
	s.lastPrune = time.Time{}
	s.pruneLocked(now)
	_, dead := s.tokens["dead"]
	_, old := s.tokens["old"]
	s.mu.Unlock()
	if !dead || old {
		t.Fatal("token retention")
	}
}

func TestUserEviction(t *testing.T) {
	s := New(Options{})
	s.mu.Lock()
	a := s.apps[wxApp]
	now := s.nowLocked()
	for i := 0; i < maxUsers; i++ {
		s.userLocked(a, fmt.Sprint("u", i), now.Add(time.Duration(i)))
	}
	s.userLocked(a, "one-more", now.Add(time.Hour))
	n := len(s.users)
	_, oldest := s.users[userKey(wxApp, "u0")]
	s.mu.Unlock()
	if n > maxUsers || oldest {
		t.Fatalf("users %d, oldest kept %v", n, oldest)
	}
}

func TestAddAppPanicsOnInvalid(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("no panic")
		}
	}()
	New(Options{}).AddApp(App{Platform: "wechat"})
}
