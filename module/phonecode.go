package module

import (
	"net/http"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/mperr"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/reqbody"
)

// AccessTokenConfig configures how WeChat's access token is obtained and
// shared (through the session store) by every instance.
type AccessTokenConfig struct {
	// Mode is "stable" (POST /cgi-bin/stable_token, default) or "classic"
	// (GET /cgi-bin/token).
	Mode string `json:"mode,omitempty"`
}

// provisionAccessToken sets h.tokens up for WeChat (STUB: to be built).
func (h *Handler) provisionAccessToken(ctx caddy.Context) error { return nil }

// servePhoneCode exchanges WeChat's phone code and injects the number
// (STUB: to be built).
func (h *Handler) servePhoneCode(r *http.Request, body *reqbody.Body, phoneCode string) error {
	return mperr.New(mperr.BadRequest, "phone codes are not supported yet")
}
