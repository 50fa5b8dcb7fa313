package platform

import (
	"context"
	"encoding/json"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/mperr"
)

// Douyin's server APIs for the open-API gateway. They live on two hosts,
// each with its own token:
//
//   - open.douyin.com (the open platform): the client token
//     (/oauth/client_token/, the platform's Token, shared with the
//     phone-code exchange) in the request header access-token. Answers
//     {"err_no","err_msg","log_id",...}, or on older APIs
//     {"data":{"error_code","description"},"extra":{...}}.
//   - developer.toutiao.com (the mini-app server API): the mini-app
//     access_token (POST /api/apps/v2/token) in the JSON body's
//     access_token member (qrcode, censor/image, subscribe_notification),
//     or in the X-Token header (the /api/v2/tags/ content checks).
//     Answers vary by API: {"errcode","errmsg"} (qrcode, else a PNG),
//     {"error","message"} (censor/image), {"err_no","err_tips"}.
//
// The error numbers that mean a refused token: open platform 28001008
// (expired) and 2190008 (expired, older APIs) are documented; 28001003
// (invalid) is from SDKs, 2190002 (invalid, older APIs) is unconfirmed.
// developer.toutiao.com: qrcode's errcode 40002 (bad access_token) and
// censor/image's error 2 (access_token check failed) are documented.
const (
	ttPathAppToken       = "/api/apps/v2/token"
	ttPathAppTokenV1     = "/api/apps/token"
	ttPathStableAppToken = "/api/apps/stable_token"
	ttPathCode2SessionV1 = "/api/apps/jscode2session"
)

// Douyin gateway kinds (GatewayKind.Name: the API hosts).
const (
	DouyinOpenHost = "open.douyin.com"
	DouyinAppHost  = "developer.toutiao.com"
)

// douyinAppToken is the mini-app access_token (POST /api/apps/v2/token):
// one per app, shared through the store under its own name (the client
// token is "client_token"). Each fetch supersedes the previous token
// (valid 5 minutes more).
var douyinAppToken = TokenSpec{
	Name:  "access_token",
	Title: "mini-app access token",
	Tokens: func(c Client) (TokenClient, bool) {
		dc, ok := c.(*DouyinClient)
		if !ok {
			return nil, false
		}
		return dc.AppTokens(), true
	},
}

var ttCodeNever = []NeverPath{
	{ttPathCode2Session, "it would burn login codes the login route already exchanged (compat answers it from the session)"},
	{ttPathCode2SessionV1, "it would burn login codes the login route already exchanged (compat answers it from the session)"},
}

// douyinGateway is Douyin's gateway: both hosts, each with its token.
var douyinGateway = GatewaySpec{
	Kinds: []GatewayKind{
		{
			Name:               DouyinOpenHost,
			Origin:             DefaultDouyinOpenAPIBase,
			Host:               DouyinOpenHost,
			TokenHeader:        "access-token",
			ClientTokenParams:  []string{"access_token", "access-token", "client_token"},
			ClientTokenHeaders: []string{"access-token", "X-Token"},
			TrailingSlash:      true,
			Errcodes: []ErrcodeField{
				{Path: "err_no", Token: []int{TTErrTokenInvalid, TTErrTokenExpired}, Rate: []int{28003017, 28003018}},
				{Path: "data.error_code", Token: []int{2190002, 2190008, TTErrTokenInvalid, TTErrTokenExpired}, Rate: []int{2190001, 28003017, 28003018}},
				{Path: "error_code", Token: []int{2190002, 2190008, TTErrTokenInvalid, TTErrTokenExpired}, Rate: []int{2190001, 28003017, 28003018}},
			},
			Never: append([]NeverPath{
				{ttPathClientToken, "it would fetch a client token that supersedes the shared one"},
				{"/oauth/stable_client_token", "a force_refresh would invalidate every instance's client token"},
				{ttPathPhone, "the phone route exchanges each phone code once"},
				{"/api/apps/v1/microapp/code2session", "it would burn login codes the login route already exchanged"},
			}, ttCodeNever...),
		},
		{
			Name:               DouyinAppHost,
			Origin:             DefaultDouyinAPIBase,
			Host:               DouyinAppHost,
			Token:              douyinAppToken.Name,
			TokenBodyField:     "access_token",
			TokenHeader:        "X-Token",
			ClientTokenParams:  []string{"access_token"},
			ClientTokenHeaders: []string{"X-Token", "access-token"},
			Errcodes: []ErrcodeField{
				{Path: "err_no", Token: []int{TTErrTokenInvalid, TTErrTokenExpired}},
				{Path: "errcode", Token: []int{40002}, Rate: []int{60003}},
				{Path: "error", Token: []int{2}},
			},
			Never: append([]NeverPath{
				{ttPathAppToken, "it would fetch an access token that supersedes the shared one"},
				{ttPathAppTokenV1, "it would fetch an access token that supersedes the shared one"},
				{ttPathStableAppToken, "a force_refresh would invalidate every instance's access token"},
			}, ttCodeNever...),
		},
	},
	Tokens: []*TokenSpec{&douyinAppToken},
}

var _ TokenClient = appTokens{}

// AppTokens is the token client of Douyin's mini-app access_token
// (POST /api/apps/v2/token), for the gateway's developer.toutiao.com APIs.
func (c *DouyinClient) AppTokens() TokenClient { return appTokens{c} }

type appTokens struct{ c *DouyinClient }

func (t appTokens) Token(ctx context.Context) (Token, error) { return t.c.AppToken(ctx) }

// ttAppTokenAnswer is {"err_no","err_tips","data":{"access_token","expires_in"}}
// (an error answer has data too, with an empty token).
type ttAppTokenAnswer struct {
	ErrNo   lenientInt    `json:"err_no"`
	ErrTips lenientString `json:"err_tips"`
	Data    *struct {
		AccessToken lenientString `json:"access_token"`
		ExpiresIn   lenientInt    `json:"expires_in"`
	} `json:"data"`
}

func (a *ttAppTokenAnswer) errOf() (lenientInt, string) { return a.ErrNo, string(a.ErrTips) }

// appTokenVerdict maps /api/apps/v2/token's err_no (documented: -1 system
// error, 40015 appid, 40017 secret, 40020 grant_type).
func appTokenVerdict(errno int, msg string) verdict {
	cause := platformMessage(msg)
	fail := func(m string) verdict { return verdict{err: platformErr(mperr.PlatformError, errno, m, cause)} }
	switch errno {
	case -1:
		return verdict{err: platformErr(mperr.PlatformError, errno, "the platform is busy", cause), transient: true}
	case 40015:
		return fail("the platform rejected the app id")
	case 40017:
		return fail("the platform rejected the app secret")
	case 40020:
		return fail("the platform says grant_type is wrong")
	}
	return fail("the platform returned an error")
}

// AppToken calls POST /api/apps/v2/token on developer.toutiao.com (or
// Config.APIBase). Each fetch supersedes the previous token (valid 5
// minutes more).
func (c *DouyinClient) AppToken(ctx context.Context) (Token, error) {
	body, err := json.Marshal(struct {
		AppID     string `json:"appid"`
		Secret    string `json:"secret"`
		GrantType string `json:"grant_type"`
	}{c.appID, c.secret, "client_credential"})
	if err != nil {
		return Token{}, mperr.Wrap(mperr.Internal, "cannot build the platform request", err)
	}
	return c.ttToken(ctx, ttPathAppToken, c.endpointURL(ttPathAppToken, nil), body, func() ttTokenAnswer { return &ttAppTokenAnswer{} }, appTokenVerdict)
}

func (a *ttAppTokenAnswer) token() (lenientString, lenientInt, bool) {
	if a.Data == nil {
		return "", lenientInt{}, false
	}
	return a.Data.AccessToken, a.Data.ExpiresIn, true
}
