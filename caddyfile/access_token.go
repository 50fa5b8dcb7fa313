package caddyfile

import (
	cf "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-miniprogram/caddy-miniprogram/module"
)

// parseAccessToken parses the access_token subdirective (STUB: to be built).
func parseAccessToken(d *cf.Dispenser, h *module.Handler) error {
	return d.Errf("access_token is not supported yet")
}
