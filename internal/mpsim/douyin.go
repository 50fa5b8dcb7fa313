package mpsim

import (
	"net/http"
	"strconv"
)

// douyinMessages are the simulator's err_tips / errmsg texts (the official v2
// table was not found; the numbers are those of the documented v1 table).
var douyinMessages = map[int]string{
	-1:    "system error",
	40014: "bad params",
	40015: "bad appid",
	40017: "bad secret",
	40018: "bad code",
	40019: "bad anonymous_code",
}

func douyinMessage(errno int) string {
	if m, ok := douyinMessages[errno]; ok {
		return m
	}
	return "error " + strconv.Itoa(errno)
}

type douyinData struct {
	SessionKey      string `json:"session_key"`
	OpenID          string `json:"openid"`
	AnonymousOpenID string `json:"anonymous_openid"`
	UnionID         string `json:"unionid"`
	DOpenID         string `json:"dopenid"`
}

type douyinResp struct {
	ErrNo   jsonNumber  `json:"err_no"`
	ErrTips string      `json:"err_tips"`
	LogID   string      `json:"log_id"`
	Data    *douyinData `json:"data"`
}

func (s *Sim) douyinErr(w *recorder, errno int) {
	w.note = "err_no=" + strconv.Itoa(errno)
	s.writeAnswer(w, Douyin, douyinResp{ErrNo: s.number(w, errno), ErrTips: douyinMessage(errno), LogID: logID(s.Now())})
}

// douyinV1Error is the legacy error: errcode/errmsg, with the "error" flag
// (1) that SDKs of the legacy API read beside them.
type douyinV1Error struct {
	Error   int        `json:"error"`
	Errcode jsonNumber `json:"errcode"`
	Errmsg  string     `json:"errmsg"`
}

func (s *Sim) douyinV1Err(w *recorder, errno int) {
	w.note = "errcode=" + strconv.Itoa(errno)
	s.writeAnswer(w, Douyin, douyinV1Error{Error: 1, Errcode: s.number(w, errno), Errmsg: douyinMessage(errno)})
}

type douyinReq struct {
	AppID         string `json:"appid"`
	Secret        string `json:"secret"`
	Code          string `json:"code"`
	AnonymousCode string `json:"anonymous_code"`
}

// douyinV2: POST /api/apps/v2/jscode2session, JSON {appid, secret, code,
// anonymous_code}. Any other method, or a body that is not a JSON object,
// answers 40014.
func (s *Sim) douyinV2(w *recorder, r *http.Request) {
	var req douyinReq
	if r.Method != http.MethodPost || readJSON(r, &req, false) != nil {
		s.douyinErr(w, 40014)
		return
	}
	data, errno := s.douyinExchange(req)
	if errno != 0 {
		s.douyinErr(w, errno)
		return
	}
	w.note = "ok"
	s.writeAnswer(w, Douyin, douyinResp{ErrNo: s.number(w, 0), ErrTips: "success", LogID: logID(s.Now()), Data: &data})
}

type douyinV1OK struct {
	Error           int    `json:"error"` // 0
	SessionKey      string `json:"session_key"`
	OpenID          string `json:"openid"`
	AnonymousOpenID string `json:"anonymous_openid"`
	UnionID         string `json:"unionid,omitempty"`
}

// douyinV1: legacy GET /api/apps/jscode2session?appid&secret&code&anonymous_code
// with a flat body and errcode/errmsg errors.
func (s *Sim) douyinV1(w *recorder, r *http.Request) {
	if r.Method != http.MethodGet {
		s.douyinV1Err(w, 40014)
		return
	}
	q := r.URL.Query()
	data, errno := s.douyinExchange(douyinReq{AppID: q.Get("appid"), Secret: q.Get("secret"), Code: q.Get("code"), AnonymousCode: q.Get("anonymous_code")})
	if errno != 0 {
		s.douyinV1Err(w, errno)
		return
	}
	w.note = "ok"
	s.writeAnswer(w, Douyin, douyinV1OK{SessionKey: data.SessionKey, OpenID: data.OpenID, AnonymousOpenID: data.AnonymousOpenID, UnionID: data.UnionID})
}

// douyinExchange checks everything first and consumes the codes only when
// the whole exchange succeeds.
func (s *Sim) douyinExchange(req douyinReq) (douyinData, int) {
	if req.AppID == "" || req.Secret == "" || (req.Code == "" && req.AnonymousCode == "") {
		return douyinData{}, 40014
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.apps[req.AppID]
	if !ok || a.Platform != Douyin {
		return douyinData{}, 40015
	}
	if !secretOK(req.Secret, a.Secret) {
		return douyinData{}, 40017
	}
	now := s.nowLocked()
	var lc *loginCode
	if req.Code != "" {
		lc = s.codes[req.Code]
		if lc == nil || lc.appID != a.AppID || lc.used || !now.Before(lc.expires) {
			return douyinData{}, 40018
		}
	}
	var ac *anonCode
	if req.AnonymousCode != "" {
		ac = s.anonCodes[req.AnonymousCode]
		if ac == nil || ac.appID != a.AppID || ac.used || !now.Before(ac.expires) {
			return douyinData{}, 40019
		}
	}
	var d douyinData
	if lc != nil {
		lc.used = true
		u := s.userLocked(a, lc.user, now)
		d.SessionKey, d.OpenID, d.UnionID = s.liveKeyLocked(u, now), u.openID, u.unionID
	}
	if ac != nil {
		ac.used = true
		d.AnonymousOpenID = anonymousOpenID(a.AppID, ac.device)
	}
	return d, 0
}
