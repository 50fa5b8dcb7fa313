package mpsim

// Douyin server APIs a backend calls with a server token (what an open-API
// gateway relays), from the platform's documentation. Two hosts, two
// tokens, three ways to carry them:
//
//	POST /api/apps/v2/token  (developer.toutiao.com)  {"appid","secret","grant_type":"client_credential"}
//	     → {"err_no":0,"err_tips":"success","data":{"access_token","expires_in":7200}};
//	       40015 appid, 40017 secret, 40020 grant_type, 40014 a parameter
//	       missing (the doc's "other: empty parameter"), with data
//	       {"access_token":"","expires_in":0}
//	POST /api/apps/v1/censor/image/  (open.douyin.com)  header access-token: clt.…, {"app_id","image"|"image_data"}
//	     → {"err_no":0,"err_msg":"image censor success","log_id","predicts":[{"model_name","hit"}]};
//	       28001003 unknown or superseded client token, 28001008 expired,
//	       28001007 app_id not the token's app or no image
//	POST /api/apps/qrcode  (developer.toutiao.com)  {"access_token","appname","path","width",...}
//	     → a PNG (image/png); else {"errcode":40002,"errmsg":"bad access_token"},
//	       40016 appname unknown, 40021 width outside 280-1280
//	POST /api/apps/censor/image  (developer.toutiao.com)  {"app_id","access_token","image"|"image_data"}
//	     → {"error":0,"message":"image censor success","predicts":[...]};
//	       error 2 access_token check failed, 1 bad parameters
//
// The mini-app access_token is read from the JSON body only (a token in
// the query or a header is not one), the client token from the
// access-token header only; a token of the other kind is refused like an
// unknown one. Each /api/apps/v2/token fetch supersedes the app's previous
// token, which stays valid TokenGrace longer (as the documentation says).
// InvalidateTokens kills both kinds. The censors' verdict is the
// simulator's own rule: an image (URL or data) containing one of
// RiskyWords hits "porn".

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Endpoint names of the Douyin server-API calls (Calls, faults).
const (
	EndpointTTAppToken    = "tt_app_token"    // /api/apps/v2/token
	EndpointTTCensorImage = "tt_censor_image" // open.douyin.com /api/apps/v1/censor/image/
	EndpointTTQRCode      = "tt_qrcode"       // /api/apps/qrcode
	EndpointTTCensorV2    = "tt_censor_v2"    // developer.toutiao.com /api/apps/censor/image
)

const (
	kindDouyinAppToken    = "douyin_app"
	ttErrParamsInvalid    = 28001007
	ttErrAppTokenParams   = 40014
	ttErrAppTokenAppID    = 40015
	ttErrAppTokenSecret   = 40017
	ttErrAppTokenGrant    = 40020
	ttErrQRCodeToken      = 40002
	ttErrQRCodeAppName    = 40016
	ttErrQRCodeWidth      = 40021
	ttCensorV2ErrParams   = 1
	ttCensorV2ErrToken    = 2
	ttQRCodeDefaultWidth  = 430
	ttQRCodeMinWidth      = 280
	ttQRCodeMaxWidth      = 1280
	ttPNGSignatureAndHead = "\x89PNG\r\n\x1a\n"
)

type ttAppTokenData struct {
	AccessToken string `json:"access_token"`
	ExpiresIn   int    `json:"expires_in"`
}

type ttAppTokenResp struct {
	ErrNo   jsonNumber     `json:"err_no"`
	ErrTips string         `json:"err_tips"`
	Data    ttAppTokenData `json:"data"`
}

var ttAppTokenTips = map[int]string{
	ttErrAppTokenParams: "bad params",
	ttErrAppTokenAppID:  "bad appid",
	ttErrAppTokenSecret: "bad secret",
	ttErrAppTokenGrant:  "bad grant_type",
	-1:                  "system error",
}

func (s *Sim) ttAppTokenErr(w *recorder, errno int) {
	w.note = "err_no=" + strconv.Itoa(errno)
	tips, ok := ttAppTokenTips[errno]
	if !ok {
		tips = douyinMessage(errno)
	}
	s.writeAnswer(w, Douyin, ttAppTokenResp{ErrNo: s.number(w, errno), ErrTips: tips})
}

// douyinAppToken: POST /api/apps/v2/token.
func (s *Sim) douyinAppToken(w *recorder, r *http.Request) {
	var req struct {
		AppID     string `json:"appid"`
		Secret    string `json:"secret"`
		GrantType string `json:"grant_type"`
	}
	if r.Method != http.MethodPost || readJSON(r, &req, false) != nil || req.AppID == "" || req.Secret == "" {
		s.ttAppTokenErr(w, ttErrAppTokenParams)
		return
	}
	if req.GrantType != "client_credential" {
		s.ttAppTokenErr(w, ttErrAppTokenGrant)
		return
	}
	s.mu.Lock()
	a, ok := s.apps[req.AppID]
	if !ok || a.Platform != Douyin {
		s.mu.Unlock()
		s.ttAppTokenErr(w, ttErrAppTokenAppID)
		return
	}
	if !secretOK(req.Secret, a.Secret) {
		s.mu.Unlock()
		s.ttAppTokenErr(w, ttErrAppTokenSecret)
		return
	}
	now := s.nowLocked()
	s.pruneLocked(now)
	at := s.appTok[a.AppID]
	if at == nil {
		at = &appTokens{}
		s.appTok[a.AppID] = at
	}
	if t := s.tokens[at.app]; t != nil && t.status(now) == 0 {
		if dead := now.Add(TokenGrace); t.deadAt.IsZero() || dead.Before(t.deadAt) {
			t.deadAt = dead
		}
	}
	tok := "0801121" + randHex(48) // the documented sample's look
	s.tokens[tok] = &token{appID: a.AppID, kind: kindDouyinAppToken, expires: now.Add(AccessTokenTTL)}
	at.app = tok
	s.mu.Unlock()
	w.note = "ok"
	s.writeAnswer(w, Douyin, ttAppTokenResp{ErrNo: s.number(w, 0), ErrTips: "success",
		Data: ttAppTokenData{AccessToken: tok, ExpiresIn: int(AccessTokenTTL / time.Second)}})
}

// ttTokenApp checks a Douyin server token of the given kind: the app it
// belongs to, or 0 and the token's status (40001 unknown, superseded or of
// the other kind; 42001 expired).
func (s *Sim) ttTokenApp(tok, kind string) (string, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tokens[tok]
	if tok == "" || t == nil || t.kind != kind {
		return "", 40001
	}
	if st := t.status(s.nowLocked()); st != 0 {
		return "", st
	}
	return t.appID, 0
}

type ttPredict struct {
	ModelName string `json:"model_name"`
	Hit       bool   `json:"hit"`
}

// ttPredicts is the simulator's verdict on an image.
func ttPredicts(image string) []ttPredict {
	hit := false
	for _, rw := range RiskyWords {
		if strings.Contains(image, rw) {
			hit = true
		}
	}
	return []ttPredict{{"porn", hit}, {"ad", false}, {"bloody", false}}
}

type ttCensorReq struct {
	AppID       string `json:"app_id"`
	AccessToken string `json:"access_token"`
	Image       string `json:"image"`
	ImageData   string `json:"image_data"`
}

type ttCensorV3Resp struct {
	ErrNo    jsonNumber  `json:"err_no"`
	ErrMsg   string      `json:"err_msg"`
	LogID    string      `json:"log_id"`
	Predicts []ttPredict `json:"predicts,omitempty"`
}

func (s *Sim) ttOpenErr(w *recorder, errno int) {
	w.note = "err_no=" + strconv.Itoa(errno)
	msg := map[int]string{ttErrTokenInvalid: "access_token无效", ttErrTokenExpired: "access_token过期,请刷新或重新授权", ttErrParamsInvalid: "参数不合法", -1: "系统繁忙"}[errno]
	s.writeAnswer(w, Douyin, ttCensorV3Resp{ErrNo: s.number(w, errno), ErrMsg: msg, LogID: logID(s.Now())})
}

// douyinCensorImageV3: POST /api/apps/v1/censor/image/ (open.douyin.com).
func (s *Sim) douyinCensorImageV3(w *recorder, r *http.Request) {
	app, st := s.ttTokenApp(r.Header.Get("access-token"), kindClientToken)
	switch st {
	case 40001:
		s.ttOpenErr(w, ttErrTokenInvalid)
		return
	case 42001:
		s.ttOpenErr(w, ttErrTokenExpired)
		return
	}
	var req ttCensorReq
	if r.Method != http.MethodPost || readJSON(r, &req, false) != nil || req.AppID != app || (req.Image == "" && req.ImageData == "") {
		s.ttOpenErr(w, ttErrParamsInvalid)
		return
	}
	w.note = "ok"
	s.writeAnswer(w, Douyin, ttCensorV3Resp{ErrNo: s.number(w, 0), ErrMsg: "image censor success", LogID: logID(s.Now()),
		Predicts: ttPredicts(req.Image + req.ImageData)})
}

// bodyToken reads a JSON body and the access_token member in it (nil
// body: not a JSON object).
func bodyToken(r *http.Request, v any) (string, bool) {
	var m map[string]json.RawMessage
	if readJSON(r, &m, false) != nil {
		return "", false
	}
	raw, _ := json.Marshal(m)
	if json.Unmarshal(raw, v) != nil {
		return "", false
	}
	var tok string
	_ = json.Unmarshal(m["access_token"], &tok)
	return tok, true
}

type ttErrcodeResp struct {
	Errcode jsonNumber `json:"errcode"`
	Errmsg  string     `json:"errmsg"`
}

func (s *Sim) ttQRCodeErr(w *recorder, code int) {
	w.note = "errcode=" + strconv.Itoa(code)
	msg := map[int]string{ttErrQRCodeToken: "bad access_token", ttErrQRCodeAppName: "bad appname", ttErrQRCodeWidth: "bad width", -1: "system error"}[code]
	s.writeAnswer(w, Douyin, ttErrcodeResp{Errcode: s.number(w, code), Errmsg: msg})
}

// douyinQRCode: POST /api/apps/qrcode. The image is a PNG of the
// simulator's own (signature, then the app id, path and width as text: a
// test can tell it was made for its request).
func (s *Sim) douyinQRCode(w *recorder, r *http.Request) {
	var req struct {
		AppName string          `json:"appname"`
		Path    string          `json:"path"`
		Width   json.RawMessage `json:"width"`
	}
	tok, ok := bodyToken(r, &req)
	if r.Method != http.MethodPost || !ok {
		s.ttQRCodeErr(w, ttErrQRCodeToken) // no body, no token
		return
	}
	app, st := s.ttTokenApp(tok, kindDouyinAppToken)
	if st != 0 {
		s.ttQRCodeErr(w, ttErrQRCodeToken)
		return
	}
	switch req.AppName {
	case "", "toutiao", "toutiao_lite", "douyin", "douyin_lite", "pipixia", "huoshan", "xigua":
	default:
		s.ttQRCodeErr(w, ttErrQRCodeAppName)
		return
	}
	width := ttQRCodeDefaultWidth
	if len(req.Width) > 0 {
		n, err := strconv.Atoi(strings.Trim(string(req.Width), `"`))
		if err != nil || n < ttQRCodeMinWidth || n > ttQRCodeMaxWidth {
			s.ttQRCodeErr(w, ttErrQRCodeWidth)
			return
		}
		width = n
	}
	w.note = "ok"
	w.Header().Set("Content-Type", "image/png")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte(ttPNGSignatureAndHead + "mpsim-qrcode app=" + app + " path=" + req.Path + " width=" + strconv.Itoa(width) + "\x00\xff"))
}

type ttCensorV2Resp struct {
	Error    jsonNumber  `json:"error"`
	Message  string      `json:"message"`
	Predicts []ttPredict `json:"predicts,omitempty"`
}

func (s *Sim) ttCensorV2Err(w *recorder, code int) {
	w.note = "error=" + strconv.Itoa(code)
	msg := map[int]string{ttCensorV2ErrParams: "bad params", ttCensorV2ErrToken: "access_token check failed", 4: "internal error", -1: "internal error"}[code]
	s.writeAnswer(w, Douyin, ttCensorV2Resp{Error: s.number(w, code), Message: msg})
}

// douyinCensorImageV2: POST /api/apps/censor/image (developer.toutiao.com).
func (s *Sim) douyinCensorImageV2(w *recorder, r *http.Request) {
	var req ttCensorReq
	tok, ok := bodyToken(r, &req)
	if r.Method != http.MethodPost || !ok {
		s.ttCensorV2Err(w, ttCensorV2ErrParams)
		return
	}
	app, st := s.ttTokenApp(tok, kindDouyinAppToken)
	if st != 0 {
		s.ttCensorV2Err(w, ttCensorV2ErrToken)
		return
	}
	if req.AppID != app || (req.Image == "" && req.ImageData == "") {
		s.ttCensorV2Err(w, ttCensorV2ErrParams)
		return
	}
	w.note = "ok"
	s.writeAnswer(w, Douyin, ttCensorV2Resp{Error: s.number(w, 0), Message: "image censor success", Predicts: ttPredicts(req.Image + req.ImageData)})
}
