package caddyfile

import (
	"strings"

	cf "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/dustin/go-humanize"

	"github.com/caddy-miniprogram/caddy-miniprogram/module"
)

// parseTokenBinding parses the token_binding subdirective; the dispenser is
// on "token_binding":
//
//	token_binding {
//		from              json <dotted.path> | header <name> | cookie <name>
//		request           bearer | header <name> | cookie <name>
//		max_response_size <size>
//	}
//
// from is required (exactly once); request defaults to bearer for json and
// header sources and to the same cookie for a cookie source;
// max_response_size (default 1MiB) bounds the login answer buffered to read
// a JSON token.
func parseTokenBinding(d *cf.Dispenser, h *module.Handler) error {
	tbTok := d.Token()
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
		switch opt {
		case "from":
			args := d.RemainingArgs()
			if len(args) != 2 {
				return argErr(d, "token_binding from (want: from json <path> | from header <name> | from cookie <name>)")
			}
			kind, v := args[0], args[1]
			switch kind {
			case "json":
				for seg := range strings.SplitSeq(v, ".") {
					if seg == "" {
						return d.Errf("token_binding from json: path '%s' has an empty segment (want e.g. data.token)", v)
					}
				}
				c.From.JSON = v
			case "header":
				if !module.ValidTokenName(v) {
					return d.Errf("token_binding from header: '%s' is not a header name", v)
				}
				c.From.Header = v
			case "cookie":
				if !module.ValidTokenName(v) {
					return d.Errf("token_binding from cookie: '%s' is not a cookie name", v)
				}
				c.From.Cookie = v
			default:
				return d.Errf("token_binding from: unknown source '%s' (want json, header or cookie)", kind)
			}
		case "request":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return argErr(d, "token_binding request (want: request bearer | request header <name> | request cookie <name>)")
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
					return argErr(d, "token_binding request "+args[0]+" (want: request "+args[0]+" <name>)")
				}
				if !module.ValidTokenName(args[1]) {
					return d.Errf("token_binding request %s: '%s' is not a %s name", args[0], args[1], args[0])
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
			var v string
			if !d.AllArgs(&v) {
				return argErr(d, "token_binding max_response_size")
			}
			size, err := humanize.ParseBytes(v)
			if err != nil {
				return d.Errf("token_binding max_response_size: bad size '%s' (want a size like 1MiB or 65536)", v)
			}
			if size == 0 || size > 1<<40 {
				return d.Errf("token_binding max_response_size: size '%s' must be between 1 byte and 1TiB", v)
			}
			c.MaxResponseSize = int64(size)
		default:
			return d.Errf("unrecognized token_binding option '%s' (want from, request or max_response_size)", opt)
		}
		if err := noBlock(d, "token_binding "+opt); err != nil {
			return err
		}
	}
	if !seen["from"] {
		return errAt(tbTok, "token_binding needs 'from json <path>', 'from header <name>' or 'from cookie <name>'")
	}
	if err := c.Validate(); err != nil {
		return errAt(tbTok, "%v", err)
	}
	h.TokenBinding = c
	return nil
}
