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
	"fmt"
	"math/big"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"
)

// Alipay (支付宝) mini programs: login through the open platform's
// gateway, every call signed; the phone number through my.getPhoneNumber's
// signed, encrypted response. Written from Alipay's open-platform
// documentation (the gateway's common parameters and RSA2 signing rule,
// alipay.system.oauth.token, my.getPhoneNumber, content encryption), not
// from the plugin's code.
//
//	POST /gateway.do   (form body, or the query; both are read, as Alipay's gateway does)
//	     app_id, method=alipay.system.oauth.token, format=JSON, charset=utf-8,
//	     sign_type=RSA2, timestamp="yyyy-MM-dd HH:mm:ss" (Beijing time), version=1.0,
//	     grant_type=authorization_code, code, sign
//	     → {"alipay_system_oauth_token_response":{"access_token","alipay_user_id","auth_start",
//	        "expires_in","re_expires_in","refresh_token","open_id" | "user_id"},"sign":"…"}
//	     → {"error_response":{"code":"40002","msg":"Invalid Arguments","sub_code":"isv.…","sub_msg":"…"},"sign":"…"}
//
// The request's signature: every parameter but sign, empty ones left out,
// sorted by name, "name=value" joined by "&", SHA256withRSA with the app's
// private key, base64. The gateway checks it with the app public key the
// app uploaded (SetPublicKey); a wrong one is 40002 isv.invalid-signature,
// an app without one isv.missing-signature-config (the simulator's name).
// Answers are signed by the simulator's own Alipay key pair
// (AlipayPublicKeyPEM) over the exact bytes of the response object, error
// answers too, and labelled text/html;charset=utf-8 as Alipay's gateway
// labels its JSON. An auth code is single-use and lives AlipayCodeTTL;
// an unknown, used or expired one is 40002 isv.code-invalid. A timestamp
// more than AlipayClockSkew away from the simulator's clock is 40002
// isv.invalid-timestamp (the window is the simulator's choice).
//
// An app gives open_id (apps created since Alipay introduced it) unless
// App.LegacyUserID, when it gives user_id (2088…) as older apps do.
//
// Phone: AlipayPhoneResponse makes my.getPhoneNumber's res.response text
// {"response":"<base64>","sign","sign_type":"RSA2","encrypt_type":"AES","charset":"UTF-8"}:
// the content {"code":"10000","msg":"Success","mobile"} AES-CBC-encrypted
// with the app's content key (AlipayAESKey; zero IV, PKCS#7), the sign RSA2
// over the ciphertext in double quotes. It carries no user and no time.

// Alipay is the platform name.
const Alipay = "alipay"

// EndpointAlipayGateway counts gateway calls.
const EndpointAlipayGateway = "gateway.do"

// AlipayCodeTTL is an auth code's life here (Alipay: "3 minutes to 24
// hours": the shortest).
const AlipayCodeTTL = 3 * time.Minute

// AlipayClockSkew bounds the request timestamp's distance from the clock.
const AlipayClockSkew = 10 * time.Minute

var alipayZone = time.FixedZone("UTC+8", 8*3600)

// alipayKey is the simulator's Alipay key pair, made once per process
// when first needed.
var alipayKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

// AlipayPublicKeyPEM is the simulator's Alipay public key (what an app
// configures as Alipay's public key), PEM "PUBLIC KEY".
func AlipayPublicKeyPEM() string {
	der, _ := x509.MarshalPKIXPublicKey(&alipayKey().PublicKey)
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

// AlipayAESKey is an Alipay app's content encryption key here (base64 of
// 16 bytes, as Alipay's console shows it), fixed per app id.
func AlipayAESKey(appID string) string {
	h := sha256.Sum256([]byte("alipay-aes\x00" + appID))
	return base64.StdEncoding.EncodeToString(h[:16])
}

// AlipayUserID is the user_id (16 digits, 2088…) of a user of an app.
func AlipayUserID(appID, user string) string {
	h := sha256.Sum256([]byte("alipay-user-id\x00" + user))
	n := new(big.Int).SetBytes(h[:8])
	n.Mod(n, big.NewInt(1_000_000_000_000))
	return fmt.Sprintf("2088%012d", n)
}

func alipayOpenID(appID, user string) string {
	return "074a" + hash64("alipay-openid", appID, user)[:40]
}

// apSign is RSA2 over content with the simulator's Alipay key.
func apSign(content []byte) string {
	sum := sha256.Sum256(content)
	sig, err := rsa.SignPKCS1v15(rand.Reader, alipayKey(), crypto.SHA256, sum[:])
	if err != nil {
		panic(err)
	}
	return base64.StdEncoding.EncodeToString(sig)
}

// apSignString is the gateway's rule for the string a request signs.
func apSignString(p url.Values) string {
	var names []string
	for k, v := range p {
		if k != "sign" && len(v) > 0 && v[0] != "" {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, k := range names {
		parts[i] = k + "=" + p.Get(k)
	}
	return strings.Join(parts, "&")
}

type apError struct {
	Code    string `json:"code"`
	Msg     string `json:"msg"`
	SubCode string `json:"sub_code,omitempty"`
	SubMsg  string `json:"sub_msg,omitempty"`
}

// apErrors are the error answers by simulated error number (Fault.Errcode
// 40002 is the code-invalid one; 20000 the service being unavailable).
var apErrors = map[int]apError{
	20000: {"20000", "Service Currently Unavailable", "isp.unknow-error", "系统繁忙"},
	40002: {"40002", "Invalid Arguments", "isv.code-invalid", "授权码code无效"},
	40004: {"40004", "Business Failed", "isv.invalid-grant-type", "grant_type无效"},
}

// apWrite writes a signed gateway answer: {key: content, "sign"}.
func apWrite(w *recorder, key string, content any) {
	raw, err := json.Marshal(content)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	body := fmt.Sprintf(`{%q:%s,"sign":%q}`, key, raw, apSign(raw))
	w.Header().Set("Content-Type", "text/html;charset=utf-8")
	w.WriteHeader(http.StatusOK)
	w.Write([]byte(body))
}

func (s *Sim) alipayErr(w *recorder, code int) {
	e, ok := apErrors[code]
	if !ok {
		e = apError{Code: fmt.Sprint(code), Msg: "Unknown Error"}
	}
	s.apFail(w, e)
}

func (s *Sim) apFail(w *recorder, e apError) {
	w.note = "code=" + e.Code + " " + e.SubCode
	apWrite(w, "error_response", e)
}

func invalidArg(sub, msg string) apError {
	return apError{Code: "40002", Msg: "Invalid Arguments", SubCode: sub, SubMsg: msg}
}

type apTokenOK struct {
	AccessToken  string `json:"access_token"`
	AlipayUserID string `json:"alipay_user_id,omitempty"`
	AuthStart    string `json:"auth_start"`
	ExpiresIn    int    `json:"expires_in"`
	OpenID       string `json:"open_id,omitempty"`
	ReExpiresIn  int    `json:"re_expires_in"`
	RefreshToken string `json:"refresh_token"`
	UserID       string `json:"user_id,omitempty"`
}

// alipayGateway: POST /gateway.do.
func (s *Sim) alipayGateway(w *recorder, r *http.Request) {
	if r.Method != http.MethodPost && r.Method != http.MethodGet {
		s.apFail(w, invalidArg("isv.invalid-method", "请求方法不支持"))
		return
	}
	r.Body = http.MaxBytesReader(nil, r.Body, maxBody)
	if err := r.ParseForm(); err != nil {
		s.apFail(w, invalidArg("isv.invalid-parameter", "参数无效"))
		return
	}
	p := r.Form // query and body, as the gateway reads both
	switch {
	case p.Get("app_id") == "":
		s.apFail(w, apError{Code: "40001", Msg: "Missing Required Arguments", SubCode: "isv.missing-app-id", SubMsg: "缺少AppID参数"})
		return
	case p.Get("method") == "":
		s.apFail(w, apError{Code: "40001", Msg: "Missing Required Arguments", SubCode: "isv.missing-method", SubMsg: "缺少方法名参数"})
		return
	case p.Get("sign") == "":
		s.apFail(w, apError{Code: "40001", Msg: "Missing Required Arguments", SubCode: "isv.missing-signature", SubMsg: "缺少签名参数"})
		return
	case p.Get("sign_type") != "RSA2":
		s.apFail(w, invalidArg("isv.invalid-signature-type", "无效的签名类型"))
		return
	}
	s.mu.Lock()
	a, ok := s.apps[p.Get("app_id")]
	pub := s.pubKeys[a.AppID]
	s.mu.Unlock()
	if !ok || a.Platform != Alipay {
		s.apFail(w, invalidArg("isv.invalid-app-id", "无效的AppID参数"))
		return
	}
	if pub == nil {
		s.apFail(w, invalidArg("isv.missing-signature-config", "应用未配置对应签名算法的公钥或者证书"))
		return
	}
	sig, err := base64.StdEncoding.DecodeString(p.Get("sign"))
	sum := sha256.Sum256([]byte(apSignString(p)))
	if err != nil || rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], sig) != nil {
		s.apFail(w, invalidArg("isv.invalid-signature", "验签出错"))
		return
	}
	now := s.Now()
	ts, err := time.ParseInLocation("2006-01-02 15:04:05", p.Get("timestamp"), alipayZone)
	if err != nil || ts.Sub(now).Abs() > AlipayClockSkew {
		s.apFail(w, invalidArg("isv.invalid-timestamp", "非法的时间戳参数"))
		return
	}
	if p.Get("method") != "alipay.system.oauth.token" {
		s.apFail(w, invalidArg("isv.invalid-method", "不存在的方法名"))
		return
	}
	if p.Get("grant_type") != "authorization_code" {
		s.alipayErr(w, 40004)
		return
	}
	s.mu.Lock()
	lc := s.codes[p.Get("code")]
	if lc == nil || lc.appID != a.AppID || lc.used || !now.Before(lc.expires) {
		s.mu.Unlock()
		s.alipayErr(w, 40002)
		return
	}
	lc.used = true
	s.userLocked(a, lc.user, now)
	s.mu.Unlock()
	ok2 := apTokenOK{
		AccessToken:  "authusrB" + randAlnum(32),
		AuthStart:    now.In(alipayZone).Format("2006-01-02 15:04:05"),
		ExpiresIn:    1296000,
		ReExpiresIn:  2592000,
		RefreshToken: "authusrB" + randAlnum(32),
	}
	if a.LegacyUserID {
		ok2.UserID = AlipayUserID(a.AppID, lc.user)
		ok2.AlipayUserID = ok2.UserID
	} else {
		ok2.OpenID = alipayOpenID(a.AppID, lc.user)
	}
	w.note = "ok"
	apWrite(w, "alipay_system_oauth_token_response", ok2)
}

// AlipayPhoneResponse makes the res.response text my.getPhoneNumber gives
// a user of an Alipay app who allows the number: signed by the simulator's
// Alipay key, encrypted with the app's AES key (AlipayAESKey).
func (s *Sim) AlipayPhoneResponse(appID, userName, mobile string) (string, error) {
	if userName == "" || mobile == "" {
		return "", fmt.Errorf("%w: user and phone are required", ErrInvalid)
	}
	s.mu.Lock()
	a, err := s.appLocked(appID)
	s.mu.Unlock()
	if err != nil {
		return "", err
	}
	if a.Platform != Alipay {
		return "", fmt.Errorf("%w: the phone response is Alipay's", ErrWrongPlatform)
	}
	plain, _ := json.Marshal(map[string]string{"code": "10000", "msg": "Success", "mobile": mobile})
	return alipaySealed(appID, plain)
}

// alipaySealed encrypts and signs content as Alipay does for the front end.
func alipaySealed(appID string, plain []byte) (string, error) {
	key, _ := base64.StdEncoding.DecodeString(AlipayAESKey(appID))
	ct, err := encryptCBC(key, make([]byte, 16), plain)
	if err != nil {
		return "", err
	}
	c := base64.StdEncoding.EncodeToString(ct)
	out, err := json.Marshal(map[string]string{
		"response": c, "sign": apSign([]byte(`"` + c + `"`)),
		"sign_type": "RSA2", "encrypt_type": "AES", "charset": "UTF-8",
	})
	return string(out), err
}
