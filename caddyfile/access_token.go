package caddyfile

import (
	"math"
	"strconv"

	cf "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

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
// That it is used on WeChat only is checked when the handler is
// provisioned (platform may come later in the block).
func parseAccessToken(d *cf.Dispenser, h *module.Handler) error {
	cfg := &module.AccessTokenConfig{Mode: "stable"}
	if d.NextArg() {
		switch v := d.Val(); v {
		case "stable", "classic":
			cfg.Mode = v
		default:
			return d.Errf("access_token: unknown mode '%s' (want stable or classic)", v)
		}
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
		switch opt {
		case "refresh":
			var v string
			if !d.AllArgs(&v) {
				return argErr(d, "access_token refresh (want a fraction such as 0.8)")
			}
			if err := noBlock(d, "refresh"); err != nil {
				return err
			}
			f, err := strconv.ParseFloat(v, 64)
			if err != nil || math.IsNaN(f) {
				return d.Errf("access_token: refresh '%s' is not a number (want a fraction of the token's lifetime, such as 0.8)", v)
			}
			if !(f > 0 && f < 1) {
				return d.Errf("access_token: refresh '%s' must be between 0 and 1, exclusive (a fraction of the token's lifetime, such as 0.8)", v)
			}
			cfg.Refresh = f
		default:
			return d.Errf("unrecognized access_token option '%s' (want refresh)", opt)
		}
	}
	h.AccessToken = cfg
	return nil
}
