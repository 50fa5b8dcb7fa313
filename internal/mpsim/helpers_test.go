package mpsim

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
)

const (
	wxApp    = "wxdemoapp0000001"
	wxSecret = "demo-wechat-secret"
	ttApp    = "ttdemoapp0000001"
	ttSecret = "demo-douyin-secret"
)

type env struct {
	t   *testing.T
	sim *Sim
	srv *httptest.Server
}

// exact are quirks that give the documented shapes only: numbers as
// numbers, no errcode on WeChat successes.
var exact = Quirks{SuccessErrcode: ShapeNever, StringErrcode: ShapeNever}

func newEnv(t *testing.T, o Options) *env {
	t.Helper()
	s := New(o)
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return &env{t: t, sim: s, srv: srv}
}

// do sends a request and returns status and raw body.
func (e *env) do(method, path string, body any) (int, []byte) {
	e.t.Helper()
	return e.doCtx(context.Background(), method, path, body)
}

func (e *env) doCtx(ctx context.Context, method, path string, body any) (int, []byte) {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequestWithContext(ctx, method, e.srv.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp.StatusCode, raw
}

// json200 sends a request, requires HTTP 200 and a JSON object.
func (e *env) json200(method, path string, body any) map[string]any {
	e.t.Helper()
	st, raw := e.do(method, path, body)
	if st != http.StatusOK {
		e.t.Fatalf("%s %s: status %d, body %s", method, path, st, raw)
	}
	return decodeObj(e.t, raw)
}

func decodeObj(t *testing.T, raw []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("not a JSON object: %s (%v)", raw, err)
	}
	return m
}

// num reads a number the way a lenient client must: a JSON number or a
// string holding one (the StringErrcode quirk); 0 if absent (a success
// without errcode), -999999 if neither.
func num(m map[string]any, k string) int {
	switch v := m[k].(type) {
	case nil:
		return 0
	case float64:
		return int(v)
	case string:
		if n, err := strconv.Atoi(v); err == nil {
			return n
		}
	}
	return -999999
}

func str(m map[string]any, k string) string {
	s, _ := m[k].(string)
	return s
}

func q(kv ...string) string {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Set(kv[i], kv[i+1])
	}
	return v.Encode()
}

// wxExchange calls WeChat's jscode2session.
func (e *env) wxExchange(appID, secret, code string) map[string]any {
	e.t.Helper()
	return e.json200("GET", "/sns/jscode2session?"+q("appid", appID, "secret", secret, "js_code", code, "grant_type", "authorization_code"), nil)
}

// wantErrcode requires a WeChat-style error.
func wantErrcode(t *testing.T, m map[string]any, code int) {
	t.Helper()
	if _, ok := m["errcode"]; !ok || num(m, "errcode") != code {
		t.Fatalf("want errcode %d, got %v", code, m)
	}
	if code != 0 && !strings.Contains(str(m, "errmsg"), "rid: ") {
		t.Fatalf("errmsg without rid: %v", m)
	}
}

func (e *env) login(appID, user string) LoginResult {
	e.t.Helper()
	r, err := e.sim.Login(appID, user)
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

// wxToken fetches a classic token.
func (e *env) wxToken(appID, secret string) string {
	e.t.Helper()
	m := e.json200("GET", "/cgi-bin/token?"+q("grant_type", "client_credential", "appid", appID, "secret", secret), nil)
	tok := str(m, "access_token")
	if tok == "" || num(m, "expires_in") != 7200 {
		e.t.Fatalf("token: %v", m)
	}
	return tok
}

func (e *env) stable(appID, secret string, force bool) map[string]any {
	e.t.Helper()
	return e.json200("POST", "/cgi-bin/stable_token", map[string]any{"grant_type": "client_credential", "appid": appID, "secret": secret, "force_refresh": force})
}

func (e *env) phone(token string, body any) map[string]any {
	e.t.Helper()
	return e.json200("POST", "/wxa/business/getuserphonenumber?"+q("access_token", token), body)
}

func (e *env) phoneCode(appID, user, phone string) string {
	e.t.Helper()
	c, err := e.sim.PhoneCode(appID, user, phone)
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

func (e *env) ttExchange(body any) map[string]any {
	e.t.Helper()
	return e.json200("POST", "/api/apps/v2/jscode2session", body)
}

// decrypt is the platform's recipe, written independently of the simulator:
// AES-128-CBC, strict PKCS#7, JSON.
func decrypt(sessionKey, encryptedData, iv string) (map[string]any, error) {
	key, err := base64.StdEncoding.DecodeString(sessionKey)
	if err != nil {
		return nil, err
	}
	ivb, err := base64.StdEncoding.DecodeString(iv)
	if err != nil {
		return nil, err
	}
	ct, err := base64.StdEncoding.DecodeString(encryptedData)
	if err != nil {
		return nil, err
	}
	if len(key) != 16 || len(ivb) != 16 || len(ct) == 0 || len(ct)%16 != 0 {
		return nil, errors.New("bad lengths")
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	pt := make([]byte, len(ct))
	cipher.NewCBCDecrypter(block, ivb).CryptBlocks(pt, ct)
	n := int(pt[len(pt)-1])
	if n < 1 || n > 16 {
		return nil, errors.New("bad padding")
	}
	for _, b := range pt[len(pt)-n:] {
		if int(b) != n {
			return nil, errors.New("bad padding")
		}
	}
	var m map[string]any
	if err := json.Unmarshal(pt[:len(pt)-n], &m); err != nil {
		return nil, err
	}
	return m, nil
}
