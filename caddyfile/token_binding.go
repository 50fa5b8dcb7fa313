package caddyfile

import (
	"github.com/caddy-miniprogram/caddy-miniprogram/module"
)

// parseTokenBinding parses the token_binding subdirective; the dispenser is
// on "token_binding":
//
//	token_binding {
//		from              json <dotted.path> | header <name> | cookie <name>
//		request           bearer | header <name> | cookie <name>
//		max_response_size <size>
//		identity          all | routes
//		rebind            <path>...
//	}
//
// from is required (exactly once); request defaults to bearer for json and
// header sources and to the same cookie for a cookie source;
// max_response_size (default 1MiB) bounds the login answer buffered to read
// a JSON token. The names, the path and the bounds are the handler's rules
// (module.TokenBindingConfig.Validate, run by the handler's Validate).
func (p *parser) parseTokenBinding(h *module.Handler) error {
	d := p.d
	if d.NextArg() {
		return d.Errf("token_binding takes no arguments, its options go in a block (from json|header|cookie <value>)")
	}
	c := new(module.TokenBindingConfig)
	seen := make(map[string]bool)
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		if seen[opt] {
			if opt == "from" {
				return d.Errf("token_binding takes exactly one 'from' (json, header or cookie), got a second one")
			}
			return d.Errf("duplicate token_binding option '%s'", opt)
		}
		seen[opt] = true
		p.mark("token_binding." + opt)
		switch opt {
		case "from":
			args := d.RemainingArgs()
			if len(args) != 2 {
				return d.Errf("token_binding from takes a source and a value (from json <path> | from header <name> | from cookie <name>), got %d value(s); %s", len(args), envHint)
			}
			switch kind, v := args[0], args[1]; kind {
			case "json":
				c.From.JSON = v
			case "header":
				c.From.Header = v
			case "cookie":
				c.From.Cookie = v
			default:
				return d.Errf("token_binding from: unknown source '%s' (want json, header or cookie)", kind)
			}
		case "request":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return missingValue(d, "token_binding request", "bearer, header <name> or cookie <name>")
			}
			q := new(module.TokenCarrier)
			switch args[0] {
			case "bearer":
				if len(args) != 1 {
					return d.Errf("token_binding request bearer takes no value, got '%s'", args[1])
				}
				q.Bearer = true
			case "header", "cookie":
				if len(args) != 2 {
					return d.Errf("token_binding request %s takes a name (request %s <name>), got %d value(s); %s", args[0], args[0], len(args)-1, envHint)
				}
				if args[0] == "header" {
					q.Header = args[1]
				} else {
					q.Cookie = args[1]
				}
			default:
				return d.Errf("token_binding request: unknown carrier '%s' (want bearer, header or cookie)", args[0])
			}
			c.Request = q
		case "max_response_size":
			n, err := sizeArg(d)
			if err != nil {
				return err
			}
			if err := module.CheckMaxResponseSize(n); err != nil {
				return d.Errf("%v", err)
			}
			c.MaxResponseSize = n
			continue // sizeArg has checked that no block follows
		case "identity":
			v, err := oneArg(d)
			if err != nil {
				return err
			}
			c.Identity = v
		case "rebind":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return missingValue(d, "token_binding rebind", "one or more paths, e.g. /api/token/refresh")
			}
			c.Rebind = args
		default:
			return d.Errf("unrecognized token_binding option '%s' (want from, request, max_response_size, identity or rebind)", opt)
		}
		if err := noBlock(d, "token_binding "+opt); err != nil {
			return err
		}
	}
	h.TokenBinding = c
	return nil
}
