package mpsim

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

const (
	bdApp    = "bddemoappkey0000000000000000001"
	bdSecret = "demo-baidu-secret"
)

// bdExchange posts the form and returns the status and decoded answer.
func (e *env) bdExchange(form url.Values) (int, map[string]any) {
	e.t.Helper()
	resp, err := http.Post(e.srv.URL+"/oauth/jscode2sessionkey", "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		e.t.Fatal(err)
	}
	return resp.StatusCode, m
}

func TestBaiduCode2Session(t *testing.T) {
	e := newEnv(t, Options{Quirks: exact})
	lr := e.login(bdApp, "bob")
	form := url.Values{"code": {lr.Code}, "client_id": {bdApp}, "sk": {bdSecret}}
	st, m := e.bdExchange(form)
	if st != 200 || m["openid"] != lr.OpenID || len(m) != 2 {
		t.Fatalf("%d %v", st, m)
	}
	key, err := base64.StdEncoding.DecodeString(m["session_key"].(string))
	if err != nil || len(key) != 24 {
		t.Fatalf("session key %v (%d bytes)", err, len(key))
	}
	wantOAuth := func(form url.Values, name string) {
		t.Helper()
		st, m := e.bdExchange(form)
		if st != 400 || m["error"] != name || m["error_description"] == "" {
			t.Fatalf("want %s, got %d %v", name, st, m)
		}
	}
	wantOAuth(form, "invalid_grant") // used
	wantOAuth(url.Values{"code": {"nope"}, "client_id": {bdApp}, "sk": {bdSecret}}, "invalid_grant")
	lr = e.login(bdApp, "bob")
	wantOAuth(url.Values{"code": {lr.Code}, "client_id": {bdApp}, "sk": {"wrong"}}, "invalid_client")
	wantOAuth(url.Values{"code": {lr.Code}, "client_id": {wxApp}, "sk": {"demo-wechat-secret"}}, "invalid_client")
	wantOAuth(url.Values{"code": {lr.Code}, "client_id": {bdApp}}, "invalid_request")
	// A WeChat code is not Baidu's.
	wx := e.login(wxApp, "bob")
	wantOAuth(url.Values{"code": {wx.Code}, "client_id": {bdApp}, "sk": {bdSecret}}, "invalid_grant")
	// Codes live 10 minutes.
	e.sim.Advance(10*time.Minute + time.Second)
	wantOAuth(url.Values{"code": {lr.Code}, "client_id": {bdApp}, "sk": {bdSecret}}, "invalid_grant")
	lr = e.login(bdApp, "bob")
	e.sim.Advance(9 * time.Minute)
	if st, m := e.bdExchange(url.Values{"code": {lr.Code}, "client_id": {bdApp}, "sk": {bdSecret}}); st != 200 || m["openid"] != lr.OpenID {
		t.Fatalf("9 minutes: %d %v", st, m)
	}
	// GET is refused.
	if code, body := e.do("GET", "/oauth/jscode2sessionkey?"+form.Encode(), nil); code != 400 || !strings.Contains(string(body), "invalid_request") {
		t.Fatalf("GET: %d %s", code, body)
	}
	// An injected number answers errno/errmsg.
	e.sim.Inject(Fault{Endpoint: EndpointJSCode2Session, Platform: Baidu, Errcode: 12, Times: 1})
	if st, m := e.bdExchange(form); st != 200 || num(m, "errno") != 12 {
		t.Fatalf("fault: %d %v", st, m)
	}
}

// openBaidu decrypts the simulator's payload independently of the
// product's code, and returns the frame's parts.
func openBaidu(t *testing.T, sessionKey, ed, iv string) (data, trailer, pad []byte) {
	t.Helper()
	key, _ := base64.StdEncoding.DecodeString(sessionKey)
	ivb, _ := base64.StdEncoding.DecodeString(iv)
	ct, _ := base64.StdEncoding.DecodeString(ed)
	if len(key) != 24 || len(ivb) != 16 || len(ct)%32 != 0 {
		t.Fatalf("sizes: key %d iv %d ct %d", len(key), len(ivb), len(ct))
	}
	b, _ := aes.NewCipher(key)
	pt := make([]byte, len(ct))
	cipher.NewCBCDecrypter(b, ivb).CryptBlocks(pt, ct)
	n := int(binary.BigEndian.Uint32(pt[16:20]))
	p := int(pt[len(pt)-1])
	if p < 1 || p > 32 || !bytes.Equal(pt[len(pt)-p:], bytes.Repeat([]byte{byte(p)}, p)) {
		t.Fatalf("padding %d", p)
	}
	return pt[20 : 20+n], pt[20+n : len(pt)-p], pt[len(pt)-p:]
}

func TestBaiduEncrypt(t *testing.T) {
	e := newEnv(t, Options{Quirks: exact})
	lr := e.login(bdApp, "carol")
	_, m := e.bdExchange(url.Values{"code": {lr.Code}, "client_id": {bdApp}, "sk": {bdSecret}})
	sk := m["session_key"].(string)

	ed, iv, err := e.sim.EncryptPhone(bdApp, "carol", "13800138000")
	if err != nil {
		t.Fatal(err)
	}
	data, trailer, _ := openBaidu(t, sk, ed, iv)
	if string(data) != `{"mobile":"13800138000"}` || string(trailer) != bdApp {
		t.Fatalf("phone frame: %q %q", data, trailer)
	}
	ed2, _, _ := e.sim.EncryptPhone(bdApp, "carol", "13800138000")
	if ed2 == ed {
		t.Fatal("the random prefix or iv does not change")
	}
	ed, iv, err = e.sim.Encrypt(bdApp, "carol", map[string]any{"nickname": "c"}, EncryptOptions{WatermarkAppID: "otherappkey"})
	if err != nil {
		t.Fatal(err)
	}
	data, trailer, _ = openBaidu(t, sk, ed, iv)
	if string(data) != `{"nickname":"c"}` || string(trailer) != "otherappkey" {
		t.Fatalf("frame: %q %q", data, trailer)
	}
	// Through the control API too.
	res := e.json200("POST", "/_sim/phone", map[string]any{"appid": bdApp, "user": "carol", "phone": "13900139000"})
	data, _, _ = openBaidu(t, sk, res["encryptedData"].(string), res["iv"].(string))
	if string(data) != `{"mobile":"13900139000"}` {
		t.Fatalf("control: %q", data)
	}
	if _, err := e.sim.PhoneButton(bdApp, "carol", "1"); err == nil {
		t.Fatal("Baidu phone button")
	}
}
