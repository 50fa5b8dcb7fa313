package mpsim

// WeChat server APIs a backend calls with the access token (what an
// open-API gateway relays), from the platform's documentation:
//
//	POST /cgi-bin/message/subscribe/send?access_token  {"touser","template_id","data",...}
//	     → {"errcode":0,"errmsg":"ok"}; 40003 touser not a user of the app,
//	       40037 no template_id, 47003 data missing or not an object
//	POST /wxa/msg_sec_check?access_token  {"version":2,"openid","scene","content"}
//	     → {"errcode":0,"errmsg":"ok","trace_id","result":{"suggest","label"},"detail":[...]}
//	       43302 not a POST, 47001 body not JSON or version not 2,
//	       40003 openid not a user of the app, 40129 scene not 1-4, 44002 no content
//	POST /cgi-bin/media/upload?access_token&type=image  multipart, file field "media"
//	     → {"type":"image","media_id","created_at"}; 40004 type not image,
//	       41005 no media part (the simulator's choice of numbers)
//	GET  /cgi-bin/media/get?access_token&media_id
//	     → the file, binary: Content-Type image/jpeg (or what was uploaded),
//	       Content-disposition: attachment; filename="MEDIA_ID.jpg";
//	       40007 invalid media_id
//
// Every one checks the token first, like getuserphonenumber: 41001 without
// one, 40001 for an unknown or superseded token (or one invalidated by the
// test control InvalidateTokens), 42001 for an expired one; errors are HTTP
// 200 with the errcode JSON, labelled as the WeChatContentType quirk says
// (text/plain by default). The media upload reads the whole body before it
// answers, even with a bad token (so that a client streaming a large body
// sees its answer, as from a real server that drains the request).
//
// msg_sec_check's verdict is the simulator's own rule: content containing
// one of RiskyWords is "risky" (label 20006), anything else "pass" (100).
//
// Media live MediaTTL (3 days, as the platform keeps temporary media); at
// most maxMedia are kept (oldest dropped), each at most MaxMediaSize.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// Endpoint names of the open-API calls (Calls, faults).
const (
	EndpointSubscribeSend = "subscribe_send"
	EndpointMsgSecCheck   = "msg_sec_check"
	EndpointMediaUpload   = "media_upload"
	EndpointMediaGet      = "media_get"
)

// Limits of the simulated media store.
const (
	MediaTTL     = 72 * time.Hour
	MaxMediaSize = 10 << 20
	maxMedia     = 1000
)

// RiskyWords make msg_sec_check answer "risky".
var RiskyWords = []string{"赌博", "risky-content"}

type medium struct {
	appID, contentType string
	data               []byte
	created, expires   time.Time
}

// InvalidateTokens makes every live server token of an app invalid at
// once, behind its holders' backs (as another party forcing a refresh, or
// a secret reset in the console, would): WeChat's access tokens (business
// APIs then answer 40001, or 42001 when expired is set: the tokens then
// count as past their lifetime), Douyin's client tokens and mini-app
// access tokens (28001003 / 28001008, 40002, error 2), Feishu's and
// Lark's app access tokens (10202). The next token call issues a new
// token.
func (s *Sim) InvalidateTokens(appID string, expired bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.appLocked(appID)
	if err != nil {
		return err
	}
	if a.Platform != WeChat && a.Platform != Douyin && !isFeishuFamily(a.Platform) {
		return fmt.Errorf("%w: only WeChat, Douyin, Feishu and Lark apps have server tokens here", ErrWrongPlatform)
	}
	now := s.nowLocked()
	for _, t := range s.tokens {
		if t.appID != appID || t.status(now) != 0 {
			continue
		}
		if expired {
			t.expires = now
		} else {
			t.deadAt = now
		}
	}
	return nil
}

// wechatBusiness checks a business API call's method (else the API's own
// errcode wrongMethod) and token, answering the error itself; ok with the
// token's app otherwise.
func (s *Sim) wechatBusiness(w *recorder, r *http.Request, method string, wrongMethod int) (appID string, ok bool) {
	if r.Method != method {
		s.wechatErr(w, wrongMethod)
		return "", false
	}
	appID, e := s.businessToken(r)
	if e != 0 {
		s.wechatErr(w, e)
		return "", false
	}
	return appID, true
}

// businessToken checks the access_token of a business API call: the app
// it belongs to, or the errcode to answer.
func (s *Sim) businessToken(r *http.Request) (string, int) {
	tok := r.URL.Query().Get("access_token")
	if tok == "" {
		return "", 41001
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tokens[tok]
	if t == nil {
		return "", 40001
	}
	if e := t.status(s.nowLocked()); e != 0 {
		return "", e
	}
	return t.appID, 0
}

// knownOpenIDLocked: openid is a user of the app.
func (s *Sim) knownOpenIDLocked(appID, openid string) bool {
	if openid == "" {
		return false
	}
	for k, u := range s.users {
		if strings.HasPrefix(k, appID+"\x00") && u.openID == openid {
			return true
		}
	}
	return false
}

type subscribeReq struct {
	ToUser     string         `json:"touser"`
	TemplateID string         `json:"template_id"`
	Page       string         `json:"page"`
	Data       map[string]any `json:"data"`
	State      string         `json:"miniprogram_state"`
	Lang       string         `json:"lang"`
}

// wechatSubscribeSend: POST /cgi-bin/message/subscribe/send.
func (s *Sim) wechatSubscribeSend(w *recorder, r *http.Request) {
	appID, ok := s.wechatBusiness(w, r, http.MethodPost, 43002)
	if !ok {
		return
	}
	var req subscribeReq
	if err := readJSON(r, &req, false); err != nil {
		s.wechatErr(w, 47001)
		return
	}
	s.mu.Lock()
	known := s.knownOpenIDLocked(appID, req.ToUser)
	s.mu.Unlock()
	switch {
	case !known:
		s.wechatErr(w, 40003)
	case req.TemplateID == "":
		s.wechatErr(w, 40037)
	case len(req.Data) == 0:
		s.wechatErr(w, 47003)
	default:
		w.note = "ok"
		n := s.number(w, 0)
		s.writeAnswer(w, WeChat, wxStatus{Errcode: &n, Errmsg: "ok"})
	}
}

type secCheckReq struct {
	Version *int   `json:"version"`
	OpenID  string `json:"openid"`
	Scene   int    `json:"scene"`
	Content string `json:"content"`
	Title   string `json:"title"`
	Nick    string `json:"nickname"`
	Sign    string `json:"signature"`
}

type secVerdict struct {
	Suggest string `json:"suggest"`
	Label   int    `json:"label"`
}

type secDetail struct {
	Strategy string `json:"strategy"`
	Errcode  int    `json:"errcode"`
	Suggest  string `json:"suggest"`
	Label    int    `json:"label"`
	Prob     int    `json:"prob,omitempty"`
	Keyword  string `json:"keyword,omitempty"`
}

type secCheckOK struct {
	Errcode jsonNumber  `json:"errcode"`
	Errmsg  string      `json:"errmsg"`
	TraceID string      `json:"trace_id"`
	Result  secVerdict  `json:"result"`
	Detail  []secDetail `json:"detail"`
}

// wechatMsgSecCheck: POST /wxa/msg_sec_check (version 2).
func (s *Sim) wechatMsgSecCheck(w *recorder, r *http.Request) {
	appID, ok := s.wechatBusiness(w, r, http.MethodPost, 43302)
	if !ok {
		return
	}
	var req secCheckReq
	if err := readJSON(r, &req, false); err != nil || req.Version == nil || *req.Version != 2 {
		s.wechatErr(w, 47001)
		return
	}
	s.mu.Lock()
	known := s.knownOpenIDLocked(appID, req.OpenID)
	s.mu.Unlock()
	switch {
	case !known:
		s.wechatErr(w, 40003)
		return
	case req.Scene < 1 || req.Scene > 4:
		s.wechatErr(w, 40129)
		return
	case req.Content == "":
		s.wechatErr(w, 44002)
		return
	}
	v := secVerdict{Suggest: "pass", Label: 100}
	d := secDetail{Strategy: "content_model", Suggest: "pass", Label: 100, Prob: 90}
	for _, word := range RiskyWords {
		if strings.Contains(req.Content, word) {
			v = secVerdict{Suggest: "risky", Label: 20006}
			d = secDetail{Strategy: "keyword", Suggest: "risky", Label: 20006, Keyword: word}
			break
		}
	}
	w.note = "ok " + v.Suggest
	s.writeAnswer(w, WeChat, secCheckOK{
		Errcode: s.number(w, 0), Errmsg: "ok", TraceID: rid(s.Now()), Result: v, Detail: []secDetail{d},
	})
}

type mediaOK struct {
	Type      string `json:"type"`
	MediaID   string `json:"media_id"`
	CreatedAt int64  `json:"created_at"`
}

// wechatMediaUpload: POST /cgi-bin/media/upload?type=image, multipart
// form with the file in "media".
func (s *Sim) wechatMediaUpload(w *recorder, r *http.Request) {
	// The whole body first (bounded), whatever the answer.
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxMediaSize+1<<20))
	appID, ok := s.wechatBusiness(w, r, http.MethodPost, 43002)
	if !ok {
		return
	}
	if err != nil {
		s.wechatErr(w, 47001)
		return
	}
	if r.URL.Query().Get("type") != "image" {
		s.wechatErr(w, 40004)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	mr, err := r.MultipartReader()
	if err != nil {
		s.wechatErr(w, 41005)
		return
	}
	var data []byte
	ct := ""
	for {
		part, err := mr.NextPart()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				s.wechatErr(w, 47001)
				return
			}
			break
		}
		if part.FormName() == "media" && data == nil {
			data, err = io.ReadAll(io.LimitReader(part, MaxMediaSize+1))
			if err != nil || len(data) > MaxMediaSize {
				s.wechatErr(w, 40006) // invalid media size
				return
			}
			ct = part.Header.Get("Content-Type")
		}
		part.Close()
	}
	if len(data) == 0 {
		s.wechatErr(w, 41005)
		return
	}
	if ct == "" || ct == "application/octet-stream" {
		ct = http.DetectContentType(data)
	}
	id := randAlnum(64)
	s.mu.Lock()
	now := s.nowLocked()
	if len(s.media) >= maxMedia {
		var oldest string
		for k, m := range s.media {
			if oldest == "" || m.created.Before(s.media[oldest].created) {
				oldest = k
			}
		}
		delete(s.media, oldest)
	}
	s.media[id] = &medium{appID: appID, contentType: ct, data: data, created: now, expires: now.Add(MediaTTL)}
	s.mu.Unlock()
	w.note = fmt.Sprintf("ok %d bytes", len(data))
	s.writeAnswer(w, WeChat, mediaOK{Type: "image", MediaID: id, CreatedAt: now.Unix()})
}

// wechatMediaGet: GET /cgi-bin/media/get?media_id: the file, binary.
func (s *Sim) wechatMediaGet(w *recorder, r *http.Request) {
	appID, ok := s.wechatBusiness(w, r, http.MethodGet, 43001)
	if !ok {
		return
	}
	id := r.URL.Query().Get("media_id")
	s.mu.Lock()
	m := s.media[id]
	ok = m != nil && m.appID == appID && s.nowLocked().Before(m.expires)
	s.mu.Unlock()
	if !ok {
		s.wechatErr(w, 40007)
		return
	}
	w.note = fmt.Sprintf("ok %d bytes", len(m.data))
	h := w.Header()
	h.Set("Content-Type", m.contentType)
	h.Set("Content-disposition", `attachment; filename="`+id+`.jpg"`)
	h.Set("Cache-Control", "no-cache, must-revalidate")
	h.Set("Content-Length", fmt.Sprint(len(m.data)))
	w.WriteHeader(http.StatusOK)
	w.Write(m.data)
}
