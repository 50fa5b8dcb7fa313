package mpsim

import (
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Kuaishou mini programs (快手小程序): login only.
//
//	POST https://open.kuaishou.com/oauth2/mp/code2session  app_id, app_secret, js_code
//
// answers {"result": 1, "session_key", "open_id"}, or result ≠ 1 with
// "error" and "error_msg". SDKs send the parameters as a form body or in
// the query string; the simulator accepts both (the form wins where both
// have a field). Kuaishou publishes no error table for this call; the
// simulator's choices: a missing parameter or another method than POST
// answers result 100200100 "invalid_request" (the number is the one
// Kuaishou documents for bad parameters of its access-token call); an
// unknown app or a wrong secret 100200101 "invalid_client" (likewise); a
// login code unknown, of another app, expired or used 100200100
// "invalid_grant". The code is single use and lives KuaishouCodeTTL: the
// lifetime is not confirmed (an SDK comment says 10 minutes). Payloads
// are WeChat's (AES-128-CBC, PKCS#7) with a watermark {appid, timestamp}
// by default (Encrypt; EncryptOptions.NoWatermark leaves it out): whether
// Kuaishou's payloads carry one is not confirmed.

// Kuaishou is the platform name.
const Kuaishou = "kuaishou"

// KuaishouCodeTTL is how long a Kuaishou login code lives (unconfirmed; an
// SDK comment says 10 minutes).
const KuaishouCodeTTL = 10 * time.Minute

const (
	ksResultBadParams = 100200100
	ksResultBadClient = 100200101
)

type ksError struct {
	Result   jsonNumber `json:"result"`
	Error    string     `json:"error"`
	ErrorMsg string     `json:"error_msg"`
}

type ksOK struct {
	Result     int    `json:"result"`
	SessionKey string `json:"session_key"`
	OpenID     string `json:"open_id"`
}

var ksMessages = map[string]string{
	"invalid_request": "invalid request parameters",
	"invalid_client":  "app_id or app_secret is invalid",
	"invalid_grant":   "js_code is invalid, expired or used",
}

func (s *Sim) ksFail(w *recorder, result int, name string) {
	msg := ksMessages[name]
	if msg == "" {
		msg = "error " + strconv.Itoa(result)
	}
	w.note = "result=" + strconv.Itoa(result)
	s.writeAnswer(w, Kuaishou, ksError{Result: s.number(w, result), Error: name, ErrorMsg: msg})
}

// kuaishouErr answers an injected result number.
func (s *Sim) kuaishouErr(w *recorder, result int) { s.ksFail(w, result, "error") }

// kuaishouCode2Session: POST /oauth2/mp/code2session.
func (s *Sim) kuaishouCode2Session(w *recorder, r *http.Request) {
	if r.Method != http.MethodPost {
		s.ksFail(w, ksResultBadParams, "invalid_request")
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil || len(body) > maxBody {
		s.ksFail(w, ksResultBadParams, "invalid_request")
		return
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		s.ksFail(w, ksResultBadParams, "invalid_request")
		return
	}
	q := r.URL.Query()
	get := func(k string) string {
		if v := form.Get(k); v != "" {
			return v
		}
		return q.Get(k)
	}
	appID, secret, code := get("app_id"), get("app_secret"), get("js_code")
	if appID == "" || secret == "" || code == "" {
		s.ksFail(w, ksResultBadParams, "invalid_request")
		return
	}
	s.mu.Lock()
	a, ok := s.apps[appID]
	if !ok || a.Platform != Kuaishou || !secretOK(secret, a.Secret) {
		s.mu.Unlock()
		s.ksFail(w, ksResultBadClient, "invalid_client")
		return
	}
	now := s.nowLocked()
	lc := s.codes[code]
	if lc == nil || lc.appID != a.AppID || lc.used || !now.Before(lc.expires) {
		s.mu.Unlock()
		s.ksFail(w, ksResultBadParams, "invalid_grant")
		return
	}
	lc.used = true
	u := s.userLocked(a, lc.user, now)
	res := ksOK{Result: 1, OpenID: u.openID, SessionKey: s.liveKeyLocked(u, now)}
	s.mu.Unlock()
	w.note = "ok"
	s.writeAnswer(w, Kuaishou, res)
}
