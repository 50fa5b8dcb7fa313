package platform

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/mperr"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/phone"
)

// Test values. The codes hold characters that need escaping in a query and
// in JSON.
const (
	testAppID      = "wx4f4bc4dec97d474b"
	testSecret     = "S3cr3t+APP/secret=value&x"
	testCode       = "0716AV+ll20/uHk94=SLD&ml 27?e#t%M946\"q\\ü"
	testAnonCode   = "anon+CODE/with=odd&chars é"
	testToken      = "ACCESS+TOKEN/xyz=&tok"
	testPhoneCode  = "e31968a7+f94cc5/ee25=fafc&2aef"
	testSessionKey = "tiihtNczf5v6AKRyjwEUhQ=="
	testPhone      = "13580006666"
)

// secrets must never show in an error or a log line.
var secrets = []string{testSecret, testCode, testAnonCode, testToken, testPhoneCode, testSessionKey, testPhone}

// reply is one canned answer of the fake platform.
type reply struct {
	status int
	body   string
	// hang blocks the handler until the request is canceled (or the test
	// ends).
	hang bool
	// location, with a 3xx status.
	location string
}

func ok(body string) reply            { return reply{status: 200, body: body} }
func status(n int, body string) reply { return reply{status: n, body: body} }

// fake is a platform server: it checks every request with check and
// answers with replies in turn (the last one repeats).
type fake struct {
	t        *testing.T
	srv      *httptest.Server
	attempts atomic.Int32
	check    func(t *testing.T, r *http.Request, body []byte)
	replies  []reply
	release  chan struct{}
	once     sync.Once
}

func newFake(t *testing.T, check func(*testing.T, *http.Request, []byte), replies ...reply) *fake {
	t.Helper()
	f := &fake{t: t, check: check, replies: replies, release: make(chan struct{})}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(func() {
		f.once.Do(func() { close(f.release) })
		f.srv.Close()
	})
	return f
}

func (f *fake) serve(w http.ResponseWriter, r *http.Request) {
	n := int(f.attempts.Add(1))
	body, err := io.ReadAll(r.Body)
	if err != nil {
		f.t.Errorf("reading the request body: %v", err)
	}
	if f.check != nil {
		f.check(f.t, r, body)
	}
	rp := f.replies[min(n, len(f.replies))-1]
	if rp.hang {
		select {
		case <-r.Context().Done():
		case <-f.release:
		}
		return
	}
	if rp.location != "" {
		w.Header().Set("Location", rp.location)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(rp.status)
	_, _ = io.WriteString(w, rp.body)
}

func (f *fake) URL() string { return f.srv.URL }

// testConfig is a Config against base, fast backoff, logs observed.
func testConfig(base string) (Config, *observer.ObservedLogs) {
	core, logs := observer.New(zapcore.DebugLevel)
	return Config{
		AppID: testAppID, AppSecret: testSecret, APIBase: base,
		Timeout: 3 * time.Second, Backoff: time.Millisecond,
		Logger: zap.New(core),
	}, logs
}

// --- request checks ---

func expectQuery(t *testing.T, r *http.Request, want url.Values) {
	t.Helper()
	got, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		t.Errorf("query %q does not parse: %v", r.URL.RawQuery, err)
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("query = %v, want %v", got, want)
	}
}

func expectJSON(t *testing.T, r *http.Request, body []byte, want map[string]any) {
	t.Helper()
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	var got map[string]any
	if err := json.Unmarshal(body, &got); err != nil {
		t.Errorf("body %q is not a JSON object: %v", body, err)
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("JSON body = %v, want %v", got, want)
	}
}

func expectRoute(t *testing.T, r *http.Request, method, path string) {
	t.Helper()
	if r.Method != method || r.URL.Path != path {
		t.Errorf("request %s %s, want %s %s", r.Method, r.URL.Path, method, path)
	}
}

func wxLoginCheck(t *testing.T, r *http.Request, body []byte) {
	expectRoute(t, r, http.MethodGet, "/sns/jscode2session")
	expectQuery(t, r, url.Values{
		"appid":      {testAppID},
		"secret":     {testSecret},
		"js_code":    {testCode},
		"grant_type": {"authorization_code"},
	})
	if len(body) != 0 {
		t.Errorf("GET with a body %q", body)
	}
}

func ttLoginCheck(code, anon string) func(*testing.T, *http.Request, []byte) {
	return func(t *testing.T, r *http.Request, body []byte) {
		expectRoute(t, r, http.MethodPost, "/api/apps/v2/jscode2session")
		if r.URL.RawQuery != "" {
			t.Errorf("query %q, want none", r.URL.RawQuery)
		}
		expectJSON(t, r, body, map[string]any{
			"appid": testAppID, "secret": testSecret, "code": code, "anonymous_code": anon,
		})
	}
}

func wxTokenCheck(t *testing.T, r *http.Request, body []byte) {
	expectRoute(t, r, http.MethodGet, "/cgi-bin/token")
	expectQuery(t, r, url.Values{
		"grant_type": {"client_credential"},
		"appid":      {testAppID},
		"secret":     {testSecret},
	})
}

func wxStableTokenCheck(force bool) func(*testing.T, *http.Request, []byte) {
	return func(t *testing.T, r *http.Request, body []byte) {
		expectRoute(t, r, http.MethodPost, "/cgi-bin/stable_token")
		if r.URL.RawQuery != "" {
			t.Errorf("query %q, want none", r.URL.RawQuery)
		}
		expectJSON(t, r, body, map[string]any{
			"grant_type": "client_credential", "appid": testAppID, "secret": testSecret, "force_refresh": force,
		})
	}
}

func wxPhoneCheck(t *testing.T, r *http.Request, body []byte) {
	expectRoute(t, r, http.MethodPost, "/wxa/business/getuserphonenumber")
	expectQuery(t, r, url.Values{"access_token": {testToken}})
	expectJSON(t, r, body, map[string]any{"code": testPhoneCode})
}

// --- error checks ---

// want describes an expected failure; code "" means success.
type want struct {
	code       mperr.Code
	errcode    *int // nil: no platform errcode
	tokenInval bool
}

func ec(n int) *int { return &n }

// checkErr asserts err against w, and that err shows no secret.
func checkErr(t *testing.T, err error, w want) {
	t.Helper()
	if w.code == "" {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("no error, want %s", w.code)
	}
	e, isMp := mperr.As(err)
	if !isMp {
		t.Fatalf("error %T %v is not an *mperr.Error", err, err)
	}
	if e.Code != w.code {
		t.Errorf("code = %s, want %s (%v)", e.Code, w.code, err)
	}
	switch {
	case w.errcode == nil && e.HasErrcode:
		t.Errorf("errcode %d given, want none", e.Errcode)
	case w.errcode != nil && (!e.HasErrcode || e.Errcode != *w.errcode):
		t.Errorf("errcode = %v/%d, want %d", e.HasErrcode, e.Errcode, *w.errcode)
	}
	if got := errors.Is(err, ErrTokenInvalid); got != w.tokenInval {
		t.Errorf("errors.Is(err, ErrTokenInvalid) = %v, want %v", got, w.tokenInval)
	}
	if e.Message == "" {
		t.Errorf("empty message")
	}
	for link := err; link != nil; link = errors.Unwrap(link) {
		assertClean(t, fmt.Sprintf("error (%T)", link), link.Error())
	}
	assertClean(t, "message", e.Message)
	body, _ := json.Marshal(e.Body())
	assertClean(t, "error body", string(body))
}

func assertClean(t *testing.T, what, s string) {
	t.Helper()
	for _, sec := range secrets {
		quoted := strconv.Quote(sec)
		jsoned, _ := json.Marshal(sec)
		for _, form := range []string{sec, url.QueryEscape(sec), url.PathEscape(sec), quoted[1 : len(quoted)-1], string(jsoned[1 : len(jsoned)-1])} {
			if strings.Contains(s, form) {
				t.Errorf("%s %q contains the secret %q", what, s, form)
			}
		}
	}
}

// checkLogs asserts that every log line carries only the allowed fields and
// no secret.
func checkLogs(t *testing.T, logs *observer.ObservedLogs, wantLines int) {
	t.Helper()
	allowed := map[string]bool{"platform": true, "endpoint": true, "attempt": true, "status": true, "errcode": true, "duration": true}
	entries := logs.All()
	if wantLines >= 0 && len(entries) != wantLines {
		t.Errorf("%d log lines, want %d", len(entries), wantLines)
	}
	for _, en := range entries {
		assertClean(t, "log message", en.Message)
		for _, f := range en.Context {
			if !allowed[f.Key] {
				t.Errorf("log field %q not allowed", f.Key)
			}
			assertClean(t, "log field "+f.Key, fmt.Sprint(f.String, f.Interface, f.Integer))
		}
	}
}

// --- WeChat code2session ---

func TestWeChatCode2Session(t *testing.T) {
	okBody := `{"session_key":"` + testSessionKey + `","openid":"oGZUI0egBJY1zhBYw2KhdUfwVJJE","unionid":"ocMvos6NjeKLIBqg5Mr9QjxrP1FA"}`
	noUnion := `{"session_key":"` + testSessionKey + `","openid":"oGZUI0egBJY1zhBYw2KhdUfwVJJE"}`
	withUnion := Session{OpenID: "oGZUI0egBJY1zhBYw2KhdUfwVJJE", UnionID: "ocMvos6NjeKLIBqg5Mr9QjxrP1FA", SessionKey: testSessionKey}
	without := Session{OpenID: "oGZUI0egBJY1zhBYw2KhdUfwVJJE", SessionKey: testSessionKey}
	wxErr := func(n int, msg string) reply {
		return ok(fmt.Sprintf(`{"errcode":%d,"errmsg":%q}`, n, msg))
	}
	tests := []struct {
		name     string
		replies  []reply
		want     want
		session  Session
		attempts int
	}{
		{"success with unionid", []reply{ok(okBody)}, want{}, withUnion, 1},
		{"success without unionid", []reply{ok(noUnion)}, want{}, without, 1},
		{"errcode 0 present", []reply{ok(`{"errcode":0,"errmsg":"ok","session_key":"` + testSessionKey + `","openid":"oGZUI0egBJY1zhBYw2KhdUfwVJJE"}`)}, want{}, without, 1},
		{"lenient: string errcode 0, numeric openid, extra fields", []reply{ok(`{"errcode":"0","session_key":"` + testSessionKey + `","openid":12345,"unionid":null,"extra":{"a":[1]}}`)}, want{}, Session{OpenID: "12345", SessionKey: testSessionKey}, 1},
		{"40029 invalid code", []reply{wxErr(40029, "invalid code, rid: 652d44d0-1d0af18b-5b069232")}, want{code: mperr.InvalidCode, errcode: ec(40029)}, Session{}, 1},
		{"40163 code been used", []reply{wxErr(40163, "code been used, rid: 6166f719-6cb5d09c-633ab469")}, want{code: mperr.InvalidCode, errcode: ec(40163)}, Session{}, 1},
		{"40226 code blocked", []reply{wxErr(40226, "code blocked, hints: [ req_id: qEjdmsNre-EYNDhA ]")}, want{code: mperr.UserBlocked, errcode: ec(40226)}, Session{}, 1},
		{"45011 rate limited", []reply{wxErr(45011, "api minute-quota reach limit mustslower retry next minute")}, want{code: mperr.RateLimited, errcode: ec(45011)}, Session{}, 1},
		{"40013 invalid appid", []reply{wxErr(40013, "invalid appid")}, want{code: mperr.PlatformError, errcode: ec(40013)}, Session{}, 1},
		{"40125 invalid appsecret", []reply{wxErr(40125, "invalid appsecret")}, want{code: mperr.PlatformError, errcode: ec(40125)}, Session{}, 1},
		{"unknown errcode", []reply{wxErr(41008, "missing code")}, want{code: mperr.PlatformError, errcode: ec(41008)}, Session{}, 1},
		{"string errcode", []reply{ok(`{"errcode":"40029","errmsg":"invalid code"}`)}, want{code: mperr.InvalidCode, errcode: ec(40029)}, Session{}, 1},
		{"errmsg quoting the request", []reply{wxErr(40099, "bad request appid=x&secret="+testSecret+"&js_code="+url.QueryEscape(testCode))}, want{code: mperr.PlatformError, errcode: ec(40099)}, Session{}, 1},
		{"-1 then success", []reply{wxErr(-1, "system error"), ok(okBody)}, want{}, withUnion, 2},
		{"-1 twice then success", []reply{wxErr(-1, "system error"), wxErr(-1, "system error"), ok(okBody)}, want{}, withUnion, 3},
		{"-1 three times", []reply{wxErr(-1, "system error")}, want{code: mperr.PlatformError, errcode: ec(-1)}, Session{}, 3},
		{"500 then success", []reply{status(500, "oops"), ok(okBody)}, want{}, withUnion, 2},
		{"502 always", []reply{status(502, `<html>bad gateway</html>`)}, want{code: mperr.PlatformError}, Session{}, 3},
		{"5xx with errcode body is still 5xx", []reply{status(503, `{"errcode":40029}`)}, want{code: mperr.PlatformError}, Session{}, 3},
		{"-1 then 40163 (not retried further)", []reply{wxErr(-1, "system error"), wxErr(40163, "code been used")}, want{code: mperr.InvalidCode, errcode: ec(40163)}, Session{}, 2},
		{"429", []reply{status(429, "slow down")}, want{code: mperr.RateLimited}, Session{}, 1},
		{"404 html", []reply{status(404, "<html>not found</html>")}, want{code: mperr.PlatformError}, Session{}, 1},
		{"400 with errcode", []reply{status(400, `{"errcode":40029,"errmsg":"invalid code"}`)}, want{code: mperr.InvalidCode, errcode: ec(40029)}, Session{}, 1},
		{"redirect not followed", []reply{{status: 302, location: "/elsewhere"}}, want{code: mperr.PlatformError}, Session{}, 1},
		{"missing session_key", []reply{ok(`{"openid":"o1"}`)}, want{code: mperr.PlatformError}, Session{}, 1},
		{"missing openid", []reply{ok(`{"session_key":"` + testSessionKey + `"}`)}, want{code: mperr.PlatformError}, Session{}, 1},
		{"empty object", []reply{ok(`{}`)}, want{code: mperr.PlatformError}, Session{}, 1},
		{"garbage html", []reply{ok(`<html><body>502 Bad Gateway</body></html>`)}, want{code: mperr.PlatformError}, Session{}, 1},
		{"garbage text", []reply{ok(`system busy`)}, want{code: mperr.PlatformError}, Session{}, 1},
		{"empty body", []reply{ok(``)}, want{code: mperr.PlatformError}, Session{}, 1},
		{"null", []reply{ok(`null`)}, want{code: mperr.PlatformError}, Session{}, 1},
		{"array", []reply{ok(`[{"openid":"o","session_key":"k"}]`)}, want{code: mperr.PlatformError}, Session{}, 1},
		{"truncated JSON", []reply{ok(`{"openid":"o","session_key":"`)}, want{code: mperr.PlatformError}, Session{}, 1},
		{"trailing garbage", []reply{ok(noUnion + `xyz`)}, want{code: mperr.PlatformError}, Session{}, 1},
		{"wrong types", []reply{ok(`{"openid":true,"session_key":{"a":1}}`)}, want{code: mperr.PlatformError}, Session{}, 1},
		{"answer over 1 MiB", []reply{ok(`{"openid":"o","session_key":"k","pad":"` + strings.Repeat("x", MaxAnswerBytes) + `"}`)}, want{code: mperr.PlatformError}, Session{}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t, wxLoginCheck, tc.replies...)
			cfg, logs := testConfig(f.URL())
			c := NewWeChat(cfg)
			s, err := c.Code2Session(context.Background(), LoginCodes{Code: testCode, Anonymous: "ignored-anon"})
			checkErr(t, err, tc.want)
			if !reflect.DeepEqual(s, tc.session) {
				t.Errorf("session = %+v, want %+v", s, tc.session)
			}
			if n := int(f.attempts.Load()); n != tc.attempts {
				t.Errorf("%d attempts, want %d", n, tc.attempts)
			}
			checkLogs(t, logs, tc.attempts)
			// A "used" code after a lost answer is the platform's doing.
			if consumed := errors.Is(err, ErrConsumedByRetry); consumed != (tc.name == "-1 then 40163 (not retried further)") {
				t.Errorf("ErrConsumedByRetry = %v", consumed)
			}
		})
	}
}

func TestWeChatMissingCode(t *testing.T) {
	f := newFake(t, nil, ok(`{}`))
	_, err := NewWeChat(testConfig1(f.URL())).Code2Session(context.Background(), LoginCodes{})
	checkErr(t, err, want{code: mperr.MissingCode})
	if f.attempts.Load() != 0 {
		t.Errorf("the platform was called")
	}
}

// --- Douyin code2session ---

func TestDouyinCode2Session(t *testing.T) {
	okBody := `{"err_no":0,"err_tips":"success","log_id":"2024","data":{"session_key":"` + testSessionKey + `","openid":"_000kVq7iperbx_ah","anonymous_openid":"","unionid":"u-1","dopenid":""}}`
	noUnion := `{"err_no":0,"err_tips":"success","data":{"session_key":"` + testSessionKey + `","openid":"_000kVq7iperbx_ah","anonymous_openid":"","unionid":""}}`
	ttErr := func(n int, tips string) reply {
		return ok(fmt.Sprintf(`{"err_no":%d,"err_tips":%q,"log_id":"x","data":null}`, n, tips))
	}
	withUnion := Session{OpenID: "_000kVq7iperbx_ah", UnionID: "u-1", SessionKey: testSessionKey}
	without := Session{OpenID: "_000kVq7iperbx_ah", SessionKey: testSessionKey}
	tests := []struct {
		name       string
		code, anon string
		replies    []reply
		want       want
		session    Session
		attempts   int
	}{
		{"success with unionid", testCode, "", []reply{ok(okBody)}, want{}, withUnion, 1},
		{"success without unionid", testCode, "", []reply{ok(noUnion)}, want{}, without, 1},
		{"code and anonymous code", testCode, testAnonCode, []reply{ok(`{"err_no":0,"data":{"session_key":"` + testSessionKey + `","openid":"o","anonymous_openid":"a"}}`)}, want{}, Session{OpenID: "o", SessionKey: testSessionKey, Fields: map[string]string{FieldAnonymousOpenID: "a"}}, 1},
		{"anonymous code only", "", testAnonCode, []reply{ok(`{"err_no":0,"err_tips":"success","data":{"session_key":"","openid":"","anonymous_openid":"anon-1","unionid":""}}`)}, want{}, Session{Fields: map[string]string{FieldAnonymousOpenID: "anon-1"}}, 1},
		{"anonymous code only, no anonymous_openid", "", testAnonCode, []reply{ok(`{"err_no":0,"data":{"openid":""}}`)}, want{code: mperr.PlatformError}, Session{}, 1},
		{"lenient: string err_no, numeric ids", testCode, "", []reply{ok(`{"err_no":"0","data":{"session_key":"` + testSessionKey + `","openid":42,"unionid":null}}`)}, want{}, Session{OpenID: "42", SessionKey: testSessionKey}, 1},
		{"old flat success", testCode, "", []reply{ok(`{"session_key":"` + testSessionKey + `","openid":"o","anonymous_openid":""}`)}, want{}, Session{OpenID: "o", SessionKey: testSessionKey}, 1},
		{"40018 bad code", testCode, "", []reply{ttErr(40018, "bad code")}, want{code: mperr.InvalidCode, errcode: ec(40018)}, Session{}, 1},
		{"40019 bad anonymous code", "", testAnonCode, []reply{ttErr(40019, "bad anonymous_code")}, want{code: mperr.InvalidCode, errcode: ec(40019)}, Session{}, 1},
		{"40015 bad appid", testCode, "", []reply{ttErr(40015, "bad appid")}, want{code: mperr.PlatformError, errcode: ec(40015)}, Session{}, 1},
		{"40017 bad secret", testCode, "", []reply{ttErr(40017, "bad secret")}, want{code: mperr.PlatformError, errcode: ec(40017)}, Session{}, 1},
		{"40014 missing param", testCode, "", []reply{ttErr(40014, "bad params")}, want{code: mperr.PlatformError, errcode: ec(40014)}, Session{}, 1},
		{"unknown err_no", testCode, "", []reply{ttErr(12345, "something")}, want{code: mperr.PlatformError, errcode: ec(12345)}, Session{}, 1},
		{"err_no without data", testCode, "", []reply{ok(`{"err_no":40018,"err_tips":"bad code"}`)}, want{code: mperr.InvalidCode, errcode: ec(40018)}, Session{}, 1},
		{"err_no with data of another shape", testCode, "", []reply{ok(`{"err_no":40018,"err_tips":"bad code","data":""}`)}, want{code: mperr.InvalidCode, errcode: ec(40018)}, Session{}, 1},
		{"err_msg instead of err_tips", testCode, "", []reply{ok(`{"err_no":40018,"err_msg":"bad code"}`)}, want{code: mperr.InvalidCode, errcode: ec(40018)}, Session{}, 1},
		{"old flat errcode 40018", testCode, "", []reply{ok(`{"errcode":40018,"errmsg":"bad code"}`)}, want{code: mperr.InvalidCode, errcode: ec(40018)}, Session{}, 1},
		{"old flat errcode 40015", testCode, "", []reply{ok(`{"errcode":40015,"errmsg":"bad appid"}`)}, want{code: mperr.PlatformError, errcode: ec(40015)}, Session{}, 1},
		{"err_tips quoting the request", testCode, testAnonCode, []reply{ttErr(99, "bad: "+testSecret+" "+testCode+" "+testAnonCode)}, want{code: mperr.PlatformError, errcode: ec(99)}, Session{}, 1},
		{"-1 then success", testCode, "", []reply{ttErr(-1, "system error"), ok(okBody)}, want{}, withUnion, 2},
		{"-1 three times", testCode, "", []reply{ttErr(-1, "system error")}, want{code: mperr.PlatformError, errcode: ec(-1)}, Session{}, 3},
		{"old flat -1 then success", testCode, "", []reply{ok(`{"errcode":-1,"errmsg":"system error"}`), ok(okBody)}, want{}, withUnion, 2},
		{"500 then success", testCode, "", []reply{status(500, ""), ok(okBody)}, want{}, withUnion, 2},
		{"504 always", testCode, "", []reply{status(504, "")}, want{code: mperr.PlatformError}, Session{}, 3},
		{"429", testCode, "", []reply{status(429, `{"err_no":0}`)}, want{code: mperr.RateLimited}, Session{}, 1},
		{"data null on success", testCode, "", []reply{ok(`{"err_no":0,"data":null}`)}, want{code: mperr.PlatformError}, Session{}, 1},
		{"missing openid", testCode, "", []reply{ok(`{"err_no":0,"data":{"session_key":"` + testSessionKey + `"}}`)}, want{code: mperr.PlatformError}, Session{}, 1},
		{"data not an object", testCode, "", []reply{ok(`{"err_no":0,"data":"abc"}`)}, want{code: mperr.PlatformError}, Session{}, 1},
		{"garbage", testCode, "", []reply{ok(`<!DOCTYPE html><title>Error</title>`)}, want{code: mperr.PlatformError}, Session{}, 1},
		{"empty", testCode, "", []reply{ok(``)}, want{code: mperr.PlatformError}, Session{}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t, ttLoginCheck(tc.code, tc.anon), tc.replies...)
			cfg, logs := testConfig(f.URL())
			c := NewDouyin(cfg)
			s, err := c.Code2Session(context.Background(), LoginCodes{Code: tc.code, Anonymous: tc.anon})
			checkErr(t, err, tc.want)
			if !reflect.DeepEqual(s, tc.session) {
				t.Errorf("session = %+v, want %+v", s, tc.session)
			}
			if n := int(f.attempts.Load()); n != tc.attempts {
				t.Errorf("%d attempts, want %d", n, tc.attempts)
			}
			checkLogs(t, logs, tc.attempts)
		})
	}
}

func TestDouyinMissingCodes(t *testing.T) {
	f := newFake(t, nil, ok(`{}`))
	_, err := NewDouyin(testConfig1(f.URL())).Code2Session(context.Background(), LoginCodes{})
	checkErr(t, err, want{code: mperr.MissingCode})
	if f.attempts.Load() != 0 {
		t.Errorf("the platform was called")
	}
}

// --- retries, timeouts, connection errors ---

func TestMaxRetries(t *testing.T) {
	busy := ok(`{"errcode":-1,"errmsg":"system error"}`)
	for _, tc := range []struct {
		maxRetries, attempts int
	}{{-1, 1}, {0, 3}, {1, 2}, {5, 6}} {
		t.Run(fmt.Sprint(tc.maxRetries), func(t *testing.T) {
			f := newFake(t, wxLoginCheck, busy)
			cfg := testConfig1(f.URL())
			cfg.MaxRetries = tc.maxRetries
			_, err := NewWeChat(cfg).Code2Session(context.Background(), LoginCodes{Code: testCode})
			checkErr(t, err, want{code: mperr.PlatformError, errcode: ec(-1)})
			if n := int(f.attempts.Load()); n != tc.attempts {
				t.Errorf("%d attempts, want %d", n, tc.attempts)
			}
		})
	}
}

func TestBackoffGrows(t *testing.T) {
	var mu sync.Mutex
	var times []time.Time
	f := newFake(t, func(t *testing.T, r *http.Request, b []byte) {
		mu.Lock()
		times = append(times, time.Now())
		mu.Unlock()
	}, ok(`{"errcode":-1}`))
	cfg := testConfig1(f.URL())
	cfg.Backoff = 40 * time.Millisecond
	_, err := NewWeChat(cfg).Code2Session(context.Background(), LoginCodes{Code: testCode})
	checkErr(t, err, want{code: mperr.PlatformError, errcode: ec(-1)})
	if len(times) != 3 {
		t.Fatalf("%d attempts, want 3", len(times))
	}
	if d := times[1].Sub(times[0]); d < 40*time.Millisecond {
		t.Errorf("first backoff %v, want >= 40ms", d)
	}
	if d := times[2].Sub(times[1]); d < 80*time.Millisecond {
		t.Errorf("second backoff %v, want >= 80ms", d)
	}
}

func TestSlowServerTimesOut(t *testing.T) {
	f := newFake(t, wxLoginCheck, reply{hang: true})
	cfg, logs := testConfig(f.URL())
	cfg.Timeout = 300 * time.Millisecond
	start := time.Now()
	_, err := NewWeChat(cfg).Code2Session(context.Background(), LoginCodes{Code: testCode})
	elapsed := time.Since(start)
	checkErr(t, err, want{code: mperr.PlatformTimeout})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error does not wrap context.DeadlineExceeded: %v", err)
	}
	if elapsed < 250*time.Millisecond || elapsed > 1500*time.Millisecond {
		t.Errorf("took %v, want about 300ms", elapsed)
	}
	if n := f.attempts.Load(); n != 1 {
		t.Errorf("%d attempts, want 1 (a timeout is not retried)", n)
	}
	checkLogs(t, logs, 1)
}

func TestCallerDeadline(t *testing.T) {
	f := newFake(t, ttLoginCheck(testCode, ""), reply{hang: true})
	cfg := testConfig1(f.URL())
	cfg.Timeout = 10 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := NewDouyin(cfg).Code2Session(ctx, LoginCodes{Code: testCode})
	checkErr(t, err, want{code: mperr.PlatformTimeout})
	if elapsed := time.Since(start); elapsed > 1500*time.Millisecond {
		t.Errorf("took %v, want about 200ms", elapsed)
	}
}

func TestCallerCancel(t *testing.T) {
	f := newFake(t, wxLoginCheck, reply{hang: true})
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	_, err := NewWeChat(testConfig1(f.URL())).Code2Session(ctx, LoginCodes{Code: testCode})
	checkErr(t, err, want{code: mperr.PlatformError})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("error does not wrap context.Canceled: %v", err)
	}
}

// The backoff never sleeps past the deadline: the last platform answer is
// returned at once.
func TestRetriesStayWithinTimeout(t *testing.T) {
	f := newFake(t, wxLoginCheck, ok(`{"errcode":-1,"errmsg":"system error"}`))
	cfg := testConfig1(f.URL())
	cfg.Timeout = 300 * time.Millisecond
	cfg.Backoff = time.Second
	start := time.Now()
	_, err := NewWeChat(cfg).Code2Session(context.Background(), LoginCodes{Code: testCode})
	checkErr(t, err, want{code: mperr.PlatformError, errcode: ec(-1)})
	if elapsed := time.Since(start); elapsed > 250*time.Millisecond {
		t.Errorf("took %v: slept although the backoff could not fit", elapsed)
	}
	if n := f.attempts.Load(); n != 1 {
		t.Errorf("%d attempts, want 1", n)
	}
}

// A 5xx that keeps coming with a slow server still ends within Timeout.
func TestTimeoutBoundsRetries(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) > 1 {
			<-r.Context().Done()
			return
		}
		w.WriteHeader(500)
	}))
	defer srv.Close()
	cfg := testConfig1(srv.URL)
	cfg.Timeout = 300 * time.Millisecond
	start := time.Now()
	_, err := NewWeChat(cfg).Code2Session(context.Background(), LoginCodes{Code: testCode})
	checkErr(t, err, want{code: mperr.PlatformTimeout})
	if elapsed := time.Since(start); elapsed > 1500*time.Millisecond {
		t.Errorf("took %v, want about 300ms", elapsed)
	}
	if got := n.Load(); got != 2 {
		t.Errorf("%d attempts, want 2", got)
	}
}

func refusedBase(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr
}

func TestConnectionRefused(t *testing.T) {
	base := refusedBase(t)
	calls := map[string]func(Config) error{
		"wechat login": func(cfg Config) error {
			_, err := NewWeChat(cfg).Code2Session(context.Background(), LoginCodes{Code: testCode})
			return err
		},
		"douyin login": func(cfg Config) error {
			_, err := NewDouyin(cfg).Code2Session(context.Background(), LoginCodes{Code: testCode, Anonymous: testAnonCode})
			return err
		},
		"token":        func(cfg Config) error { _, err := NewWeChat(cfg).Token(context.Background()); return err },
		"stable token": func(cfg Config) error { _, err := NewWeChat(cfg).StableToken(context.Background(), true); return err },
		"phone": func(cfg Config) error {
			_, err := NewWeChat(cfg).GetUserPhoneNumber(context.Background(), testToken, testPhoneCode, "")
			return err
		},
	}
	for name, call := range calls {
		t.Run(name, func(t *testing.T) {
			cfg, logs := testConfig(base)
			start := time.Now()
			err := call(cfg)
			checkErr(t, err, want{code: mperr.PlatformError})
			if !errors.Is(err, syscall.ECONNREFUSED) {
				t.Errorf("error does not wrap ECONNREFUSED: %v", err)
			}
			if elapsed := time.Since(start); elapsed > time.Second {
				t.Errorf("took %v", elapsed)
			}
			checkLogs(t, logs, 3) // retried: 3 attempts
		})
	}
}

// --- tokens ---

func TestWeChatToken(t *testing.T) {
	tests := []struct {
		name     string
		replies  []reply
		want     want
		token    Token
		attempts int
	}{
		{"success", []reply{ok(`{"access_token":"AT-1","expires_in":7200}`)}, want{}, Token{"AT-1", 2 * time.Hour}, 1},
		{"lenient expires_in", []reply{ok(`{"access_token":"AT-1","expires_in":"7200"}`)}, want{}, Token{"AT-1", 2 * time.Hour}, 1},
		{"-1 then success", []reply{ok(`{"errcode":-1,"errmsg":"system error"}`), ok(`{"access_token":"AT-2","expires_in":300}`)}, want{}, Token{"AT-2", 5 * time.Minute}, 2},
		{"40013", []reply{ok(`{"errcode":40013,"errmsg":"invalid appid"}`)}, want{code: mperr.PlatformError, errcode: ec(40013)}, Token{}, 1},
		{"40001 is a bad secret here", []reply{ok(`{"errcode":40001,"errmsg":"invalid credential"}`)}, want{code: mperr.PlatformError, errcode: ec(40001)}, Token{}, 1},
		{"40125", []reply{ok(`{"errcode":40125,"errmsg":"invalid appsecret"}`)}, want{code: mperr.PlatformError, errcode: ec(40125)}, Token{}, 1},
		{"45009 daily quota", []reply{ok(`{"errcode":45009,"errmsg":"reach max api daily quota limit"}`)}, want{code: mperr.RateLimited, errcode: ec(45009)}, Token{}, 1},
		{"45011", []reply{ok(`{"errcode":45011,"errmsg":"api minute-quota reach limit"}`)}, want{code: mperr.RateLimited, errcode: ec(45011)}, Token{}, 1},
		{"missing access_token", []reply{ok(`{"expires_in":7200}`)}, want{code: mperr.PlatformError}, Token{}, 1},
		{"missing expires_in", []reply{ok(`{"access_token":"AT"}`)}, want{code: mperr.PlatformError}, Token{}, 1},
		{"garbage", []reply{ok(`access_token=AT`)}, want{code: mperr.PlatformError}, Token{}, 1},
	}
	for _, tc := range tests {
		t.Run("token/"+tc.name, func(t *testing.T) {
			f := newFake(t, wxTokenCheck, tc.replies...)
			cfg, logs := testConfig(f.URL())
			tok, err := NewWeChat(cfg).Token(context.Background())
			checkErr(t, err, tc.want)
			if tok != tc.token {
				t.Errorf("token = %+v, want %+v", tok, tc.token)
			}
			if n := int(f.attempts.Load()); n != tc.attempts {
				t.Errorf("%d attempts, want %d", n, tc.attempts)
			}
			checkLogs(t, logs, tc.attempts)
		})
		for _, force := range []bool{false, true} {
			t.Run(fmt.Sprintf("stable_token(force=%v)/%s", force, tc.name), func(t *testing.T) {
				f := newFake(t, wxStableTokenCheck(force), tc.replies...)
				tok, err := NewWeChat(testConfig1(f.URL())).StableToken(context.Background(), force)
				checkErr(t, err, tc.want)
				if tok != tc.token {
					t.Errorf("token = %+v, want %+v", tok, tc.token)
				}
				if n := int(f.attempts.Load()); n != tc.attempts {
					t.Errorf("%d attempts, want %d", n, tc.attempts)
				}
			})
		}
	}
}

// --- phone code ---

func TestWeChatPhone(t *testing.T) {
	phoneReply := func(cc string) reply {
		return ok(`{"errcode":0,"errmsg":"ok","phone_info":{"phoneNumber":"` + testPhone + `","purePhoneNumber":"` + testPhone + `","countryCode":` + cc + `,"watermark":{"timestamp":1637744274,"appid":"` + testAppID + `"}}}`)
	}
	wantPhone := phone.Number{PhoneNumber: testPhone, PurePhoneNumber: testPhone, CountryCode: "86", WatermarkAppID: testAppID}
	wxErr := func(n int, msg string) reply {
		return ok(fmt.Sprintf(`{"errcode":%d,"errmsg":%q}`, n, msg))
	}
	tests := []struct {
		name     string
		replies  []reply
		want     want
		number   phone.Number
		attempts int
	}{
		{"string countryCode", []reply{phoneReply(`"86"`)}, want{}, wantPhone, 1},
		{"numeric countryCode", []reply{phoneReply(`86`)}, want{}, wantPhone, 1},
		{"foreign number", []reply{ok(`{"errcode":0,"phone_info":{"phoneNumber":"+1 2025550123","purePhoneNumber":"2025550123","countryCode":1}}`)}, want{}, phone.Number{PhoneNumber: "+1 2025550123", PurePhoneNumber: "2025550123", CountryCode: "1"}, 1},
		{"no errcode", []reply{ok(`{"phone_info":{"phoneNumber":"` + testPhone + `","purePhoneNumber":"` + testPhone + `","countryCode":"86","watermark":{"appid":"` + testAppID + `","timestamp":"1637744274"}}}`)}, want{}, wantPhone, 1},
		{"40001 token invalid", []reply{wxErr(40001, "invalid credential, access_token is invalid or not latest, rid: x")}, want{code: mperr.PlatformError, errcode: ec(40001), tokenInval: true}, phone.Number{}, 1},
		{"40014 token invalid", []reply{wxErr(40014, "invalid access_token")}, want{code: mperr.PlatformError, errcode: ec(40014), tokenInval: true}, phone.Number{}, 1},
		{"42001 token expired", []reply{wxErr(42001, "access_token expired, rid: x")}, want{code: mperr.PlatformError, errcode: ec(42001), tokenInval: true}, phone.Number{}, 1},
		{"40001 quoting the token", []reply{wxErr(40001, "invalid credential "+testToken)}, want{code: mperr.PlatformError, errcode: ec(40001), tokenInval: true}, phone.Number{}, 1},
		{"40029 invalid code", []reply{wxErr(40029, "invalid code")}, want{code: mperr.InvalidCode, errcode: ec(40029)}, phone.Number{}, 1},
		{"40163 code used", []reply{wxErr(40163, "code been used")}, want{code: mperr.InvalidCode, errcode: ec(40163)}, phone.Number{}, 1},
		{"45011", []reply{wxErr(45011, "api minute-quota reach limit")}, want{code: mperr.RateLimited, errcode: ec(45011)}, phone.Number{}, 1},
		{"40013", []reply{wxErr(40013, "invalid appid")}, want{code: mperr.PlatformError, errcode: ec(40013)}, phone.Number{}, 1},
		{"-1 then success", []reply{wxErr(-1, "system error"), phoneReply(`"86"`)}, want{}, wantPhone, 2},
		{"-1 three times", []reply{wxErr(-1, "system error")}, want{code: mperr.PlatformError, errcode: ec(-1)}, phone.Number{}, 3},
		{"500 then success", []reply{status(500, ""), phoneReply(`86`)}, want{}, wantPhone, 2},
		{"no phone_info", []reply{ok(`{"errcode":0,"errmsg":"ok"}`)}, want{code: mperr.PlatformError}, phone.Number{}, 1},
		{"not a phone number", []reply{ok(`{"errcode":0,"phone_info":{"phoneNumber":"138\r\nX-Mp-Openid: o","purePhoneNumber":"1","countryCode":"86"}}`)}, want{code: mperr.PlatformError}, phone.Number{}, 1},
		{"phone_info null", []reply{ok(`{"errcode":0,"errmsg":"ok","phone_info":null}`)}, want{code: mperr.PlatformError}, phone.Number{}, 1},
		{"phone_info without number", []reply{ok(`{"errcode":0,"phone_info":{"countryCode":"86"}}`)}, want{code: mperr.PlatformError}, phone.Number{}, 1},
		{"phone_info not an object", []reply{ok(`{"errcode":0,"phone_info":"13580006666"}`)}, want{code: mperr.PlatformError}, phone.Number{}, 1},
		{"countryCode of a wrong type", []reply{ok(`{"errcode":0,"phone_info":{"phoneNumber":"1","countryCode":true}}`)}, want{code: mperr.PlatformError}, phone.Number{}, 1},
		{"garbage", []reply{ok(`<html></html>`)}, want{code: mperr.PlatformError}, phone.Number{}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t, wxPhoneCheck, tc.replies...)
			cfg, logs := testConfig(f.URL())
			p, err := NewWeChat(cfg).GetUserPhoneNumber(context.Background(), testToken, testPhoneCode, "")
			checkErr(t, err, tc.want)
			if p != tc.number {
				t.Errorf("phone = %+v, want %+v", p, tc.number)
			}
			if n := int(f.attempts.Load()); n != tc.attempts {
				t.Errorf("%d attempts, want %d", n, tc.attempts)
			}
			checkLogs(t, logs, tc.attempts)
		})
	}
}

// With the session known, the openid goes along with the phone code.
func TestWeChatPhoneWithOpenID(t *testing.T) {
	f := newFake(t, func(t *testing.T, r *http.Request, body []byte) {
		expectRoute(t, r, http.MethodPost, "/wxa/business/getuserphonenumber")
		expectJSON(t, r, body, map[string]any{"code": testPhoneCode, "openid": "o-user"})
	}, ok(`{"errcode":0,"phone_info":{"phoneNumber":"13800138000","purePhoneNumber":"13800138000","countryCode":"86","watermark":{"appid":"wx"}}}`))
	cfg, _ := testConfig(f.URL())
	if _, err := NewWeChat(cfg).GetUserPhoneNumber(context.Background(), testToken, testPhoneCode, "o-user"); err != nil {
		t.Fatal(err)
	}
}

func TestWeChatPhoneArguments(t *testing.T) {
	f := newFake(t, nil, ok(`{}`))
	c := NewWeChat(testConfig1(f.URL()))
	_, err := c.GetUserPhoneNumber(context.Background(), "", testPhoneCode, "")
	checkErr(t, err, want{code: mperr.PlatformError, tokenInval: true})
	_, err = c.GetUserPhoneNumber(context.Background(), testToken, "", "")
	checkErr(t, err, want{code: mperr.BadRequest})
	if f.attempts.Load() != 0 {
		t.Errorf("the platform was called")
	}
}

// --- construction ---

func TestNew(t *testing.T) {
	c, err := New("wechat", Config{})
	if err != nil || c.Name() != WeChat {
		t.Fatalf("New(wechat) = %v, %v", c, err)
	}
	if _, isWx := c.(*WeChatClient); !isWx {
		t.Errorf("New(wechat) is a %T", c)
	}
	if _, isTok := c.(TokenClient); !isTok {
		t.Errorf("the WeChat client is no TokenClient")
	}
	if _, isPhone := c.(PhoneClient); !isPhone {
		t.Errorf("the WeChat client is no PhoneClient")
	}
	c, err = New("Douyin", Config{APIBase: "http://127.0.0.1:9/"})
	if err != nil || c.Name() != Douyin {
		t.Fatalf("New(Douyin) = %v, %v", c, err)
	}
	for _, name := range []string{"", "taobao", "weixin"} {
		if _, err := New(name, Config{}); err == nil {
			t.Errorf("New(%q) did not fail", name)
		}
	}
	for _, base := range []string{"ftp://x", "api.weixin.qq.com", "http://", "http://h/?a=b", "http://u:p@h", "://"} {
		if _, err := New(WeChat, Config{APIBase: base}); err == nil {
			t.Errorf("New with APIBase %q did not fail", base)
		}
	}
}

func TestDefaults(t *testing.T) {
	wx := NewWeChat(Config{})
	if wx.base != DefaultWeChatAPIBase || wx.timeout != DefaultTimeout || wx.maxRetries != DefaultMaxRetries || wx.backoff != DefaultBackoff {
		t.Errorf("WeChat defaults: %+v", wx.core)
	}
	tt := NewDouyin(Config{MaxRetries: -3})
	if tt.base != DefaultDouyinAPIBase || tt.maxRetries != 0 {
		t.Errorf("Douyin defaults: %+v", tt.core)
	}
	if wx.http == http.DefaultClient || wx.http.Transport == nil || wx.http.Transport == http.DefaultTransport {
		t.Errorf("the default HTTP client is the global one")
	}
	tr, isTr := wx.http.Transport.(*http.Transport)
	if !isTr || tr.MaxIdleConnsPerHost < 32 || tr.DisableKeepAlives {
		t.Errorf("the default transport is not tuned: %+v", tr)
	}
	if wx.http == tt.http {
		t.Errorf("two clients share one default HTTP client")
	}
	if err := wx.Close(); err != nil {
		t.Error(err)
	}
}

// A caller's HTTPClient is used, and not modified.
func TestCustomHTTPClient(t *testing.T) {
	f := newFake(t, wxLoginCheck, ok(`{"openid":"o","session_key":"k"}`))
	var used atomic.Bool
	hc := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		used.Store(true)
		return http.DefaultTransport.RoundTrip(r)
	})}
	cfg := testConfig1(f.URL() + "/") // a trailing slash is fine
	cfg.HTTPClient = hc
	c := NewWeChat(cfg)
	if _, err := c.Code2Session(context.Background(), LoginCodes{Code: testCode}); err != nil {
		t.Fatal(err)
	}
	if !used.Load() {
		t.Errorf("the given HTTP client was not used")
	}
	if hc.CheckRedirect != nil {
		t.Errorf("the given HTTP client was modified")
	}
	if err := c.Close(); err != nil {
		t.Error(err)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// An API base with a path prefix keeps it.
func TestAPIBasePrefix(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/prefix/sns/jscode2session" {
			t.Errorf("path %q", r.URL.Path)
		}
		_, _ = io.WriteString(w, `{"openid":"o","session_key":"k"}`)
	}))
	defer srv.Close()
	if _, err := NewWeChat(testConfig1(srv.URL+"/prefix/")).Code2Session(context.Background(), LoginCodes{Code: testCode}); err != nil {
		t.Fatal(err)
	}
}

// Many concurrent calls share the client safely (run with -race).
func TestConcurrentCalls(t *testing.T) {
	f := newFake(t, wxLoginCheck, ok(`{"openid":"o","session_key":"k"}`))
	c := NewWeChat(testConfig1(f.URL()))
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			if _, err := c.Code2Session(context.Background(), LoginCodes{Code: testCode}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := f.attempts.Load(); n != 50 {
		t.Errorf("%d attempts, want 50", n)
	}
}

// --- lenient decoding ---

func TestLenientTypes(t *testing.T) {
	var v struct {
		S lenientString `json:"s"`
		N lenientInt    `json:"n"`
	}
	good := map[string]struct {
		s string
		n lenientInt
	}{
		`{"s":"x","n":1}`:       {"x", lenientInt{true, 1}},
		`{"s":86,"n":"86"}`:     {"86", lenientInt{true, 86}},
		`{"s":null,"n":null}`:   {"", lenientInt{}},
		`{"s":-1.5,"n":7200.0}`: {"-1.5", lenientInt{true, 7200}},
		`{"n":" -1 "}`:          {"", lenientInt{true, -1}},
		`{"n":""}`:              {"", lenientInt{}},
		`{"n":1e3}`:             {"", lenientInt{true, 1000}},
		`{"s":"\u4e2d","n":-0}`: {"中", lenientInt{true, 0}},
		`{"other":[1,{"a":2}]}`: {"", lenientInt{}},
	}
	for in, w := range good {
		v.S, v.N = "", lenientInt{}
		if err := decodeObject([]byte(in), &v); err != nil {
			t.Errorf("%s: %v", in, err)
			continue
		}
		if string(v.S) != w.s || v.N != w.n {
			t.Errorf("%s: got %q %+v, want %q %+v", in, v.S, v.N, w.s, w.n)
		}
	}
	for _, in := range []string{`{"s":true}`, `{"s":{}}`, `{"s":[]}`, `{"n":1.5}`, `{"n":"x"}`, `{"n":true}`, `{"n":[1]}`, `[]`, `"x"`, `null`, ``, `{"s":"x"} {}`} {
		if err := decodeObject([]byte(in), &v); err == nil {
			t.Errorf("%s: no error", in)
		}
	}
}

func TestPlatformMessage(t *testing.T) {
	for in, w := range map[string]string{
		"invalid code, rid: 652d44d0-1d0af18b":       "platform said: invalid code",
		"code blocked, hints: [ req_id: qEjdmsNre ]": "platform said: code blocked",
		"":               "<nil>",
		"rid: x":         "<nil>",
		"bad\x00\nthing": "platform said: badthing",
	} {
		if got := fmt.Sprint(platformMessage(in)); got != w {
			t.Errorf("platformMessage(%q) = %s, want %s", in, got, w)
		}
	}
}

func testConfig1(base string) Config {
	cfg, _ := testConfig(base)
	return cfg
}

// A long errmsg quoting a secret where the text would be shortened is
// withheld as a whole: no half of the secret is left.
func TestLongErrmsgWithSecretAtTheCut(t *testing.T) {
	for pad := 150; pad <= 200; pad += 5 {
		msg := strings.Repeat("z", pad) + " js_code=" + testCode
		f := newFake(t, wxLoginCheck, ok(fmt.Sprintf(`{"errcode":40099,"errmsg":%q}`, msg)))
		_, err := NewWeChat(testConfig1(f.URL())).Code2Session(context.Background(), LoginCodes{Code: testCode})
		checkErr(t, err, want{code: mperr.PlatformError, errcode: ec(40099)})
		if strings.Contains(err.Error(), testCode[:6]) {
			t.Errorf("pad %d: part of the code in %q", pad, err)
		}
	}
	// Without a secret, the platform's text is kept (shortened) for logs.
	f := newFake(t, wxLoginCheck, ok(`{"errcode":40099,"errmsg":"`+strings.Repeat("y", 500)+`, rid: 1"}`))
	_, err := NewWeChat(testConfig1(f.URL())).Code2Session(context.Background(), LoginCodes{Code: testCode})
	if s := err.Error(); !strings.Contains(s, "yyyy") || strings.Contains(s, strings.Repeat("y", 200)) || strings.Contains(s, "rid") {
		t.Errorf("error %q: want the platform text, shortened, without rid", s)
	}
}
