package caddyfile

import (
	cf "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-miniprogram/caddy-miniprogram/module"
)

// parseTokenBinding parses the token_binding subdirective (STUB: to be built).
func parseTokenBinding(d *cf.Dispenser, h *module.Handler) error {
	return d.Errf("token_binding is not supported yet")
}
