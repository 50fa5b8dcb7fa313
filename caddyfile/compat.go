package caddyfile

import (
	cf "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-miniprogram/caddy-miniprogram/module"
)

// parseCompat parses the compat subdirective (STUB: to be built).
func parseCompat(d *cf.Dispenser, h *module.Handler) error {
	return d.Errf("compat is not supported yet")
}
