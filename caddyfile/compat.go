package caddyfile

import (
	"github.com/caddy-miniprogram/caddy-miniprogram/module"
)

// parseCompat parses "compat <prefix> [{ allow_public }]": the
// platform-compatible endpoints for unchanged legacy backends (zero-change
// mode) are served under prefix, e.g. /mp-compat. The prefix's rules (it
// starts with "/", does not end with one, does not overlap the login,
// phone and decrypt paths) are the handler's (module.CheckCompatPrefix,
// run by Validate). A block with compat and no other route is valid:
// typically a second site on an internal listener with the same app and
// store.
//
// The handler refuses to load on a server whose listeners are not all
// loopback or unix sockets (bind 127.0.0.1); allow_public lifts that, for a
// listener other hosts reach on purpose (a private network address).
func (p *parser) parseCompat(h *module.Handler) error {
	d := p.d
	args := d.RemainingArgs()
	switch len(args) {
	case 0:
		return missingValue(d, "compat", "a path prefix: compat <prefix> [{ allow_public }]")
	case 1:
	default:
		return d.Errf("compat takes one path prefix (compat <prefix> [{ allow_public }]), got %d values", len(args))
	}
	c := &module.CompatConfig{Prefix: args[0]}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch opt := d.Val(); opt {
		case "allow_public":
			if c.AllowPublic {
				return d.Errf("duplicate compat option '%s'", opt)
			}
			if err := flagArg(d); err != nil {
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
