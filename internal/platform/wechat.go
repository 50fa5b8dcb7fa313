package platform

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/mperr"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/phone"
)

// WeChat endpoints (paths under the API origin).
const (
	wxPathCode2Session = "/sns/jscode2session"
	wxPathToken        = "/cgi-bin/token"
	wxPathStableToken  = "/cgi-bin/stable_token"
	wxPathPhone        = "/wxa/business/getuserphonenumber"
)

// weChatPlatform is WeChat's descriptor.
var weChatPlatform = Descriptor{
	Name:     WeChat,
	Title:    "WeChat",
	APIBases: []string{DefaultWeChatAPIBase},
	New:      func(cfg Config) Client { return NewWeChat(cfg) },
	Token: &TokenSpec{
		Name:  "access_token",
		Title: "access token",
		Modes: true,
		Tokens: func(c Client) (TokenClient, bool) {
			tc, ok := c.(StableTokenClient)
			return tc, ok
		},
	},
	PhoneCode: &PhoneCodeSpec{Call: "getuserphonenumber"},
	Compat:    CompatWX,
	Gateway: &GatewaySpec{Kinds: []GatewayKind{{
		Name:              "api.weixin.qq.com",
		Origin:            DefaultWeChatAPIBase,
		Host:              "api.weixin.qq.com",
		TokenParam:        "access_token",
		ClientTokenParams: []string{"access_token", "cloudbase_access_token"},
		Errcodes: []ErrcodeField{{
			Path: "errcode",
			// 40001 invalid or not the latest, 40014 invalid, 42001 expired.
			Token: []int{40001, 40014, 42001},
			// 45009 daily quota, 45011 minute quota.
			Rate: []int{45009, 45011},
		}},
		Never: []NeverPath{
			{wxPathToken, "it would fetch a token that supersedes the shared one"},
			{wxPathStableToken, "a force_refresh would invalidate every instance's token"},
			{wxPathCode2Session, "it would burn login codes the login route already exchanged (compat answers it from the session)"},
			{wxPathPhone, "the phone route exchanges each phone code once"},
			{"/cgi-bin/openapi/rid/get", "its answer quotes the failed call's request URL, the shared token included"},
		},
	}}},
}

// WeChatClient talks to WeChat's server API. It is safe for concurrent use.
type WeChatClient struct {
	core
}

var (
	_ Client            = (*WeChatClient)(nil)
	_ StableTokenClient = (*WeChatClient)(nil)
	_ PhoneClient       = (*WeChatClient)(nil)
)

// NewWeChat returns a WeChat client. An unusable cfg.APIBase (New refuses
// it) makes every call fail with a platform_error.
func NewWeChat(cfg Config) *WeChatClient {
	return &WeChatClient{core: newCore(WeChat, DefaultWeChatAPIBase, cfg)}
}

// Name is WeChat.
func (c *WeChatClient) Name() string { return WeChat }

// wxAnswer holds every field the WeChat endpoints used here answer with.
type wxAnswer struct {
	Errcode     lenientInt      `json:"errcode"`
	Errmsg      lenientString   `json:"errmsg"`
	OpenID      lenientString   `json:"openid"`
	SessionKey  lenientString   `json:"session_key"`
	UnionID     lenientString   `json:"unionid"`
	AccessToken lenientString   `json:"access_token"`
	ExpiresIn   lenientInt      `json:"expires_in"`
	PhoneInfo   json.RawMessage `json:"phone_info"`
}

func (a *wxAnswer) errOf() (lenientInt, string) { return a.Errcode, string(a.Errmsg) }

type wxPhoneInfo struct {
	PhoneNumber     lenientString `json:"phoneNumber"`
	PurePhoneNumber lenientString `json:"purePhoneNumber"`
	CountryCode     lenientString `json:"countryCode"`
	Watermark       *struct {
		AppID     lenientString `json:"appid"`
		Timestamp lenientInt    `json:"timestamp"`
	} `json:"watermark"`
}

// wxOp tells which kind of call an errcode came from.
type wxOp int

const (
	wxLogin wxOp = iota // code2session: the code is a login code
	wxPhone             // getuserphonenumber: the code is a phone code
	wxToken             // the token endpoints: no code
)

// wechatVerdict maps a WeChat errcode (non-zero) onto the README's error table.
// Messages are ours; the platform's errmsg only goes, cleaned, into Err.
func wechatVerdict(op wxOp, errcode int, errmsg string) verdict {
	cause := platformMessage(errmsg)
	fail := func(code mperr.Code, msg string) verdict {
		return verdict{err: platformErr(code, errcode, msg, cause)}
	}
	codeName := "login code"
	if op == wxPhone {
		codeName = "phone code"
	}
	switch errcode {
	case -1:
		return verdict{err: platformErr(mperr.PlatformError, errcode, "the platform is busy", cause), transient: true}
	case 45011:
		return fail(mperr.RateLimited, "the platform's rate limit was reached")
	case 45009:
		return fail(mperr.RateLimited, "the platform's daily quota for this API was reached: retrying before it resets (midnight, Beijing time) will not help")
	case 40013:
		return fail(mperr.PlatformError, "the platform rejected the app id")
	case 40125:
		return fail(mperr.PlatformError, "the platform rejected the app secret")
	case 40164:
		return fail(mperr.PlatformError, "the platform refused this server's IP address")
	}
	switch op {
	case wxLogin, wxPhone:
		switch errcode {
		case 40029:
			return fail(mperr.InvalidCode, "the "+codeName+" is invalid or expired")
		case 40163:
			return fail(mperr.InvalidCode, "the "+codeName+" was already used")
		case 40003:
			if op == wxPhone {
				// The openid sent along is not the phone code's user.
				return fail(mperr.InvalidCode, "the phone code belongs to another user")
			}
		case 40226:
			return fail(mperr.UserBlocked, "the platform blocks this user (high-risk user): logging in again cannot help")
		}
	}
	switch op {
	case wxPhone:
		switch errcode {
		case 40001, 40014, 42001:
			tokenCause := error(ErrTokenInvalid)
			if cause != nil {
				tokenCause = fmt.Errorf("%w (%w)", ErrTokenInvalid, cause)
			}
			return verdict{err: platformErr(mperr.PlatformError, errcode, "the access token is invalid or expired", tokenCause)}
		}
	case wxToken:
		if errcode == 40001 {
			// On the token endpoints 40001 means a wrong secret.
			return fail(mperr.PlatformError, "the platform rejected the app secret")
		}
	}
	return fail(mperr.PlatformError, "the platform returned an error")
}

// Code2Session calls GET /sns/jscode2session. WeChat has no anonymous
// code.
func (c *WeChatClient) Code2Session(ctx context.Context, in LoginCodes) (Session, error) {
	return c.wxCode2Session(ctx, in.Code)
}

// wxCode2Session is WeChat's GET /sns/jscode2session on c's origin, its
// answer read in WeChat's shape with WeChat's errcodes: the login of every
// platform that copied WeChat's wire format (QQ).
func (c *core) wxCode2Session(ctx context.Context, code string) (Session, error) {
	if code == "" {
		return Session{}, mperr.New(mperr.MissingCode, "no login code")
	}
	// url.Values.Encode escapes every value: a code may hold any character.
	u := c.endpointURL(wxPathCode2Session, url.Values{
		"appid":      {c.appID},
		"secret":     {c.secret},
		"js_code":    {code},
		"grant_type": {"authorization_code"},
	})
	var s Session
	err := c.do(ctx, attempt{
		endpoint:   wxPathCode2Session,
		newRequest: getRequest(u),
		secrets:    []string{c.secret, code},
		parse: func(status int, body []byte) (*int, verdict) {
			var a wxAnswer
			ec, v, ok := envelope(status, body, &a, a.errOf, func(n int, m string) verdict { return wechatVerdict(wxLogin, n, m) })
			if !ok {
				return ec, v
			}
			if a.SessionKey == "" {
				return ec, incomplete("session_key")
			}
			if a.OpenID == "" {
				return ec, incomplete("openid")
			}
			s = Session{OpenID: string(a.OpenID), UnionID: string(a.UnionID), SessionKey: string(a.SessionKey)}
			return ec, verdict{}
		},
	})
	if err != nil {
		return Session{}, err
	}
	return s, nil
}

// Token calls GET /cgi-bin/token. Each call invalidates the previous token
// (after about 5 minutes): prefer StableToken.
func (c *WeChatClient) Token(ctx context.Context) (Token, error) {
	u := c.endpointURL(wxPathToken, url.Values{
		"grant_type": {"client_credential"},
		"appid":      {c.appID},
		"secret":     {c.secret},
	})
	return c.token(ctx, wxPathToken, getRequest(u))
}

// StableToken calls POST /cgi-bin/stable_token. With forceRefresh false,
// repeated calls give the same valid token.
func (c *WeChatClient) StableToken(ctx context.Context, forceRefresh bool) (Token, error) {
	body, err := json.Marshal(struct {
		GrantType    string `json:"grant_type"`
		AppID        string `json:"appid"`
		Secret       string `json:"secret"`
		ForceRefresh bool   `json:"force_refresh"`
	}{"client_credential", c.appID, c.secret, forceRefresh})
	if err != nil {
		return Token{}, mperr.Wrap(mperr.Internal, "cannot build the platform request", err)
	}
	return c.token(ctx, wxPathStableToken, postJSON(c.endpointURL(wxPathStableToken, nil), body))
}

func (c *WeChatClient) token(ctx context.Context, path string, newReq func(context.Context) (*http.Request, error)) (Token, error) {
	var t Token
	err := c.do(ctx, attempt{
		endpoint:   path,
		newRequest: newReq,
		secrets:    []string{c.secret},
		parse: func(status int, body []byte) (*int, verdict) {
			var a wxAnswer
			ec, v, ok := envelope(status, body, &a, a.errOf, func(n int, m string) verdict { return wechatVerdict(wxToken, n, m) })
			if !ok {
				return ec, v
			}
			if a.AccessToken == "" {
				return ec, incomplete("access_token")
			}
			if !a.ExpiresIn.Set || a.ExpiresIn.Value <= 0 {
				return ec, incomplete("positive expires_in")
			}
			t = Token{AccessToken: string(a.AccessToken), ExpiresIn: time.Duration(a.ExpiresIn.Value) * time.Second}
			return ec, verdict{}
		},
	})
	if err != nil {
		return Token{}, err
	}
	return t, nil
}

// GetUserPhoneNumber calls POST /wxa/business/getuserphonenumber. The
// watermark appid is returned, not checked: the caller compares it with its
// own. A token the platform refuses gives an error wrapping ErrTokenInvalid.
func (c *WeChatClient) GetUserPhoneNumber(ctx context.Context, accessToken, code, openid string) (phone.Number, error) {
	if code == "" {
		return phone.Number{}, mperr.New(mperr.BadRequest, "no phone code")
	}
	if accessToken == "" {
		return phone.Number{}, mperr.Wrap(mperr.PlatformError, "no access token", ErrTokenInvalid)
	}
	body, err := json.Marshal(struct {
		Code   string `json:"code"`
		OpenID string `json:"openid,omitempty"`
	}{code, openid})
	if err != nil {
		return phone.Number{}, mperr.Wrap(mperr.Internal, "cannot build the platform request", err)
	}
	u := c.endpointURL(wxPathPhone, url.Values{"access_token": {accessToken}})
	var p phone.Number
	err = c.do(ctx, attempt{
		endpoint:   wxPathPhone,
		newRequest: postJSON(u, body),
		secrets:    []string{c.secret, accessToken, code},
		parse: func(status int, body []byte) (*int, verdict) {
			var a wxAnswer
			ec, v, ok := envelope(status, body, &a, a.errOf, func(n int, m string) verdict { return wechatVerdict(wxPhone, n, m) })
			if !ok {
				return ec, v
			}
			raw := bytes.TrimSpace(a.PhoneInfo)
			if len(raw) == 0 || string(raw) == "null" {
				return ec, incomplete("phone_info")
			}
			n, err := parsePhoneInfo(raw)
			if err != nil {
				return ec, unreadable(fmt.Errorf("phone_info: %w", err))
			}
			p = n
			return ec, verdict{}
		},
	})
	if err != nil {
		return phone.Number{}, err
	}
	return p, nil
}

// getRequest makes a GET request builder.
func getRequest(u string) func(context.Context) (*http.Request, error) {
	return func(ctx context.Context) (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Accept", "application/json")
		return req, nil
	}
}

// postJSON makes a POST request builder with a JSON body.
func postJSON(u string, body []byte) func(context.Context) (*http.Request, error) {
	return func(ctx context.Context) (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json")
		return req, nil
	}
}
