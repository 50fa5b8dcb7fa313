package caddyfile

import (
	"github.com/caddy-miniprogram/caddy-miniprogram/module"
)

// parseSession parses the session subdirective; the dispenser is on
// "session":
//
//	session [{
//		header        <name>
//		cookie        <name>
//		request       bearer|header|cookie
//		ttl           <duration>
//		max_age       <duration>
//		refresh_every <duration>
//	}]
//
// Without a block (or without header and cookie) the login answer carries
// the token in the X-Mp-Session header and later requests send it as
// Authorization: Bearer. The names, the durations and how they relate are
// the handler's rules (module.Handler's validate).
func (p *parser) parseSession(h *module.Handler) error {
	d := p.d
	if d.NextArg() {
		return d.Errf("session takes no arguments, its options go in a block (header, cookie, request, ttl, max_age, refresh_every)")
	}
	c := new(module.SessionConfig)
	seen := make(map[string]bool)
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		if seen[opt] {
			return d.Errf("duplicate session option '%s'", opt)
		}
		seen[opt] = true
		p.mark("session." + opt)
		var err error
		switch opt {
		case "header":
			c.Header, err = oneArg(d)
		case "cookie":
			c.Cookie, err = oneArg(d)
		case "request":
			c.Request, err = oneArg(d)
		case "ttl":
			c.TTL, err = durationArg(d, "session.ttl")
		case "max_age":
			c.MaxAge, err = durationArg(d, "session.max_age")
		case "refresh_every":
			c.RefreshEvery, err = durationArg(d, "session.refresh_every")
		default:
			return d.Errf("unrecognized session option '%s' (want header, cookie, request, ttl, max_age or refresh_every)", opt)
		}
		if err != nil {
			return err
		}
	}
	h.Session = c
	return nil
}
