package caddyfile

import (
	cf "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-miniprogram/caddy-miniprogram/module"
)

// parseApp parses one app of a handler serving several; the dispenser is
// on "app":
//
//	app <name> {
//		platform            <platform>
//		app_id              <id>
//		app_secret          <secret>
//		api_base            <origin>
//		private_key         <PEM file>|{env.X}
//		platform_public_key <PEM file>|{env.X}
//		aes_key             {env.X}
//		access_token        [stable|classic] [{ refresh <fraction> }]
//		path                <pattern>...
//	}
//
// The fields mean what they mean for one app; the handler's rules
// (module.Handler.Validate) check them, naming the app as apps[<name>].
func (p *parser) parseApp(h *module.Handler) error {
	d := p.d
	if !d.NextArg() {
		return missingValue(d, "app", "a name: app <name> { platform ...; app_id ... }")
	}
	a := module.AppConfig{Name: d.Val()}
	if d.NextArg() {
		return d.Errf("app takes one name, got another argument '%s'", d.Val())
	}
	base := "apps[" + a.Name + "]"
	p.mark(base)
	seen := make(map[string]bool)
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		if seen[opt] {
			return d.Errf("duplicate option '%s' in app %s", opt, a.Name)
		}
		seen[opt] = true
		p.mark(base + "." + opt)
		var err error
		switch opt {
		case "platform":
			a.Platform, err = oneArg(d)
		case "app_id":
			a.AppID, err = oneArg(d)
		case "app_secret":
			a.AppSecret, err = oneArg(d)
		case "api_base":
			a.APIBase, err = oneArg(d)
		case "private_key":
			a.PrivateKey, err = oneArg(d)
		case "platform_public_key":
			a.PlatformPublicKey, err = oneArg(d)
		case "aes_key":
			a.AESKey, err = oneArg(d)
		case "path":
			a.Paths, err = someArgs(d)
		case "access_token":
			// access_token's own parser, into a scratch handler; its
			// fields are marked under the app.
			var tmp module.Handler
			sub := &parser{d: d, fields: make(map[string]cf.Token)}
			err = sub.parseAccessToken(&tmp)
			for k, v := range sub.fields {
				p.fields[base+"."+k] = v
			}
			a.AccessToken = tmp.AccessToken
		default:
			return d.Errf("unrecognized option '%s' in app %s (want platform, app_id, app_secret, api_base, private_key, platform_public_key, aes_key, access_token or path)", opt, a.Name)
		}
		if err != nil {
			return err
		}
	}
	h.Apps = append(h.Apps, a)
	return nil
}

// parseSelectApp parses "select_app <selector>...": header <name>, query
// <name>, path, referer, in the order they are tried.
func (p *parser) parseSelectApp(h *module.Handler) error {
	d := p.d
	args := d.RemainingArgs()
	if len(args) == 0 {
		return missingValue(d, "select_app", "one or more of header <name>, query <name>, path, referer")
	}
	if err := noBlock(d, "select_app"); err != nil {
		return err
	}
	for i := 0; i < len(args); i++ {
		s := module.AppSelector{By: args[i]}
		switch s.By {
		case module.SelectByHeader, module.SelectByQuery:
			if i+1 >= len(args) {
				return d.Errf("select_app: %s needs a name (select_app %s <name>)", s.By, s.By)
			}
			i++
			s.Name = args[i]
		case module.SelectByPath, module.SelectByReferer:
		default:
			return d.Errf("select_app: unknown selector '%s' (want header <name>, query <name>, path or referer)", s.By)
		}
		h.SelectApp = append(h.SelectApp, s)
	}
	return nil
}
