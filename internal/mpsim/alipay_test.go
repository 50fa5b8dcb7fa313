package mpsim

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

const apApp = "2021000000000001"

// apCall signs params with key (unless sign is set) and posts them.
func apCall(t *testing.T, srv *httptest.Server, key *rsa.PrivateKey, p url.Values) (string, map[string]any) {
	t.Helper()
	if p.Get("sign") == "" {
		sum := sha256.Sum256([]byte(apSignString(p)))
		sig, _ := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
		p.Set("sign", base64.StdEncoding.EncodeToString(sig))
	}
	resp, err := http.PostForm(srv.URL+"/gateway.do", p)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf strings.Builder
	_, _ = io.Copy(&buf, resp.Body)
	if ct := resp.Header.Get("Content-Type"); ct != "text/html;charset=utf-8" {
		t.Errorf("content type %q", ct)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal([]byte(buf.String()), &top); err != nil {
		t.Fatalf("%s: %v", buf.String(), err)
	}
	var sign string
	json.Unmarshal(top["sign"], &sign)
	for k, raw := range top {
		if k == "sign" {
			continue
		}
		// The answer is signed by the simulator's Alipay key over the raw
		// bytes of its object.
		block, _ := pem.Decode([]byte(AlipayPublicKeyPEM()))
		pk, _ := x509.ParsePKIXPublicKey(block.Bytes)
		sig, _ := base64.StdEncoding.DecodeString(sign)
		sum := sha256.Sum256(raw)
		if err := rsa.VerifyPKCS1v15(pk.(*rsa.PublicKey), crypto.SHA256, sum[:], sig); err != nil {
			t.Errorf("answer signature: %v", err)
		}
		var m map[string]any
		json.Unmarshal(raw, &m)
		return k, m
	}
	t.Fatalf("no answer object: %s", buf.String())
	return "", nil
}

func TestAlipayGateway(t *testing.T) {
	s := New(Options{})
	srv := httptest.NewServer(s)
	defer srv.Close()
	appKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	params := func(code string) url.Values {
		return url.Values{"app_id": {apApp}, "method": {"alipay.system.oauth.token"}, "format": {"JSON"}, "charset": {"utf-8"},
			"sign_type": {"RSA2"}, "timestamp": {time.Now().In(alipayZone).Format("2006-01-02 15:04:05")}, "version": {"1.0"},
			"grant_type": {"authorization_code"}, "code": {code}}
	}
	lr, _ := s.Login(apApp, "ann")
	// No public key uploaded yet.
	if k, m := apCall(t, srv, appKey, params(lr.Code)); k != "error_response" || m["sub_code"] != "isv.missing-signature-config" {
		t.Fatalf("%s %v", k, m)
	}
	if err := s.SetPublicKey(apApp, &appKey.PublicKey); err != nil {
		t.Fatal(err)
	}
	if k, m := apCall(t, srv, other, params(lr.Code)); k != "error_response" || m["code"] != "40002" || m["sub_code"] != "isv.invalid-signature" {
		t.Fatalf("wrong key: %s %v", k, m)
	}
	tampered := params(lr.Code)
	sum := sha256.Sum256([]byte(apSignString(tampered)))
	sig, _ := rsa.SignPKCS1v15(rand.Reader, appKey, crypto.SHA256, sum[:])
	tampered.Set("sign", base64.StdEncoding.EncodeToString(sig))
	tampered.Set("grant_type", "refresh_token")
	if k, m := apCall(t, srv, appKey, tampered); k != "error_response" || m["sub_code"] != "isv.invalid-signature" {
		t.Fatalf("tampered: %s %v", k, m)
	}
	old := params(lr.Code)
	old.Set("timestamp", time.Now().Add(-time.Hour).In(alipayZone).Format("2006-01-02 15:04:05"))
	if k, m := apCall(t, srv, appKey, old); k != "error_response" || m["sub_code"] != "isv.invalid-timestamp" {
		t.Fatalf("old timestamp: %s %v", k, m)
	}
	// The code is still unused: the refusals above did not consume it.
	k, m := apCall(t, srv, appKey, params(lr.Code))
	if k != "alipay_system_oauth_token_response" || m["open_id"] != lr.OpenID || m["user_id"] != nil || !strings.HasPrefix(lr.OpenID, "074a") {
		t.Fatalf("login: %s %v (%s)", k, m, lr.OpenID)
	}
	if k, m := apCall(t, srv, appKey, params(lr.Code)); k != "error_response" || m["sub_code"] != "isv.code-invalid" {
		t.Fatalf("used code: %s %v", k, m)
	}
	if k, m := apCall(t, srv, appKey, params("made-up")); k != "error_response" || m["sub_code"] != "isv.code-invalid" {
		t.Fatalf("unknown code: %s %v", k, m)
	}
	// A legacy app gives user_id.
	s.AddApp(App{Platform: Alipay, AppID: "2016000000000002", LegacyUserID: true})
	s.SetPublicKey("2016000000000002", &appKey.PublicKey)
	lr2, _ := s.Login("2016000000000002", "bob")
	p := params(lr2.Code)
	p.Set("app_id", "2016000000000002")
	if k, m := apCall(t, srv, appKey, p); k != "alipay_system_oauth_token_response" || m["user_id"] != lr2.OpenID || !strings.HasPrefix(lr2.OpenID, "2088") || len(lr2.OpenID) != 16 || m["open_id"] != nil {
		t.Fatalf("legacy: %s %v", k, m)
	}
}

func TestAlipayPhoneResponse(t *testing.T) {
	s := New(Options{})
	text, err := s.AlipayPhoneResponse(apApp, "ann", "15976719050")
	if err != nil {
		t.Fatal(err)
	}
	var env map[string]string
	if err := json.Unmarshal([]byte(text), &env); err != nil || env["sign_type"] != "RSA2" || env["encrypt_type"] != "AES" {
		t.Fatalf("%s %v", text, err)
	}
	block, _ := pem.Decode([]byte(AlipayPublicKeyPEM()))
	pk, _ := x509.ParsePKIXPublicKey(block.Bytes)
	sig, _ := base64.StdEncoding.DecodeString(env["sign"])
	sum := sha256.Sum256([]byte(`"` + env["response"] + `"`))
	if err := rsa.VerifyPKCS1v15(pk.(*rsa.PublicKey), crypto.SHA256, sum[:], sig); err != nil {
		t.Fatalf("signature over the quoted response: %v", err)
	}
	if _, err := s.AlipayPhoneResponse("wxdemoapp0000001", "ann", "1"); err == nil {
		t.Fatal("a WeChat app got an Alipay phone response")
	}
	if _, _, err := s.EncryptPhone(apApp, "ann", "1"); err == nil {
		t.Fatal("EncryptPhone for Alipay")
	}
}
