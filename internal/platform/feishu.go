package platform

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/mperr"
)

// Feishu (飞书) and Lark, its international edition, run the same
// mini-program (gadget) platform on two origins: one client, two
// descriptors (platform feishu, platform lark).
const (
	Feishu = "feishu"
	Lark   = "lark"
)

// Their open-platform API origins.
const (
	DefaultFeishuAPIBase = "https://open.feishu.cn"
	DefaultLarkAPIBase   = "https://open.larksuite.com"
)

// Feishu endpoints (paths under the API origin).
const (
	fsPathCode2Session   = "/open-apis/mina/v2/tokenLoginValidate"
	fsPathAppAccessToken = "/open-apis/auth/v3/app_access_token/internal"
)

// Identity fields a Feishu login yields beyond open_id: the user's
// organisation (tenant_key) and, when the app has the permission, the
// user's id within it (employee_id).
const (
	FieldTenantKey  = "tenant_key"
	FieldEmployeeID = "employee_id"
)

// Feishu error codes this client acts on.
const (
	// FSErrTokenInvalid: the app_access_token is invalid or expired.
	FSErrTokenInvalid = 10202
	// FSErrCodeInvalid: "code appid not match": the login code is not this
	// app's, or it was used already or expired.
	FSErrCodeInvalid = 10213
	// FSErrNotVisible: the app is not visible to the user (the
	// organisation's administrator has not made it available to them).
	FSErrNotVisible = 10228
)

// feishuPlatform and larkPlatform are the descriptors: login only, with the
// app access token; no anonymous code, no phone-code exchange, no compat
// dialect, and no phone or decrypt route (the encryptedData scheme is not
// published: NoPayloads).
var (
	feishuPlatform = feishuDescriptor(Feishu, "Feishu", DefaultFeishuAPIBase)
	larkPlatform   = feishuDescriptor(Lark, "Lark", DefaultLarkAPIBase)
)

func feishuDescriptor(name, title, base string) Descriptor {
	return Descriptor{
		Name:           name,
		Title:          title,
		APIBases:       []string{base},
		New:            func(cfg Config) Client { return newFeishu(name, base, cfg) },
		IdentityFields: []string{FieldTenantKey, FieldEmployeeID},
		Token: &TokenSpec{
			Name:  "app_access_token",
			Title: "app access token",
			Tokens: func(c Client) (TokenClient, bool) {
				fc, ok := c.(*FeishuClient)
				if !ok || fc.name != name {
					return nil, false
				}
				return fc.AppTokens(), true
			},
		},
		LoginToken: true,
		NoPayloads: true,
	}
}

// FeishuClient talks to Feishu's (or Lark's) open platform: the app access
// token of a self-built (internal) app, and code2session with it. It is
// safe for concurrent use.
type FeishuClient struct {
	core
	name   string
	tokens func(ctx context.Context, f func(token string) error) error
}

var _ Client = (*FeishuClient)(nil)

// NewFeishu returns a Feishu client; NewLark a Lark one. cfg.Tokens gives
// the login its app access token (the handler's shared one).
func NewFeishu(cfg Config) *FeishuClient { return newFeishu(Feishu, DefaultFeishuAPIBase, cfg) }

// NewLark returns a Lark client (Feishu's API on open.larksuite.com).
func NewLark(cfg Config) *FeishuClient { return newFeishu(Lark, DefaultLarkAPIBase, cfg) }

func newFeishu(name, base string, cfg Config) *FeishuClient {
	return &FeishuClient{core: newCore(name, base, cfg), name: name, tokens: cfg.Tokens}
}

// Name is Feishu or Lark.
func (c *FeishuClient) Name() string { return c.name }

// fsAnswer is the open platform's envelope: {"code": 0, "msg", ...}; a
// failure has code ≠ 0 (often with an HTTP 4xx status).
type fsAnswer struct {
	Code lenientInt    `json:"code"`
	Msg  lenientString `json:"msg"`
}

func (a *fsAnswer) errOf() (lenientInt, string) { return a.Code, string(a.Msg) }

// fsVerdict maps a Feishu error code. 10213 covers a code of another app
// as well as a used or expired one: all are invalid_code.
func fsVerdict(errno int, msg string) verdict {
	cause := platformMessage(msg)
	fail := func(code mperr.Code, m string) verdict { return verdict{err: platformErr(code, errno, m, cause)} }
	switch errno {
	case FSErrTokenInvalid, 99991663, 99991664:
		c := error(ErrTokenInvalid)
		if cause != nil {
			c = fmt.Errorf("%w (%w)", ErrTokenInvalid, cause)
		}
		return verdict{err: platformErr(mperr.PlatformError, errno, "the app access token is invalid or expired", c)}
	case FSErrCodeInvalid:
		return fail(mperr.InvalidCode, "the login code is invalid, expired, already used or another app's")
	case FSErrNotVisible:
		return fail(mperr.UserBlocked, "the app is not available to this user (its visibility in the organisation)")
	case 99991400:
		return verdict{err: platformErr(mperr.RateLimited, errno, "the platform is rate limiting this app", cause)}
	case -1, 99991672:
		return verdict{err: platformErr(mperr.PlatformError, errno, "the platform is busy", cause), transient: true}
	}
	return fail(mperr.PlatformError, "the platform returned an error")
}

// AppTokens is the app access token client (a TokenClient).
func (c *FeishuClient) AppTokens() TokenClient { return fsAppTokens{c} }

type fsAppTokens struct{ c *FeishuClient }

func (t fsAppTokens) Token(ctx context.Context) (Token, error) { return t.c.AppAccessToken(ctx) }

// AppAccessToken calls POST /open-apis/auth/v3/app_access_token/internal
// {app_id, app_secret} → {"code":0,"app_access_token","expire"} (seconds).
// Within its last 30 minutes a fetch gives a new token and the old one
// stays valid until it expires.
func (c *FeishuClient) AppAccessToken(ctx context.Context) (Token, error) {
	body, err := json.Marshal(struct {
		AppID     string `json:"app_id"`
		AppSecret string `json:"app_secret"`
	}{c.appID, c.secret})
	if err != nil {
		return Token{}, mperr.Wrap(mperr.Internal, "cannot build the platform request", err)
	}
	var t Token
	err = c.do(ctx, attempt{
		endpoint:   fsPathAppAccessToken,
		newRequest: postJSON(c.endpointURL(fsPathAppAccessToken, nil), body),
		secrets:    []string{c.secret},
		parse: func(status int, body []byte) (*int, verdict) {
			var a struct {
				fsAnswer
				AppAccessToken lenientString `json:"app_access_token"`
				Expire         lenientInt    `json:"expire"`
			}
			ec, v, ok := envelope(status, body, &a, a.errOf, fsVerdict)
			if !ok {
				return ec, v
			}
			if !a.Code.Set {
				return ec, incomplete("code")
			}
			if a.AppAccessToken == "" {
				return ec, incomplete("app_access_token")
			}
			if !a.Expire.Set || a.Expire.Value <= 0 {
				return ec, incomplete("positive expire")
			}
			t = Token{AccessToken: string(a.AppAccessToken), ExpiresIn: time.Duration(a.Expire.Value) * time.Second}
			return ec, verdict{}
		},
	})
	if err != nil {
		return Token{}, err
	}
	return t, nil
}

// Code2Session calls POST /open-apis/mina/v2/tokenLoginValidate {"code"}
// with the app access token (Authorization: Bearer), through Config.Tokens:
// a token the platform rejects (10202) is refreshed once. The answer's
// data gives open_id, session_key, tenant_key and, with the permission,
// employee_id; its user access token (access_token, refresh_token) is not
// kept. Feishu has no anonymous code.
func (c *FeishuClient) Code2Session(ctx context.Context, in LoginCodes) (Session, error) {
	code := in.Code
	if code == "" {
		return Session{}, mperr.New(mperr.MissingCode, "no login code")
	}
	if c.tokens == nil {
		return Session{}, mperr.Newf(mperr.Internal, "the %s client has no app access token", c.name)
	}
	body, err := json.Marshal(struct {
		Code string `json:"code"`
	}{code})
	if err != nil {
		return Session{}, mperr.Wrap(mperr.Internal, "cannot build the platform request", err)
	}
	var s Session
	err = c.tokens(ctx, func(token string) error {
		return c.do(ctx, attempt{
			endpoint: fsPathCode2Session,
			newRequest: func(ctx context.Context) (*http.Request, error) {
				req, err := postJSON(c.endpointURL(fsPathCode2Session, nil), body)(ctx)
				if err == nil {
					req.Header.Set("Authorization", "Bearer "+token)
				}
				return req, err
			},
			secrets: []string{c.secret, code, token},
			parse: func(status int, body []byte) (*int, verdict) {
				var a struct {
					fsAnswer
					Data *struct {
						OpenID     lenientString `json:"open_id"`
						EmployeeID lenientString `json:"employee_id"`
						SessionKey lenientString `json:"session_key"`
						TenantKey  lenientString `json:"tenant_key"`
					} `json:"data"`
				}
				ec, v, ok := envelope(status, body, &a, a.errOf, fsVerdict)
				if !ok {
					return ec, v
				}
				switch {
				case !a.Code.Set:
					return ec, incomplete("code")
				case a.Data == nil:
					return ec, incomplete("data")
				case a.Data.OpenID == "":
					return ec, incomplete("data.open_id")
				case a.Data.SessionKey == "":
					return ec, incomplete("data.session_key")
				case a.Data.TenantKey == "":
					return ec, incomplete("data.tenant_key")
				}
				s = Session{
					OpenID:     string(a.Data.OpenID),
					SessionKey: string(a.Data.SessionKey),
					Fields:     map[string]string{FieldTenantKey: string(a.Data.TenantKey)},
				}
				if a.Data.EmployeeID != "" {
					s.Fields[FieldEmployeeID] = string(a.Data.EmployeeID)
				}
				return ec, verdict{}
			},
		})
	})
	if err != nil {
		return Session{}, err
	}
	return s, nil
}
