package caddyfile

import (
	"github.com/caddy-miniprogram/caddy-miniprogram/module"
)

// parseGateway parses the open-API gateway:
//
//	gateway <prefix> {
//		allow      <api path>...   (repeatable; exact, or a prefix ending in /*)
//		max_buffer <size>
//		host_mode
//		allow_public
//	}
//
// The rules (prefix shape and overlaps, the allow-list against the
// platform's never-relayed paths, max_buffer's range) are the handler's,
// run by Validate. Like compat, the handler refuses to load on a server
// whose listeners are not all loopback or unix sockets unless
// allow_public.
func (p *parser) parseGateway(h *module.Handler) error {
	d := p.d
	const usage = "gateway <prefix> { allow <api path>...; max_buffer <size>; host_mode; allow_public }"
	args := d.RemainingArgs()
	switch len(args) {
	case 0:
		return missingValue(d, "gateway", "a path prefix: "+usage)
	case 1:
	default:
		return d.Errf("gateway takes one path prefix (%s), got %d values", usage, len(args))
	}
	c := &module.GatewayConfig{Prefix: args[0]}
	seen := map[string]bool{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		if seen[opt] && opt != "allow" {
			return d.Errf("duplicate gateway option '%s'", opt)
		}
		seen[opt] = true
		var err error
		switch opt {
		case "allow":
			if len(c.Allow) == 0 {
				p.mark("gateway.allow") // a rule's refusal names the first
			}
			var paths []string
			if paths, err = someArgs(d); err == nil {
				c.Allow = append(c.Allow, paths...)
			}
		case "max_buffer":
			p.mark("gateway.max_buffer")
			c.MaxBuffer, err = sizeArg(d)
		case "host_mode":
			if err = flagArg(d); err == nil {
				c.HostMode = true
			}
		case "allow_public":
			if err = flagArg(d); err == nil {
				c.AllowPublic = true
			}
		default:
			return d.Errf("unrecognized gateway option '%s' (want allow, max_buffer, host_mode or allow_public)", opt)
		}
		if err != nil {
			return err
		}
	}
	h.Gateway = c
	return nil
}
