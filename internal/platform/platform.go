// Package platform holds the clients of the mini-program platforms' server
// APIs (WeChat, Douyin): code2session, the server tokens (WeChat's access
// token, Douyin's client token) and the phone-code exchange. Every failure is an *mperr.Error mapped onto the README's
// error table, keeping the platform's own number as its Errcode.
package platform

import (
	"context"
	"time"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/phone"
)

// Platform names, as written in the Caddyfile and in X-Mp-Platform (see
// registry.go: the handler knows platforms by their Descriptor only).
const (
	WeChat = "wechat"
	Douyin = "douyin"
	QQ     = "qq"
)

// Identity field names platforms declare in IdentityFields (the handler
// injects each as a body field of that name and a header X-Mp-<Name>).
const (
	// FieldAnonymousOpenID is Douyin's anonymous_openid.
	FieldAnonymousOpenID = "anonymous_openid"
)

// Session is the result of one code2session exchange.
type Session struct {
	OpenID     string
	UnionID    string // empty when the platform gave none
	SessionKey string // base64 text, as the platform gave it
	// Fields are the platform's other identity fields, by the names its
	// Descriptor.IdentityFields declares (Douyin's anonymous_openid,
	// Feishu's tenant_key); nil when there are none. Never "" values.
	Fields map[string]string
}

// LoginCodes are what a login request carries for code2session.
type LoginCodes struct {
	// Code is the login code (wx.login's, tt.login's code).
	Code string
	// Anonymous is an anonymous login code, sent only to a platform whose
	// Descriptor has AnonymousCode (Douyin); others never see one.
	Anonymous string
}

// Token is an access token.
type Token struct {
	AccessToken string
	ExpiresIn   time.Duration
}

// Client exchanges login codes.
type Client interface {
	// Name is the platform's Descriptor.Name.
	Name() string
	// Code2Session exchanges a login code (and, where the platform has
	// them, an anonymous code) once. Errors are *mperr.Error.
	Code2Session(ctx context.Context, in LoginCodes) (Session, error)
	// Close releases the client's resources (idle connections) when the
	// handler that made it is cleaned up.
	Close() error
}

// TokenClient fetches a server token whose every fetch supersedes the
// previous one (which stays valid a few minutes more): WeChat's access
// token (GET /cgi-bin/token) or Douyin's client token
// (DouyinClient.ClientTokens).
type TokenClient interface {
	Token(ctx context.Context) (Token, error)
}

// StableTokenClient also fetches WeChat's stable access token.
type StableTokenClient interface {
	TokenClient
	// StableToken calls POST /cgi-bin/stable_token.
	StableToken(ctx context.Context, forceRefresh bool) (Token, error)
}

// PhoneClient exchanges a phone code (the getPhoneNumber button's
// e.detail.code) for the phone number: WeChat's getuserphonenumber with
// an access token, Douyin's get_phonenumber_info with a client token.
type PhoneClient interface {
	// GetUserPhoneNumber exchanges code with the token. When the platform
	// says the token is invalid or expired the error wraps
	// ErrTokenInvalid, so that the caller refreshes the token and retries
	// once. openid, when not "", is sent along where the platform takes
	// it (WeChat: it then checks that the phone code belongs to that
	// user; Douyin takes none and ignores it). The watermark appid is
	// returned, not checked.
	GetUserPhoneNumber(ctx context.Context, token, code, openid string) (phone.Number, error)
}
