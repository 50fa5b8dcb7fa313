package platform

import (
	"bytes"
	"context"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/mperr"
)

// Douyin endpoints (paths under the API origin).
const ttPathCode2Session = "/api/apps/v2/jscode2session"

// douyinPlatform is Douyin's descriptor.
var douyinPlatform = Descriptor{
	Name:           Douyin,
	Title:          "Douyin",
	APIBases:       []string{DefaultDouyinAPIBase, DefaultDouyinOpenAPIBase},
	New:            func(cfg Config) Client { return NewDouyin(cfg) },
	AnonymousCode:  true,
	IdentityFields: []string{FieldAnonymousOpenID},
	Token: &TokenSpec{
		Name:  "client_token",
		Title: "client token",
		Tokens: func(c Client) (TokenClient, bool) {
			dc, ok := c.(*DouyinClient)
			if !ok {
				return nil, false
			}
			return dc.ClientTokens(), true
		},
	},
	PhoneCode: &PhoneCodeSpec{Call: "get_phonenumber_info", PrivateKey: true},
	Compat:    CompatTT,
	Gateway:   &douyinGateway,
}

// DouyinClient talks to Douyin's (Toutiao's) server API. It is safe for
// concurrent use.
type DouyinClient struct {
	core
	// openBase is the open platform's origin (client token, phone code):
	// Config.APIBase when set, else DefaultDouyinOpenAPIBase.
	openBase   string
	privateKey *rsa.PrivateKey
}

var _ Client = (*DouyinClient)(nil)

// NewDouyin returns a Douyin client. An unusable cfg.APIBase (New refuses
// it) makes every call fail with a platform_error.
func NewDouyin(cfg Config) *DouyinClient {
	c := &DouyinClient{core: newCore(Douyin, DefaultDouyinAPIBase, cfg), privateKey: cfg.PrivateKey}
	c.openBase = strings.TrimRight(cfg.APIBase, "/")
	if c.openBase == "" {
		c.openBase = DefaultDouyinOpenAPIBase
	}
	return c
}

// Name is Douyin.
func (c *DouyinClient) Name() string { return Douyin }

// ttAnswer is the v2 answer {err_no, err_tips, data{...}}; it also takes
// the old flat shape ({errcode, errmsg} or {session_key, openid, ...}).
type ttAnswer struct {
	ErrNo   lenientInt      `json:"err_no"`
	ErrTips lenientString   `json:"err_tips"`
	ErrMsg  lenientString   `json:"err_msg"`
	Errcode lenientInt      `json:"errcode"`
	Errmsg  lenientString   `json:"errmsg"`
	Data    json.RawMessage `json:"data"`
	ttData
}

type ttData struct {
	SessionKey      lenientString `json:"session_key"`
	OpenID          lenientString `json:"openid"`
	AnonymousOpenID lenientString `json:"anonymous_openid"`
	UnionID         lenientString `json:"unionid"`
}

// errOf prefers err_no; the old errcode counts when err_no says nothing.
func (a *ttAnswer) errOf() (lenientInt, string) {
	if a.ErrNo.Set && a.ErrNo.Value != 0 || !a.Errcode.Set {
		msg := string(a.ErrTips)
		if msg == "" {
			msg = string(a.ErrMsg)
		}
		return a.ErrNo, msg
	}
	return a.Errcode, string(a.Errmsg)
}

// douyinVerdict maps a Douyin err_no/errcode (non-zero) onto the README's
// table. No Douyin rate-limit number is documented; an HTTP 429 is
// rate_limited (see httpStatusVerdict).
func douyinVerdict(errno int, tips string) verdict {
	cause := platformMessage(tips)
	fail := func(code mperr.Code, msg string) verdict {
		return verdict{err: platformErr(code, errno, msg, cause)}
	}
	switch errno {
	case -1:
		return verdict{err: platformErr(mperr.PlatformError, errno, "the platform is busy", cause), transient: true}
	case 40018:
		return fail(mperr.InvalidCode, "the login code is invalid, expired or already used")
	case 40019:
		return fail(mperr.InvalidCode, "the anonymous code is invalid, expired or already used")
	case 40015:
		return fail(mperr.PlatformError, "the platform rejected the app id")
	case 40017:
		return fail(mperr.PlatformError, "the platform rejected the app secret")
	case 40014:
		return fail(mperr.PlatformError, "the platform says a parameter is missing")
	}
	return fail(mperr.PlatformError, "the platform returned an error")
}

// Code2Session calls POST /api/apps/v2/jscode2session with the code and/or
// the anonymous code (at least one). With a code, the answer must carry
// session_key and openid; with only an anonymous code, anonymous_openid.
func (c *DouyinClient) Code2Session(ctx context.Context, in LoginCodes) (Session, error) {
	code, anonymousCode := in.Code, in.Anonymous
	if code == "" && anonymousCode == "" {
		return Session{}, mperr.New(mperr.MissingCode, "no login code")
	}
	body, err := json.Marshal(struct {
		AppID         string `json:"appid"`
		Secret        string `json:"secret"`
		Code          string `json:"code"`
		AnonymousCode string `json:"anonymous_code"`
	}{c.appID, c.secret, code, anonymousCode})
	if err != nil {
		return Session{}, mperr.Wrap(mperr.Internal, "cannot build the platform request", err)
	}
	var s Session
	err = c.do(ctx, attempt{
		endpoint:   ttPathCode2Session,
		newRequest: postJSON(c.endpointURL(ttPathCode2Session, nil), body),
		secrets:    []string{c.secret, code, anonymousCode},
		parse: func(status int, body []byte) (*int, verdict) {
			var a ttAnswer
			ec, v, ok := envelope(status, body, &a, a.errOf, douyinVerdict)
			if !ok {
				return ec, v
			}
			d := a.ttData // the old flat shape
			if raw := bytes.TrimSpace(a.Data); len(raw) > 0 && string(raw) != "null" {
				d = ttData{}
				if err := decodeObject(raw, &d); err != nil {
					return ec, unreadable(fmt.Errorf("data: %w", err))
				}
			}
			if code != "" {
				if d.SessionKey == "" {
					return ec, incomplete("session_key")
				}
				if d.OpenID == "" {
					return ec, incomplete("openid")
				}
			} else if d.AnonymousOpenID == "" {
				return ec, incomplete("anonymous_openid")
			}
			s = Session{
				OpenID:     string(d.OpenID),
				UnionID:    string(d.UnionID),
				SessionKey: string(d.SessionKey),
			}
			if d.AnonymousOpenID != "" {
				s.Fields = map[string]string{FieldAnonymousOpenID: string(d.AnonymousOpenID)}
			}
			return ec, verdict{}
		},
	})
	if err != nil {
		return Session{}, err
	}
	return s, nil
}
