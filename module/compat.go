package module

import (
	"net/http"

	"github.com/caddyserver/caddy/v2"
)

// CompatConfig serves platform-compatible endpoints (zero-change mode).
type CompatConfig struct {
	// Prefix the endpoints are served under, e.g. "/mp-compat".
	Prefix string `json:"prefix,omitempty"`
}

// compatServer answers the compatibility endpoints (STUB: to be built).
type compatServer struct{}

func (h *Handler) provisionCompat(ctx caddy.Context) error { return nil }

func (h *Handler) compatMatches(path string) bool { return false }

func (h *Handler) serveCompat(w http.ResponseWriter, r *http.Request) error {
	http.NotFound(w, r)
	return nil
}
