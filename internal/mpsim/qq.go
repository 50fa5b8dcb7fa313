package mpsim

import (
	"net/http"
	"strconv"
)

// QQ mini programs (QQ小程序): login only. QQ documents
//
//	GET https://api.q.qq.com/sns/jscode2session?appid&secret&js_code&grant_type=authorization_code
//
// answering {"openid","session_key","unionid"} (unionid when the app is
// bound to an open-platform account) or {"errcode","errmsg"}, with -1
// (busy), 40029 (invalid code) and 45011 (about 100 logins per user per
// minute); the login code is single use. That is WeChat's path and shape,
// so the simulator, serving every platform on one origin, tells the two
// apart by the appid: a QQ app's exchange is answered here (see route).
// Where QQ says no more than "as WeChat" the simulator is as unkind as it
// is for WeChat: answers labelled Quirks.WeChatContentType, errcode 0
// present or absent (SuccessErrcode), error numbers as strings
// (StringErrcode), ", rid: ..." after errmsg. Choices where QQ documents
// nothing, made as for WeChat: a reused code answers 40163 "code been
// used"; a wrong secret 40125; missing parameters 41002/41004/41008; a bad
// grant_type 40002; a method other than GET 41002 (the query of a GET only
// is read); the code lives QQCodeTTL (QQ's lifetime is undocumented;
// WeChat's 5 minutes by default). QQ documents no server-side phone-code
// exchange and no server token here: PhoneCode refuses QQ apps, and the
// getPhoneNumber button (PhoneButton) gives encryptedData/iv only. Its
// encrypted payloads are WeChat's: AES-128-CBC, PKCS#7, watermark {appid,
// timestamp} (Encrypt).

// qqMessages are the errmsg texts QQ answers with (its documented numbers,
// and the ones taken from WeChat as said above).
var qqMessages = map[int]string{
	-1:    "system error",
	40002: "invalid grant_type",
	40013: "invalid appid",
	40029: "invalid code",
	40125: "invalid appsecret",
	40163: "code been used",
	41002: "appid missing",
	41004: "appsecret missing",
	41008: "missing code",
	45011: "api minute-quota reach limit mustslower retry next minute",
}

// qqErrorAnswer and qqSessionAnswer are QQ's answers, typed here from QQ's
// documentation (the simulator shares no type with the plugin, nor with
// its own WeChat answers).
type qqErrorAnswer struct {
	Errcode jsonNumber `json:"errcode"`
	Errmsg  string     `json:"errmsg"`
}

type qqSessionAnswer struct {
	Errcode    *jsonNumber `json:"errcode,omitempty"`
	Errmsg     string      `json:"errmsg,omitempty"`
	OpenID     string      `json:"openid"`
	SessionKey string      `json:"session_key"`
	UnionID    string      `json:"unionid,omitempty"`
}

func (s *Sim) qqErr(w *recorder, errcode int) {
	msg, ok := qqMessages[errcode]
	if !ok {
		msg = "error " + strconv.Itoa(errcode)
	}
	w.note = "errcode=" + strconv.Itoa(errcode)
	s.writeAnswer(w, QQ, qqErrorAnswer{Errcode: s.number(w, errcode), Errmsg: msg + ", rid: " + rid(s.Now())})
}

// isQQApp reports whether appID is a registered QQ app.
func (s *Sim) isQQApp(appID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.apps[appID]
	return ok && a.Platform == QQ
}

// qqCode2Session: GET /sns/jscode2session?appid&secret&js_code&grant_type
// for a QQ app.
func (s *Sim) qqCode2Session(w *recorder, r *http.Request) {
	if r.Method != http.MethodGet {
		s.qqErr(w, 41002)
		return
	}
	q := r.URL.Query()
	appID, secret, code := q.Get("appid"), q.Get("secret"), q.Get("js_code")
	switch {
	case appID == "":
		s.qqErr(w, 41002)
		return
	case secret == "":
		s.qqErr(w, 41004)
		return
	case code == "":
		s.qqErr(w, 41008)
		return
	case q.Get("grant_type") != "authorization_code":
		s.qqErr(w, 40002)
		return
	}
	res, errcode := s.qqExchange(appID, secret, code)
	if errcode != 0 {
		s.qqErr(w, errcode)
		return
	}
	w.note = "ok"
	if qk := s.Quirks(); qk.pick(qk.SuccessErrcode, "success-errcode", w.endpoint, w.n) {
		n := s.number(w, 0)
		res.Errcode, res.Errmsg = &n, "ok"
	}
	s.writeAnswer(w, QQ, res)
}

func (s *Sim) qqExchange(appID, secret, code string) (qqSessionAnswer, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.apps[appID]
	if !ok || a.Platform != QQ {
		return qqSessionAnswer{}, 40013
	}
	if !secretOK(secret, a.Secret) {
		return qqSessionAnswer{}, 40125
	}
	now := s.nowLocked()
	c := s.codes[code]
	if c == nil || c.appID != a.AppID {
		return qqSessionAnswer{}, 40029
	}
	u := s.userLocked(a, c.user, now)
	if u.rateLocked(EndpointJSCode2Session, now) {
		return qqSessionAnswer{}, 45011
	}
	if !now.Before(c.expires) {
		return qqSessionAnswer{}, 40029
	}
	if c.used {
		return qqSessionAnswer{}, 40163
	}
	c.used = true
	return qqSessionAnswer{OpenID: u.openID, SessionKey: s.liveKeyLocked(u, now), UnionID: u.unionID}, 0
}
