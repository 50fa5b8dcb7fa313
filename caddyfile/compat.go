package caddyfile

import (
	cf "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-miniprogram/caddy-miniprogram/module"
)

// parseCompat parses "compat <prefix> [{ allow_public }]": the
// platform-compatible endpoints for unchanged legacy backends (zero-change
// mode) are served under prefix, e.g. /mp-compat. The prefix must start with
// "/" and not end with "/"; that it does not overlap the login, phone and
// decrypt paths is checked by the handler's Validate (those may come later
// in the block). A block with compat and no other route is valid: typically
// a second site on an internal listener with the same app and store.
//
// The handler refuses to load on a server whose listeners are not all
// loopback or unix sockets (bind 127.0.0.1); allow_public lifts that, for a
// listener other hosts reach on purpose (a private network address).
func parseCompat(d *cf.Dispenser, h *module.Handler) error {
	var v string
	if !d.AllArgs(&v) {
		return argErr(d, "compat (want: compat <prefix> [{ allow_public }])")
	}
	if err := module.CheckCompatPrefix(v); err != nil {
		return d.Errf("%v", err)
	}
	c := &module.CompatConfig{Prefix: v}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch opt := d.Val(); opt {
		case "allow_public":
			if c.AllowPublic {
				return d.Errf("duplicate compat option '%s'", opt)
			}
			if d.NextArg() {
				return argErr(d, "allow_public (takes no arguments)")
			}
			if err := noBlock(d, opt); err != nil {
				return err
			}
			c.AllowPublic = true
		default:
			return d.Errf("unrecognized compat option '%s' (want allow_public)", opt)
		}
	}
	h.Compat = c
	return nil
}
