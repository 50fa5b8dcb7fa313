package mpsim

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"
)

var (
	ttKeyOnce        sync.Once
	ttKey            *rsa.PrivateKey
	testPublicKeyPEM string
)

// ttTestKey is a 1024-bit key: a phone JSON needs two blocks.
func ttTestKey(testing.TB) *rsa.PrivateKey {
	ttKeyOnce.Do(func() {
		var err error
		if ttKey, err = rsa.GenerateKey(rand.Reader, 1024); err != nil {
			panic(err)
		}
		der, _ := x509.MarshalPKIXPublicKey(&ttKey.PublicKey)
		testPublicKeyPEM = string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	})
	return ttKey
}

func init() {
	// sim_test's control API cases use the PEM.
	ttTestKey(nil)
}

func (e *env) clientToken(appID, secret string) map[string]any {
	e.t.Helper()
	return e.json200("POST", "/oauth/client_token/", map[string]any{"grant_type": "client_credential", "client_key": appID, "client_secret": secret})
}

func (e *env) clt() string {
	e.t.Helper()
	m := e.clientToken(ttApp, ttSecret)
	d, _ := m["data"].(map[string]any)
	tok := str(d, "access_token")
	if tok == "" || num(d, "error_code") != 0 || num(d, "expires_in") != 7200 || m["message"] != "success" {
		e.t.Fatalf("client_token: %v", m)
	}
	return tok
}

// ttPhone calls get_phonenumber_info with the token in the access-token header.
func (e *env) ttPhone(tok string, body any) map[string]any {
	e.t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/api/apps/v1/get_phonenumber_info/", bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	if tok != "" {
		req.Header.Set("access-token", tok)
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		e.t.Fatalf("get_phonenumber_info: %d %s", resp.StatusCode, raw)
	}
	return decodeObj(e.t, raw)
}

// rsaOpen is the app's side, written independently: base64, blocks of the
// key's size, PKCS#1 v1.5, JSON.
func rsaOpen(t *testing.T, k *rsa.PrivateKey, data string) map[string]any {
	t.Helper()
	ct, err := base64.StdEncoding.DecodeString(data)
	if err != nil || len(ct)%k.Size() != 0 {
		t.Fatalf("data: %v, %d bytes", err, len(ct))
	}
	if len(ct)/k.Size() < 2 {
		t.Fatalf("a phone JSON under a 1024-bit key should take two blocks, got %d bytes", len(ct))
	}
	var plain []byte
	for i := 0; i < len(ct); i += k.Size() {
		//lint:ignore SA1019 the platform's padding
		p, err := rsa.DecryptPKCS1v15(nil, k, ct[i:i+k.Size()])
		if err != nil {
			t.Fatal(err)
		}
		plain = append(plain, p...)
	}
	var m map[string]any
	if err := json.Unmarshal(plain, &m); err != nil {
		t.Fatalf("plaintext %q: %v", plain, err)
	}
	return m
}

func TestDouyinPhoneCode(t *testing.T) {
	k := ttTestKey(t)
	e := newEnv(t, Options{Quirks: exact, DouyinPublicKeys: map[string]*rsa.PublicKey{ttApp: &k.PublicKey}})
	tok := e.clt()

	pc := e.phoneCode(ttApp, "dora", "13800138000")
	m := e.ttPhone(tok, map[string]any{"code": pc})
	if num(m, "err_no") != 0 || str(m, "log_id") == "" {
		t.Fatalf("%v", m)
	}
	ph := rsaOpen(t, k, str(m, "data"))
	wm, _ := ph["watermark"].(map[string]any)
	if ph["phoneNumber"] != "13800138000" || ph["purePhoneNumber"] != "13800138000" || ph["countryCode"] != "86" || wm["appid"] != ttApp {
		t.Fatalf("plaintext %v", ph)
	}
	// Single use.
	if m := e.ttPhone(tok, map[string]any{"code": pc}); num(m, "err_no") != 28005187 || m["data"] != nil {
		t.Fatalf("reused code: %v", m)
	}
	// 5 minutes.
	pc = e.phoneCode(ttApp, "dora", "13800138001")
	e.sim.Advance(5*time.Minute + time.Second)
	tok = e.clt()
	if m := e.ttPhone(tok, map[string]any{"code": pc}); num(m, "err_no") != 28005187 {
		t.Fatalf("expired code: %v", m)
	}
	// Unknown code, no code, no token, a WeChat token.
	if m := e.ttPhone(tok, map[string]any{"code": "never"}); num(m, "err_no") != 28005187 {
		t.Fatalf("unknown code: %v", m)
	}
	if m := e.ttPhone(tok, map[string]any{}); num(m, "err_no") != 40014 {
		t.Fatalf("no code: %v", m)
	}
	if m := e.ttPhone("", map[string]any{"code": "x"}); num(m, "err_no") != 28001003 {
		t.Fatalf("no token: %v", m)
	}
	if m := e.ttPhone(e.wxToken(wxApp, wxSecret), map[string]any{"code": "x"}); num(m, "err_no") != 28001003 {
		t.Fatalf("a WeChat token: %v", m)
	}
	// A WeChat phone code is not Douyin's.
	if m := e.ttPhone(tok, map[string]any{"code": e.phoneCode(wxApp, "w", "1")}); num(m, "err_no") != 28005187 {
		t.Fatalf("a WeChat code: %v", m)
	}
}

// A fetch supersedes the previous client token after TokenGrace; only the
// latest two are valid; a token expires after 7200 s.
func TestDouyinClientTokens(t *testing.T) {
	k := ttTestKey(t)
	e := newEnv(t, Options{Quirks: exact, DouyinPublicKeys: map[string]*rsa.PublicKey{ttApp: &k.PublicKey}})
	works := func(tok string) int {
		t.Helper()
		return num(e.ttPhone(tok, map[string]any{"code": e.phoneCode(ttApp, "dora", "13800138000")}), "err_no")
	}
	t1 := e.clt()
	t2 := e.clt()
	if t1 == t2 || works(t1) != 0 || works(t2) != 0 {
		t.Fatal("within the grace both tokens must work")
	}
	t3 := e.clt() // t1 is third from the latest: dead at once
	if works(t1) != 28001003 || works(t2) != 0 || works(t3) != 0 {
		t.Fatal("only the latest two stay valid")
	}
	e.sim.Advance(TokenGrace + time.Second)
	if works(t2) != 28001003 || works(t3) != 0 {
		t.Fatal("a superseded token dies after the grace")
	}
	e.sim.Advance(AccessTokenTTL)
	if works(t3) != 28001008 {
		t.Fatal("an expired token answers 28001008")
	}
	// Errors of client_token.
	for _, c := range []struct {
		body map[string]any
		want int
	}{
		{map[string]any{"grant_type": "client_credential", "client_key": ttApp, "client_secret": "wrong"}, 10013},
		{map[string]any{"grant_type": "client_credential", "client_key": "nope", "client_secret": "x"}, 10003},
		{map[string]any{"grant_type": "client_credential", "client_key": wxApp, "client_secret": wxSecret}, 10003},
		{map[string]any{"client_key": ttApp, "client_secret": ttSecret}, 10002},
	} {
		m := e.json200("POST", "/oauth/client_token/", c.body)
		d, _ := m["data"].(map[string]any)
		if num(d, "error_code") != c.want || d["access_token"] != nil {
			t.Errorf("%v: %v, want error_code %d", c.body, m, c.want)
		}
	}
	if n := e.sim.Calls(EndpointClientToken); n != 7 {
		t.Errorf("client_token calls %d, want 7", n)
	}
}

func TestDouyinPhoneControl(t *testing.T) {
	k := ttTestKey(t)
	e := newEnv(t, Options{Quirks: exact})
	tok := e.clt()
	pc := e.phoneCode(ttApp, "dora", "13800138000")
	if m := e.ttPhone(tok, map[string]any{"code": pc}); num(m, "err_no") != 28001014 {
		t.Fatalf("without a public key: %v", m)
	}
	if m := e.json200("POST", "/_sim/public_key", map[string]any{"appid": ttApp, "public_key": testPublicKeyPEM}); m["ok"] != true {
		t.Fatal(m)
	}
	// The code was not spent by the refusal.
	m := e.ttPhone(tok, map[string]any{"code": pc})
	if rsaOpen(t, k, str(m, "data"))["phoneNumber"] != "13800138000" {
		t.Fatal(m)
	}
	// The button: {errMsg, code, encryptedData, iv} after a login.
	e.ttExchange(map[string]any{"appid": ttApp, "secret": ttSecret, "code": e.login(ttApp, "dora").Code})
	b := e.json200("POST", "/_sim/phone_button", map[string]any{"appid": ttApp, "user": "dora", "phone": "13800138009"})
	if b["errMsg"] != "getPhoneNumber:ok" || str(b, "encryptedData") == "" || str(b, "iv") == "" {
		t.Fatalf("button %v", b)
	}
	m = e.ttPhone(tok, map[string]any{"code": str(b, "code")})
	if rsaOpen(t, k, str(m, "data"))["phoneNumber"] != "13800138009" {
		t.Fatal(m)
	}
	if err := e.sim.SetPublicKey(wxApp, &k.PublicKey); !errors.Is(err, ErrWrongPlatform) {
		t.Errorf("a WeChat app's public key: %v", err)
	}
	// Faults apply to the new endpoints.
	e.sim.Inject(Fault{Endpoint: EndpointGetPhoneNumberInfo, Errcode: -1, Times: 1})
	if m := e.ttPhone(tok, map[string]any{"code": "x"}); num(m, "err_no") != -1 {
		t.Fatalf("fault: %v", m)
	}
	e.sim.Reset()
	if m := e.ttPhone(e.clt(), map[string]any{"code": e.phoneCode(ttApp, "z", "13800138000")}); num(m, "err_no") != 0 {
		t.Fatalf("Reset forgot the public key: %v", m)
	}
}
