package platform

import (
	"context"
	"net/url"
	"strings"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/mperr"
)

// Kuaishou is the platform name of Kuaishou mini programs (快手小程序).
const Kuaishou = "kuaishou"

// DefaultKuaishouAPIBase is Kuaishou's open-platform API origin.
const DefaultKuaishouAPIBase = "https://open.kuaishou.com"

// Kuaishou endpoints (paths under the API origin).
const ksPathCode2Session = "/oauth2/mp/code2session"

// kuaishouPlatform is Kuaishou's descriptor: login only (no anonymous
// code, no phone-code exchange, no compat dialect). Its encryptedData
// payloads are WeChat-style (AES-128-CBC with the session key), so it keeps
// the default scheme (WXPayloads): a payload must carry watermark.appid
// unless the decrypt route sets decrypt_watermark optional. Whether
// Kuaishou's payloads carry a watermark at all is not confirmed; that
// option is the switch.
var kuaishouPlatform = Descriptor{
	Name:     Kuaishou,
	Title:    "Kuaishou",
	APIBases: []string{DefaultKuaishouAPIBase},
	New:      func(cfg Config) Client { return NewKuaishou(cfg) },
}

// KuaishouClient talks to Kuaishou's mini-program server API (login only).
// It is safe for concurrent use.
type KuaishouClient struct {
	core
}

var _ Client = (*KuaishouClient)(nil)

// NewKuaishou returns a Kuaishou client. An unusable cfg.APIBase (New
// refuses it) makes every call fail with a platform_error.
func NewKuaishou(cfg Config) *KuaishouClient {
	return &KuaishouClient{core: newCore(Kuaishou, DefaultKuaishouAPIBase, cfg)}
}

// Name is Kuaishou.
func (c *KuaishouClient) Name() string { return Kuaishou }

// ksAnswer is code2session's answer: {"result": 1, "session_key",
// "open_id"} on success, else result ≠ 1 with "error" and "error_msg".
type ksAnswer struct {
	Result     lenientInt    `json:"result"`
	SessionKey lenientString `json:"session_key"`
	OpenID     lenientString `json:"open_id"`
	Error      lenientString `json:"error"`
	ErrorMsg   lenientString `json:"error_msg"`
}

// kuaishouVerdict maps a failure (result ≠ 1). Kuaishou publishes no
// error table for this call: the OAuth name for a code that is invalid,
// expired or already used (invalid_grant) is invalid_code; everything
// else is a platform_error. The result number is kept either way.
func kuaishouVerdict(result int, name, msg string) verdict {
	cause := platformMessage(strings.TrimSpace(name + ": " + msg))
	if name == "invalid_grant" {
		return verdict{err: platformErr(mperr.InvalidCode, result, "the login code is invalid, expired or already used", cause)}
	}
	return verdict{err: platformErr(mperr.PlatformError, result, "the platform returned an error", cause)}
}

// Code2Session calls POST /oauth2/mp/code2session with the form app_id,
// app_secret, js_code. Kuaishou has no anonymous code.
func (c *KuaishouClient) Code2Session(ctx context.Context, in LoginCodes) (Session, error) {
	code := in.Code
	if code == "" {
		return Session{}, mperr.New(mperr.MissingCode, "no login code")
	}
	form := url.Values{"app_id": {c.appID}, "app_secret": {c.secret}, "js_code": {code}}.Encode()
	var s Session
	err := c.do(ctx, attempt{
		endpoint:   ksPathCode2Session,
		newRequest: postForm(c.endpointURL(ksPathCode2Session, nil), form),
		secrets:    []string{c.secret, code},
		parse: func(status int, body []byte) (*int, verdict) {
			if status >= 500 {
				v, _ := httpStatusVerdict(status)
				return nil, v
			}
			var a ksAnswer
			derr := decodeObject(body, &a)
			if derr == nil && a.Result.Set && a.Result.Value != 1 {
				n := a.Result.Value
				return &n, kuaishouVerdict(n, string(a.Error), string(a.ErrorMsg))
			}
			if hv, bad := httpStatusVerdict(status); bad {
				return nil, hv
			}
			if derr != nil {
				return nil, unreadable(derr)
			}
			if !a.Result.Set {
				return nil, incomplete("result")
			}
			if a.SessionKey == "" {
				return nil, incomplete("session_key")
			}
			if a.OpenID == "" {
				return nil, incomplete("open_id")
			}
			s = Session{OpenID: string(a.OpenID), SessionKey: string(a.SessionKey)}
			return nil, verdict{}
		},
	})
	if err != nil {
		return Session{}, err
	}
	return s, nil
}
