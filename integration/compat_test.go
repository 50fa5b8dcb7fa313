package integration

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/mpsim"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/redistest"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/wxcrypt"
)

// Zero-change mode: an unchanged legacy backend pointed at {caddy}/mp-compat
// instead of the platform's origin.

const compatPrefix = "/mp-compat"

// sdkGet is what an unchanged WeChat/Douyin SDK does: a plain net/http GET
// of a URL built with Sprintf, decoded as JSON.
func sdkGet(t *testing.T, u string) (int, map[string]any, []byte) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatalf("GET: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("answer is not a JSON object: %v: %q", err, b)
	}
	return resp.StatusCode, m, b
}

// sdkPost posts a JSON body the way the SDKs do.
func sdkPost(t *testing.T, u string, v any) (int, map[string]any, []byte) {
	t.Helper()
	body, _ := json.Marshal(v)
	resp, err := http.Post(u, "application/json", strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("POST: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("answer is not a JSON object: %v: %q", err, b)
	}
	return resp.StatusCode, m, b
}

// wxCode2SessionURL is the URL WeChat SDKs build, on another base.
func wxCode2SessionURL(base, appID, secret, code string) string {
	return fmt.Sprintf("%s/sns/jscode2session?appid=%s&secret=%s&js_code=%s&grant_type=authorization_code", base, appID, secret, code)
}

func keysOf(m map[string]any) string {
	var k []string
	for key := range m {
		k = append(k, key)
	}
	sort.Strings(k)
	return strings.Join(k, ",")
}

// wantWxErr checks WeChat's error shape: HTTP 200, exactly errcode and
// errmsg, the errmsg starting with the platform's text and carrying a rid.
func wantWxErr(t *testing.T, status int, m map[string]any, raw []byte, errcode int, msg string) {
	t.Helper()
	if status != http.StatusOK {
		t.Fatalf("status %d, want 200 (WeChat answers errors with 200): %s", status, raw)
	}
	if keysOf(m) != "errcode,errmsg" {
		t.Fatalf("keys %s, want errcode,errmsg: %s", keysOf(m), raw)
	}
	if m["errcode"] != float64(errcode) {
		t.Fatalf("errcode %v, want %d: %s", m["errcode"], errcode, raw)
	}
	if em, _ := m["errmsg"].(string); !strings.HasPrefix(em, msg+", rid: ") {
		t.Fatalf("errmsg %q, want %q + rid", em, msg)
	}
}

// wantWxSession checks a code2session success: no errcode, the user's
// identity, and a session key that opens what the platform encrypts for
// the user now.
func wantWxSession(t *testing.T, sim *Sim, status int, m map[string]any, raw []byte, app, user string, lr mpsim.LoginResult) string {
	t.Helper()
	if status != http.StatusOK {
		t.Fatalf("status %d: %s", status, raw)
	}
	if _, ok := m["errcode"]; ok {
		t.Fatalf("a success carries errcode: %s", raw)
	}
	if m["openid"] != lr.OpenID || m["unionid"] != lr.UnionID {
		t.Fatalf("identity %s, want openid %s unionid %s", raw, lr.OpenID, lr.UnionID)
	}
	sk, _ := m["session_key"].(string)
	ed, iv, err := sim.EncryptPhone(app, user, "13800138077")
	if err != nil {
		t.Fatal(err)
	}
	pt, err := wxcrypt.Decrypt(sk, ed, iv)
	if err != nil || !strings.Contains(string(pt), "13800138077") {
		t.Fatalf("the session key does not open the user's payload: %v", err)
	}
	return sk
}

func TestCompatWeChatCode2Session(t *testing.T) {
	e := newEnv(t, "wechat", "compat "+compatPrefix)
	base := e.caddy.URL + compatPrefix

	// The front end logs in through the login route; the legacy backend
	// (unchanged, but for its base URL) exchanges the code itself, ten
	// simulated minutes after the code expired.
	lr := login(t, e.sim, wxApp, "alice")
	wantOK(t, postJSON(t, e.url("/api/login"), map[string]any{"code": lr.Code}))
	forwarded := e.up.Count()
	e.sim.Advance(15 * time.Minute)

	var keys []string
	for range 3 {
		st, m, raw := sdkGet(t, wxCode2SessionURL(base, wxApp, wxSecret, lr.Code))
		keys = append(keys, wantWxSession(t, e.sim, st, m, raw, wxApp, "alice", lr))
		if keysOf(m) != "openid,session_key,unionid" {
			t.Fatalf("keys %s", keysOf(m))
		}
	}
	if keys[0] != keys[1] || keys[1] != keys[2] {
		t.Fatal("the session key changed between repeats")
	}
	if n := e.sim.Calls("jscode2session"); n != 1 {
		t.Fatalf("jscode2session calls %d, want 1", n)
	}

	// Errors, in WeChat's shape and numbers.
	get := func(q string) (int, map[string]any, []byte) {
		return sdkGet(t, base+"/sns/jscode2session?"+q)
	}
	okQ := url.Values{"appid": {wxApp}, "secret": {wxSecret}, "js_code": {lr.Code}, "grant_type": {"authorization_code"}}
	with := func(k, v string) string {
		q := url.Values{}
		for kk, vv := range okQ {
			q[kk] = vv
		}
		if v == "" {
			q.Del(k)
		} else {
			q.Set(k, v)
		}
		return q.Encode()
	}
	for _, c := range []struct {
		name, q string
		errcode int
		msg     string
	}{
		{"wrong secret", with("secret", "not-the-secret"), 40125, "invalid appsecret"},
		{"wrong secret same length", with("secret", strings.Repeat("x", len(wxSecret))), 40125, "invalid appsecret"},
		{"wrong appid", with("appid", "wx0000000000000000"), 40013, "invalid appid"},
		{"no appid", with("appid", ""), 41002, "appid missing"},
		{"no secret", with("secret", ""), 41004, "appsecret missing"},
		{"no code", with("js_code", ""), 41008, "missing code"},
		{"bad grant_type", with("grant_type", "client_credential"), 40002, "invalid grant_type"},
		{"no grant_type", with("grant_type", ""), 40002, "invalid grant_type"},
	} {
		t.Run(c.name, func(t *testing.T) {
			st, m, raw := get(c.q)
			wantWxErr(t, st, m, raw, c.errcode, c.msg)
		})
	}
	// A POST (WeChat reads the query of a GET only).
	st, m, raw := sdkPost(t, wxCode2SessionURL(base, wxApp, wxSecret, lr.Code), map[string]any{})
	wantWxErr(t, st, m, raw, 41002, "appid missing")
	// Unknown paths under the prefix: 40066, as WeChat for a wrong path.
	for _, p := range []string{"/sns/jsCode2Session", "/sns/jscode2session/", "", "/", "/cgi-bin/unknown", "/wxa/business/getuserphonenumber"} {
		st, m, raw := sdkGet(t, base+p+"?appid="+wxApp)
		wantWxErr(t, st, m, raw, 40066, "invalid url")
	}
	if n := e.up.Count(); n != forwarded {
		t.Fatalf("compat requests reached the upstream (%d requests, want %d)", n, forwarded)
	}
	// A path that only starts like the prefix is not compat's.
	wantOK(t, do(t, http.MethodGet, e.caddy.URL+compatPrefix+"x/sns/jscode2session", "", nil))
	if got := e.up.Last(t).Path; got != compatPrefix+"x/sns/jscode2session" {
		t.Fatalf("upstream got %q", got)
	}

	// An unseen code falls through to a real exchange: once, then from
	// the store, also after the code expired.
	lr2 := login(t, e.sim, wxApp, "bert")
	st, m, raw = sdkGet(t, wxCode2SessionURL(base, wxApp, wxSecret, lr2.Code))
	sk2 := wantWxSession(t, e.sim, st, m, raw, wxApp, "bert", lr2)
	e.sim.Advance(10 * time.Minute)
	st, m, raw = sdkGet(t, wxCode2SessionURL(base, wxApp, wxSecret, lr2.Code))
	if wantWxSession(t, e.sim, st, m, raw, wxApp, "bert", lr2) != sk2 {
		t.Fatal("session key changed")
	}
	if n := e.sim.Calls("jscode2session"); n != 2 {
		t.Fatalf("jscode2session calls %d, want 2", n)
	}
	// ...and the login route then finds it too, without an exchange.
	wantOK(t, postJSON(t, e.url("/api/login"), map[string]any{"code": lr2.Code}))
	if got := e.up.Last(t).Header.Get("X-Mp-Openid"); got != lr2.OpenID {
		t.Fatalf("login after compat: openid %q", got)
	}

	// Platform errors come back with the platform's number: a code
	// never issued, an expired one.
	st, m, raw = sdkGet(t, wxCode2SessionURL(base, wxApp, wxSecret, "never-issued-code"))
	wantWxErr(t, st, m, raw, 40029, "invalid code")
	st, m, raw = sdkGet(t, wxCode2SessionURL(base, wxApp, wxSecret, "never-issued-code"))
	wantWxErr(t, st, m, raw, 40029, "invalid code")
	lr3 := login(t, e.sim, wxApp, "cleo")
	e.sim.Advance(6 * time.Minute)
	st, m, raw = sdkGet(t, wxCode2SessionURL(base, wxApp, wxSecret, lr3.Code))
	wantWxErr(t, st, m, raw, 40029, "invalid code")
	// Quota and busy platform: 45011 and -1.
	e.sim.Inject(mpsim.Fault{Endpoint: mpsim.EndpointJSCode2Session, Errcode: 45011, Times: 1})
	st, m, raw = sdkGet(t, wxCode2SessionURL(base, wxApp, wxSecret, login(t, e.sim, wxApp, "dan").Code))
	wantWxErr(t, st, m, raw, 45011, "api minute-quota reach limit mustslower retry next minute")
	e.sim.Inject(mpsim.Fault{Endpoint: mpsim.EndpointJSCode2Session, HTTPStatus: 503})
	st, m, raw = sdkGet(t, wxCode2SessionURL(base, wxApp, wxSecret, login(t, e.sim, wxApp, "eve").Code))
	wantWxErr(t, st, m, raw, -1, "system error")
	e.sim.ClearFaults()

	e.caddy.Stop()
	logs := e.caddy.Logs()
	noSecrets(t, logs, lr.Code, lr2.Code, lr3.Code, wxSecret, keys[0], sk2, "not-the-secret")
	if !strings.Contains(logs, `"compat request"`) {
		t.Error("no compat request log line")
	}
	if strings.Contains(logs, "/sns/jscode2session?") {
		t.Error("a compat request's query string appears in the logs")
	}
	if testing.Verbose() {
		for _, l := range strings.Split(logs, "\n") {
			if strings.Contains(l, "compat") {
				t.Log(l)
			}
		}
	}
}

func TestCompatDouyin(t *testing.T) {
	e := newEnv(t, "douyin", "compat "+compatPrefix)
	v2 := e.caddy.URL + compatPrefix + "/api/apps/v2/jscode2session"
	v1 := e.caddy.URL + compatPrefix + "/api/apps/jscode2session"

	wantV2Err := func(st int, m map[string]any, raw []byte, errno int) {
		t.Helper()
		if st != http.StatusOK || m["err_no"] != float64(errno) || m["data"] != nil || keysOf(m) != "data,err_no,err_tips,log_id" {
			t.Fatalf("want err_no %d in Douyin's shape, got %d %s", errno, st, raw)
		}
		if tips, _ := m["err_tips"].(string); tips == "" {
			t.Fatalf("no err_tips: %s", raw)
		}
	}
	wantV2OK := func(st int, m map[string]any, raw []byte, lr mpsim.LoginResult) map[string]any {
		t.Helper()
		if st != http.StatusOK || m["err_no"] != 0.0 || m["err_tips"] != "success" || keysOf(m) != "data,err_no,err_tips,log_id" {
			t.Fatalf("not a success: %d %s", st, raw)
		}
		d, _ := m["data"].(map[string]any)
		if keysOf(d) != "anonymous_openid,openid,session_key,unionid" {
			t.Fatalf("data keys %s", keysOf(d))
		}
		if d["openid"] != lr.OpenID || d["session_key"] == "" {
			t.Fatalf("data %v, want openid %s", d, lr.OpenID)
		}
		return d
	}

	lr := login(t, e.sim, ttApp, "dora")
	wantOK(t, postJSON(t, e.url("/api/login"), map[string]any{"code": lr.Code}))
	forwarded := e.up.Count()
	e.sim.Advance(13 * time.Minute) // the code lives 3 minutes: ten past its expiry
	req := map[string]any{"appid": ttApp, "secret": ttSecret, "code": lr.Code, "anonymous_code": ""}
	var sk string
	for i := range 3 {
		st, m, raw := sdkPost(t, v2, req)
		d := wantV2OK(st, m, raw, lr)
		if i == 0 {
			sk = d["session_key"].(string)
			ed, iv, err := e.sim.EncryptPhone(ttApp, "dora", "13800138078")
			if err != nil {
				t.Fatal(err)
			}
			if pt, err := wxcrypt.Decrypt(sk, ed, iv); err != nil || !strings.Contains(string(pt), "13800138078") {
				t.Fatalf("the session key does not open the user's payload: %v", err)
			}
		} else if d["session_key"] != sk {
			t.Fatal("session key changed")
		}
	}
	// The legacy GET, flat.
	st, m, raw := sdkGet(t, fmt.Sprintf("%s?appid=%s&secret=%s&code=%s&anonymous_code=", v1, ttApp, ttSecret, lr.Code))
	if st != http.StatusOK || m["openid"] != lr.OpenID || m["session_key"] != sk {
		t.Fatalf("legacy v1: %d %s", st, raw)
	}
	if n := e.sim.Calls("jscode2session"); n != 1 {
		t.Fatalf("jscode2session calls %d, want 1", n)
	}

	with := func(k, v string) map[string]any {
		r := map[string]any{}
		for kk, vv := range req {
			r[kk] = vv
		}
		r[k] = v
		return r
	}
	for _, c := range []struct {
		name  string
		body  map[string]any
		errno int
	}{
		{"wrong secret", with("secret", "not-the-secret"), 40017},
		{"wrong appid", with("appid", "tt0000000000000000"), 40015},
		{"no appid", with("appid", ""), 40014},
		{"no secret", with("secret", ""), 40014},
		{"no code", with("code", ""), 40014},
		{"unknown code", with("code", "never-issued-code"), 40018},
	} {
		t.Run(c.name, func(t *testing.T) {
			st, m, raw := sdkPost(t, v2, c.body)
			wantV2Err(st, m, raw, c.errno)
		})
	}
	st, m, raw = sdkGet(t, v2)
	wantV2Err(st, m, raw, 40014)
	st, m, raw = sdkGet(t, fmt.Sprintf("%s?appid=%s&secret=wrong&code=%s", v1, ttApp, lr.Code))
	if st != http.StatusOK || m["errcode"] != 40017.0 || keysOf(m) != "errcode,errmsg" {
		t.Fatalf("legacy v1 wrong secret: %d %s", st, raw)
	}
	// Anything else: 404 JSON.
	st, m, raw = sdkPost(t, e.caddy.URL+compatPrefix+"/api/apps/v3/jscode2session", req)
	if st != http.StatusNotFound || m["err_no"] != 404.0 {
		t.Fatalf("unknown path: %d %s", st, raw)
	}
	if n := e.up.Count(); n != forwarded {
		t.Fatalf("compat requests reached the upstream")
	}

	// An unseen code: one real exchange, then from the store.
	lr2 := login(t, e.sim, ttApp, "emil")
	req2 := map[string]any{"appid": ttApp, "secret": ttSecret, "code": lr2.Code}
	st, m, raw = sdkPost(t, v2, req2)
	d := wantV2OK(st, m, raw, lr2)
	e.sim.Advance(10 * time.Minute)
	st, m, raw = sdkPost(t, v2, req2)
	if wantV2OK(st, m, raw, lr2)["session_key"] != d["session_key"] {
		t.Fatal("session key changed")
	}
	if n := e.sim.Calls("jscode2session"); n != 3 { // + the unknown code
		t.Fatalf("jscode2session calls %d, want 3", n)
	}

	// An anonymous code alone: one real exchange, its result kept for a
	// retry with the same code, like a login code's.
	anon, err := e.sim.AnonymousLogin(ttApp, "device-1")
	if err != nil {
		t.Fatal(err)
	}
	areq := map[string]any{"appid": ttApp, "secret": ttSecret, "code": "", "anonymous_code": anon}
	st, m, raw = sdkPost(t, v2, areq)
	if st != 200 || m["err_no"] != 0.0 {
		t.Fatalf("anonymous: %d %s", st, raw)
	}
	if d := m["data"].(map[string]any); d["anonymous_openid"] != mpsim.AnonymousOpenID(ttApp, "device-1") || d["openid"] != "" {
		t.Fatalf("anonymous data %v", d)
	}
	calls := e.sim.Calls(mpsim.EndpointJSCode2Session)
	st, m, raw = sdkPost(t, v2, areq)
	if st != 200 || m["err_no"] != 0.0 || m["data"].(map[string]any)["anonymous_openid"] != mpsim.AnonymousOpenID(ttApp, "device-1") {
		t.Fatalf("anonymous retry: %d %s", st, raw)
	}
	if n := e.sim.Calls(mpsim.EndpointJSCode2Session); n != calls {
		t.Fatalf("the retry called the platform again (%d calls, then %d)", calls, n)
	}
	// A code the platform does not know is its error, in its shape.
	areq["anonymous_code"] = "no-such-anonymous-code"
	st, m, raw = sdkPost(t, v2, areq)
	wantV2Err(st, m, raw, 40019)

	e.caddy.Stop()
	noSecrets(t, e.caddy.Logs(), lr.Code, lr2.Code, ttSecret, sk, anon, "not-the-secret")
}

func TestCompatAccessToken(t *testing.T) {
	e := newEnv(t, "wechat", "compat "+compatPrefix)
	base := e.caddy.URL + compatPrefix
	tokenURL := fmt.Sprintf("%s/cgi-bin/token?grant_type=client_credential&appid=%s&secret=%s", base, wxApp, wxSecret)
	stable := map[string]any{"grant_type": "client_credential", "appid": wxApp, "secret": wxSecret, "force_refresh": false}

	// The handler's own use of the token (the phone-code flow), when it
	// is there: it must share the token with the compat endpoints.
	lr := login(t, e.sim, wxApp, "fay")
	wantOK(t, postJSON(t, e.url("/api/login"), map[string]any{"code": lr.Code}))
	pc, err := e.sim.PhoneCode(wxApp, "fay", "13800138079")
	if err != nil {
		t.Fatal(err)
	}
	r := postJSON(t, e.url("/api/phone"), map[string]any{"code": pc})
	handlerUsedToken := r.Status == http.StatusOK
	if !handlerUsedToken {
		t.Logf("phone-code flow not available (%d %s): checking the compat endpoints alone", r.Status, r.Body)
	}

	var tokens []string
	check := func(st int, m map[string]any, raw []byte) {
		t.Helper()
		if st != 200 || keysOf(m) != "access_token,expires_in" {
			t.Fatalf("token answer %d %s", st, raw)
		}
		tok, _ := m["access_token"].(string)
		exp, _ := m["expires_in"].(float64)
		if tok == "" || exp < 1 || exp > 0.8*7200 {
			t.Fatalf("token answer %s", raw)
		}
		t.Logf("expires_in %v", exp)
		tokens = append(tokens, tok)
	}
	for range 2 {
		check(sdkGet(t, tokenURL))
		check(sdkPost(t, base+"/cgi-bin/stable_token", stable))
	}
	// force_refresh is ignored: the same shared token.
	check(sdkPost(t, base+"/cgi-bin/stable_token", map[string]any{"grant_type": "client_credential", "appid": wxApp, "secret": wxSecret, "force_refresh": true}))
	for _, tok := range tokens[1:] {
		if tok != tokens[0] {
			t.Fatal("the token endpoints gave different tokens")
		}
	}
	if n, c := e.sim.Calls(mpsim.EndpointStableToken), e.sim.Calls(mpsim.EndpointToken); n != 1 || c != 0 {
		t.Fatalf("platform token calls: stable_token %d (want 1), token %d (want 0)", n, c)
	}
	// It is a token the platform accepts.
	pc2, err := e.sim.PhoneCode(wxApp, "fay", "13800138080")
	if err != nil {
		t.Fatal(err)
	}
	pr := postJSON(t, e.sim.URL+"/wxa/business/getuserphonenumber?access_token="+url.QueryEscape(tokens[0]), map[string]any{"code": pc2})
	// A success may carry errcode 0 (number or string) or none at all.
	if m := pr.JSON(t); (m["errcode"] != nil && m["errcode"] != 0.0 && m["errcode"] != "0") || m["phone_info"] == nil {
		t.Fatalf("the platform refuses the token: %s", pr.Body)
	}
	if handlerUsedToken {
		// The handler uses it again (no new fetch) for its own calls.
		pc3, _ := e.sim.PhoneCode(wxApp, "fay", "13800138081")
		wantOK(t, postJSON(t, e.url("/api/phone"), map[string]any{"code": pc3}))
		if n := e.sim.Calls(mpsim.EndpointStableToken); n != 1 {
			t.Fatalf("stable_token calls %d after the handler's phone call", n)
		}
	}

	// Errors, in WeChat's shape.
	for _, c := range []struct {
		name    string
		get     string
		post    map[string]any
		errcode int
		msg     string
	}{
		{"token wrong secret", fmt.Sprintf("grant_type=client_credential&appid=%s&secret=nope", wxApp), nil, 40001, "invalid credential, access_token is invalid or not latest"},
		{"token wrong appid", fmt.Sprintf("grant_type=client_credential&appid=wxnope&secret=%s", wxSecret), nil, 40013, "invalid appid"},
		{"token no appid", "grant_type=client_credential&secret=x", nil, 41002, "appid missing"},
		{"token no secret", "grant_type=client_credential&appid=x", nil, 41004, "appsecret missing"},
		{"token bad grant", fmt.Sprintf("grant_type=authorization_code&appid=%s&secret=%s", wxApp, wxSecret), nil, 40002, "invalid grant_type"},
		{"stable wrong secret", "", map[string]any{"grant_type": "client_credential", "appid": wxApp, "secret": "nope"}, 40001, "invalid credential, access_token is invalid or not latest"},
		{"stable wrong appid", "", map[string]any{"grant_type": "client_credential", "appid": "wxnope", "secret": wxSecret}, 40013, "invalid appid"},
		{"stable no grant", "", map[string]any{"appid": wxApp, "secret": wxSecret}, 40002, "invalid grant_type"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var st int
			var m map[string]any
			var raw []byte
			if c.post != nil {
				st, m, raw = sdkPost(t, base+"/cgi-bin/stable_token", c.post)
			} else {
				st, m, raw = sdkGet(t, base+"/cgi-bin/token?"+c.get)
			}
			wantWxErr(t, st, m, raw, c.errcode, c.msg)
		})
	}
	st, m, raw := sdkPost(t, tokenURL, map[string]any{})
	wantWxErr(t, st, m, raw, 43001, "require GET method")
	st, m, raw = sdkGet(t, base+"/cgi-bin/stable_token")
	wantWxErr(t, st, m, raw, 43002, "require POST method")
	bad := do(t, http.MethodPost, base+"/cgi-bin/stable_token", "application/json", []byte(`{"appid":`))
	wantWxErr(t, bad.Status, bad.JSON(t), bad.Body, 47001, "data format error")

	e.caddy.Stop()
	noSecrets(t, e.caddy.Logs(), wxSecret, tokens[0], lr.Code, pc)
}

// The intended deployment: the public site has the login route; a second
// site on an internal listener, with the same app and store and only
// compat, serves the legacy backend.
func TestCompatSecondSiteSharesStore(t *testing.T) {
	for _, storeKind := range []string{"memory", "redis"} {
		t.Run(storeKind, func(t *testing.T) {
			storeLine := "store memory"
			if storeKind == "redis" {
				storeLine = "store redis " + redistest.Start(t).URL()
			}
			sim, up := newSim(t), newUpstream(t)
			admin, public, internal := freePort(t), freePort(t), freePort(t)
			cf := fmt.Sprintf(`{
	admin 127.0.0.1:%[1]d
	auto_https off
	debug
	persist_config off
}

http://127.0.0.1:%[2]d {
	bind 127.0.0.1
	log {
		output stderr
	}
	miniprogram {
		platform wechat
		app_id %[4]s
		app_secret %[5]s
		api_base %[6]s
		%[7]s
		login /api/login
	}
	reverse_proxy %[8]s
}

http://127.0.0.1:%[3]d {
	bind 127.0.0.1
	log {
		output stderr
	}
	miniprogram {
		platform wechat
		app_id %[4]s
		app_secret %[5]s
		api_base %[6]s
		%[7]s
		compat %[9]s
	}
}
`, admin, public, internal, wxApp, wxSecret, sim.URL, storeLine, strings.TrimPrefix(up.URL, "http://"), compatPrefix)
			c := startCaddyfile(t, admin, cf, public, internal)
			internalBase := fmt.Sprintf("http://127.0.0.1:%d%s", internal, compatPrefix)

			lr := login(t, sim, wxApp, "gus")
			wantOK(t, postJSON(t, c.URL+"/api/login", map[string]any{"code": lr.Code}))
			sim.Advance(15 * time.Minute)
			var sk string
			for range 2 {
				st, m, raw := sdkGet(t, wxCode2SessionURL(internalBase, wxApp, wxSecret, lr.Code))
				sk = wantWxSession(t, sim, st, m, raw, wxApp, "gus", lr)
			}
			if n := sim.Calls("jscode2session"); n != 1 {
				t.Fatalf("jscode2session calls %d, want 1", n)
			}
			st, m, raw := sdkGet(t, wxCode2SessionURL(internalBase, wxApp, "wrong", lr.Code))
			wantWxErr(t, st, m, raw, 40125, "invalid appsecret")
			// The public site has no compat endpoints: its requests go
			// to the upstream as ever.
			n := up.Count()
			wantOK(t, do(t, http.MethodGet, wxCode2SessionURL(c.URL+compatPrefix, wxApp, "x", "y"), "", nil))
			if up.Count() != n+1 {
				t.Fatal("the public site answered a compat path itself")
			}
			// Both sites share the access token too.
			st, m, raw = sdkGet(t, fmt.Sprintf("%s/cgi-bin/token?grant_type=client_credential&appid=%s&secret=%s", internalBase, wxApp, wxSecret))
			if st != 200 || m["access_token"] == nil {
				t.Fatalf("token: %d %s", st, raw)
			}
			c.Stop()
			noSecrets(t, c.Logs(), lr.Code, wxSecret, sk, m["access_token"].(string))
		})
	}
}

// compatSite renders a Caddyfile with one compat-only site on port; bind is
// the site's bind line ("" for none) and compat its compat line.
func compatSite(admin, port int, sim *Sim, bind, compat string) string {
	return fmt.Sprintf(`{
	admin 127.0.0.1:%d
	auto_https off
	debug
	persist_config off
}

http://127.0.0.1:%d {
	%s
	log {
		output stderr
	}
	miniprogram {
		platform wechat
		app_id %s
		app_secret %s
		api_base %s
		%s
	}
}
`, admin, port, bind, wxApp, wxSecret, sim.URL, compat)
}

// The compat endpoints hand out session keys: a site address such as
// http://127.0.0.1:9001 is only a host matcher (the server listens on :9001,
// every interface, and answers anyone who sends that Host), so without
// "bind 127.0.0.1" (or allow_public) Caddy refuses to start.
func TestCompatListenerMustBeLoopback(t *testing.T) {
	sim := newSim(t)
	// An unseen code, exchanged for real through the compat endpoint.
	compatGet := func(t *testing.T, c *Caddy) {
		t.Helper()
		lr := login(t, sim, wxApp, "ivy")
		st, m, raw := sdkGet(t, wxCode2SessionURL(c.URL+compatPrefix, wxApp, wxSecret, lr.Code))
		wantWxSession(t, sim, st, m, raw, wxApp, "ivy", lr)
	}

	t.Run("every interface refused", func(t *testing.T) {
		port := freePort(t)
		out := caddyFailsToStart(t, compatSite(freePort(t), port, sim, "", "compat "+compatPrefix))
		for _, want := range []string{
			"compat endpoints hand out session keys",
			fmt.Sprintf(":%d (every interface)", port),
			"bind 127.0.0.1",
			"allow_public",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("the error does not say %q:\n%s", want, out)
			}
		}
		noSecretsIn(t, out, wxSecret)
		t.Log(out[max(0, strings.Index(out, "Error:")):])
	})

	t.Run("bind 127.0.0.1", func(t *testing.T) {
		admin, port := freePort(t), freePort(t)
		c := startCaddyfile(t, admin, compatSite(admin, port, sim, "bind 127.0.0.1", "compat "+compatPrefix), port)
		compatGet(t, c)
		if strings.Contains(c.Logs(), "allow_public") {
			t.Errorf("a loopback listener logs about allow_public:\n%s", c.Logs())
		}
	})

	t.Run("allow_public", func(t *testing.T) {
		admin, port := freePort(t), freePort(t)
		c := startCaddyfile(t, admin, compatSite(admin, port, sim, "", "compat "+compatPrefix+" {\n\t\t\tallow_public\n\t\t}"), port)
		compatGet(t, c)
		var warned bool
		for _, l := range strings.Split(c.Logs(), "\n") {
			if strings.Contains(l, `"level":"warn"`) && strings.Contains(l, "(allow_public)") &&
				strings.Contains(l, fmt.Sprintf(`":%d (every interface)"`, port)) {
				warned = true
			}
		}
		if !warned {
			t.Errorf("no WARN line naming allow_public and the public listener:\n%s", c.Logs())
		}
	})
}

// noSecretsIn fails if any secret appears in out (caddyFailsToStart's
// output, which has no access log for noSecrets to require).
func noSecretsIn(t *testing.T, out string, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if strings.Contains(out, s) {
			t.Errorf("a secret (%d chars) appears in the output", len(s))
		}
	}
}
