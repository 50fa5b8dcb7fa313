package mpsim

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// Douyin's phone-code flow (base library 3.51.0 and later):
//
//	POST /oauth/client_token/                 {"grant_type":"client_credential","client_key","client_secret"}
//	  → {"data":{"access_token":"clt.…","description":"","error_code":0,"expires_in":7200},"message":"success"}
//	POST /api/apps/v1/get_phonenumber_info/   header access-token: clt.…, {"code"}
//	  → {"err_no":0,"err_msg":"","log_id","data":"<base64 RSA PKCS#1 v1.5 of the phone JSON>"}
//
// As unkind as the platform:
//   - every client_token fetch issues a new token and supersedes the
//     previous one, which stays valid TokenGrace longer; only the latest
//     two are valid at all (a third fetch within the grace kills the
//     oldest at once);
//   - a phone code lives PhoneCodeTTL (5 minutes) and is single-use;
//   - the answer is encrypted with the public key registered for the app
//     (SetPublicKey, Options.DouyinPublicKeys, POST /_sim/public_key), in
//     blocks of the key's size (a 1024-bit key needs two for a phone JSON);
//   - the wire types below are the simulator's own.
//
// Error numbers. client_token: 10002 bad parameters, 10003 unknown
// client_key, 10013 wrong client_key/secret (documented), in
// data.error_code. get_phonenumber_info: the numbers were not found in a
// published table; the simulator answers 28005187 for an unknown, expired
// or used code (an SDK's comment), 28001003 for an unknown or superseded
// client token and 28001008 for an expired one (the open platform's
// common numbers), 40014 for a bad request, and 28001014 (its own number)
// when the app has no public key registered.
const (
	ttErrCodeInvalid   = 28005187
	ttErrTokenInvalid  = 28001003
	ttErrTokenExpired  = 28001008
	ttErrNoPublicKey   = 28001014
	ttErrParams        = 40014
	kindClientToken    = "douyin_client"
	clientTokenErrMsg  = "error"
	douyinClientPrefix = "clt."
)

type ttClientTokenReq struct {
	GrantType    string `json:"grant_type"`
	ClientKey    string `json:"client_key"`
	ClientSecret string `json:"client_secret"`
}

type ttClientTokenData struct {
	AccessToken string     `json:"access_token,omitempty"`
	Description string     `json:"description"`
	ErrorCode   jsonNumber `json:"error_code"`
	ExpiresIn   int        `json:"expires_in,omitempty"`
}

type ttClientTokenResp struct {
	Data    ttClientTokenData `json:"data"`
	Message string            `json:"message"`
}

var clientTokenMessages = map[int]string{
	10002: "参数错误",
	10003: "client_key不存在",
	10013: "client_key或client_secret错误",
}

func (s *Sim) clientTokenErr(w *recorder, code int) {
	w.note = "error_code=" + strconv.Itoa(code)
	msg, ok := clientTokenMessages[code]
	if !ok {
		msg = "error " + strconv.Itoa(code)
	}
	s.writeAnswer(w, Douyin, ttClientTokenResp{Data: ttClientTokenData{Description: msg, ErrorCode: s.number(w, code)}, Message: clientTokenErrMsg})
}

// douyinClientToken: POST /oauth/client_token/.
func (s *Sim) douyinClientToken(w *recorder, r *http.Request) {
	var req ttClientTokenReq
	if r.Method != http.MethodPost || readJSON(r, &req, false) != nil || req.GrantType != "client_credential" || req.ClientKey == "" || req.ClientSecret == "" {
		s.clientTokenErr(w, 10002)
		return
	}
	s.mu.Lock()
	a, ok := s.apps[req.ClientKey]
	if !ok || a.Platform != Douyin {
		s.mu.Unlock()
		s.clientTokenErr(w, 10003)
		return
	}
	if !secretOK(req.ClientSecret, a.Secret) {
		s.mu.Unlock()
		s.clientTokenErr(w, 10013)
		return
	}
	now := s.nowLocked()
	s.pruneLocked(now)
	at := s.appTokensLocked(a.AppID)
	for k, t := range s.tokens {
		if t.appID != a.AppID || t.kind != kindClientToken || t.status(now) != 0 {
			continue
		}
		dead := now // only the latest two are kept
		if k == at.client {
			dead = now.Add(TokenGrace)
		}
		if t.deadAt.IsZero() || dead.Before(t.deadAt) {
			t.deadAt = dead
		}
	}
	tok := douyinClientPrefix + randAlnum(40)
	s.tokens[tok] = &token{appID: a.AppID, kind: kindClientToken, expires: now.Add(AccessTokenTTL)}
	at.client = tok
	s.mu.Unlock()
	w.note = "ok"
	s.writeAnswer(w, Douyin, ttClientTokenResp{
		Data:    ttClientTokenData{AccessToken: tok, ErrorCode: s.number(w, 0), ExpiresIn: int(AccessTokenTTL / time.Second)},
		Message: "success",
	})
}

type ttPhoneReq struct {
	Code string `json:"code"`
}

type ttPhoneResp struct {
	ErrNo  jsonNumber `json:"err_no"`
	ErrMsg string     `json:"err_msg"`
	LogID  string     `json:"log_id"`
	Data   string     `json:"data,omitempty"`
}

var ttPhoneMessages = map[int]string{
	ttErrCodeInvalid:  "code expired or used",
	ttErrTokenInvalid: "access_token无效",
	ttErrTokenExpired: "access_token已过期",
	ttErrNoPublicKey:  "app public key not set",
	ttErrParams:       "bad params",
	-1:                "system error",
}

func (s *Sim) douyinPhoneErr(w *recorder, errno int) {
	w.note = "err_no=" + strconv.Itoa(errno)
	msg, ok := ttPhoneMessages[errno]
	if !ok {
		msg = douyinMessage(errno)
	}
	s.writeAnswer(w, Douyin, ttPhoneResp{ErrNo: s.number(w, errno), ErrMsg: msg, LogID: logID(s.Now())})
}

type ttPhonePlain struct {
	PhoneNumber     string    `json:"phoneNumber"`
	PurePhoneNumber string    `json:"purePhoneNumber"`
	CountryCode     string    `json:"countryCode"`
	Watermark       watermark `json:"watermark"`
}

// douyinPhone: POST /api/apps/v1/get_phonenumber_info/.
func (s *Sim) douyinPhone(w *recorder, r *http.Request) {
	if r.Method != http.MethodPost {
		s.douyinPhoneErr(w, ttErrParams)
		return
	}
	tok := r.Header.Get("access-token")
	s.mu.Lock()
	now := s.nowLocked()
	t := s.tokens[tok]
	errno := ttErrTokenInvalid
	if t != nil && t.kind == kindClientToken {
		switch t.status(now) {
		case 0:
			errno = 0
		case 42001:
			errno = ttErrTokenExpired
		}
	}
	s.mu.Unlock()
	if errno != 0 {
		s.douyinPhoneErr(w, errno)
		return
	}
	var req ttPhoneReq
	if err := readJSON(r, &req, false); err != nil || req.Code == "" {
		s.douyinPhoneErr(w, ttErrParams)
		return
	}
	s.mu.Lock()
	c := s.phoneCodes[req.Code]
	pub := s.pubKeys[t.appID]
	if c == nil || c.appID != t.appID || c.used || !now.Before(c.expires) {
		s.mu.Unlock()
		s.douyinPhoneErr(w, ttErrCodeInvalid)
		return
	}
	if pub == nil {
		s.mu.Unlock()
		s.douyinPhoneErr(w, ttErrNoPublicKey)
		return
	}
	c.used = true
	plain, _ := json.Marshal(ttPhonePlain{PhoneNumber: c.phone, PurePhoneNumber: c.phone, CountryCode: "86", Watermark: watermark{Timestamp: now.Unix(), AppID: t.appID}})
	s.mu.Unlock()
	data, err := rsaEncryptBlocks(pub, plain)
	if err != nil {
		s.douyinPhoneErr(w, -1)
		return
	}
	w.note = "ok"
	s.writeAnswer(w, Douyin, ttPhoneResp{ErrNo: s.number(w, 0), LogID: logID(now), Data: data})
}

// rsaEncryptBlocks encrypts plain with PKCS#1 v1.5 in blocks of at most
// size-11 bytes, concatenated, standard base64.
func rsaEncryptBlocks(pub *rsa.PublicKey, plain []byte) (string, error) {
	step := pub.Size() - 11
	var out []byte
	for i := 0; i < len(plain); i += step {
		//lint:ignore SA1019 the simulated platform encrypts with PKCS#1 v1.5, as Douyin does
		ct, err := rsa.EncryptPKCS1v15(rand.Reader, pub, plain[i:min(i+step, len(plain))])
		if err != nil {
			return "", err
		}
		out = append(out, ct...)
	}
	return base64.StdEncoding.EncodeToString(out), nil
}

// SetPublicKey registers the public key a Douyin app uploaded in the
// console: get_phonenumber_info encrypts its answers with it.
func (s *Sim) SetPublicKey(appID string, pub *rsa.PublicKey) error {
	if pub == nil {
		return fmt.Errorf("%w: no public key", ErrInvalid)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.appLocked(appID)
	if err != nil {
		return err
	}
	if a.Platform != Douyin && a.Platform != Alipay {
		return fmt.Errorf("%w: the app public key is Douyin's or Alipay's", ErrWrongPlatform)
	}
	s.pubKeys[appID] = pub
	return nil
}

// ParsePublicKey reads an RSA public key from PEM ("PUBLIC KEY", PKIX, as
// Douyin's console takes it; or "RSA PUBLIC KEY", PKCS#1).
func ParsePublicKey(pemText []byte) (*rsa.PublicKey, error) {
	block, _ := pem.Decode(pemText)
	if block == nil {
		return nil, fmt.Errorf("%w: no PEM block", ErrInvalid)
	}
	switch block.Type {
	case "PUBLIC KEY":
		k, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: unreadable public key", ErrInvalid)
		}
		if rk, ok := k.(*rsa.PublicKey); ok {
			return rk, nil
		}
		return nil, fmt.Errorf("%w: not an RSA key", ErrInvalid)
	case "RSA PUBLIC KEY":
		k, err := x509.ParsePKCS1PublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: unreadable public key", ErrInvalid)
		}
		return k, nil
	}
	return nil, fmt.Errorf("%w: a PEM block of type %q is not a public key", ErrInvalid, block.Type)
}
