package platform

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/mperr"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/phone"
)

var (
	rsaKeysOnce sync.Once
	rsaKey1024  *rsa.PrivateKey
	rsaKey2048  *rsa.PrivateKey
)

func testKeys(t *testing.T) (k1024, k2048 *rsa.PrivateKey) {
	t.Helper()
	rsaKeysOnce.Do(func() {
		var err error
		if rsaKey1024, err = rsa.GenerateKey(rand.Reader, 1024); err != nil {
			panic(err)
		}
		if rsaKey2048, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
	})
	return rsaKey1024, rsaKey2048
}

// rsaEncrypt encrypts plain as Douyin does: PKCS#1 v1.5 blocks of at most
// size-11 bytes, concatenated, base64.
func rsaEncrypt(t *testing.T, pub *rsa.PublicKey, plain []byte) string {
	t.Helper()
	var out []byte
	step := pub.Size() - 11
	for i := 0; i < len(plain); i += step {
		//lint:ignore SA1019 the platform's padding, reproduced to test the client
		ct, err := rsa.EncryptPKCS1v15(rand.Reader, pub, plain[i:min(i+step, len(plain))])
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, ct...)
	}
	return base64.StdEncoding.EncodeToString(out)
}

func ttPhonePlain(appID string) []byte {
	return []byte(`{"phoneNumber":"` + testPhone + `","purePhoneNumber":"` + testPhone + `","countryCode":"86","watermark":{"appid":"` + appID + `","timestamp":1700000000}}`)
}

func ttPhoneCheck(t *testing.T, r *http.Request, body []byte) {
	expectRoute(t, r, http.MethodPost, "/api/apps/v1/get_phonenumber_info/")
	if got := r.Header.Get("access-token"); got != testToken {
		t.Errorf("access-token header %q, want the client token", got)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("content-type %q", ct)
	}
	expectJSON(t, r, body, map[string]any{"code": testPhoneCode})
}

func TestDouyinClientToken(t *testing.T) {
	check := func(t *testing.T, r *http.Request, body []byte) {
		expectRoute(t, r, http.MethodPost, "/oauth/client_token/")
		expectJSON(t, r, body, map[string]any{"grant_type": "client_credential", "client_key": testAppID, "client_secret": testSecret})
	}
	tests := []struct {
		name    string
		replies []reply
		want    want
		tok     Token
	}{
		{"ok", []reply{ok(`{"data":{"access_token":"` + testToken + `","description":"","error_code":0,"expires_in":7200},"message":"success"}`)}, want{}, Token{testToken, 7200 * time.Second}},
		{"string numbers", []reply{ok(`{"data":{"access_token":"` + testToken + `","error_code":"0","expires_in":"7200"},"message":"success"}`)}, want{}, Token{testToken, 7200 * time.Second}},
		{"10013 bad secret", []reply{ok(`{"data":{"description":"client_key or client_secret wrong","error_code":10013},"message":"error"}`)}, want{code: mperr.PlatformError, errcode: ec(10013)}, Token{}},
		{"10003 unknown key", []reply{ok(`{"data":{"description":"client_key不存在","error_code":10003},"message":"error"}`)}, want{code: mperr.PlatformError, errcode: ec(10003)}, Token{}},
		{"flat err_no", []reply{ok(`{"err_no":10002,"err_msg":"bad params"}`)}, want{code: mperr.PlatformError, errcode: ec(10002)}, Token{}},
		{"500 then ok", []reply{status(502, ""), ok(`{"data":{"access_token":"` + testToken + `","error_code":0,"expires_in":7200}}`)}, want{}, Token{testToken, 7200 * time.Second}},
		{"no token", []reply{ok(`{"data":{"error_code":0,"expires_in":7200},"message":"success"}`)}, want{code: mperr.PlatformError}, Token{}},
		{"no expiry", []reply{ok(`{"data":{"access_token":"x","error_code":0},"message":"success"}`)}, want{code: mperr.PlatformError}, Token{}},
		{"html", []reply{ok(`<html>`)}, want{code: mperr.PlatformError}, Token{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t, check, tc.replies...)
			cfg, logs := testConfig(f.URL())
			tok, err := NewDouyin(cfg).ClientTokens().Token(context.Background())
			checkErr(t, err, tc.want)
			if tok != tc.tok {
				t.Errorf("token %+v, want %+v", tok, tc.tok)
			}
			checkLogs(t, logs, -1)
		})
	}
}

func TestDouyinPhone(t *testing.T) {
	k1024, k2048 := testKeys(t)
	wantPhone := phone.Number{PhoneNumber: testPhone, PurePhoneNumber: testPhone, CountryCode: "86", WatermarkAppID: testAppID}
	answer := func(data string) reply {
		return ok(`{"err_no":0,"err_msg":"","log_id":"20240101","data":"` + data + `"}`)
	}
	ttErr := func(n int, msg string) reply {
		return ok(fmt.Sprintf(`{"err_no":%d,"err_tips":%q,"log_id":"x","data":null}`, n, msg))
	}
	multi := rsaEncrypt(t, &k1024.PublicKey, ttPhonePlain(testAppID))
	if n, _ := base64.StdEncoding.DecodeString(multi); len(n) != 2*128 {
		t.Fatalf("the 1024-bit ciphertext has %d bytes, want two blocks", len(n))
	}
	single := rsaEncrypt(t, &k2048.PublicKey, ttPhonePlain(testAppID))
	raw, _ := base64.StdEncoding.DecodeString(multi)
	tests := []struct {
		name     string
		key      *rsa.PrivateKey
		replies  []reply
		want     want
		number   phone.Number
		attempts int
	}{
		{"1024-bit key, two blocks", k1024, []reply{answer(multi)}, want{}, wantPhone, 1},
		{"2048-bit key, one block", k2048, []reply{answer(single)}, want{}, wantPhone, 1},
		{"url-safe unpadded base64", k1024, []reply{answer(base64.RawURLEncoding.EncodeToString(raw))}, want{}, wantPhone, 1},
		{"err_tips absent, err_msg", k2048, []reply{ok(`{"err_no":"0","log_id":"x","data":"` + single + `"}`)}, want{}, wantPhone, 1},
		{"28005187 code expired or used", k2048, []reply{ttErr(28005187, "code expired")}, want{code: mperr.InvalidCode, errcode: ec(28005187)}, phone.Number{}, 1},
		{"28001003 token invalid", k2048, []reply{ttErr(28001003, "access_token invalid")}, want{code: mperr.PlatformError, errcode: ec(28001003), tokenInval: true}, phone.Number{}, 1},
		{"28001008 token expired", k2048, []reply{ttErr(28001008, "access_token expired")}, want{code: mperr.PlatformError, errcode: ec(28001008), tokenInval: true}, phone.Number{}, 1},
		{"token quoted", k2048, []reply{ttErr(28001003, "bad token "+testToken)}, want{code: mperr.PlatformError, errcode: ec(28001003), tokenInval: true}, phone.Number{}, 1},
		{"-1 then ok", k2048, []reply{ttErr(-1, "system error"), answer(single)}, want{}, wantPhone, 2},
		{"other err_no", k2048, []reply{ttErr(40015, "bad appid")}, want{code: mperr.PlatformError, errcode: ec(40015)}, phone.Number{}, 1},
		{"no data", k2048, []reply{ok(`{"err_no":0,"log_id":"x"}`)}, want{code: mperr.PlatformError}, phone.Number{}, 1},
		{"data not base64", k2048, []reply{answer("%%%not base64%%%")}, want{code: mperr.PlatformError}, phone.Number{}, 1},
		{"data not whole blocks", k1024, []reply{answer(base64.StdEncoding.EncodeToString(raw[:200]))}, want{code: mperr.PlatformError}, phone.Number{}, 1},
		{"one block tampered", k1024, []reply{answer(tamper(raw, 130))}, want{code: mperr.PlatformError}, phone.Number{}, 1},
		{"other key", k2048, []reply{answer(multi)}, want{code: mperr.PlatformError}, phone.Number{}, 1},
		{"zero bytes of the right size", k1024, []reply{answer(base64.StdEncoding.EncodeToString(make([]byte, 256)))}, want{code: mperr.PlatformError}, phone.Number{}, 1},
		{"plaintext not a phone", k2048, []reply{answer(rsaEncrypt(t, &k2048.PublicKey, []byte(`{"phoneNumber":"1\r\nX: y"}`)))}, want{code: mperr.PlatformError}, phone.Number{}, 1},
		{"plaintext not JSON", k2048, []reply{answer(rsaEncrypt(t, &k2048.PublicKey, []byte(`hello`)))}, want{code: mperr.PlatformError}, phone.Number{}, 1},
		{"data an object", k2048, []reply{ok(`{"err_no":0,"data":{"phoneNumber":"1"}}`)}, want{code: mperr.PlatformError}, phone.Number{}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t, ttPhoneCheck, tc.replies...)
			cfg, logs := testConfig(f.URL())
			cfg.PrivateKey = tc.key
			p, err := NewDouyin(cfg).GetUserPhoneNumber(context.Background(), testToken, testPhoneCode, "o-ignored")
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

func tamper(b []byte, i int) string {
	c := append([]byte(nil), b...)
	c[i] ^= 0x5a
	return base64.StdEncoding.EncodeToString(c)
}

func TestDouyinPhoneArguments(t *testing.T) {
	_, k := testKeys(t)
	f := newFake(t, nil, ok(`{}`))
	cfg, _ := testConfig(f.URL())
	c := NewDouyin(cfg)
	if _, err := c.GetUserPhoneNumber(context.Background(), testToken, testPhoneCode, ""); mperr.From(err).Code != mperr.Internal {
		t.Errorf("without a private key: %v", err)
	}
	cfg.PrivateKey = k
	c = NewDouyin(cfg)
	if _, err := c.GetUserPhoneNumber(context.Background(), testToken, "", ""); mperr.From(err).Code != mperr.BadRequest {
		t.Errorf("without a code: %v", err)
	}
	_, err := c.GetUserPhoneNumber(context.Background(), "", testPhoneCode, "")
	checkErr(t, err, want{code: mperr.PlatformError, tokenInval: true})
	if f.attempts.Load() != 0 {
		t.Errorf("%d calls for refused arguments", f.attempts.Load())
	}
}

// The open platform's endpoints default to open.douyin.com; APIBase
// replaces it with the code2session origin.
func TestDouyinOrigins(t *testing.T) {
	c := NewDouyin(Config{AppID: "a", AppSecret: "s"})
	if c.openBase != DefaultDouyinOpenAPIBase || c.base != DefaultDouyinAPIBase {
		t.Errorf("default origins %q %q", c.openBase, c.base)
	}
	c = NewDouyin(Config{AppID: "a", AppSecret: "s", APIBase: "http://127.0.0.1:9/sim/"})
	if c.openBase != "http://127.0.0.1:9/sim" || c.base != "http://127.0.0.1:9/sim" {
		t.Errorf("api_base origins %q %q", c.openBase, c.base)
	}
}

func TestDecryptRSANeverPanics(t *testing.T) {
	k1024, _ := testKeys(t)
	for _, data := range []string{"", "=", "AAAA", strings.Repeat("A", 172), base64.StdEncoding.EncodeToString(make([]byte, 128*17)), " \n"} {
		if _, err := DecryptRSA(k1024, data); err != ErrRSADecrypt {
			t.Errorf("DecryptRSA(%.20q) = %v, want ErrRSADecrypt", data, err)
		}
	}
}

func TestParsePrivateKey(t *testing.T) {
	k1024, _ := testKeys(t)
	pkcs1 := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k1024)})
	der8, err := x509.MarshalPKCS8PrivateKey(k1024)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8 := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der8})
	for name, text := range map[string][]byte{"pkcs1": pkcs1, "pkcs8": pkcs8, "pkcs8 with blank lines": append([]byte("\n\n"), pkcs8...)} {
		k, err := ParsePrivateKey(text)
		if err != nil || !k.Equal(k1024) {
			t.Errorf("%s: %v", name, err)
		}
	}
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecDER, _ := x509.MarshalPKCS8PrivateKey(ec)
	pub, _ := x509.MarshalPKIXPublicKey(&k1024.PublicKey)
	body := base64.StdEncoding.EncodeToString(x509.MarshalPKCS1PrivateKey(k1024))
	bad := map[string]struct {
		text []byte
		want string
	}{
		"empty":          {nil, "no PEM block"},
		"not PEM":        {[]byte(body), "no PEM block"},
		"ec":             {pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: ecDER}), "not an RSA key"},
		"public":         {pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), "not a private key"},
		"corrupt pkcs1":  {pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k1024)[:300]}), "does not hold a readable"},
		"encrypted pem":  {pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte{1, 2, 3}}), "encrypted"},
		"pkcs8 as pkcs1": {pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: der8}), "does not hold a readable"},
	}
	for name, tc := range bad {
		_, err := ParsePrivateKey(tc.text)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one saying %q", name, err, tc.want)
			continue
		}
		if strings.Contains(err.Error(), body[:40]) || strings.Contains(err.Error(), "MII") {
			t.Errorf("%s: the error quotes key material: %v", name, err)
		}
	}
}

// The one phone JSON parser of both platforms' exchanges.
func TestParsePhoneInfo(t *testing.T) {
	p, err := parsePhoneInfo(ttPhonePlain("tt1"))
	if err != nil || p.WatermarkAppID != "tt1" || p.CountryCode != "86" {
		t.Fatalf("%+v %v", p, err)
	}
	b, _ := json.Marshal(map[string]any{"phoneNumber": "1", "countryCode": 86})
	if p, err := parsePhoneInfo(b); err != nil || p.CountryCode != "86" {
		t.Errorf("numeric countryCode: %+v %v", p, err)
	}
}

// Douyin's mini-app access_token (POST /api/apps/v2/token, the gateway's
// developer.toutiao.com token): the request, its answers and errors, each
// attempt read afresh (a retry's answer never inherits the first one's
// fields).
func TestDouyinAppToken(t *testing.T) {
	check := func(t *testing.T, r *http.Request, body []byte) {
		expectRoute(t, r, http.MethodPost, "/api/apps/v2/token")
		expectJSON(t, r, body, map[string]any{"appid": testAppID, "secret": testSecret, "grant_type": "client_credential"})
	}
	tests := []struct {
		name    string
		replies []reply
		want    want
		tok     Token
	}{
		{"ok", []reply{ok(`{"err_no":0,"err_tips":"success","data":{"access_token":"` + testToken + `","expires_in":7200}}`)}, want{}, Token{testToken, 7200 * time.Second}},
		{"string numbers", []reply{ok(`{"err_no":"0","err_tips":"success","data":{"access_token":"` + testToken + `","expires_in":"7200"}}`)}, want{}, Token{testToken, 7200 * time.Second}},
		{"40017 bad secret", []reply{ok(`{"err_no":40017,"err_tips":"bad secret","data":{"access_token":"","expires_in":0}}`)}, want{code: mperr.PlatformError, errcode: ec(40017)}, Token{}},
		{"40015 bad appid", []reply{ok(`{"err_no":40015,"err_tips":"bad appid"}`)}, want{code: mperr.PlatformError, errcode: ec(40015)}, Token{}},
		{"-1 busy, then ok", []reply{ok(`{"err_no":-1,"err_tips":"system error"}`), ok(`{"err_no":0,"data":{"access_token":"` + testToken + `","expires_in":7200}}`)}, want{}, Token{testToken, 7200 * time.Second}},
		{"busy with a token, then a retry without one", []reply{ok(`{"err_no":-1,"data":{"access_token":"stale","expires_in":7200}}`), ok(`{"err_no":0,"data":{"expires_in":7200}}`)}, want{code: mperr.PlatformError}, Token{}},
		{"no expiry", []reply{ok(`{"err_no":0,"data":{"access_token":"x"}}`)}, want{code: mperr.PlatformError}, Token{}},
		{"html", []reply{ok(`<html>`)}, want{code: mperr.PlatformError}, Token{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t, check, tc.replies...)
			cfg, logs := testConfig(f.URL())
			tok, err := NewDouyin(cfg).AppTokens().Token(context.Background())
			checkErr(t, err, tc.want)
			if tok != tc.tok {
				t.Errorf("token %+v, want %+v", tok, tc.tok)
			}
			checkLogs(t, logs, -1)
		})
	}
}
