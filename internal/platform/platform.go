// Package platform holds the clients of the mini-program platforms' server
// APIs (WeChat, Douyin): code2session and, for WeChat, access tokens and the
// phone-code exchange. Every failure is an *mperr.Error mapped onto the README's
// error table, keeping the platform's own number as its Errcode.
package platform

import (
	"context"
	"time"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/phone"
)

// Platform names, as written in the Caddyfile and in X-Mp-Platform.
const (
	WeChat = "wechat"
	Douyin = "douyin"
)

// Session is the result of one code2session exchange.
type Session struct {
	OpenID          string
	UnionID         string // empty when the platform gave none
	AnonymousOpenID string // Douyin, when an anonymous_code was sent
	SessionKey      string // base64 text, as the platform gave it
}

// Token is an access token.
type Token struct {
	AccessToken string
	ExpiresIn   time.Duration
}

// Client exchanges login codes.
type Client interface {
	// Name is WeChat or Douyin.
	Name() string
	// Code2Session exchanges a login code (and, on Douyin, an optional
	// anonymous code) once. Errors are *mperr.Error.
	Code2Session(ctx context.Context, code, anonymousCode string) (Session, error)
	// Close releases the client's resources (idle connections) when the
	// handler that made it is cleaned up.
	Close() error
}

// TokenClient fetches access tokens (WeChat).
type TokenClient interface {
	// StableToken calls POST /cgi-bin/stable_token.
	StableToken(ctx context.Context, forceRefresh bool) (Token, error)
	// Token calls GET /cgi-bin/token (invalidates the previous token).
	Token(ctx context.Context) (Token, error)
}

// PhoneClient exchanges WeChat's phone code.
type PhoneClient interface {
	// GetUserPhoneNumber calls POST /wxa/business/getuserphonenumber.
	// When the platform says the token is invalid or expired (40001, 40014,
	// 42001) the error wraps ErrTokenInvalid, so that the caller refreshes
	// the token and retries once.
	// openid, when not "", is sent along: the platform then checks that
	// the phone code belongs to that user.
	GetUserPhoneNumber(ctx context.Context, accessToken, code, openid string) (phone.Number, error)
}
