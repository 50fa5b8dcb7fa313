package mpsim

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// The control API, under /_sim/. JSON in, JSON out; errors are
// {"error": "..."} with 400 (404 for an unknown path, 405 for a wrong method).
//
//	GET    /_sim/apps             → {"apps":[{"platform","appid","unionid"}]} (no secrets)
//	POST   /_sim/apps             App {"platform","appid","secret","unionid"} → {"ok":true}
//	POST   /_sim/login            {"appid","user"} → {"code","openid","unionid"}
//	POST   /_sim/anonymous_login  {"appid","device"} → {"anonymous_code","anonymous_openid"}
//	POST   /_sim/encrypt          {"appid","user","data":{...},"previous":bool,"watermark_appid":"","no_watermark":bool} → {"encryptedData","iv"}
//	POST   /_sim/phone            {"appid","user","phone"} → {"encryptedData","iv"}
//	POST   /_sim/phone_code       {"appid","user","phone"} → {"code"} (WeChat or Douyin)
//	POST   /_sim/public_key       {"appid","public_key":"<PEM>"} → {"ok":true} (a Douyin or Alipay app's public key)
//	POST   /_sim/alipay_phone     {"appid","user","phone"} → {"response"} (my.getPhoneNumber's res.response text)
//	GET    /_sim/alipay_keys[?appid=]  → {"alipay_public_key":"<PEM>","aes_key"} (the simulator's Alipay key; the app's AES key)
//	POST   /_sim/phone_button     {"appid","user","phone"} → {"errMsg","code","encryptedData","iv","cloudID"} (e.detail of the button)
//	POST   /_sim/werun            {"appid","user","steps":[{"timestamp","step"}]} → {"encryptedData","iv"} (steps optional)
//	POST   /_sim/rotate_key       {"appid","user"} → {"ok":true}
//	POST   /_sim/invalidate_token {"appid","expired":bool} → {"ok":true} (every live server token of a WeChat, Douyin, Feishu or Lark app dies now; WeChat: 40001, or 42001 with expired)
//	GET    /_sim/quirks           → QuirksJSON
//	POST   /_sim/quirks           QuirksJSON {"seed","wechat_content_type","success_errcode","string_errcode","werun_watermark","key_idle_ttl"} → QuirksJSON in force
//	POST   /_sim/advance          {"duration":"10m"} → {"now"}
//	GET    /_sim/faults           → {"faults":[...]}
//	POST   /_sim/faults           {"endpoint","platform","errcode","http_status","delay":"2s","times"} → {"ok":true}
//	DELETE /_sim/faults           → {"ok":true}
//	GET    /_sim/stats            → {"calls":{"jscode2session":N,...},"now":"RFC 3339"}
//	POST   /_sim/reset            → {"ok":true}
//
// Unknown fields in a request body are an error (to catch typos).

type ctlError struct {
	Error string `json:"error"`
}

type okResp struct {
	OK bool `json:"ok"`
}

type ctlUserReq struct {
	AppID  string `json:"appid"`
	User   string `json:"user"`
	Device string `json:"device"`
	Phone  string `json:"phone"`
}

type ctlEncryptReq struct {
	AppID          string         `json:"appid"`
	User           string         `json:"user"`
	Data           map[string]any `json:"data"`
	Previous       bool           `json:"previous"`
	WatermarkAppID string         `json:"watermark_appid"`
	NoWatermark    bool           `json:"no_watermark"`
}

type ctlWeRunReq struct {
	AppID string `json:"appid"`
	User  string `json:"user"`
	Steps []Step `json:"steps"`
}

type ctlEncrypted struct {
	EncryptedData string `json:"encryptedData"`
	IV            string `json:"iv"`
}

// FaultJSON is a Fault as the control API reads and writes it (Delay as a
// Go duration string).
type FaultJSON struct {
	Endpoint   string `json:"endpoint"`
	Platform   string `json:"platform,omitempty"`
	Errcode    int    `json:"errcode,omitempty"`
	HTTPStatus int    `json:"http_status,omitempty"`
	Delay      string `json:"delay,omitempty"`
	Times      int    `json:"times,omitempty"`
	// HTTPStatusAlt accepts the Go field name ("HTTPStatus") as well.
	HTTPStatusAlt int `json:"httpstatus,omitempty"`
}

// ParseFault validates a FaultJSON.
func ParseFault(j FaultJSON) (Fault, error) {
	if j.HTTPStatus == 0 {
		j.HTTPStatus = j.HTTPStatusAlt
	}
	f := Fault{Endpoint: j.Endpoint, Platform: j.Platform, Errcode: j.Errcode, HTTPStatus: j.HTTPStatus, Times: j.Times}
	known := f.Endpoint == EndpointAll
	for _, e := range Endpoints {
		known = known || f.Endpoint == e
	}
	if !known {
		return Fault{}, fmt.Errorf("endpoint must be one of %q or %q, not %q", Endpoints, EndpointAll, f.Endpoint)
	}
	if f.Platform != "" && f.Platform != WeChat && f.Platform != Douyin && f.Platform != QQ && f.Platform != Baidu && f.Platform != Kuaishou && f.Platform != Feishu {
		return Fault{}, fmt.Errorf("platform must be empty, %q, %q, %q, %q, %q or %q (Feishu's faults apply to Lark too)", WeChat, Douyin, QQ, Baidu, Kuaishou, Feishu)
	}
	if j.Delay != "" {
		d, err := time.ParseDuration(j.Delay)
		if err != nil || d < 0 {
			return Fault{}, fmt.Errorf("delay must be a non-negative duration such as \"2s\"")
		}
		f.Delay = d
	}
	if f.HTTPStatus != 0 && (f.HTTPStatus < 100 || f.HTTPStatus > 599) {
		return Fault{}, fmt.Errorf("http_status must be 100..599")
	}
	if f.Times < 0 {
		return Fault{}, fmt.Errorf("times must be >= 0")
	}
	if f.Errcode == 0 && f.HTTPStatus == 0 && f.Delay == 0 {
		return Fault{}, fmt.Errorf("a fault needs errcode, http_status or delay")
	}
	return f, nil
}

func faultToJSON(f Fault) FaultJSON {
	j := FaultJSON{Endpoint: f.Endpoint, Platform: f.Platform, Errcode: f.Errcode, HTTPStatus: f.HTTPStatus, Times: f.Times}
	if f.Delay != 0 {
		j.Delay = f.Delay.String()
	}
	return j
}

type publicApp struct {
	Platform string `json:"platform"`
	AppID    string `json:"appid"`
	UnionID  bool   `json:"unionid"`
}

func (s *Sim) control(w *recorder, r *http.Request) {
	bad := func(err error) {
		w.note = "control error"
		writeJSON(w, http.StatusBadRequest, ctlError{Error: err.Error()})
	}
	method := func(allowed ...string) bool {
		for _, m := range allowed {
			if r.Method == m {
				return true
			}
		}
		w.Header().Set("Allow", strings.Join(allowed, ", "))
		writeJSON(w, http.StatusMethodNotAllowed, ctlError{Error: "method not allowed"})
		return false
	}
	decode := func(v any) bool {
		if err := readJSON(r, v, true); err != nil {
			bad(fmt.Errorf("bad JSON body: %w", err))
			return false
		}
		return true
	}

	switch r.URL.Path {
	case "/_sim/apps":
		if !method(http.MethodGet, http.MethodPost) {
			return
		}
		if r.Method == http.MethodGet {
			apps := []publicApp{}
			for _, a := range s.Apps() {
				apps = append(apps, publicApp{a.Platform, a.AppID, a.UnionID})
			}
			writeJSON(w, http.StatusOK, map[string]any{"apps": apps})
			return
		}
		var a App
		if !decode(&a) {
			return
		}
		if err := ValidateApp(a); err != nil {
			bad(err)
			return
		}
		s.AddApp(a)
		writeJSON(w, http.StatusOK, okResp{true})

	case "/_sim/login":
		var req ctlUserReq
		if !method(http.MethodPost) || !decode(&req) {
			return
		}
		res, err := s.Login(req.AppID, req.User)
		if err != nil {
			bad(err)
			return
		}
		writeJSON(w, http.StatusOK, res)

	case "/_sim/anonymous_login":
		var req ctlUserReq
		if !method(http.MethodPost) || !decode(&req) {
			return
		}
		code, err := s.AnonymousLogin(req.AppID, req.Device)
		if err != nil {
			bad(err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"anonymous_code": code, "anonymous_openid": AnonymousOpenID(req.AppID, req.Device)})

	case "/_sim/encrypt":
		var req ctlEncryptReq
		if !method(http.MethodPost) || !decode(&req) {
			return
		}
		if req.Data == nil {
			bad(errors.New("data (a JSON object) is required"))
			return
		}
		ed, iv, err := s.Encrypt(req.AppID, req.User, req.Data, EncryptOptions{Previous: req.Previous, WatermarkAppID: req.WatermarkAppID, NoWatermark: req.NoWatermark})
		if err != nil {
			bad(err)
			return
		}
		writeJSON(w, http.StatusOK, ctlEncrypted{ed, iv})

	case "/_sim/phone":
		var req ctlUserReq
		if !method(http.MethodPost) || !decode(&req) {
			return
		}
		ed, iv, err := s.EncryptPhone(req.AppID, req.User, req.Phone)
		if err != nil {
			bad(err)
			return
		}
		writeJSON(w, http.StatusOK, ctlEncrypted{ed, iv})

	case "/_sim/phone_code":
		var req ctlUserReq
		if !method(http.MethodPost) || !decode(&req) {
			return
		}
		code, err := s.PhoneCode(req.AppID, req.User, req.Phone)
		if err != nil {
			bad(err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"code": code})

	case "/_sim/alipay_phone":
		var req ctlUserReq
		if !method(http.MethodPost) || !decode(&req) {
			return
		}
		resp, err := s.AlipayPhoneResponse(req.AppID, req.User, req.Phone)
		if err != nil {
			bad(err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"response": resp})

	case "/_sim/alipay_keys":
		// The simulator's Alipay public key, and an app's AES key.
		if !method(http.MethodGet) {
			return
		}
		out := map[string]string{"alipay_public_key": AlipayPublicKeyPEM()}
		if id := r.URL.Query().Get("appid"); id != "" {
			out["aes_key"] = AlipayAESKey(id)
		}
		writeJSON(w, http.StatusOK, out)

	case "/_sim/public_key":
		var req struct {
			AppID     string `json:"appid"`
			PublicKey string `json:"public_key"`
		}
		if !method(http.MethodPost) || !decode(&req) {
			return
		}
		pub, err := ParsePublicKey([]byte(req.PublicKey))
		if err == nil {
			err = s.SetPublicKey(req.AppID, pub)
		}
		if err != nil {
			bad(err)
			return
		}
		writeJSON(w, http.StatusOK, okResp{OK: true})

	case "/_sim/phone_button":
		var req ctlUserReq
		if !method(http.MethodPost) || !decode(&req) {
			return
		}
		res, err := s.PhoneButton(req.AppID, req.User, req.Phone)
		if err != nil {
			bad(err)
			return
		}
		writeJSON(w, http.StatusOK, res)

	case "/_sim/werun":
		var req ctlWeRunReq
		if !method(http.MethodPost) || !decode(&req) {
			return
		}
		ed, iv, err := s.WeRun(req.AppID, req.User, req.Steps)
		if err != nil {
			bad(err)
			return
		}
		writeJSON(w, http.StatusOK, ctlEncrypted{ed, iv})

	case "/_sim/rotate_key":
		var req ctlUserReq
		if !method(http.MethodPost) || !decode(&req) {
			return
		}
		if err := s.RotateKey(req.AppID, req.User); err != nil {
			bad(err)
			return
		}
		writeJSON(w, http.StatusOK, okResp{true})

	case "/_sim/invalidate_token":
		var req struct {
			AppID   string `json:"appid"`
			Expired bool   `json:"expired"`
		}
		if !method(http.MethodPost) || !decode(&req) {
			return
		}
		if err := s.InvalidateTokens(req.AppID, req.Expired); err != nil {
			bad(err)
			return
		}
		writeJSON(w, http.StatusOK, okResp{true})

	case "/_sim/quirks":
		if !method(http.MethodGet, http.MethodPost) {
			return
		}
		if r.Method == http.MethodPost {
			var j QuirksJSON
			if !decode(&j) {
				return
			}
			q, err := ParseQuirks(j)
			if err == nil {
				err = s.SetQuirks(q)
			}
			if err != nil {
				bad(err)
				return
			}
		}
		writeJSON(w, http.StatusOK, QuirksToJSON(s.Quirks()))

	case "/_sim/advance":
		var req struct {
			Duration string `json:"duration"`
		}
		if !method(http.MethodPost) || !decode(&req) {
			return
		}
		d, err := time.ParseDuration(req.Duration)
		if err != nil || d < 0 {
			bad(errors.New("duration must be a non-negative Go duration such as \"10m\""))
			return
		}
		s.Advance(d)
		writeJSON(w, http.StatusOK, map[string]string{"now": s.Now().Format(time.RFC3339Nano)})

	case "/_sim/faults":
		if !method(http.MethodGet, http.MethodPost, http.MethodDelete) {
			return
		}
		switch r.Method {
		case http.MethodGet:
			out := []FaultJSON{}
			for _, f := range s.Faults() {
				out = append(out, faultToJSON(f))
			}
			writeJSON(w, http.StatusOK, map[string]any{"faults": out})
		case http.MethodDelete:
			s.ClearFaults()
			writeJSON(w, http.StatusOK, okResp{true})
		default:
			var j FaultJSON
			if !decode(&j) {
				return
			}
			f, err := ParseFault(j)
			if err != nil {
				bad(err)
				return
			}
			s.Inject(f)
			writeJSON(w, http.StatusOK, okResp{true})
		}

	case "/_sim/stats":
		if !method(http.MethodGet) {
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"calls": s.AllCalls(), "now": s.Now().Format(time.RFC3339Nano)})

	case "/_sim/reset":
		if !method(http.MethodPost) {
			return
		}
		s.Reset()
		writeJSON(w, http.StatusOK, okResp{true})

	default:
		writeJSON(w, http.StatusNotFound, ctlError{Error: "unknown control endpoint " + r.URL.Path})
	}
}
