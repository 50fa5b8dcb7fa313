package module

import (
	"context"
	"net/http"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/store"
)

// TokenBindingConfig binds the token the upstream returns at login to the
// user's session (STUB: to be built).
type TokenBindingConfig struct{}

// tokenBinding is the provisioned binding (STUB).
type tokenBinding struct{}

func (h *Handler) provisionTokenBinding(ctx caddy.Context) error { return nil }

// boundSession finds the session by the upstream's token the request
// carries; ok is false when it carries none.
func (h *Handler) boundSession(ctx context.Context, r *http.Request) (s store.Session, ok bool, err error) {
	return s, false, nil
}

// proxyAndBind forwards the login request and binds the token found in the
// upstream's response to the session.
func (h *Handler) proxyAndBind(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, s store.Session) error {
	return next.ServeHTTP(w, r)
}
