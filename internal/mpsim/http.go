package mpsim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

const maxBody = 64 << 10

// recorder remembers the status and an outcome note for the request log.
type recorder struct {
	http.ResponseWriter
	status   int
	note     string
	endpoint string // the platform endpoint called ("" for the control API)
	n        int    // the call's index: the endpoint's call count including this call
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// ServeHTTP serves the platform endpoints and the control API.
func (s *Sim) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &recorder{ResponseWriter: w}
	s.route(rec, r)
	if s.logger != nil {
		// Path only: the query carries secrets, codes and tokens.
		note := rec.note
		if note != "" {
			note = " " + note
		}
		s.logger.Printf("%s %s %d%s %s", r.Method, r.URL.Path, rec.status, note, time.Since(start).Round(time.Microsecond))
	}
}

func (s *Sim) route(w *recorder, r *http.Request) {
	p := r.URL.Path
	switch {
	case p == "/sns/jscode2session" && s.isQQApp(r.URL.Query().Get("appid")):
		// QQ's path and WeChat's are the same; the appid tells them apart.
		s.platformCall(w, r, EndpointJSCode2Session, QQ, s.qqErr, s.qqCode2Session)
	case p == "/sns/jscode2session":
		s.platformCall(w, r, EndpointJSCode2Session, WeChat, s.wechatErr, s.wechatCode2Session)
	case p == "/cgi-bin/token":
		s.platformCall(w, r, EndpointToken, WeChat, s.wechatErr, s.wechatToken)
	case p == "/cgi-bin/stable_token":
		s.platformCall(w, r, EndpointStableToken, WeChat, s.wechatErr, s.wechatStableToken)
	case p == "/wxa/business/getuserphonenumber":
		s.platformCall(w, r, EndpointGetUserPhoneNumber, WeChat, s.wechatErr, s.wechatPhone)
	case p == "/api/apps/v2/jscode2session":
		s.platformCall(w, r, EndpointJSCode2Session, Douyin, s.douyinErr, s.douyinV2)
	case p == "/api/apps/jscode2session":
		s.platformCall(w, r, EndpointJSCode2Session, Douyin, s.douyinV1Err, s.douyinV1)
	case p == "/oauth/client_token/":
		s.platformCall(w, r, EndpointClientToken, Douyin, s.clientTokenErr, s.douyinClientToken)
	case p == "/api/apps/v1/get_phonenumber_info/":
		s.platformCall(w, r, EndpointGetPhoneNumberInfo, Douyin, s.douyinPhoneErr, s.douyinPhone)
	case p == "/api/apps/v2/token":
		s.platformCall(w, r, EndpointTTAppToken, Douyin, s.ttAppTokenErr, s.douyinAppToken)
	case p == "/api/apps/v1/censor/image/":
		s.platformCall(w, r, EndpointTTCensorImage, Douyin, s.ttOpenErr, s.douyinCensorImageV3)
	case p == "/api/apps/qrcode":
		s.platformCall(w, r, EndpointTTQRCode, Douyin, s.ttQRCodeErr, s.douyinQRCode)
	case p == "/api/apps/censor/image":
		s.platformCall(w, r, EndpointTTCensorV2, Douyin, s.ttCensorV2Err, s.douyinCensorImageV2)
	case p == "/oauth/jscode2sessionkey":
		s.platformCall(w, r, EndpointJSCode2Session, Baidu, s.baiduErr, s.baiduCode2Session)
	case p == "/oauth2/mp/code2session":
		s.platformCall(w, r, EndpointJSCode2Session, Kuaishou, s.kuaishouErr, s.kuaishouCode2Session)
	case p == "/open-apis/auth/v3/app_access_token/internal":
		s.platformCall(w, r, EndpointAppAccessToken, Feishu, s.fsFail, s.feishuAppAccessToken)
	case p == "/open-apis/mina/v2/tokenLoginValidate":
		s.platformCall(w, r, EndpointTokenLoginValidate, Feishu, s.fsFail, s.feishuLogin)
	case p == "/cgi-bin/message/subscribe/send":
		s.platformCall(w, r, EndpointSubscribeSend, WeChat, s.wechatErr, s.wechatSubscribeSend)
	case p == "/wxa/msg_sec_check":
		s.platformCall(w, r, EndpointMsgSecCheck, WeChat, s.wechatErr, s.wechatMsgSecCheck)
	case p == "/cgi-bin/media/upload":
		s.platformCall(w, r, EndpointMediaUpload, WeChat, s.wechatErr, s.wechatMediaUpload)
	case p == "/cgi-bin/media/get":
		s.platformCall(w, r, EndpointMediaGet, WeChat, s.wechatErr, s.wechatMediaGet)
	case p == "/gateway.do":
		s.platformCall(w, r, EndpointAlipayGateway, Alipay, s.alipayErr, s.alipayGateway)
	case p == "/_sim" || strings.HasPrefix(p, "/_sim/"):
		s.control(w, r)
	case strings.HasPrefix(p, "/sns/") || strings.HasPrefix(p, "/cgi-bin/") || strings.HasPrefix(p, "/wxa/"):
		// WeChat answers an unknown path (e.g. /sns/jsCode2Session) with 40066.
		s.wechatErr(w, 40066)
	case p == "/" && (r.Method == http.MethodGet || r.Method == http.MethodHead):
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "mpsim: WeChat/Douyin/QQ mini-program server API simulator. Control API under /_sim/ (GET /_sim/stats).\n")
	default:
		http.NotFound(w, r)
	}
}

// errWriter writes a platform error in the shape of an endpoint.
type errWriter func(w *recorder, errcode int)

// platformCall counts the call, applies a fault if one matches, and
// otherwise runs the handler.
func (s *Sim) platformCall(w *recorder, r *http.Request, endpoint, platform string, ew errWriter, h func(*recorder, *http.Request)) {
	s.mu.Lock()
	s.calls[endpoint]++
	w.endpoint, w.n = endpoint, s.calls[endpoint]
	f, faulted := s.takeFaultLocked(endpoint, platform)
	s.mu.Unlock()
	if faulted {
		if f.Delay > 0 {
			// Read the body first: the server notices a client that went
			// away (and cancels the context) only once the body is consumed.
			if body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1)); err == nil {
				r.Body = io.NopCloser(bytes.NewReader(body))
			}
			t := time.NewTimer(f.Delay)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				w.note = "fault: delay canceled"
				return
			}
		}
		switch {
		case f.HTTPStatus != 0:
			w.note = fmt.Sprintf("fault: http %d", f.HTTPStatus)
			http.Error(w, http.StatusText(f.HTTPStatus), f.HTTPStatus)
			return
		case f.Errcode != 0:
			ew(w, f.Errcode)
			w.note = "fault: " + w.note
			return
		}
	}
	h(w, r)
}

// writeAnswer writes a platform's answer (HTTP 200), labelled the way the
// platform labels it (see Quirks.WeChatContentType).
func (s *Sim) writeAnswer(w *recorder, platform string, v any) {
	ct := "application/json; charset=utf-8"
	if platform == WeChat || platform == QQ {
		// QQ's answers are WeChat's: labelled as unkindly.
		ct = s.Quirks().WeChatContentType
	}
	writeJSONAs(w, http.StatusOK, ct, v)
}

// number is an error number in the answer to the call w answers: a JSON
// string when the StringErrcode quirk says so.
func (s *Sim) number(w *recorder, n int) jsonNumber {
	q := s.Quirks()
	return jsonNumber{n: n, str: q.pick(q.StringErrcode, "string-errcode", w.endpoint, w.n)}
}

func writeJSON(w *recorder, status int, v any) {
	writeJSONAs(w, status, "application/json; charset=utf-8", v)
}

func writeJSONAs(w *recorder, status int, contentType string, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", contentType)
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// readJSON decodes a JSON body of at most maxBody bytes.
func readJSON(r *http.Request, v any, strict bool) error {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return err
	}
	if len(body) > maxBody {
		return fmt.Errorf("body over %d bytes", maxBody)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if strict {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return fmt.Errorf("trailing data after the JSON value")
	}
	return nil
}
