package platform

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/alipaycrypt"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/mperr"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/mpsim"
)

var (
	apAppKey, _     = rsa.GenerateKey(rand.Reader, 2048)
	apGatewayKey, _ = rsa.GenerateKey(rand.Reader, 2048)
)

// apSigned is a gateway answer {responseKey: content, "sign"} signed
// with key over content's exact bytes.
// apCode is an auth code as Alipay gives them (hex-like): the shared
// testCode holds characters Alipay's never do, which Code2Session refuses.
const apCode = "4b203fe6c11548bcabd8da5bb087a83b"

func apSigned(key *rsa.PrivateKey, responseKey, content string) string {
	sig, err := alipaycrypt.Sign(key, []byte(content))
	if err != nil {
		panic(err)
	}
	return fmt.Sprintf(`{%q:%s,"sign":%q}`, responseKey, content, sig)
}

// apGateway checks each request like Alipay's gateway (a form POST to
// /gateway.do whose RSA2 signature verifies with the app's public key, the
// method, grant_type, code, a Beijing-time timestamp within a minute) and
// answers body.
func apGateway(t *testing.T, body func(n int) (int, string)) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := int(n.Add(1))
		if r.Method != http.MethodPost || r.URL.Path != "/gateway.do" || r.URL.RawQuery != "" {
			t.Errorf("request %s %s", r.Method, r.URL)
		}
		if err := r.ParseForm(); err != nil {
			t.Error(err)
		}
		p := map[string]string{}
		for k, v := range r.PostForm {
			p[k] = v[0]
		}
		if err := alipaycrypt.Verify(&apAppKey.PublicKey, []byte(alipaycrypt.SignString(p)), p["sign"]); err != nil {
			t.Errorf("request signature: %v (%v)", err, p)
		}
		ts, err := time.ParseInLocation("2006-01-02 15:04:05", p["timestamp"], time.FixedZone("CST", 8*3600))
		if err != nil || time.Since(ts).Abs() > time.Minute {
			t.Errorf("timestamp %q: %v", p["timestamp"], err)
		}
		if p["app_id"] != "2021000000000001" || p["method"] != "alipay.system.oauth.token" || p["grant_type"] != "authorization_code" || p["code"] != apCode ||
			p["sign_type"] != "RSA2" || p["version"] != "1.0" || p["charset"] != "utf-8" || p["format"] != "JSON" || len(p) != 10 {
			t.Errorf("params %v", p)
		}
		st, b := body(i)
		w.Header().Set("Content-Type", "text/html;charset=utf-8")
		w.WriteHeader(st)
		w.Write([]byte(b))
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func TestAlipayCode2Session(t *testing.T) {
	const okNew = `{"access_token":"authusrB1","alipay_user_id":"x","auth_start":"2024-01-01 10:00:00","expires_in":1296000,"open_id":"074a1CcTG1LelxKe4xQC0zgNdId0nxi95b5lsNpazWYoCo5","re_expires_in":2592000,"refresh_token":"authusrB2"}`
	const okOld = `{"access_token":"authusrB1","expires_in":1296000,"user_id":"2088102150477652"}`
	const okBoth = `{"open_id":"074aOPEN","user_id":"2088102150477652","access_token":"a"}`
	errInvalid := `{"code":"40002","msg":"Invalid Arguments","sub_code":"isv.code-invalid","sub_msg":"授权码code无效"}`
	cases := []struct {
		name             string
		status           int
		body             string
		want             mperr.Code
		errcode          int
		openid, alipayID string
		calls            int32
	}{
		{"open_id", 200, apSigned(apGatewayKey, "alipay_system_oauth_token_response", okNew), "", 0, "074a1CcTG1LelxKe4xQC0zgNdId0nxi95b5lsNpazWYoCo5", "", 1},
		{"user_id only", 200, apSigned(apGatewayKey, "alipay_system_oauth_token_response", okOld), "", 0, "2088102150477652", "2088102150477652", 1},
		{"both", 200, apSigned(apGatewayKey, "alipay_system_oauth_token_response", okBoth), "", 0, "074aOPEN", "2088102150477652", 1},
		{"signed by another key", 200, apSigned(apAppKey, "alipay_system_oauth_token_response", okNew), mperr.PlatformError, -1, "", "", 1},
		{"tampered after signing", 200, strings.Replace(apSigned(apGatewayKey, "alipay_system_oauth_token_response", okOld), "2088102150477652", "2088102150477653", 1), mperr.PlatformError, -1, "", "", 1},
		{"reordered (re-marshalled)", 200, strings.Replace(apSigned(apGatewayKey, "alipay_system_oauth_token_response", okBoth), `{"open_id":"074aOPEN","user_id":"2088102150477652"`, `{"user_id":"2088102150477652","open_id":"074aOPEN"`, 1), mperr.PlatformError, -1, "", "", 1},
		{"unsigned success", 200, `{"alipay_system_oauth_token_response":` + okNew + `}`, mperr.PlatformError, -1, "", "", 1},
		{"code invalid, signed", 200, apSigned(apGatewayKey, "error_response", errInvalid), mperr.InvalidCode, 40002, "", "", 1},
		{"code invalid, unsigned", 200, `{"error_response":` + errInvalid + `}`, mperr.InvalidCode, 40002, "", "", 1},
		{"error with a bad sign", 200, `{"error_response":` + errInvalid + `,"sign":"AAAA"}`, mperr.PlatformError, -1, "", "", 1},
		{"invalid signature", 200, `{"error_response":{"code":"40002","msg":"Invalid Arguments","sub_code":"isv.invalid-signature"}}`, mperr.PlatformError, 40002, "", "", 1},
		{"no identity", 200, apSigned(apGatewayKey, "alipay_system_oauth_token_response", `{"access_token":"a"}`), mperr.PlatformError, -1, "", "", 1},
		{"code in success object", 200, apSigned(apGatewayKey, "alipay_system_oauth_token_response", `{"code":"40004","msg":"Business Failed","sub_code":"isv.code-invalid"}`), mperr.InvalidCode, 40004, "", "", 1},
		{"neither key", 200, `{"sign":"x"}`, mperr.PlatformError, -1, "", "", 1},
		{"html", 200, `<html>busy</html>`, mperr.PlatformError, -1, "", "", 1},
		{"service unavailable is retried", 200, `{"error_response":{"code":"20000","msg":"Service Currently Unavailable","sub_code":"isp.unknow-error"}}`, mperr.PlatformError, 20000, "", "", 3},
		{"5xx is retried", 502, `bad gateway`, mperr.PlatformError, -1, "", "", 3},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv, n := apGateway(t, func(int) (int, string) { return c.status, c.body })
			cl, err := New(Alipay, Config{AppID: "2021000000000001", APIBase: srv.URL, Backoff: 1, PrivateKey: apAppKey, PlatformPublicKey: &apGatewayKey.PublicKey})
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			s, err := cl.Code2Session(context.Background(), LoginCodes{Code: apCode, Anonymous: "ignored"})
			if n.Load() != c.calls {
				t.Errorf("calls %d, want %d", n.Load(), c.calls)
			}
			if c.want == "" {
				if err != nil || s.OpenID != c.openid || s.SessionKey != "" || s.Fields[FieldAlipayUserID] != c.alipayID {
					t.Fatalf("session %+v, %v", s, err)
				}
				if c.alipayID == "" && s.Fields != nil {
					t.Fatalf("fields %v", s.Fields)
				}
				return
			}
			e, ok := mperr.As(err)
			if !ok || e.Code != c.want {
				t.Fatalf("err %v, want %s", err, c.want)
			}
			if c.errcode >= 0 && (!e.HasErrcode || e.Errcode != c.errcode) || c.errcode < 0 && e.HasErrcode {
				t.Fatalf("errcode %v %d, want %d", e.HasErrcode, e.Errcode, c.errcode)
			}
			if strings.Contains(err.Error(), apCode) {
				t.Fatalf("the code leaked: %v", err)
			}
		})
	}
}

// Without its keys the client refuses at once, calling nothing.
func TestAlipayNoKeys(t *testing.T) {
	srv, n := apGateway(t, func(int) (int, string) { return 200, "{}" })
	for _, cfg := range []Config{{APIBase: srv.URL}, {APIBase: srv.URL, PrivateKey: apAppKey}, {APIBase: srv.URL, PlatformPublicKey: &apGatewayKey.PublicKey}} {
		cl, _ := New(Alipay, cfg)
		if _, err := cl.Code2Session(context.Background(), LoginCodes{Code: apCode}); mperr.From(err).Code != mperr.Internal {
			t.Fatalf("%v", err)
		}
	}
	if n.Load() != 0 {
		t.Fatal("called the gateway")
	}
}

func TestAlipayPhone(t *testing.T) {
	aesKey, _ := alipaycrypt.ParseAESKey("aYA0GP8JEW+D7/UFaskCWA==")
	keys := AppKeys{PlatformPublicKey: &apGatewayKey.PublicKey, AESKey: aesKey}
	seal := func(key *rsa.PrivateKey, aes []byte, plain string) string {
		s, err := alipaycrypt.SealContent(key, aes, []byte(plain))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	good := seal(apGatewayKey, aesKey, `{"code":"10000","msg":"Success","mobile":"15976719050"}`)
	if err := AlipayPayloads.Check(good); err != nil {
		t.Fatal(err)
	}
	ph, id, err := AlipayPayloads.OpenPhone(keys, good)
	if err != nil || ph.PhoneNumber != "15976719050" || ph.PurePhoneNumber != "15976719050" || ph.CountryCode != "" || id == "" {
		t.Fatalf("%+v %q %v", ph, id, err)
	}
	var env map[string]string
	json.Unmarshal([]byte(good), &env)
	// The same payload re-wrapped (other field order, spaces) has the same id.
	rewrapped := fmt.Sprintf(` { "sign" : %q , "response" : %q } `, env["sign"], env["response"])
	if _, id2, err := AlipayPayloads.OpenPhone(keys, rewrapped); err != nil || id2 != id {
		t.Fatalf("rewrapped: %q %v", id2, err)
	}
	other, _ := alipaycrypt.ParseAESKey("aa4BtZ4tspm2wnXLb1ThQA==")
	for _, c := range []struct {
		name, payload string
		want          mperr.Code
	}{
		{"signed by another key", seal(apAppKey, aesKey, `{"code":"10000","mobile":"15976719050"}`), mperr.DecryptFailed},
		{"another AES key", seal(apGatewayKey, other, `{"code":"10000","mobile":"15976719050"}`), mperr.DecryptFailed},
		{"refusal", seal(apGatewayKey, aesKey, `{"code":"40003","msg":"Insufficient Conditions","subCode":"isv.invalid-auth-relations"}`), mperr.BadRequest},
		{"no mobile", seal(apGatewayKey, aesKey, `{"code":"10000","msg":"Success"}`), mperr.DecryptFailed},
		{"mobile with letters", seal(apGatewayKey, aesKey, `{"code":"10000","mobile":"1597x"}`), mperr.DecryptFailed},
		{"not an object", seal(apGatewayKey, aesKey, `"10000"`), mperr.DecryptFailed},
		{"unencrypted", `{"response":"{\"code\":\"10000\"}","sign":"x"}`, mperr.MalformedPayload},
		{"not JSON", `response=abc`, mperr.MalformedPayload},
	} {
		_, _, err := AlipayPayloads.OpenPhone(keys, c.payload)
		if got := mperr.From(err).Code; got != c.want {
			t.Errorf("%s: %v, want %s", c.name, err, c.want)
		}
		if c.name == "refusal" && mperr.From(err).Errcode != 40003 {
			t.Errorf("refusal errcode %v", err)
		}
	}
}

// The client and the payload scheme against the simulator, whose signing
// and encryption are its own (written from Alipay's documentation).
func TestAlipayAgainstSimulator(t *testing.T) {
	sim := mpsim.New(mpsim.Options{})
	srv := httptest.NewServer(sim)
	defer srv.Close()
	const app = "2021000000000001"
	if err := sim.SetPublicKey(app, &apAppKey.PublicKey); err != nil {
		t.Fatal(err)
	}
	alipayPub, err := ParsePublicKey([]byte(mpsim.AlipayPublicKeyPEM()))
	if err != nil {
		t.Fatal(err)
	}
	cl := NewAlipay(Config{AppID: app, APIBase: srv.URL, PrivateKey: apAppKey, PlatformPublicKey: alipayPub})
	defer cl.Close()
	lr, _ := sim.Login(app, "ann")
	s, err := cl.Code2Session(context.Background(), LoginCodes{Code: lr.Code})
	if err != nil || s.OpenID != lr.OpenID {
		t.Fatalf("%+v %v", s, err)
	}
	if _, err := cl.Code2Session(context.Background(), LoginCodes{Code: lr.Code}); mperr.From(err).Code != mperr.InvalidCode {
		t.Fatalf("used code: %v", err)
	}
	// Signed with a key the simulator does not know: refused, not a login.
	wrong := NewAlipay(Config{AppID: app, APIBase: srv.URL, PrivateKey: apGatewayKey, PlatformPublicKey: alipayPub})
	lr, _ = sim.Login(app, "ann")
	if _, err := wrong.Code2Session(context.Background(), LoginCodes{Code: lr.Code}); mperr.From(err).Code != mperr.PlatformError || mperr.From(err).Errcode != 40002 {
		t.Fatalf("wrong app key: %v", err)
	}
	// The simulator's answer checked with another Alipay key: refused.
	other := NewAlipay(Config{AppID: app, APIBase: srv.URL, PrivateKey: apAppKey, PlatformPublicKey: &apGatewayKey.PublicKey})
	if _, err := other.Code2Session(context.Background(), LoginCodes{Code: lr.Code}); mperr.From(err).Code != mperr.PlatformError {
		t.Fatalf("answer under another Alipay key: %v", err)
	}
	text, err := sim.AlipayPhoneResponse(app, "ann", "15976719050")
	if err != nil {
		t.Fatal(err)
	}
	aesKey, _ := alipaycrypt.ParseAESKey(mpsim.AlipayAESKey(app))
	ph, _, err := AlipayPayloads.OpenPhone(AppKeys{PlatformPublicKey: alipayPub, AESKey: aesKey}, text)
	if err != nil || ph.PhoneNumber != "15976719050" || ph.CountryCode != "" {
		t.Fatalf("%+v %v", ph, err)
	}
}

// A code with characters Alipay's never have ("&", "=", spaces, control
// bytes: the sign string joins name=value pairs unescaped, so such a code
// would sign another request's text) is refused before any call.
func TestAlipayRefusesCodesOutsideItsAlphabet(t *testing.T) {
	cl := NewAlipay(Config{AppID: "2021000000000001", APIBase: "http://127.0.0.1:1"})
	for _, code := range []string{testCode, "c1&method=x&n=", "a=b", "a b", "a\x00b", strings.Repeat("a", 257)} {
		if _, err := cl.Code2Session(context.Background(), LoginCodes{Code: code}); mperr.From(err).Code != mperr.InvalidCode {
			t.Errorf("%q: %v", code, err)
		}
	}
}
