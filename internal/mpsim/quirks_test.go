package mpsim

import (
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

// shapeOf describes the form of one answer: how errcode (or err_no) came.
func shapeOf(raw []byte, field string) string {
	s := string(raw)
	switch {
	case strings.Contains(s, `"`+field+`":"`):
		return "string"
	case strings.Contains(s, `"`+field+`":`):
		return "number"
	}
	return "absent"
}

// wxShapes makes n WeChat calls, alternating a success and an error, and
// returns the shapes of the answers.
func (e *env) wxShapes(n int) []string {
	e.t.Helper()
	var out []string
	for i := 0; i < n; i++ {
		code := "unknown"
		if i%2 == 0 {
			code = e.login(wxApp, "alice").Code
		}
		_, raw := e.do("GET", "/sns/jscode2session?"+q("appid", wxApp, "secret", wxSecret, "js_code", code, "grant_type", "authorization_code"), nil)
		m := decodeObj(e.t, raw)
		switch {
		case i%2 == 0 && (str(m, "session_key") == "" || num(m, "errcode") != 0):
			e.t.Fatalf("call %d: want a success, got %s", i, raw)
		case i%2 == 1 && num(m, "errcode") != 40029:
			e.t.Fatalf("call %d: want 40029, got %s", i, raw)
		case shapeOf(raw, "errcode") != "absent" && !strings.Contains(string(raw), `"errmsg":`):
			e.t.Fatalf("call %d: errcode without errmsg: %s", i, raw)
		}
		out = append(out, shapeOf(raw, "errcode"))
	}
	return out
}

func TestQuirksMixedShapes(t *testing.T) {
	const n = 64
	e := newEnv(t, Options{})
	got := e.wxShapes(n)
	seen := map[string]int{}
	for i, s := range got {
		kind := "error "
		if i%2 == 0 {
			kind = "success "
		}
		seen[kind+s]++
	}
	// Errors never lack errcode; successes come in all three shapes.
	for _, want := range []string{"success absent", "success number", "success string", "error number", "error string"} {
		if seen[want] == 0 {
			t.Errorf("no %q among %d calls: %v", want, n, seen)
		}
	}
	if seen["error absent"] != 0 {
		t.Errorf("an error without errcode: %v", seen)
	}

	// Reproducible: the same calls after a Reset, or in another simulator
	// with the same seed, give the same shapes; another seed differs.
	e.sim.Reset()
	if again := e.wxShapes(n); strings.Join(again, ",") != strings.Join(got, ",") {
		t.Errorf("after Reset:\n%v\n%v", got, again)
	}
	if other := newEnv(t, Options{}).wxShapes(n); strings.Join(other, ",") != strings.Join(got, ",") {
		t.Errorf("same seed, other simulator:\n%v\n%v", got, other)
	}
	if seeded := newEnv(t, Options{Quirks: Quirks{Seed: 7}}).wxShapes(n); strings.Join(seeded, ",") == strings.Join(got, ",") {
		t.Errorf("seed 7 gives the same shapes as seed 0")
	}
}

func TestQuirksPinnedShapes(t *testing.T) {
	cases := []struct {
		name              string
		q                 Quirks
		success, failure  string // shapes of jscode2session answers
		ttSuccess, ttFail string // Douyin v2 err_no
	}{
		{"exact", exact, "absent", "number", "number", "number"},
		{"strings always", Quirks{SuccessErrcode: ShapeAlways, StringErrcode: ShapeAlways}, "string", "string", "string", "string"},
		{"errcode on success, numbers", Quirks{SuccessErrcode: ShapeAlways, StringErrcode: ShapeNever}, "number", "number", "number", "number"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, Options{Quirks: c.q})
			for i := 0; i < 8; i++ {
				if got := e.wxShapes(2); got[0] != c.success || got[1] != c.failure {
					t.Fatalf("wechat shapes %v", got)
				}
				_, raw := e.do("POST", "/api/apps/v2/jscode2session", ttBody("appid", ttApp, "secret", ttSecret, "code", e.login(ttApp, "tess").Code))
				if got := shapeOf(raw, "err_no"); got != c.ttSuccess {
					t.Fatalf("douyin success %s", raw)
				}
				_, raw = e.do("POST", "/api/apps/v2/jscode2session", ttBody("appid", ttApp, "secret", ttSecret, "code", "unknown"))
				if got := shapeOf(raw, "err_no"); got != c.ttFail {
					t.Fatalf("douyin error %s", raw)
				}
				wantErrNo(t, raw, 40018)
			}
		})
	}
}

func TestQuirksContentType(t *testing.T) {
	ctOf := func(e *env, method, path string, body any) string {
		t.Helper()
		req, _ := http.NewRequest(method, e.srv.URL+path, nil)
		if body != nil {
			req, _ = http.NewRequest(method, e.srv.URL+path, strings.NewReader(body.(string)))
		}
		resp, err := e.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.Header.Get("Content-Type")
	}
	e := newEnv(t, Options{})
	tok := e.wxToken(wxApp, wxSecret)
	wechat := [][3]string{
		{"GET", "/sns/jscode2session?" + q("appid", wxApp, "secret", wxSecret, "js_code", e.login(wxApp, "a").Code, "grant_type", "authorization_code")},
		{"GET", "/sns/jscode2session?" + q("appid", wxApp)}, // an error
		{"GET", "/cgi-bin/token?" + q("grant_type", "client_credential", "appid", wxApp, "secret", wxSecret)},
		{"POST", "/cgi-bin/stable_token", `{"grant_type":"client_credential","appid":"` + wxApp + `","secret":"` + wxSecret + `"}`},
		{"POST", "/wxa/business/getuserphonenumber?" + q("access_token", tok), `{"code":"` + e.phoneCode(wxApp, "a", "1") + `"}`},
		{"GET", "/sns/jsCode2Session"},
	}
	for _, c := range wechat {
		var body any
		if c[2] != "" {
			body = c[2]
		}
		if ct := ctOf(e, c[0], c[1], body); ct != "text/plain" {
			t.Errorf("%s %s: Content-Type %q", c[0], strings.SplitN(c[1], "?", 2)[0], ct)
		}
	}
	if ct := ctOf(e, "POST", "/api/apps/v2/jscode2session", `{}`); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("douyin: %q", ct)
	}
	if ct := ctOf(e, "GET", "/_sim/stats", nil); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("control: %q", ct)
	}
	e2 := newEnv(t, Options{Quirks: Quirks{WeChatContentType: "application/json; encoding=utf-8"}})
	if ct := ctOf(e2, "GET", "/sns/jscode2session", nil); ct != "application/json; encoding=utf-8" {
		t.Errorf("configured: %q", ct)
	}
}

func TestPhoneButton(t *testing.T) {
	e := newEnv(t, Options{})
	lr := e.login(wxApp, "alice")
	key := str(e.wxExchange(wxApp, wxSecret, lr.Code), "session_key")
	b, err := e.sim.PhoneButton(wxApp, "alice", "13800138000")
	if err != nil {
		t.Fatal(err)
	}
	if b.ErrMsg != "getPhoneNumber:ok" || len(b.Code) != 64 || b.CloudID == "" || b.EncryptedData == "" || b.IV == "" {
		t.Fatalf("e.detail %+v", b)
	}
	// The legacy half decrypts with the key the server holds.
	m, err := decrypt(key, b.EncryptedData, b.IV)
	if err != nil || str(m, "phoneNumber") != "13800138000" || str(m, "countryCode") != "86" {
		t.Fatalf("decrypted %v %v", m, err)
	}
	if wm, _ := m["watermark"].(map[string]any); wm["appid"] != wxApp {
		t.Fatalf("watermark %v", m)
	}
	// The code half is a phone code, good once, bound to alice's openid.
	tok := e.wxToken(wxApp, wxSecret)
	p := e.phone(tok, map[string]any{"code": b.Code, "openid": lr.OpenID})
	if num(p, "errcode") != 0 || str(p["phone_info"].(map[string]any), "phoneNumber") != "13800138000" {
		t.Fatalf("exchange %v", p)
	}
	wantErrcode(t, e.phone(tok, map[string]any{"code": b.Code}), 40029)
	// The login code is not a phone code, nor the phone code a login code.
	wantErrcode(t, e.phone(tok, map[string]any{"code": e.login(wxApp, "alice").Code}), 40029)
	b2, _ := e.sim.PhoneButton(wxApp, "alice", "13800138001")
	wantErrcode(t, e.wxExchange(wxApp, wxSecret, b2.Code), 40029)

	// A user who never logged in: the code works, the encryptedData is
	// under a key no exchange returned (the next login rotates past it).
	nb, err := e.sim.PhoneButton(wxApp, "newbie", "13800138002")
	if err != nil {
		t.Fatal(err)
	}
	nk := str(e.wxExchange(wxApp, wxSecret, e.login(wxApp, "newbie").Code), "session_key")
	if m, err := decrypt(nk, nb.EncryptedData, nb.IV); err == nil && str(m, "phoneNumber") != "" {
		t.Fatal("a never-logged-in user's payload decrypts with a later key")
	}
	if p := e.phone(tok, map[string]any{"code": nb.Code}); num(p, "errcode") != 0 {
		t.Fatalf("newbie code %v", p)
	}

	// Douyin: the phone code and encryptedData/iv, only after a login.
	if _, err := e.sim.PhoneButton(ttApp, "dora", "1"); !errors.Is(err, ErrNoSession) {
		t.Fatalf("douyin without login: %v", err)
	}
	d := e.ttExchange(map[string]any{"appid": ttApp, "secret": ttSecret, "code": e.login(ttApp, "dora").Code})
	tb, err := e.sim.PhoneButton(ttApp, "dora", "13800138003")
	if err != nil || tb.Code == "" || tb.CloudID != "" {
		t.Fatalf("douyin %+v %v", tb, err)
	}
	if m, err := decrypt(str(d["data"].(map[string]any), "session_key"), tb.EncryptedData, tb.IV); err != nil || str(m, "phoneNumber") != "13800138003" {
		t.Fatalf("douyin decrypt %v %v", m, err)
	}
	// Bad arguments.
	if _, err := e.sim.PhoneButton(wxApp, "alice", ""); !errors.Is(err, ErrInvalid) {
		t.Fatal(err)
	}
	if _, err := e.sim.PhoneButton("wxnope", "alice", "1"); !errors.Is(err, ErrUnknownApp) {
		t.Fatal(err)
	}
}

func TestRotateKey(t *testing.T) {
	e := newEnv(t, Options{})
	if err := e.sim.RotateKey(wxApp, "alice"); !errors.Is(err, ErrNoSession) {
		t.Fatalf("no session: %v", err)
	}
	k1 := str(e.wxExchange(wxApp, wxSecret, e.login(wxApp, "alice").Code), "session_key")
	pending := e.login(wxApp, "alice").Code // rotates: k2, not yet exchanged
	if err := e.sim.RotateKey(wxApp, "alice"); err != nil {
		t.Fatal(err)
	}
	data := map[string]any{"nickName": "A"}
	ed, iv, err := e.sim.Encrypt(wxApp, "alice", data, EncryptOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if m, err := decrypt(k1, ed, iv); err == nil && str(m, "nickName") == "A" {
		t.Fatal("payload after a rotation decrypts with the old key")
	}
	// An exchange gives the user's one valid key, whichever code it
	// exchanges: the code minted before the rotation gives the new key.
	k3 := str(e.wxExchange(wxApp, wxSecret, pending), "session_key")
	if m, err := decrypt(k3, ed, iv); err != nil || str(m, "nickName") != "A" {
		t.Fatalf("current key: %v %v", m, err)
	}
	if err := e.sim.RotateKey("wxnope", "alice"); !errors.Is(err, ErrUnknownApp) {
		t.Fatal(err)
	}
}

func TestKeyIdleExpiry(t *testing.T) {
	e := newEnv(t, Options{Quirks: Quirks{KeyIdleTTL: time.Hour}})
	k1 := str(e.wxExchange(wxApp, wxSecret, e.login(wxApp, "alice").Code), "session_key")
	enc := func() (string, string) {
		t.Helper()
		ed, iv, err := e.sim.Encrypt(wxApp, "alice", map[string]any{"n": 1}, EncryptOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return ed, iv
	}
	decrypts := func(key, ed, iv string) bool {
		m, err := decrypt(key, ed, iv)
		return err == nil && num(m, "n") == 1
	}
	// Use keeps the key alive.
	for i := 0; i < 3; i++ {
		e.sim.Advance(59 * time.Minute)
		if ed, iv := enc(); !decrypts(k1, ed, iv) {
			t.Fatalf("use %d: the key expired while in use", i)
		}
	}
	// Idle for the TTL: the next payload is under a key nobody was given.
	e.sim.Advance(time.Hour)
	ed, iv := enc()
	if decrypts(k1, ed, iv) {
		t.Fatal("an idle key still decrypts new payloads")
	}
	if ped, piv, err := e.sim.Encrypt(wxApp, "alice", map[string]any{"n": 1}, EncryptOptions{Previous: true}); err != nil || !decrypts(k1, ped, piv) {
		t.Fatalf("the expired key is the previous one: %v", err)
	}
	// A login and exchange give a working key again.
	k2 := str(e.wxExchange(wxApp, wxSecret, e.login(wxApp, "alice").Code), "session_key")
	if ed, iv := enc(); !decrypts(k2, ed, iv) {
		t.Fatal("after a new login")
	}
	// The phone button obeys the expiry too.
	e.sim.Advance(2 * time.Hour)
	b, err := e.sim.PhoneButton(wxApp, "alice", "13800138000")
	if err != nil {
		t.Fatal(err)
	}
	if m, err := decrypt(k2, b.EncryptedData, b.IV); err == nil && str(m, "phoneNumber") != "" {
		t.Fatal("button payload under an idle key")
	}

	// Negative: never; the default is DefaultKeyIdleTTL.
	e2 := newEnv(t, Options{Quirks: Quirks{KeyIdleTTL: -1}})
	k := str(e2.wxExchange(wxApp, wxSecret, e2.login(wxApp, "bob").Code), "session_key")
	e2.sim.Advance(10000 * time.Hour)
	if ed, iv, _ := e2.sim.Encrypt(wxApp, "bob", map[string]any{"n": 1}, EncryptOptions{}); !decrypts(k, ed, iv) {
		t.Fatal("KeyIdleTTL < 0 expired a key")
	}
	if got := newEnv(t, Options{}).sim.Quirks().KeyIdleTTL; got != DefaultKeyIdleTTL {
		t.Fatalf("default %v", got)
	}
}

func TestWeRun(t *testing.T) {
	for _, withWM := range []bool{false, true} {
		e := newEnv(t, Options{Quirks: Quirks{WeRunWatermark: withWM}})
		k := str(e.wxExchange(wxApp, wxSecret, e.login(wxApp, "alice").Code), "session_key")
		ed, iv, err := e.sim.WeRun(wxApp, "alice", nil)
		if err != nil {
			t.Fatal(err)
		}
		if ct, _ := base64.StdEncoding.DecodeString(ed); len(ct) < 32 {
			t.Fatalf("WeRun payload of %d bytes", len(ct))
		}
		m, err := decrypt(k, ed, iv)
		if err != nil {
			t.Fatal(err)
		}
		list, _ := m["stepInfoList"].([]any)
		if len(list) != WeRunDays {
			t.Fatalf("stepInfoList %v", m)
		}
		last := list[len(list)-1].(map[string]any)
		if int64(num(last, "timestamp")) != e.sim.Now().UTC().Truncate(24*time.Hour).Unix() {
			t.Fatalf("last day %v", last)
		}
		_, has := m["watermark"]
		if has != withWM {
			t.Fatalf("WeRunWatermark %v: %v", withWM, m)
		}
		if withWM && m["watermark"].(map[string]any)["appid"] != wxApp {
			t.Fatalf("watermark %v", m)
		}
		// Given steps are used as they are.
		ed, iv, _ = e.sim.WeRun(wxApp, "alice", []Step{{Timestamp: 1445866601, Step: 100}, {Timestamp: 1445876601, Step: 120}})
		m, err = decrypt(k, ed, iv)
		if err != nil || len(m["stepInfoList"].([]any)) != 2 || num(m["stepInfoList"].([]any)[1].(map[string]any), "step") != 120 {
			t.Fatalf("given steps: %v %v", m, err)
		}
	}
	// Encrypt's NoWatermark does the same for any data.
	e := newEnv(t, Options{})
	k := str(e.wxExchange(wxApp, wxSecret, e.login(wxApp, "alice").Code), "session_key")
	ed, iv, _ := e.sim.Encrypt(wxApp, "alice", map[string]any{"openGId": "g"}, EncryptOptions{NoWatermark: true})
	if m, err := decrypt(k, ed, iv); err != nil || m["watermark"] != nil || str(m, "openGId") != "g" {
		t.Fatalf("NoWatermark: %v %v", m, err)
	}
}

func TestQuirksControlAPI(t *testing.T) {
	e := newEnv(t, Options{})
	m := e.json200("GET", "/_sim/quirks", nil)
	if str(m, "success_errcode") != "mixed" || str(m, "string_errcode") != "mixed" || str(m, "wechat_content_type") != "text/plain" ||
		str(m, "key_idle_ttl") != "72h0m0s" || m["werun_watermark"] != false || num(m, "seed") != 0 {
		t.Fatalf("defaults %v", m)
	}
	m = e.json200("POST", "/_sim/quirks", map[string]any{"seed": 3, "success_errcode": "always", "string_errcode": "never", "werun_watermark": true, "key_idle_ttl": "never"})
	if str(m, "success_errcode") != "always" || str(m, "string_errcode") != "never" || str(m, "key_idle_ttl") != "never" || num(m, "seed") != 3 {
		t.Fatalf("set %v", m)
	}
	if q := e.sim.Quirks(); q.KeyIdleTTL >= 0 || !q.WeRunWatermark || q.SuccessErrcode != ShapeAlways || q.WeChatContentType != "text/plain" {
		t.Fatalf("in force %+v", q)
	}
	for _, bad := range []any{
		map[string]any{"success_errcode": "sometimes"},
		map[string]any{"key_idle_ttl": "soon"},
		map[string]any{"wechat_content_type": "text/plain\r\nX-Evil: 1"},
		map[string]any{"typo": 1},
	} {
		if st, raw := e.do("POST", "/_sim/quirks", bad); st != 400 || !strings.Contains(string(raw), "error") {
			t.Errorf("%v: %d %s", bad, st, raw)
		}
	}
	// The device operations.
	lr := e.json200("POST", "/_sim/login", map[string]any{"appid": wxApp, "user": "alice"})
	key := str(e.wxExchange(wxApp, wxSecret, str(lr, "code")), "session_key")
	b := e.json200("POST", "/_sim/phone_button", map[string]any{"appid": wxApp, "user": "alice", "phone": "13800138000"})
	if str(b, "code") == "" || str(b, "cloudID") == "" || str(b, "errMsg") != "getPhoneNumber:ok" {
		t.Fatalf("phone_button %v", b)
	}
	if d, err := decrypt(key, str(b, "encryptedData"), str(b, "iv")); err != nil || str(d, "phoneNumber") != "13800138000" {
		t.Fatalf("phone_button payload %v %v", d, err)
	}
	w := e.json200("POST", "/_sim/werun", map[string]any{"appid": wxApp, "user": "alice", "steps": []any{map[string]any{"timestamp": 1, "step": 5}}})
	if d, err := decrypt(key, str(w, "encryptedData"), str(w, "iv")); err != nil || d["watermark"] == nil { // werun_watermark is on now
		t.Fatalf("werun %v %v", d, err)
	}
	en := e.json200("POST", "/_sim/encrypt", map[string]any{"appid": wxApp, "user": "alice", "data": map[string]any{"a": 1}, "no_watermark": true})
	if d, err := decrypt(key, str(en, "encryptedData"), str(en, "iv")); err != nil || d["watermark"] != nil {
		t.Fatalf("encrypt no_watermark %v %v", d, err)
	}
	if m := e.json200("POST", "/_sim/rotate_key", map[string]any{"appid": wxApp, "user": "alice"}); m["ok"] != true {
		t.Fatal(m)
	}
	en = e.json200("POST", "/_sim/encrypt", map[string]any{"appid": wxApp, "user": "alice", "data": map[string]any{"a": 1}})
	if d, err := decrypt(key, str(en, "encryptedData"), str(en, "iv")); err == nil && num(d, "a") == 1 {
		t.Fatal("rotate_key did not rotate")
	}
	if st, _ := e.do("POST", "/_sim/rotate_key", map[string]any{"appid": wxApp, "user": "nobody"}); st != 400 {
		t.Fatalf("rotate_key unknown user: %d", st)
	}
	if st, _ := e.do("POST", "/_sim/phone_button", map[string]any{"appid": ttApp, "user": "nobody", "phone": "1"}); st != 400 {
		t.Fatalf("phone_button douyin without login: %d", st)
	}
}

func TestNewPanicsOnInvalidQuirks(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("no panic")
		}
	}()
	New(Options{Quirks: Quirks{StringErrcode: Shape(9)}})
}
