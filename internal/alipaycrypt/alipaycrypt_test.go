package alipaycrypt

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
)

// Vectors from Alipay's own SDKs (their fixtures, not computed here):
//
//   - alipay/alipay-sdk-nodejs-all, test/alipay.test.ts, checkResponseSign
//     "should work": a gateway answer of alipay.open.file.upload signed by
//     Alipay, verified with test/fixtures/alipay-public-key.pem;
//   - the same file, checkNotifySign "verify sign should not delete
//     sign_type": parameters signed by Alipay over the sorted name=value
//     string with sign_type kept (the request's rule), verified with
//     test/fixtures/alipay-notify-sign-public-key-v2.pem;
//   - alipay/alipay-easysdk, java/src/test/java/com/alipay/easysdk/util/aes/
//     ClientTest.java: AES key aa4BtZ4tspm2wnXLb1ThQA==, "test1234567" ↔
//     ILpoMowjIQjfYMR847rnFQ== (Alipay's AES: CBC, zero IV, PKCS#5/7).

const sdkAlipayPublicKey = `-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAk7LzhmMa2c4qQd4fqAqenfbuFoA7stPKvoS1LrZEsVnOOGUUjwoa1oU9xsSPjcOWhIerU/VAN4J95GIAXx59ipcleIyfLn2FhHXPgLJpvo+b2jJFyn/1/DbeJDh+0yDVAOf50Z7HhI0mdUhFMkXlT7BU0ZMtJf/TmISFEfhDU/w6qFd6D42L97byAkq0K6LroglSVF24GqJEa7hSeUIkZWj7RasykXrc2uVJ1+ejkXE0LyPxa2AHykMGbJLf5SiZvaNzUZgnKIR36mLOHpQ/2JCXxhXZYUWHzy0kMH54JcUEeksFWBYLGvLjV1phbcUIc3Q76tIuqApY6E222OoZZQIDAQAB
-----END PUBLIC KEY-----`

const sdkSignedAnswer = `{"alipay_open_file_upload_response":{"code":"10000","msg":"Success","file_id":"CAxAToWB1JsAAAAAAAAAAAAADgSLAQBr"},"sign":"F+LDzpTNiavn7xVZPGuPCSSVRSmWzJGgtuji6tVELGEaqMaNj0jRKXUEr5nloZJBBmwEnddOyCjjepMmrTKTvoOqQ0Efxpr/R1iEeHTHVbb/Q8TTh6Up5gHJDkILdaWS2q1cWeQ6VT+HQY9P3WRXS7uhILHuDODIhpAyCu5KhWGt0rMCIG+Im6NODJP2oohtSCtmTFXg58HH587Z2y2bdbjzOxLvzD9IrU1imghXQ2S/Q+wMIvRk9on6cWnBLkrNvJKapA2ReNGWOwyuASvB9zDVzhMPbR+3mfRGkVDxsq5HYLjBKGskJMXHw0HuugZij6ScRuaLPODhmHwr/pJ9yw=="}`

// The notify key is bare base64 (PKIX DER), as Alipay's console shows keys.
const sdkNotifyPublicKey = `MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAk6DCsBIUhWriFohzRV8F
ic6oQWNnLKKILNk97VU5qcHEuxYzCujKoyva5gy1170mFJw4IcgJF8AyS7iDUwzA
wF4Pp9CpWxDhUhe7mdQJhjBmvTcPLGFFrzlj6unO5lAcbdwaxPUtSxOaNxPJGrTK
/wnKQSbjTMMltp1J68q2Tfgrsn/NdZ6lrxO9rvmky8kowqaH5NjntyHO59jCGabM
j5sI14z8N61wB/QuIJrDuzIPMPrSNbq0cOWcSCDG09oUHTp9fk7suDB8UiFcmVTX
OvK3d4HbeX8V9YsEMxrwxEoYgRRj6K2qrC6oxw480cqf2ueumCmHg6xrcgkyXK81
hwIDAQAB`

var sdkNotifyParams = map[string]string{
	"app_id":             "2017122801303261",
	"charset":            "UTF-8",
	"commodity_order_id": "2019030800000018079639",
	"contactor":          "技术支持测试的公司",
	"merchant_pid":       "2088721996721370",
	"method":             "alipay.open.servicemarket.order.notify",
	"name":               "技术支持测试的公司",
	"notify_id":          "2019030800222102023008121054923345",
	"notify_time":        "2019-03-08 10:20:23",
	"notify_type":        "servicemarket_order_notify",
	"order_item_num":     "1",
	"order_ticket":       "29b1c37d99ab48c5bd5bdaeaeaefbB37",
	"order_time":         "2019-03-08 10:20:08",
	"phone":              "17826894615",
	"service_code":       "58621634",
	"sign":               "MsK5SCw8oqLw4f0hiNSd5OVGXxBY3wnQeT8vn5PklJSZFWSZbK4hQbNvkp4ZezeXQH514cEv0ul6Qow8yh6e6yM06LfEL+EZjcpZ0nxzFGRNQ5qq2AUc1OaXQdk92AGvxh+Iq4NGpPQFBd4D8EBJa3NJd8+czMfQskceosOQFqUtLQMYa5DPs+VpN7VM5BdXjaVIuKn5d9Wm2B9dI9ObIM+YRySDkZZPv14DVmUvcrcqJfOR8aHvtSd7B4l92wUQPQgQKNcOQho7xOHS/Bk+Y74AZL2y7TkNmdDoq9OGsThuF5tDW9rI9nVwXxOtsuB+bstra+W7aw9x9DvkKgdSRw==",
	"sign_type":          "RSA2",
	"timestamp":          "2019-03-08 10:20:23",
	"title":              "麦禾商城模版",
	"total_price":        "0.00",
	"version":            "1.0",
}

func mustPub(t *testing.T, text string) *rsa.PublicKey {
	t.Helper()
	k, err := ParsePublicKey([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// Alipay's signed answer verifies over the raw bytes of its _response
// object; re-marshalled, reordered or altered, it does not.
func TestSDKAnswerVector(t *testing.T) {
	pub := mustPub(t, sdkAlipayPublicKey)
	content, sign, ok, err := ResponseContent([]byte(sdkSignedAnswer), "alipay_open_file_upload_response")
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	if string(content) != `{"code":"10000","msg":"Success","file_id":"CAxAToWB1JsAAAAAAAAAAAAADgSLAQBr"}` {
		t.Fatalf("content %s", content)
	}
	if err := Verify(pub, content, sign); err != nil {
		t.Fatalf("Alipay's own signed answer: %v", err)
	}
	for _, bad := range []string{
		`{"code":"10000","file_id":"CAxAToWB1JsAAAAAAAAAAAAADgSLAQBr","msg":"Success"}`, // reordered, as a re-marshal would
		`{"code": "10000","msg":"Success","file_id":"CAxAToWB1JsAAAAAAAAAAAAADgSLAQBr"}`,
		`{"code":"10000","msg":"Success","file_id":"CAxAToWB1JsAAAAAAAAAAAAADgSLAQBs"}`,
	} {
		if err := Verify(pub, []byte(bad), sign); !errors.Is(err, ErrSignature) {
			t.Fatalf("altered content %s verified", bad)
		}
	}
	// Whitespace around the object (the SDK's "include \r\n\s" case) is
	// not part of the value.
	spaced := strings.Replace(sdkSignedAnswer, `_response":{`, "_response\"\n  :\n  {", 1)
	content, sign, _, _ = ResponseContent([]byte(spaced), "alipay_open_file_upload_response")
	if err := Verify(pub, content, sign); err != nil {
		t.Fatalf("spaced answer: %v", err)
	}
	if _, _, ok, _ := ResponseContent([]byte(sdkSignedAnswer), "error_response"); ok {
		t.Fatal("found an error_response")
	}
	if _, _, _, err := ResponseContent([]byte(`<html>`), "x"); err == nil {
		t.Fatal("html accepted")
	}
}

// Alipay's signature over a sorted parameter string with sign_type kept:
// SignString builds the exact string it covers.
func TestSDKSignStringVector(t *testing.T) {
	pub := mustPub(t, sdkNotifyPublicKey)
	s := SignString(sdkNotifyParams)
	if !strings.HasPrefix(s, "app_id=2017122801303261&charset=UTF-8&commodity_order_id=") || strings.Contains(s, "sign=") || !strings.Contains(s, "&sign_type=RSA2&timestamp=2019-03-08 10:20:23&") {
		t.Fatalf("sign string %s", s)
	}
	if err := Verify(pub, []byte(s), sdkNotifyParams["sign"]); err != nil {
		t.Fatalf("Alipay's own signed parameters: %v", err)
	}
	p := map[string]string{}
	for k, v := range sdkNotifyParams {
		p[k] = v
	}
	p["total_price"] = "0.01"
	if Verify(pub, []byte(SignString(p)), p["sign"]) == nil {
		t.Fatal("altered parameters verified")
	}
	p["total_price"], p["extra"] = "0.00", "" // empty values are left out
	if err := Verify(pub, []byte(SignString(p)), p["sign"]); err != nil {
		t.Fatalf("an empty parameter changed the string: %v", err)
	}
}

func TestSDKAESVector(t *testing.T) {
	key, err := ParseAESKey("aa4BtZ4tspm2wnXLb1ThQA==")
	if err != nil {
		t.Fatal(err)
	}
	ct, err := Encrypt(key, []byte("test1234567"))
	if err != nil || ct != "ILpoMowjIQjfYMR847rnFQ==" {
		t.Fatalf("Encrypt = %q, %v", ct, err)
	}
	pt, err := Decrypt(key, "ILpoMowjIQjfYMR847rnFQ==")
	if err != nil || string(pt) != "test1234567" {
		t.Fatalf("Decrypt = %q, %v", pt, err)
	}
	other, _ := ParseAESKey("aYA0GP8JEW+D7/UFaskCWA==")
	if pt, err := Decrypt(other, "ILpoMowjIQjfYMR847rnFQ=="); err == nil {
		t.Fatalf("another key decrypted to %q", pt)
	}
	for _, bad := range []string{"", "not base64!", "ILpoMowjIQjfYMR8", "AAAA"} {
		if _, err := Decrypt(key, bad); !errors.Is(err, ErrDecrypt) {
			t.Fatalf("Decrypt(%q) = %v", bad, err)
		}
	}
	for _, bad := range []string{"", "abc", "AAAAAAAAAAAAAAAAAAAA"} {
		if _, err := ParseAESKey(bad); err == nil {
			t.Fatalf("ParseAESKey(%q) accepted", bad)
		}
	}
}

// Signing both ways: what Sign makes, Verify accepts with the public half
// and refuses with another key; a sealed phone response opens with the
// right keys only.
func TestSignAndSeal(t *testing.T) {
	k1, _ := rsa.GenerateKey(rand.Reader, 2048)
	k2, _ := rsa.GenerateKey(rand.Reader, 2048)
	sig, err := Sign(k1, []byte("a=1&b=2"))
	if err != nil {
		t.Fatal(err)
	}
	if Verify(&k1.PublicKey, []byte("a=1&b=2"), sig) != nil || Verify(&k2.PublicKey, []byte("a=1&b=2"), sig) == nil || Verify(&k1.PublicKey, []byte("a=1&b=3"), sig) == nil {
		t.Fatal("Sign/Verify")
	}
	aesKey, _ := ParseAESKey("aYA0GP8JEW+D7/UFaskCWA==")
	env, err := SealContent(k1, aesKey, []byte(`{"code":"10000","msg":"Success","mobile":"13800138000"}`))
	if err != nil {
		t.Fatal(err)
	}
	e, err := ParseEnvelope(env)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := OpenContent(&k1.PublicKey, aesKey, e)
	if err != nil || !strings.Contains(string(plain), `"mobile":"13800138000"`) {
		t.Fatalf("OpenContent = %s, %v", plain, err)
	}
	if _, err := OpenContent(&k2.PublicKey, aesKey, e); !errors.Is(err, ErrSignature) {
		t.Fatalf("another Alipay key: %v", err)
	}
	// The signature covers the quoted ciphertext, not the bare one.
	bare, _ := Sign(k1, []byte(e.Response))
	if _, err := OpenContent(&k1.PublicKey, aesKey, Envelope{Response: e.Response, Sign: bare}); !errors.Is(err, ErrSignature) {
		t.Fatalf("signature over the unquoted text: %v", err)
	}
	other, _ := ParseAESKey("aa4BtZ4tspm2wnXLb1ThQA==")
	if _, err := OpenContent(&k1.PublicKey, other, e); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("another AES key: %v", err)
	}
}

func TestParseEnvelope(t *testing.T) {
	for text, want := range map[string]error{
		`not json`:                      ErrEnvelope,
		`{"sign":"x"}`:                  ErrEnvelope,
		`{"response":"@@@","sign":"x"}`: ErrEnvelope,
		`{"response":{"code":"40003"},"sign":"x"}`:            ErrEnvelope, // an object is not a string
		`{"response":"{\"code\":\"40003\"}"}`:                 ErrNotEncrypted,
		`{"response":"AAAA"}`:                                 ErrNotSigned,
		`{"response":"AAAA","sign":"x","sign_type":"RSA"}`:    ErrSignType,
		`{"response":"AAAA","sign":"x","encrypt_type":"SM4"}`: ErrEncryptType,
	} {
		if _, err := ParseEnvelope(text); !errors.Is(err, want) {
			t.Errorf("ParseEnvelope(%s) = %v, want %v", text, err, want)
		}
	}
	if _, err := ParseEnvelope(`{"response":"AAAA","sign":"x","sign_type":"RSA2","encrypt_type":"AES","charset":"UTF-8"}`); err != nil {
		t.Fatal(err)
	}
}

func TestParsePublicKey(t *testing.T) {
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	der, _ := x509.MarshalPKIXPublicKey(&small.PublicKey)
	if _, err := ParsePublicKey(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})); err == nil {
		t.Fatal("a 1024-bit key accepted for RSA2")
	}
	for _, bad := range []string{"", "garbage", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----"} {
		if _, err := ParsePublicKey([]byte(bad)); err == nil {
			t.Fatalf("accepted %q", bad)
		}
	}
}

// When only the unescaped text verifies (Alipay signed "a\/x", the answer
// says "a\\/x"), the bytes returned are the signed ones: read as JSON
// they say what Alipay signed, not what the answer's bytes say.
func TestVerifyContentReturnsTheSignedBytes(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	signedText := []byte(`{"user_id":"a\/x"}`)
	sig, err := Sign(key, signedText)
	if err != nil {
		t.Fatal(err)
	}
	sent := []byte(`{"user_id":"a\\/x"}`) // decodes to a\/x
	got, err := VerifyContent(&key.PublicKey, sent, sig)
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		UserID string `json:"user_id"`
	}
	if err := json.Unmarshal(got, &v); err != nil || v.UserID != "a/x" {
		t.Fatalf("read %q as %q (%v), want a/x", got, v.UserID, err)
	}
	if got, err := VerifyContent(&key.PublicKey, signedText, sig); err != nil || !bytes.Equal(got, signedText) {
		t.Fatalf("%q %v", got, err)
	}
}
