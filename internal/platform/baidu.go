package platform

import (
	"context"
	"net/http"
	"net/url"
	"strings"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/mperr"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/swancrypt"
)

// Baidu is the platform name of Baidu smart programs (百度智能小程序).
const Baidu = "baidu"

// DefaultBaiduAPIBase is Baidu's smart-program API origin.
const DefaultBaiduAPIBase = "https://spapi.baidu.com"

// Baidu endpoints (paths under the API origin).
const bdPathCode2Session = "/oauth/jscode2sessionkey"

// baiduPlatform is Baidu's descriptor: login only (no anonymous code, no
// phone-code exchange, no compat dialect), and its own payload scheme.
// The handler's app_id is the App Key, app_secret the App Secret.
var baiduPlatform = Descriptor{
	Name:     Baidu,
	Title:    "Baidu",
	APIBases: []string{DefaultBaiduAPIBase},
	New:      func(cfg Config) Client { return NewBaidu(cfg) },
	Payloads: &BaiduPayloads,
}

// BaiduPayloads is Baidu's payload scheme (internal/swancrypt):
// AES-192-CBC, a length-prefixed frame whose trailer must be the App Key,
// padding to 32 bytes; phone payloads carry "mobile". There is no
// watermark, so decrypt_watermark optional changes nothing: the trailer is
// always checked.
var BaiduPayloads = PayloadScheme{
	Name:  "aes-192-cbc-appkey-trailer",
	Check: swancrypt.CheckPayload,
	Open: func(appKey string, keys []string, data, iv string, _ bool) ([]byte, int, error) {
		return swancrypt.Open(appKey, keys, data, iv)
	},
	ParsePhone: swancrypt.ParsePhone,
}

// BaiduClient talks to Baidu's smart-program server API. It is safe for
// concurrent use.
type BaiduClient struct {
	core
}

var _ Client = (*BaiduClient)(nil)

// NewBaidu returns a Baidu client; cfg.AppID is the App Key and
// cfg.AppSecret the App Secret. An unusable cfg.APIBase (New refuses it)
// makes every call fail with a platform_error.
func NewBaidu(cfg Config) *BaiduClient {
	return &BaiduClient{core: newCore(Baidu, DefaultBaiduAPIBase, cfg)}
}

// Name is Baidu.
func (c *BaiduClient) Name() string { return Baidu }

// bdAnswer is jscode2sessionkey's answer: {openid, session_key} or the
// OAuth-style error {error, error_description}; some SDKs read
// {errno, errmsg} instead (not in Baidu's documentation), so both are read.
type bdAnswer struct {
	OpenID     lenientString `json:"openid"`
	SessionKey lenientString `json:"session_key"`
	Error      lenientString `json:"error"`
	ErrorDesc  lenientString `json:"error_description"`
	Errno      lenientInt    `json:"errno"`
	Errmsg     lenientString `json:"errmsg"`
}

// baiduVerdict maps an OAuth-style error name: invalid_grant (the code is
// invalid, expired or used: Baidu's OAuth error table) is invalid_code;
// everything else (invalid_client: App Key or Secret; invalid_request...)
// is a platform_error.
func baiduVerdict(name, desc string) verdict {
	cause := platformMessage(strings.TrimSpace(name + ": " + desc))
	switch name {
	case "invalid_grant":
		return verdict{err: mperr.Wrap(mperr.InvalidCode, "the login code is invalid, expired or already used", cause)}
	case "invalid_client":
		return verdict{err: mperr.Wrap(mperr.PlatformError, "the platform rejected the app key or secret", cause)}
	}
	return verdict{err: mperr.Wrap(mperr.PlatformError, "the platform returned an error", cause)}
}

// Code2Session calls POST /oauth/jscode2sessionkey (form code, client_id,
// sk). Baidu has no anonymous code.
func (c *BaiduClient) Code2Session(ctx context.Context, in LoginCodes) (Session, error) {
	code := in.Code
	if code == "" {
		return Session{}, mperr.New(mperr.MissingCode, "no login code")
	}
	form := url.Values{"code": {code}, "client_id": {c.appID}, "sk": {c.secret}}.Encode()
	var s Session
	err := c.do(ctx, attempt{
		endpoint:   bdPathCode2Session,
		newRequest: postForm(c.endpointURL(bdPathCode2Session, nil), form),
		secrets:    []string{c.secret, code},
		parse: func(status int, body []byte) (*int, verdict) {
			if status >= 500 {
				v, _ := httpStatusVerdict(status)
				return nil, v
			}
			var a bdAnswer
			derr := decodeObject(body, &a)
			if derr == nil {
				if a.Error != "" {
					return nil, baiduVerdict(string(a.Error), string(a.ErrorDesc))
				}
				if a.Errno.Set && a.Errno.Value != 0 {
					// No errno table is documented: a platform_error
					// keeping the number.
					n := a.Errno.Value
					return &n, verdict{err: platformErr(mperr.PlatformError, n, "the platform returned an error", platformMessage(string(a.Errmsg)))}
				}
			}
			if hv, bad := httpStatusVerdict(status); bad {
				return nil, hv
			}
			if derr != nil {
				return nil, unreadable(derr)
			}
			if a.SessionKey == "" {
				return nil, incomplete("session_key")
			}
			if a.OpenID == "" {
				return nil, incomplete("openid")
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

// postForm builds a form-urlencoded POST.
func postForm(u, form string) func(context.Context) (*http.Request, error) {
	return func(ctx context.Context) (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(form))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Accept", "application/json")
		return req, nil
	}
}
