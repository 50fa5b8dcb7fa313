package mpsim

import (
	"encoding/base64"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"
)

var (
	wxOpenIDRe = regexp.MustCompile(`^o[A-Za-z0-9_-]{27}$`)
	ttOpenIDRe = regexp.MustCompile(`^_000[A-Za-z0-9_-]{32}$`)
)

func TestWeChatCode2SessionSuccess(t *testing.T) {
	e := newEnv(t, Options{Quirks: exact, Apps: append(DemoApps(), App{Platform: WeChat, AppID: "wxnounion", Secret: "s2"})})
	lr := e.login(wxApp, "alice")
	if len(lr.Code) != 32 || !wxOpenIDRe.MatchString(lr.OpenID) || !wxOpenIDRe.MatchString(lr.UnionID) {
		t.Fatalf("login result %+v", lr)
	}
	st, raw := e.do("GET", "/sns/jscode2session?"+q("appid", wxApp, "secret", wxSecret, "js_code", lr.Code, "grant_type", "authorization_code"), nil)
	if st != 200 {
		t.Fatalf("status %d", st)
	}
	if strings.Contains(string(raw), "errcode") || strings.Contains(string(raw), "errmsg") {
		t.Fatalf("a success carries no errcode: %s", raw)
	}
	m := decodeObj(t, raw)
	key, err := base64.StdEncoding.DecodeString(str(m, "session_key"))
	if err != nil || len(key) != 16 {
		t.Fatalf("session_key %q", str(m, "session_key"))
	}
	if str(m, "openid") != lr.OpenID || str(m, "unionid") != lr.UnionID || len(m) != 3 {
		t.Fatalf("body %v vs %+v", m, lr)
	}

	// Deterministic openid per (app, user); unionid per user across apps.
	if again := e.login(wxApp, "alice"); again.OpenID != lr.OpenID || again.UnionID != lr.UnionID {
		t.Fatalf("openid changed: %+v %+v", lr, again)
	}
	if bob := e.login(wxApp, "bob"); bob.OpenID == lr.OpenID || bob.UnionID == lr.UnionID {
		t.Fatal("two users share an openid")
	}

	// An app without unionid gives none.
	lr2 := e.login("wxnounion", "alice")
	if lr2.OpenID == lr.OpenID || lr2.UnionID != "" {
		t.Fatalf("other app %+v", lr2)
	}
	m = e.wxExchange("wxnounion", "s2", lr2.Code)
	if _, ok := m["unionid"]; ok || str(m, "openid") != lr2.OpenID {
		t.Fatalf("no-unionid app: %v", m)
	}
}

func TestWeChatCode2SessionErrors(t *testing.T) {
	e := newEnv(t, Options{})
	code := e.login(wxApp, "alice").Code
	ttCode := e.login(ttApp, "alice").Code
	cases := []struct {
		name  string
		query string
		want  int
	}{
		{"appid missing", q("secret", wxSecret, "js_code", code, "grant_type", "authorization_code"), 41002},
		{"secret missing", q("appid", wxApp, "js_code", code, "grant_type", "authorization_code"), 41004},
		{"code missing", q("appid", wxApp, "secret", wxSecret, "grant_type", "authorization_code"), 41008},
		{"bad grant_type", q("appid", wxApp, "secret", wxSecret, "js_code", code, "grant_type", "client_credential"), 40002},
		{"no grant_type", q("appid", wxApp, "secret", wxSecret, "js_code", code), 40002},
		{"unknown appid", q("appid", "wxnope", "secret", wxSecret, "js_code", code, "grant_type", "authorization_code"), 40013},
		{"douyin appid", q("appid", ttApp, "secret", ttSecret, "js_code", ttCode, "grant_type", "authorization_code"), 40013},
		{"bad secret", q("appid", wxApp, "secret", "nope", "js_code", code, "grant_type", "authorization_code"), 40125},
		{"unknown code", q("appid", wxApp, "secret", wxSecret, "js_code", "nope", "grant_type", "authorization_code"), 40029},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			wantErrcode(t, e.json200("GET", "/sns/jscode2session?"+c.query, nil), c.want)
		})
	}
	// POST (even with the query) is answered like a request without appid.
	wantErrcode(t, e.json200("POST", "/sns/jscode2session?"+q("appid", wxApp, "secret", wxSecret, "js_code", code, "grant_type", "authorization_code"), nil), 41002)
	// None of that consumed the code.
	if m := e.wxExchange(wxApp, wxSecret, code); str(m, "openid") == "" {
		t.Fatalf("code consumed by a failed call: %v", m)
	}
	// A wrong-case path is 40066, as on the platform.
	wantErrcode(t, e.json200("GET", "/sns/jsCode2Session?"+q("appid", wxApp), nil), 40066)
	if st, _ := e.do("GET", "/nope", nil); st != 404 {
		t.Fatalf("unknown path: %d", st)
	}
}

func TestWeChatSingleUse(t *testing.T) {
	e := newEnv(t, Options{})
	code := e.login(wxApp, "alice").Code
	if m := e.wxExchange(wxApp, wxSecret, code); str(m, "session_key") == "" {
		t.Fatal(m)
	}
	wantErrcode(t, e.wxExchange(wxApp, wxSecret, code), 40163)
	wantErrcode(t, e.wxExchange(wxApp, wxSecret, code), 40163)
}

func TestWeChatCodeExpiry(t *testing.T) {
	e := newEnv(t, Options{})
	c1 := e.login(wxApp, "alice").Code
	c2 := e.login(wxApp, "bob").Code
	e.sim.Advance(4*time.Minute + 59*time.Second)
	if m := e.wxExchange(wxApp, wxSecret, c1); str(m, "openid") == "" {
		t.Fatalf("4m59s: %v", m)
	}
	e.sim.Advance(2 * time.Second) // 5m01s
	wantErrcode(t, e.wxExchange(wxApp, wxSecret, c2), 40029)

	// A custom TTL.
	e2 := newEnv(t, Options{WeChatCodeTTL: time.Minute})
	c := e2.login(wxApp, "alice").Code
	e2.sim.Advance(61 * time.Second)
	wantErrcode(t, e2.wxExchange(wxApp, wxSecret, c), 40029)
}

func TestSessionKeyRotation(t *testing.T) {
	e := newEnv(t, Options{})
	k1 := str(e.wxExchange(wxApp, wxSecret, e.login(wxApp, "alice").Code), "session_key")
	k2 := str(e.wxExchange(wxApp, wxSecret, e.login(wxApp, "alice").Code), "session_key")
	if k1 == "" || k1 == k2 {
		t.Fatalf("keys %q %q", k1, k2)
	}
	data := map[string]any{"nickName": "Band", "stepInfoList": []any{map[string]any{"step": 42}}}
	ed, iv, err := e.sim.Encrypt(wxApp, "alice", data, EncryptOptions{Previous: true})
	if err != nil {
		t.Fatal(err)
	}
	got, err := decrypt(k1, ed, iv)
	if err != nil || str(got, "nickName") != "Band" {
		t.Fatalf("previous key: %v %v", got, err)
	}
	if got, err := decrypt(k2, ed, iv); err == nil && str(got, "nickName") == "Band" {
		t.Fatal("payload for the previous key decrypts with the current one")
	}
	ed, iv, err = e.sim.Encrypt(wxApp, "alice", data, EncryptOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := decrypt(k2, ed, iv); err != nil || str(got, "nickName") != "Band" {
		t.Fatalf("current key: %v %v", got, err)
	}
	// Other users' keys are separate.
	kb := str(e.wxExchange(wxApp, wxSecret, e.login(wxApp, "bob").Code), "session_key")
	if kb == k2 {
		t.Fatal("two users share a key")
	}
	// Douyin rotates too.
	d1 := e.ttExchange(map[string]any{"appid": ttApp, "secret": ttSecret, "code": e.login(ttApp, "carol").Code})
	d2 := e.ttExchange(map[string]any{"appid": ttApp, "secret": ttSecret, "code": e.login(ttApp, "carol").Code})
	dk1 := str(d1["data"].(map[string]any), "session_key")
	dk2 := str(d2["data"].(map[string]any), "session_key")
	if dk1 == dk2 {
		t.Fatal("douyin key did not rotate")
	}
	ed, iv, err = e.sim.Encrypt(ttApp, "carol", map[string]any{"x": 1}, EncryptOptions{Previous: true})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := decrypt(dk1, ed, iv); err != nil || got["watermark"].(map[string]any)["appid"] != ttApp {
		t.Fatalf("douyin previous: %v %v", got, err)
	}
}

func TestEncrypt(t *testing.T) {
	e := newEnv(t, Options{})
	if _, _, err := e.sim.Encrypt(wxApp, "alice", nil, EncryptOptions{}); !errors.Is(err, ErrNoSession) {
		t.Fatalf("no session: %v", err)
	}
	key := str(e.wxExchange(wxApp, wxSecret, e.login(wxApp, "alice").Code), "session_key")
	if _, _, err := e.sim.Encrypt(wxApp, "alice", nil, EncryptOptions{Previous: true}); !errors.Is(err, ErrNoPrevious) {
		t.Fatalf("no previous: %v", err)
	}
	if _, _, err := e.sim.Encrypt("nope", "alice", nil, EncryptOptions{}); !errors.Is(err, ErrUnknownApp) {
		t.Fatalf("unknown app: %v", err)
	}

	// Watermark added with the app id and the simulated time.
	e.sim.Advance(time.Hour)
	in := map[string]any{"openId": "x"}
	ed, iv, err := e.sim.Encrypt(wxApp, "alice", in, EncryptOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := in["watermark"]; ok {
		t.Fatal("Encrypt modified the caller's map")
	}
	if raw, _ := base64.StdEncoding.DecodeString(iv); len(raw) != 16 {
		t.Fatalf("iv %q", iv)
	}
	got, err := decrypt(key, ed, iv)
	if err != nil {
		t.Fatal(err)
	}
	wm := got["watermark"].(map[string]any)
	if wm["appid"] != wxApp || int64(wm["timestamp"].(float64)) != e.sim.Now().Unix() && int64(wm["timestamp"].(float64)) != e.sim.Now().Unix()-1 {
		t.Fatalf("watermark %v (now %v)", wm, e.sim.Now().Unix())
	}
	// Override and a watermark of the caller's own.
	ed, iv, _ = e.sim.Encrypt(wxApp, "alice", in, EncryptOptions{WatermarkAppID: "wxother"})
	got, _ = decrypt(key, ed, iv)
	if got["watermark"].(map[string]any)["appid"] != "wxother" {
		t.Fatalf("override: %v", got)
	}
	ed, iv, _ = e.sim.Encrypt(wxApp, "alice", map[string]any{"watermark": map[string]any{"appid": "mine", "timestamp": 1}}, EncryptOptions{WatermarkAppID: "ignored"})
	got, _ = decrypt(key, ed, iv)
	if got["watermark"].(map[string]any)["appid"] != "mine" {
		t.Fatalf("own watermark: %v", got)
	}
	// Two encryptions use different ivs.
	_, iv2, _ := e.sim.Encrypt(wxApp, "alice", in, EncryptOptions{})
	if iv2 == iv {
		t.Fatal("iv reused")
	}

	// Phone payload.
	ed, iv, err = e.sim.EncryptPhone(wxApp, "alice", "13800138000")
	if err != nil {
		t.Fatal(err)
	}
	got, err = decrypt(key, ed, iv)
	if err != nil || got["phoneNumber"] != "13800138000" || got["purePhoneNumber"] != "13800138000" || got["countryCode"] != "86" || got["watermark"].(map[string]any)["appid"] != wxApp {
		t.Fatalf("phone: %v %v", got, err)
	}
}

// The helper reproduces WeChat's published vector byte for byte
// (the platforms' documentation).
func TestEncryptCBCOfficialVector(t *testing.T) {
	const plain = `{"openId":"oGZUI0egBJY1zhBYw2KhdUfwVJJE","nickName":"Band","gender":1,"language":"zh_CN","city":"Guangzhou","province":"Guangdong","country":"CN","avatarUrl":"http://wx.qlogo.cn/mmopen/vi_32/aSKcBBPpibyKNicHNTMM0qJVh8Kjgiak2AHWr8MHM4WgMEm7GFhsf8OYrySdbvAMvTsw3mo8ibKicsnfN5pRjl1p8HQ/0","unionId":"ocMvos6NjeKLIBqg5Mr9QjxrP1FA","watermark":{"timestamp":1477314187,"appid":"wx4f4bc4dec97d474b"}}`
	const want = "CiyLU1Aw2KjvrjMdj8YKliAjtP4gsMZMQmRzooG2xrDcvSnxIMXFufNstNGTyaGS9uT5geRa0W4oTOb1WT7fJlAC+oNPdbB+3hVbJSRgv+4lGOETKUQz6OYStslQ142dNCuabNPGBzlooOmB231qMM85d2/fV6ChevvXvQP8Hkue1poOFtnEtpyxVLW1zAo6/1Xx1COxFvrc2d7UL/lmHInNlxuacJXwu0fjpXfz/YqYzBIBzD6WUfTIF9GRHpOn/Hz7saL8xz+W//FRAUid1OksQaQx4CMs8LOddcQhULW4ucetDf96JcR3g0gfRK4PC7E/r7Z6xNrXd2UIeorGj5Ef7b1pJAYB6Y5anaHqZ9J6nKEBvB4DnNLIVWSgARns/8wR2SiRS7MNACwTyrGvt9ts8p12PKFdlqYTopNHR1Vf7XjfhQlVsAJdNiKdYmYVoKlaRv85IfVunYzO0IKXsyl7JCUjCpoG20f0a04COwfneQAGGwd5oa+T8yO5hzuyDb/XcxxmK01EpqOyuxINew=="
	key, _ := base64.StdEncoding.DecodeString("tiihtNczf5v6AKRyjwEUhQ==")
	iv, _ := base64.StdEncoding.DecodeString("r7BXXKkLb8qrSNn05n0qiA==")
	ct, err := encryptCBC(key, iv, []byte(plain))
	if err != nil {
		t.Fatal(err)
	}
	if got := base64.StdEncoding.EncodeToString(ct); got != want {
		t.Fatalf("ciphertext differs:\n got %s\nwant %s", got, want)
	}
	if m, err := decrypt("tiihtNczf5v6AKRyjwEUhQ==", want, "r7BXXKkLb8qrSNn05n0qiA=="); err != nil || m["openId"] != "oGZUI0egBJY1zhBYw2KhdUfwVJJE" {
		t.Fatalf("test decrypt: %v %v", m, err)
	}
	// Exact block multiple: a whole block of padding.
	ct, _ = encryptCBC(key, iv, make([]byte, 32))
	if len(ct) != 48 {
		t.Fatalf("len %d", len(ct))
	}
}

func TestWeChatRateLimit(t *testing.T) {
	e := newEnv(t, Options{})
	for i := 0; i < RateLimit; i++ {
		if m := e.wxExchange(wxApp, wxSecret, e.login(wxApp, "alice").Code); str(m, "openid") == "" {
			t.Fatalf("call %d: %v", i+1, m)
		}
	}
	code := e.login(wxApp, "alice").Code
	m := e.wxExchange(wxApp, wxSecret, code)
	wantErrcode(t, m, 45011)
	if !strings.HasPrefix(str(m, "errmsg"), "api minute-quota reach limit") {
		t.Fatal(m)
	}
	// Another user is not limited.
	if m := e.wxExchange(wxApp, wxSecret, e.login(wxApp, "bob").Code); str(m, "openid") == "" {
		t.Fatal(m)
	}
	// The next minute, the same code works: the limited call did not consume it.
	e.sim.Advance(RateWindow + time.Second)
	if m := e.wxExchange(wxApp, wxSecret, code); str(m, "openid") == "" {
		t.Fatalf("after the window: %v", m)
	}
}

func TestClassicToken(t *testing.T) {
	e := newEnv(t, Options{})
	a := e.wxToken(wxApp, wxSecret)
	b := e.wxToken(wxApp, wxSecret)
	if a == b {
		t.Fatal("each fetch must issue a new token")
	}
	ok := func(tok string) {
		t.Helper()
		m := e.phone(tok, map[string]any{"code": e.phoneCode(wxApp, "alice", "13800138000")})
		if num(m, "errcode") != 0 || m["phone_info"] == nil {
			t.Fatalf("token should work: %v", m)
		}
	}
	ref := str(e.stable(wxApp, wxSecret, false), "access_token")
	bad := func(tok string, code int) {
		t.Helper()
		pc := e.phoneCode(wxApp, "alice", "13800138000")
		wantErrcode(t, e.phone(tok, map[string]any{"code": pc}), code)
		// A token error does not consume the phone code.
		if m := e.phone(ref, map[string]any{"code": pc}); num(m, "errcode") != 0 {
			t.Fatalf("phone code consumed by a token error: %v", m)
		}
	}
	ok(a)
	ok(b)
	e.sim.Advance(4*time.Minute + 59*time.Second)
	ok(a) // inside the grace
	e.sim.Advance(2 * time.Second)
	bad(a, 40001) // superseded
	ok(b)
	// A third fetch: b gets its grace, a stays dead.
	c := e.wxToken(wxApp, wxSecret)
	ok(b)
	ok(c)
	e.sim.Advance(5*time.Minute + time.Second)
	bad(b, 40001)
	ok(c)
	// c expires after 7200 s.
	e.sim.Advance(AccessTokenTTL)
	pc := e.phoneCode(wxApp, "alice", "1")
	wantErrcode(t, e.phone(c, map[string]any{"code": pc}), 42001)
	wantErrcode(t, e.phone("unknown-token", map[string]any{"code": pc}), 40001)
	wantErrcode(t, e.json200("POST", "/wxa/business/getuserphonenumber", map[string]any{"code": pc}), 41001)
}

func TestTokenErrors(t *testing.T) {
	e := newEnv(t, Options{})
	get := func(kv ...string) map[string]any { return e.json200("GET", "/cgi-bin/token?"+q(kv...), nil) }
	wantErrcode(t, get("grant_type", "client_credential", "secret", wxSecret), 41002)
	wantErrcode(t, get("grant_type", "client_credential", "appid", wxApp), 41004)
	wantErrcode(t, get("grant_type", "authorization_code", "appid", wxApp, "secret", wxSecret), 40002)
	wantErrcode(t, get("grant_type", "client_credential", "appid", "wxnope", "secret", wxSecret), 40013)
	wantErrcode(t, get("grant_type", "client_credential", "appid", ttApp, "secret", ttSecret), 40013)
	wantErrcode(t, get("grant_type", "client_credential", "appid", wxApp, "secret", "nope"), 40001)
	wantErrcode(t, e.json200("POST", "/cgi-bin/token?"+q("grant_type", "client_credential", "appid", wxApp, "secret", wxSecret), nil), 43001)

	st := func(body any) map[string]any { return e.json200("POST", "/cgi-bin/stable_token", body) }
	wantErrcode(t, st(map[string]any{"grant_type": "client_credential", "secret": wxSecret}), 41002)
	wantErrcode(t, st(map[string]any{"grant_type": "client_credential", "appid": wxApp}), 41004)
	wantErrcode(t, st(map[string]any{"grant_type": "x", "appid": wxApp, "secret": wxSecret}), 40002)
	wantErrcode(t, st(map[string]any{"grant_type": "client_credential", "appid": "wxnope", "secret": wxSecret}), 40013)
	wantErrcode(t, st(map[string]any{"grant_type": "client_credential", "appid": wxApp, "secret": "nope"}), 40001)
	wantErrcode(t, st("not json"), 47001)
	wantErrcode(t, e.json200("GET", "/cgi-bin/stable_token?"+q("grant_type", "client_credential", "appid", wxApp, "secret", wxSecret), nil), 43002)
	if e.sim.Calls(EndpointToken) != 7 || e.sim.Calls(EndpointStableToken) != 7 {
		t.Fatalf("calls %v", e.sim.AllCalls())
	}
}

func TestStableToken(t *testing.T) {
	e := newEnv(t, Options{})
	m := e.stable(wxApp, wxSecret, false)
	s1 := str(m, "access_token")
	if s1 == "" || num(m, "expires_in") != 7200 {
		t.Fatal(m)
	}
	// Idempotent; expires_in counts down.
	e.sim.Advance(time.Hour)
	m = e.stable(wxApp, wxSecret, false)
	if str(m, "access_token") != s1 || num(m, "expires_in") > 3600 || num(m, "expires_in") < 3598 {
		t.Fatalf("normal mode: %v", m)
	}
	// Independent of classic tokens both ways.
	c1 := e.wxToken(wxApp, wxSecret)
	e.wxToken(wxApp, wxSecret)
	e.sim.Advance(6 * time.Minute)
	usable := func(tok string) int {
		t.Helper()
		return num(e.phone(tok, map[string]any{"code": e.phoneCode(wxApp, "alice", "138")}), "errcode")
	}
	if usable(s1) != 0 || usable(c1) != 40001 {
		t.Fatal("classic fetches affected the stable token (or the classic rule broke)")
	}
	c3 := e.wxToken(wxApp, wxSecret)

	// force_refresh: new token, the old one dies at once; classic unaffected.
	m = e.stable(wxApp, wxSecret, true)
	s2 := str(m, "access_token")
	if s2 == "" || s2 == s1 || num(m, "expires_in") != 7200 {
		t.Fatalf("force: %v", m)
	}
	if usable(s1) != 40001 || usable(s2) != 0 || usable(c3) != 0 {
		t.Fatal("force_refresh rules")
	}
	if str(e.stable(wxApp, wxSecret, false), "access_token") != s2 {
		t.Fatal("normal mode after force")
	}
	// At most one force per 30 s.
	m = e.stable(wxApp, wxSecret, true)
	wantErrcode(t, m, 45009)
	e.sim.Advance(29 * time.Second)
	wantErrcode(t, e.stable(wxApp, wxSecret, true), 45009)
	if usable(s2) != 0 {
		t.Fatal("a refused force must not invalidate the token")
	}
	e.sim.Advance(2 * time.Second)
	s3 := str(e.stable(wxApp, wxSecret, true), "access_token")
	if s3 == "" || s3 == s2 || usable(s2) != 40001 {
		t.Fatal("force after 31 s")
	}

	// Pre-rotation in the last 5 minutes; the old token lives out its time.
	e.sim.Advance(AccessTokenTTL - TokenGrace - 31*time.Second)
	m = e.stable(wxApp, wxSecret, false)
	if str(m, "access_token") != s3 || num(m, "expires_in") <= 300 {
		t.Fatalf("before the window: %v", m)
	}
	e.sim.Advance(time.Minute)
	m = e.stable(wxApp, wxSecret, false)
	s4 := str(m, "access_token")
	if s4 == s3 || num(m, "expires_in") != 7200 {
		t.Fatalf("pre-rotation: %v", m)
	}
	if usable(s3) != 0 || usable(s4) != 0 {
		t.Fatal("both valid during pre-rotation")
	}
	e.sim.Advance(5 * time.Minute)
	if usable(s3) != 42001 || usable(s4) != 0 {
		t.Fatal("old stable token must expire naturally")
	}
	if str(e.stable(wxApp, wxSecret, false), "access_token") != s4 {
		t.Fatal("idempotent after rotation")
	}
}

func TestGetUserPhoneNumber(t *testing.T) {
	// The documented shape: errcode 0 first, as a number.
	e := newEnv(t, Options{Quirks: Quirks{SuccessErrcode: ShapeAlways, StringErrcode: ShapeNever}, Apps: append(DemoApps(), App{Platform: WeChat, AppID: "wxsecond", Secret: "s2"})})
	tok := e.wxToken(wxApp, wxSecret)
	pc := e.phoneCode(wxApp, "alice", "13580006666")
	st, raw := e.do("POST", "/wxa/business/getuserphonenumber?"+q("access_token", tok), map[string]any{"code": pc})
	if st != 200 {
		t.Fatal(st)
	}
	if !strings.Contains(string(raw), `"countryCode":"86"`) || !strings.HasPrefix(string(raw), `{"errcode":0,"errmsg":"ok","phone_info":{"phoneNumber":"13580006666","purePhoneNumber":"13580006666"`) {
		t.Fatalf("shape: %s", raw)
	}
	m := decodeObj(t, raw)
	wm := m["phone_info"].(map[string]any)["watermark"].(map[string]any)
	if wm["appid"] != wxApp || wm["timestamp"].(float64) < float64(e.sim.Now().Unix()-2) {
		t.Fatalf("watermark %v", wm)
	}
	// Single use: 40029 again.
	wantErrcode(t, e.phone(tok, map[string]any{"code": pc}), 40029)
	wantErrcode(t, e.phone(tok, map[string]any{"code": "unknown"}), 40029)
	// Expiry.
	pc1 := e.phoneCode(wxApp, "alice", "1")
	pc2 := e.phoneCode(wxApp, "alice", "2")
	e.sim.Advance(4*time.Minute + 59*time.Second)
	if num(e.phone(tok, map[string]any{"code": pc1}), "errcode") != 0 {
		t.Fatal("4m59s")
	}
	e.sim.Advance(2 * time.Second)
	wantErrcode(t, e.phone(tok, map[string]any{"code": pc2}), 40029)
	// Another app's token.
	other := e.wxToken("wxsecond", "s2")
	pc3 := e.phoneCode(wxApp, "alice", "3")
	wantErrcode(t, e.phone(other, map[string]any{"code": pc3}), 40029)
	// openid binding.
	wantErrcode(t, e.phone(tok, map[string]any{"code": pc3, "openid": "owrong"}), 40003)
	if m := e.phone(tok, map[string]any{"code": pc3, "openid": e.login(wxApp, "alice").OpenID}); num(m, "errcode") != 0 {
		t.Fatal(m)
	}
	// Request errors.
	wantErrcode(t, e.phone(tok, map[string]any{}), 41008)
	wantErrcode(t, e.phone(tok, "{bad"), 47001)
	wantErrcode(t, e.json200("GET", "/wxa/business/getuserphonenumber?"+q("access_token", tok), nil), 43002)
	// A Douyin app's phone code is not WeChat's.
	ttCode, err := e.sim.PhoneCode(ttApp, "alice", "1")
	if err != nil {
		t.Fatal(err)
	}
	wantErrcode(t, e.phone(tok, map[string]any{"code": ttCode}), 40029)
}

func TestGetUserPhoneNumberRateLimit(t *testing.T) {
	e := newEnv(t, Options{})
	tok := e.wxToken(wxApp, wxSecret)
	for i := 0; i < RateLimit; i++ {
		if m := e.phone(tok, map[string]any{"code": e.phoneCode(wxApp, "alice", "1")}); num(m, "errcode") != 0 {
			t.Fatalf("call %d: %v", i+1, m)
		}
	}
	pc := e.phoneCode(wxApp, "alice", "1")
	wantErrcode(t, e.phone(tok, map[string]any{"code": pc}), 45011)
	if m := e.phone(tok, map[string]any{"code": e.phoneCode(wxApp, "bob", "1")}); num(m, "errcode") != 0 {
		t.Fatal(m)
	}
	e.sim.Advance(RateWindow + time.Second)
	if m := e.phone(tok, map[string]any{"code": pc}); num(m, "errcode") != 0 {
		t.Fatalf("limited call consumed the code: %v", m)
	}
	if e.sim.Calls(EndpointGetUserPhoneNumber) != RateLimit+3 {
		t.Fatalf("calls %d", e.sim.Calls(EndpointGetUserPhoneNumber))
	}
}
