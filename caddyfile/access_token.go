package caddyfile

import (
	"strconv"

	"github.com/caddy-miniprogram/caddy-miniprogram/module"
)

// parseAccessToken parses the access_token subdirective (WeChat's access
// token, used by the phone code flow); the dispenser is on "access_token":
//
//	access_token [stable|classic] [{
//		refresh <fraction>    # 0 < fraction < 1, default 0.8
//	}]
//
// Without arguments or block it sets the defaults explicitly (stable mode).
// The mode, the fraction and that it is used on WeChat only are the
// handler's rules (module.Handler.Validate).
func (p *parser) parseAccessToken(h *module.Handler) error {
	d := p.d
	cfg := &module.AccessTokenConfig{Mode: "stable"}
	if d.NextArg() {
		p.mark("access_token.mode")
		cfg.Mode = d.Val()
		if d.NextArg() {
			return d.Errf("access_token takes one mode (stable or classic), got another argument '%s'", d.Val())
		}
	}
	seen := make(map[string]bool)
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		if seen[opt] {
			return d.Errf("duplicate access_token option '%s'", opt)
		}
		seen[opt] = true
		p.mark("access_token." + opt)
		switch opt {
		case "refresh":
			v, err := oneArg(d)
			if err != nil {
				return err
			}
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return d.Errf("access_token: refresh '%s' is not a number (want a fraction of the token's lifetime, such as 0.8)", v)
			}
			if err := module.CheckAccessTokenRefresh(f); err != nil {
				return d.Errf("%v", err)
			}
			cfg.Refresh = f
		default:
			return d.Errf("unrecognized access_token option '%s' (want refresh)", opt)
		}
	}
	h.AccessToken = cfg
	return nil
}
