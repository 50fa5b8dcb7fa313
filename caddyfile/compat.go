package caddyfile

import (
	cf "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-miniprogram/caddy-miniprogram/module"
)

// parseCompat parses "compat <prefix>": the platform-compatible endpoints
// for unchanged legacy backends (zero-change mode) are served under prefix,
// e.g. /mp-compat. The prefix must start with "/" and not end with "/"; that
// it does not overlap the login, phone and decrypt paths is checked by the
// handler's Validate (those may come later in the block). A block with
// compat and no other route is valid: typically a second site on an
// internal listener with the same app and store.
func parseCompat(d *cf.Dispenser, h *module.Handler) error {
	v, err := oneArg(d)
	if err != nil {
		return err
	}
	if err := module.CheckCompatPrefix(v); err != nil {
		return d.Errf("%v", err)
	}
	h.Compat = &module.CompatConfig{Prefix: v}
	return nil
}
