package mpsim

import (
	"net/http"
	"strconv"
	"time"
)

// wechatMessages are the errmsg prefixes the platform documents;
// ", rid: ..." is appended as the platform does.
var wechatMessages = map[int]string{
	-1:    "system error",
	40001: "invalid credential, access_token is invalid or not latest",
	40002: "invalid grant_type",
	40003: "invalid openid",
	40004: "invalid media type",
	40006: "invalid media size",
	40007: "invalid media_id",
	40013: "invalid appid",
	40014: "invalid access_token",
	40029: "invalid code",
	40066: "invalid url",
	40037: "invalid template_id",
	40125: "invalid appsecret",
	40129: "invalid scene",
	40163: "code been used",
	40226: "code blocked",
	41001: "access_token missing",
	41002: "appid missing",
	41004: "appsecret missing",
	41005: "media data missing",
	41008: "missing code",
	42001: "access_token expired",
	43001: "require GET method",
	43002: "require POST method",
	43302: "http method error, use post",
	44002: "empty post data",
	45009: "reach max api daily quota limit",
	45011: "api minute-quota reach limit mustslower retry next minute",
	47001: "data format error",
	47003: "argument invalid!",
}

type wechatError struct {
	Errcode jsonNumber `json:"errcode"`
	Errmsg  string     `json:"errmsg"`
}

// wxStatus is the errcode/errmsg of a success answer: present ("errcode":0,
// "errmsg":"ok") or absent, as the SuccessErrcode quirk decides per call.
type wxStatus struct {
	Errcode *jsonNumber `json:"errcode,omitempty"`
	Errmsg  string      `json:"errmsg,omitempty"`
}

// wechatStatus is the status of a success answer to the call w answers.
func (s *Sim) wechatStatus(w *recorder) wxStatus {
	q := s.Quirks()
	if !q.pick(q.SuccessErrcode, "success-errcode", w.endpoint, w.n) {
		return wxStatus{}
	}
	n := s.number(w, 0)
	return wxStatus{Errcode: &n, Errmsg: "ok"}
}

func (s *Sim) wechatErr(w *recorder, errcode int) {
	msg, ok := wechatMessages[errcode]
	if !ok {
		msg = "error " + strconv.Itoa(errcode)
	}
	w.note = "errcode=" + strconv.Itoa(errcode)
	s.writeAnswer(w, WeChat, wechatError{Errcode: s.number(w, errcode), Errmsg: msg + ", rid: " + rid(s.Now())})
}

// wechatAppLocked checks appid and secret: 40013 for an unknown appid (or
// another platform's), wrongSecret for a wrong secret.
func (s *Sim) wechatAppLocked(appID, secret string, wrongSecret int) (App, int) {
	a, ok := s.apps[appID]
	if !ok || a.Platform != WeChat {
		return App{}, 40013
	}
	if !secretOK(secret, a.Secret) {
		return App{}, wrongSecret
	}
	return a, 0
}

type code2SessionOK struct {
	wxStatus
	SessionKey string `json:"session_key"`
	OpenID     string `json:"openid"`
	UnionID    string `json:"unionid,omitempty"`
}

// wechatCode2Session: GET /sns/jscode2session?appid&secret&js_code&grant_type.
func (s *Sim) wechatCode2Session(w *recorder, r *http.Request) {
	if r.Method != http.MethodGet {
		// The platform reads the query of a GET only: anything else lacks an appid.
		s.wechatErr(w, 41002)
		return
	}
	q := r.URL.Query()
	appID, secret, code := q.Get("appid"), q.Get("secret"), q.Get("js_code")
	switch {
	case appID == "":
		s.wechatErr(w, 41002)
		return
	case secret == "":
		s.wechatErr(w, 41004)
		return
	case code == "":
		s.wechatErr(w, 41008)
		return
	case q.Get("grant_type") != "authorization_code":
		s.wechatErr(w, 40002)
		return
	}
	res, errcode := s.wechatExchange(appID, secret, code)
	if errcode != 0 {
		s.wechatErr(w, errcode)
		return
	}
	w.note = "ok"
	res.wxStatus = s.wechatStatus(w)
	s.writeAnswer(w, WeChat, res)
}

func (s *Sim) wechatExchange(appID, secret, code string) (code2SessionOK, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, errcode := s.wechatAppLocked(appID, secret, 40125)
	if errcode != 0 {
		return code2SessionOK{}, errcode
	}
	now := s.nowLocked()
	c := s.codes[code]
	if c == nil || c.appID != a.AppID {
		return code2SessionOK{}, 40029
	}
	u := s.userLocked(a, c.user, now)
	if u.rateLocked(EndpointJSCode2Session, now) {
		return code2SessionOK{}, 45011
	}
	if !now.Before(c.expires) {
		return code2SessionOK{}, 40029
	}
	if c.used {
		return code2SessionOK{}, 40163
	}
	c.used = true
	return code2SessionOK{SessionKey: s.liveKeyLocked(u, now), OpenID: u.openID, UnionID: u.unionID}, 0
}

type tokenOK struct {
	wxStatus
	AccessToken string `json:"access_token"`
	ExpiresIn   int    `json:"expires_in"`
}

// tokenParamsErr checks the parameters common to both token endpoints.
func tokenParamsErr(grantType, appID, secret string) int {
	switch {
	case appID == "":
		return 41002
	case secret == "":
		return 41004
	case grantType != "client_credential":
		return 40002
	}
	return 0
}

// wechatToken: GET /cgi-bin/token?grant_type=client_credential&appid&secret.
// Every fetch issues a new token; the app's earlier classic tokens stay valid
// TokenGrace longer at most.
func (s *Sim) wechatToken(w *recorder, r *http.Request) {
	if r.Method != http.MethodGet {
		s.wechatErr(w, 43001)
		return
	}
	q := r.URL.Query()
	appID, secret := q.Get("appid"), q.Get("secret")
	if e := tokenParamsErr(q.Get("grant_type"), appID, secret); e != 0 {
		s.wechatErr(w, e)
		return
	}
	s.mu.Lock()
	a, errcode := s.wechatAppLocked(appID, secret, 40001)
	if errcode != 0 {
		s.mu.Unlock()
		s.wechatErr(w, errcode)
		return
	}
	now := s.nowLocked()
	s.pruneLocked(now)
	graceEnd := now.Add(TokenGrace)
	for _, t := range s.tokens {
		if t.appID == a.AppID && t.kind == kindClassic && t.status(now) == 0 {
			if t.deadAt.IsZero() || graceEnd.Before(t.deadAt) {
				t.deadAt = graceEnd
			}
		}
	}
	tok := newAccessToken()
	s.tokens[tok] = &token{appID: a.AppID, kind: kindClassic, expires: now.Add(AccessTokenTTL)}
	s.mu.Unlock()
	w.note = "ok"
	s.writeAnswer(w, WeChat, tokenOK{wxStatus: s.wechatStatus(w), AccessToken: tok, ExpiresIn: int(AccessTokenTTL / time.Second)})
}

type stableTokenReq struct {
	GrantType    string `json:"grant_type"`
	AppID        string `json:"appid"`
	Secret       string `json:"secret"`
	ForceRefresh bool   `json:"force_refresh"`
}

// wechatStableToken: POST /cgi-bin/stable_token. Normal mode returns the
// current stable token while more than TokenGrace of it is left, and a new one
// after that (the old one lives out its time). force_refresh issues a new one
// and invalidates the app's stable tokens at once, at most once per
// ForceRefreshPeriod (45009 otherwise). Classic tokens are not affected.
func (s *Sim) wechatStableToken(w *recorder, r *http.Request) {
	if r.Method != http.MethodPost {
		s.wechatErr(w, 43002)
		return
	}
	var req stableTokenReq
	if err := readJSON(r, &req, false); err != nil {
		s.wechatErr(w, 47001)
		return
	}
	if e := tokenParamsErr(req.GrantType, req.AppID, req.Secret); e != 0 {
		s.wechatErr(w, e)
		return
	}
	s.mu.Lock()
	a, errcode := s.wechatAppLocked(req.AppID, req.Secret, 40001)
	if errcode != 0 {
		s.mu.Unlock()
		s.wechatErr(w, errcode)
		return
	}
	now := s.nowLocked()
	s.pruneLocked(now)
	at := s.appTokensLocked(a.AppID)
	if req.ForceRefresh {
		if at.forced && now.Sub(at.lastForce) < ForceRefreshPeriod {
			s.mu.Unlock()
			s.wechatErr(w, 45009)
			return
		}
		at.forced, at.lastForce = true, now
		for _, t := range s.tokens {
			if t.appID == a.AppID && t.kind == kindStable && t.status(now) == 0 {
				t.deadAt = now
			}
		}
	} else if cur := s.tokens[at.stable]; cur != nil && cur.status(now) == 0 && cur.expires.Sub(now) > TokenGrace {
		left := int(cur.expires.Sub(now) / time.Second)
		tok := at.stable
		s.mu.Unlock()
		w.note = "ok (same token)"
		s.writeAnswer(w, WeChat, tokenOK{wxStatus: s.wechatStatus(w), AccessToken: tok, ExpiresIn: left})
		return
	}
	tok := newAccessToken()
	s.tokens[tok] = &token{appID: a.AppID, kind: kindStable, expires: now.Add(AccessTokenTTL)}
	at.stable = tok
	s.mu.Unlock()
	w.note = "ok (new token)"
	s.writeAnswer(w, WeChat, tokenOK{wxStatus: s.wechatStatus(w), AccessToken: tok, ExpiresIn: int(AccessTokenTTL / time.Second)})
}

type phoneReq struct {
	Code   string `json:"code"`
	OpenID string `json:"openid"`
}

type phoneInfo struct {
	PhoneNumber     string    `json:"phoneNumber"`
	PurePhoneNumber string    `json:"purePhoneNumber"`
	CountryCode     string    `json:"countryCode"`
	Watermark       watermark `json:"watermark"`
}

type phoneOK struct {
	wxStatus
	PhoneInfo phoneInfo `json:"phone_info"`
}

// wechatPhone: POST /wxa/business/getuserphonenumber?access_token=T {"code"}.
func (s *Sim) wechatPhone(w *recorder, r *http.Request) {
	if r.Method != http.MethodPost {
		s.wechatErr(w, 43002)
		return
	}
	tok := r.URL.Query().Get("access_token")
	if tok == "" {
		s.wechatErr(w, 41001)
		return
	}
	s.mu.Lock()
	now := s.nowLocked()
	t := s.tokens[tok]
	errcode := 40001
	if t != nil {
		errcode = t.status(now)
	}
	s.mu.Unlock()
	if errcode != 0 {
		s.wechatErr(w, errcode)
		return
	}
	var req phoneReq
	if err := readJSON(r, &req, false); err != nil {
		s.wechatErr(w, 47001)
		return
	}
	if req.Code == "" {
		s.wechatErr(w, 41008)
		return
	}
	info, errcode := s.phoneExchange(t.appID, req)
	if errcode != 0 {
		s.wechatErr(w, errcode)
		return
	}
	w.note = "ok"
	s.writeAnswer(w, WeChat, phoneOK{wxStatus: s.wechatStatus(w), PhoneInfo: info})
}

func (s *Sim) phoneExchange(appID string, req phoneReq) (phoneInfo, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.nowLocked()
	a, ok := s.apps[appID]
	c := s.phoneCodes[req.Code]
	if !ok || c == nil || c.appID != appID {
		return phoneInfo{}, 40029
	}
	u := s.userLocked(a, c.user, now)
	if u.rateLocked(EndpointGetUserPhoneNumber, now) {
		return phoneInfo{}, 45011
	}
	if c.used || !now.Before(c.expires) {
		return phoneInfo{}, 40029
	}
	if req.OpenID != "" && req.OpenID != u.openID {
		return phoneInfo{}, 40003
	}
	c.used = true
	return phoneInfo{
		PhoneNumber:     c.phone,
		PurePhoneNumber: c.phone,
		CountryCode:     "86",
		Watermark:       watermark{Timestamp: now.Unix(), AppID: appID},
	}, 0
}
