package mpsim

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Feishu (飞书) and Lark mini programs (gadgets): login with the app access
// token of a self-built app. Both run the same API on two origins; the
// simulator serves both on its one origin, for apps of platform "feishu" or
// "lark".
//
//	POST /open-apis/auth/v3/app_access_token/internal  {"app_id","app_secret"}
//	     → {"code":0,"msg":"ok","app_access_token":"t-…","expire":N,"tenant_access_token":"t-…"}
//	POST /open-apis/mina/v2/tokenLoginValidate  Authorization: Bearer <app_access_token>  {"code"}
//	     → {"code":0,"msg":"success","data":{"open_id","employee_id","session_key","tenant_key","access_token","expires_in","refresh_token","union_id"}}
//
// Errors are {"code":N,"msg":"..."} with HTTP 400, labelled
// application/json; charset=utf-8. From Feishu's documentation: 10202 the
// app access token is invalid or expired (HTTP 401 here), 10213 "code
// appid not match" for a code of another app, used or expired. The
// simulator's choices where the documentation says nothing: bad
// parameters 10003, a wrong app id or secret 10014 (Feishu's numbers for
// its token endpoints). An app access token lives FeishuTokenTTL; a fetch
// in its last 30 minutes gives a new one and the old one stays valid until
// it expires (as Feishu documents); earlier fetches give the same token
// with the time it has left. session_key is hex (as Feishu's sample
// shows); expires_in is a Unix timestamp, not a duration. Feishu's
// encryptedData scheme is not published, so the simulator encrypts no
// payloads for these apps, and gives no phone code.

// Feishu and Lark are the platform names.
const (
	Feishu = "feishu"
	Lark   = "lark"
)

// FeishuCodeTTL is how long a Feishu login code lives (not documented:
// the simulator uses WeChat's 5 minutes).
const FeishuCodeTTL = 5 * time.Minute

// FeishuTokenTTL is an app access token's lifetime (Feishu: 2 hours).
const FeishuTokenTTL = 2 * time.Hour

// feishuTokenRenew: a fetch within this much of the expiry gets a new token.
const feishuTokenRenew = 30 * time.Minute

// Endpoints of Feishu (Stats, Fault).
const (
	EndpointAppAccessToken     = "app_access_token"   // Feishu, Lark
	EndpointTokenLoginValidate = "tokenLoginValidate" // Feishu, Lark
)

const (
	fsErrBadParams    = 10003
	fsErrBadApp       = 10014
	fsErrTokenInvalid = 10202
	fsErrCodeInvalid  = 10213
	kindAppToken      = "app_access_token"
)

var fsMessages = map[int]string{
	fsErrBadParams:    "invalid param",
	fsErrBadApp:       "app secret invalid",
	fsErrTokenInvalid: "access token invalid",
	fsErrCodeInvalid:  "code appid not match",
}

func isFeishuFamily(p string) bool { return p == Feishu || p == Lark }

type fsError struct {
	Code jsonNumber `json:"code"`
	Msg  string     `json:"msg"`
}

func (s *Sim) fsFail(w *recorder, code int) {
	msg, ok := fsMessages[code]
	if !ok {
		msg = "error"
	}
	status := http.StatusBadRequest
	if code == fsErrTokenInvalid {
		status = http.StatusUnauthorized
	}
	w.note = "code=" + strconv.Itoa(code)
	writeJSON(w, status, fsError{Code: s.number(w, code), Msg: msg})
}

type fsTokenReq struct {
	AppID     string `json:"app_id"`
	AppSecret string `json:"app_secret"`
}

type fsTokenOK struct {
	Code              int    `json:"code"`
	Msg               string `json:"msg"`
	AppAccessToken    string `json:"app_access_token"`
	Expire            int    `json:"expire"`
	TenantAccessToken string `json:"tenant_access_token"`
}

// feishuAppAccessToken: POST /open-apis/auth/v3/app_access_token/internal.
func (s *Sim) feishuAppAccessToken(w *recorder, r *http.Request) {
	var req fsTokenReq
	if r.Method != http.MethodPost || readJSON(r, &req, false) != nil || req.AppID == "" || req.AppSecret == "" {
		s.fsFail(w, fsErrBadParams)
		return
	}
	s.mu.Lock()
	a, ok := s.apps[req.AppID]
	if !ok || !isFeishuFamily(a.Platform) || !secretOK(req.AppSecret, a.Secret) {
		s.mu.Unlock()
		s.fsFail(w, fsErrBadApp)
		return
	}
	now := s.nowLocked()
	s.pruneLocked(now)
	at := s.appTokensLocked(a.AppID)
	tok := at.client
	t := s.tokens[tok]
	if t == nil || t.status(now) != 0 || t.expires.Sub(now) <= feishuTokenRenew {
		// A new token; the previous one stays valid until it expires.
		tok = "t-" + randAlnum(40)
		t = &token{appID: a.AppID, kind: kindAppToken, expires: now.Add(FeishuTokenTTL)}
		s.tokens[tok] = t
		at.client = tok
	}
	left := int(t.expires.Sub(now) / time.Second)
	s.mu.Unlock()
	w.note = "ok"
	writeJSON(w, http.StatusOK, fsTokenOK{Code: 0, Msg: "ok", AppAccessToken: tok, Expire: left, TenantAccessToken: tok})
}

type fsLoginReq struct {
	Code string `json:"code"`
}

type fsLoginData struct {
	OpenID       string `json:"open_id"`
	EmployeeID   string `json:"employee_id"`
	UnionID      string `json:"union_id"`
	SessionKey   string `json:"session_key"`
	TenantKey    string `json:"tenant_key"`
	AccessToken  string `json:"access_token"`
	ExpiresIn    int64  `json:"expires_in"`
	RefreshToken string `json:"refresh_token"`
}

type fsLoginOK struct {
	Code int         `json:"code"`
	Msg  string      `json:"msg"`
	Data fsLoginData `json:"data"`
}

// feishuLogin: POST /open-apis/mina/v2/tokenLoginValidate.
func (s *Sim) feishuLogin(w *recorder, r *http.Request) {
	auth := r.Header.Get("Authorization")
	tok, bearer := strings.CutPrefix(auth, "Bearer ")
	var req fsLoginReq
	if r.Method != http.MethodPost || readJSON(r, &req, false) != nil || req.Code == "" {
		s.fsFail(w, fsErrBadParams)
		return
	}
	s.mu.Lock()
	now := s.nowLocked()
	t := s.tokens[tok]
	if !bearer || t == nil || t.kind != kindAppToken || t.status(now) != 0 {
		s.mu.Unlock()
		s.fsFail(w, fsErrTokenInvalid)
		return
	}
	a, ok := s.apps[t.appID]
	lc := s.codes[req.Code]
	if !ok || lc == nil || lc.appID != a.AppID || lc.used || !now.Before(lc.expires) {
		s.mu.Unlock()
		s.fsFail(w, fsErrCodeInvalid)
		return
	}
	lc.used = true
	u := s.userLocked(a, lc.user, now)
	key := s.liveKeyLocked(u, now)
	s.mu.Unlock()
	raw, _ := base64.StdEncoding.DecodeString(key)
	w.note = "ok"
	writeJSON(w, http.StatusOK, fsLoginOK{Code: 0, Msg: "success", Data: fsLoginData{
		OpenID:       u.openID,
		EmployeeID:   FeishuEmployeeID(a.AppID, lc.user),
		UnionID:      "",
		SessionKey:   hex.EncodeToString(raw),
		TenantKey:    FeishuTenantKey(a.AppID),
		AccessToken:  "u-" + randAlnum(32),
		ExpiresIn:    now.Add(2 * time.Hour).Unix(),
		RefreshToken: "ur-" + randAlnum(32),
	}})
}

// FeishuTenantKey is the tenant_key the simulator gives the users of a
// Feishu or Lark app (one organisation per app).
func FeishuTenantKey(appID string) string {
	h := sha256.Sum256([]byte("tenant\x00" + appID))
	return hex.EncodeToString(h[:7])
}

// FeishuEmployeeID is the employee_id the simulator gives a user.
func FeishuEmployeeID(appID, user string) string {
	h := sha256.Sum256([]byte("employee\x00" + appID + "\x00" + user))
	return hex.EncodeToString(h[:3])
}
