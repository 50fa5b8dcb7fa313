package mpsim

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Baidu smart programs (百度智能小程序), written from Baidu's documentation
// and its decryption sample:
//
//   - POST /oauth/jscode2sessionkey, form code, client_id (the App Key), sk
//     (the App Secret) → {"openid", "session_key"}; a session key is 24
//     bytes (AES-192), base64;
//   - errors are Baidu OAuth's {"error", "error_description"} with HTTP 400
//     (its OAuth error table): invalid_request (a missing field, another
//     method than POST), invalid_client (unknown App Key or wrong secret),
//     invalid_grant (a code unknown, expired after 10 minutes, used, or of
//     another app);
//   - an injected Fault.Errcode answers {"errno": n, "errmsg": ...} (HTTP
//     200), the shape some SDKs read instead;
//   - encryptedData: AES-192-CBC with the session key and a fresh iv over
//     16 random bytes ‖ uint32 big-endian length ‖ data ‖ App Key, padded
//     to a 32-byte boundary (pad bytes equal to their count), as Baidu's
//     sample vector is; phone payloads are {"mobile": "..."} (the shape SDKs
//     read; Baidu's documentation does not show it).

// Baidu is the platform name.
const Baidu = "baidu"

// BaiduCodeTTL is how long a Baidu login code lives ("有效期10分钟").
const BaiduCodeTTL = 10 * time.Minute

// baiduKeyLen is the size of a Baidu session key (AES-192).
const baiduKeyLen = 24

// baiduPad is the boundary the plaintext frame is padded to.
const baiduPad = 32

type baiduOAuthError struct {
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description"`
}

type baiduErrno struct {
	Errno  jsonNumber `json:"errno"`
	Errmsg string     `json:"errmsg"`
}

type baiduOK struct {
	OpenID     string `json:"openid"`
	SessionKey string `json:"session_key"`
}

var baiduDescriptions = map[string]string{
	"invalid_request": "invalid request",
	"invalid_client":  "unknown client id",
	"invalid_grant":   "Invalid authorization code",
}

func (s *Sim) baiduOAuthErr(w *recorder, name string) {
	w.note = "error=" + name
	writeJSON(w, http.StatusBadRequest, baiduOAuthError{Error: name, ErrorDescription: baiduDescriptions[name]})
}

// baiduErr answers an injected error number in the errno/errmsg shape.
func (s *Sim) baiduErr(w *recorder, errno int) {
	w.note = "errno=" + strconv.Itoa(errno)
	s.writeAnswer(w, Baidu, baiduErrno{Errno: s.number(w, errno), Errmsg: "error " + strconv.Itoa(errno)})
}

// baiduCode2Session: POST /oauth/jscode2sessionkey.
func (s *Sim) baiduCode2Session(w *recorder, r *http.Request) {
	if r.Method != http.MethodPost {
		s.baiduOAuthErr(w, "invalid_request")
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil || len(body) > maxBody {
		s.baiduOAuthErr(w, "invalid_request")
		return
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		s.baiduOAuthErr(w, "invalid_request")
		return
	}
	code, appKey, sk := form.Get("code"), form.Get("client_id"), form.Get("sk")
	if code == "" || appKey == "" || sk == "" {
		s.baiduOAuthErr(w, "invalid_request")
		return
	}
	s.mu.Lock()
	a, ok := s.apps[appKey]
	if !ok || a.Platform != Baidu || !secretOK(sk, a.Secret) {
		s.mu.Unlock()
		s.baiduOAuthErr(w, "invalid_client")
		return
	}
	now := s.nowLocked()
	lc := s.codes[code]
	if lc == nil || lc.appID != a.AppID || lc.used || !now.Before(lc.expires) {
		s.mu.Unlock()
		s.baiduOAuthErr(w, "invalid_grant")
		return
	}
	lc.used = true
	u := s.userLocked(a, lc.user, now)
	res := baiduOK{OpenID: u.openID, SessionKey: s.liveKeyLocked(u, now)}
	s.mu.Unlock()
	w.note = "ok"
	s.writeAnswer(w, Baidu, res)
}

// encryptBaidu encrypts data in Baidu's frame with a base64 24-byte
// session key, for the app key appKey, with a fresh iv.
func encryptBaidu(sessionKey, appKey string, data []byte) (encryptedData, iv string, err error) {
	key, err := base64.StdEncoding.DecodeString(sessionKey)
	if err != nil || len(key) != baiduKeyLen {
		return "", "", fmt.Errorf("mpsim: a Baidu session key is 24 bytes of base64")
	}
	var frame bytes.Buffer
	prefix := make([]byte, 16)
	rand.Read(prefix)
	frame.Write(prefix)
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(data)))
	frame.Write(n[:])
	frame.Write(data)
	frame.WriteString(appKey)
	pad := baiduPad - frame.Len()%baiduPad
	frame.Write(bytes.Repeat([]byte{byte(pad)}, pad))
	block, err := aes.NewCipher(key)
	if err != nil {
		return "", "", err
	}
	ivb := make([]byte, aes.BlockSize)
	rand.Read(ivb)
	ct := frame.Bytes()
	cipher.NewCBCEncrypter(block, ivb).CryptBlocks(ct, ct)
	return base64.StdEncoding.EncodeToString(ct), base64.StdEncoding.EncodeToString(ivb), nil
}

// encryptBaiduJSON marshals v (no watermark: Baidu's integrity check is
// the trailer) and encrypts it; opt.WatermarkAppID, when set, is the
// trailer's app key instead of the app's own.
func encryptBaiduJSON(sessionKey, appKey string, v any, opt EncryptOptions) (string, string, error) {
	var plain bytes.Buffer
	enc := json.NewEncoder(&plain)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return "", "", fmt.Errorf("mpsim: %w", err)
	}
	if opt.WatermarkAppID != "" {
		appKey = opt.WatermarkAppID
	}
	return encryptBaidu(sessionKey, appKey, bytes.TrimSuffix(plain.Bytes(), []byte("\n")))
}

func baiduPhonePayload(phone string) map[string]any { return map[string]any{"mobile": phone} }
