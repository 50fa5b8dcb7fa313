// Package caddyfile parses the miniprogram Caddyfile directive into the
// http.handlers.miniprogram module's JSON configuration (module.Handler).
//
// Syntax:
//
//	miniprogram [<matcher>] {
//		platform         wechat|douyin
//		app_id           <id>
//		app_secret       <secret>
//		api_base         <http(s) origin>
//		store            memory [{
//			max_sessions <n>
//		}]
//		store            redis <redis://...|rediss://...> [{
//			<redis options, except addrs and master_name>
//		}]
//		store            redis {
//			addrs        <host:port>...
//			master_name  <name>
//			username     <user>
//			password     <password>
//			sentinel_username <user>
//			sentinel_password <password>
//			db           <n>
//			tls
//			ca_file      <path>
//			cert_file    <path>
//			key_file     <path>
//			timeout      <duration>
//			prefix       <prefix>
//		}
//		session_ttl      <duration>
//		login            <path>
//		phone            <path>
//		decrypt          <path>
//		max_body_size    <size>
//		platform_timeout <duration>
//		platform_retries <n>
//		exchange_wait    <duration>
//		field            code|anonymous_code|encrypted_data|iv|phone_code <name>
//		max_failed_exchanges <n>/<window>|off
//		access_token     [stable|classic] [{ refresh <fraction> }]
//		compat           <prefix> [{
//			allow_public
//		}]
//		token_binding    { ... }
//	}
//
// platform, app_id and app_secret are required, and so is at least one of
// login, phone and decrypt. Values holding a placeholder such as
// {env.MP_APP_ID} are kept verbatim (the handler replaces them when it is
// provisioned) and are not validated here.
package caddyfile

import (
	"fmt"
	"math"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	cf "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/dustin/go-humanize"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/keyseal"
	"github.com/caddy-miniprogram/caddy-miniprogram/module"
)

// Parse sets up the handler from Caddyfile tokens. It is registered with
// httpcaddyfile.RegisterHandlerDirective, which has already taken the
// optional matcher token off the directive.
func Parse(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	m := new(module.Handler)
	if err := UnmarshalHandler(h.Dispenser, m); err != nil {
		return nil, err
	}
	return m, nil
}

// UnmarshalHandler parses one miniprogram directive (without a matcher
// token) into h. The dispenser may be positioned on the directive's name or
// just before it (a fresh dispenser). Every error names the file and line of
// the offending token.
func UnmarshalHandler(d *cf.Dispenser, h *module.Handler) error {
	if d.Val() == "" && !d.Next() { // fresh dispenser: consume the name
		return d.Err("expected the miniprogram directive")
	}
	directive := d.Token() // for errors about the block as a whole
	name := d.Val()
	if d.NextArg() {
		return d.Errf("%s takes no arguments besides an optional matcher; its options go in a block", name)
	}

	seen := make(map[string]bool)
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		sub := d.Val()
		key := sub
		if sub == "field" {
			// field may repeat, once per kind
			if d.NextArg() {
				key = "field " + d.Val()
				d.Prev()
			}
		}
		if seen[key] {
			return d.Errf("duplicate subdirective '%s' in %s", key, name)
		}
		seen[key] = true

		var err error
		switch sub {
		case "platform":
			var v string
			if v, err = oneArg(d); err != nil {
				return err
			}
			switch v {
			case "wechat", "douyin":
				h.Platform = v
			default:
				return d.Errf("unknown platform '%s' (want wechat or douyin)", v)
			}

		case "app_id":
			h.AppID, err = oneArg(d)
		case "app_secret":
			h.AppSecret, err = oneArg(d)

		case "api_base":
			var v string
			if v, err = oneArg(d); err != nil {
				return err
			}
			if err := checkAPIBase(v); err != nil {
				return d.Errf("api_base: %v", err)
			}
			h.APIBase = v

		case "store":
			h.Store, err = parseStore(d)

		case "session_ttl":
			h.SessionTTL, err = durationArg(d)
		case "platform_timeout":
			h.PlatformTimeout, err = durationArg(d)
		case "exchange_wait":
			h.ExchangeWait, err = durationArg(d)

		case "login":
			h.Login, err = pathArg(d)
		case "phone":
			h.Phone, err = pathArg(d)
		case "decrypt":
			h.Decrypt, err = pathArg(d)

		case "decrypt_watermark":
			var v string
			if v, err = oneArg(d); err != nil {
				return err
			}
			if cerr := module.CheckDecryptWatermark(v); cerr != nil {
				return d.Err(cerr.Error())
			}
			h.DecryptWatermark = v

		case "route_param":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return argErr(d, "route_param")
			}
			for _, a := range args {
				if err := module.CheckRouteParam(a); err != nil {
					return d.Err(err.Error())
				}
			}
			h.RouteParams = args

		case "max_body_size":
			var v string
			if v, err = oneArg(d); err != nil {
				return err
			}
			size, perr := humanize.ParseBytes(v)
			if perr != nil {
				return d.Errf("max_body_size: bad size '%s' (want a size like 64KiB, 1MB or 65536)", v)
			}
			if size == 0 || size > math.MaxInt64 {
				return d.Errf("max_body_size: size '%s' must be greater than zero", v)
			}
			h.MaxBodySize = int64(size)

		case "platform_retries":
			var n int
			if n, err = intArg(d); err != nil {
				return err
			}
			if n < 0 {
				return d.Errf("platform_retries: %d is negative (0 means no retries)", n)
			}
			h.PlatformRetries = &n

		case "max_failed_exchanges":
			var v string
			if v, err = oneArg(d); err != nil {
				return err
			}
			if err := module.CheckMaxFailedExchanges(v); err != nil {
				return d.Errf("%v", err)
			}
			h.MaxFailedExchanges = v

		case "field":
			if h.Fields == nil {
				h.Fields = new(module.Fields)
			}
			err = parseField(d, h.Fields)

		case "access_token":
			err = parseAccessToken(d, h)
		case "compat":
			err = parseCompat(d, h)
		case "token_binding":
			err = parseTokenBinding(d, h)

		default:
			return d.Errf("unrecognized %s subdirective '%s'", name, sub)
		}
		if err != nil {
			return err
		}
	}

	// Checks on the block as a whole are reported at the directive's line.
	var missing []string
	for _, r := range []struct{ name, val string }{
		{"platform", h.Platform}, {"app_id", h.AppID}, {"app_secret", h.AppSecret},
	} {
		if r.val == "" {
			missing = append(missing, r.name)
		}
	}
	if len(missing) > 0 {
		return errAt(directive, "%s block is missing required subdirective(s): %s", name, strings.Join(missing, ", "))
	}
	if h.Login == "" && h.Phone == "" && h.Decrypt == "" && h.Compat == nil {
		return errAt(directive, "%s block needs at least one route: login, phone, decrypt or compat", name)
	}
	if err := module.CheckRoutes(h.Login, h.Phone, h.Decrypt); err != nil {
		return errAt(directive, "%v", err)
	}
	return nil
}

// parseStore parses "store memory [{...}]" or "store redis [<url>] [{...}]";
// the dispenser is on "store".
func parseStore(d *cf.Dispenser) (*module.StoreConfig, error) {
	storeTok := d.Token()
	if !d.NextArg() {
		return nil, argErr(d, "store (want memory or redis)")
	}
	sc := &module.StoreConfig{Type: d.Val()}
	switch sc.Type {
	case "memory":
		if d.NextArg() {
			return nil, d.Errf("store memory takes no arguments besides a block, got '%s'", d.Val())
		}
		seen := make(map[string]bool)
		for nesting := d.Nesting(); d.NextBlock(nesting); {
			opt := d.Val()
			if seen[opt] {
				return nil, d.Errf("duplicate store memory option '%s'", opt)
			}
			seen[opt] = true
			switch opt {
			case "max_sessions":
				n, err := intArg(d)
				if err != nil {
					return nil, err
				}
				if n <= 0 {
					return nil, d.Errf("max_sessions: %d must be greater than zero", n)
				}
				sc.MaxSessions = n
			default:
				return nil, d.Errf("unrecognized store memory option '%s'", opt)
			}
		}
		return sc, nil

	case "redis":
		if d.NextArg() {
			sc.URL = d.Val()
			if err := checkRedisURL(sc.URL); err != nil {
				return nil, d.Errf("store redis: %v", err)
			}
			if d.NextArg() {
				return nil, d.Errf("store redis takes one URL, got another argument '%s'", d.Val())
			}
		}
		if err := parseRedisBlock(d, sc); err != nil {
			return nil, err
		}
		if sc.MasterName != "" && len(sc.Addrs) == 0 {
			return nil, errAt(storeTok, "store redis: master_name needs the sentinels' addrs")
		}
		if sc.URL == "" && len(sc.Addrs) == 0 {
			return nil, errAt(storeTok, "store redis needs a URL (redis://host:port/db) or a block with addrs")
		}
		return sc, nil

	default:
		return nil, d.Errf("unknown store type '%s' (want memory or redis)", sc.Type)
	}
}

// parseRedisBlock reads the optional block after "store redis [<url>]".
func parseRedisBlock(d *cf.Dispenser, sc *module.StoreConfig) error {
	seen := make(map[string]bool)
	var plainTok cf.Token // encryption_allow_plain, checked at the end
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		if seen[opt] {
			return d.Errf("duplicate store redis option '%s'", opt)
		}
		seen[opt] = true
		var err error
		switch opt {
		case "addrs":
			if sc.URL != "" {
				return d.Errf("store redis: addrs cannot be combined with a URL; use one or the other")
			}
			args := d.RemainingArgs()
			if len(args) == 0 {
				return argErr(d, "addrs")
			}
			for _, a := range args {
				if hasPlaceholder(a) {
					continue
				}
				host, port, serr := net.SplitHostPort(a)
				if serr != nil || host == "" || port == "" {
					return d.Errf("store redis: address '%s' is not host:port", a)
				}
				if p, perr := strconv.Atoi(port); perr != nil || p < 1 || p > 65535 {
					return d.Errf("store redis: address '%s' has a bad port", a)
				}
			}
			sc.Addrs = args
			err = noBlock(d, opt)

		case "master_name":
			if sc.URL != "" {
				return d.Errf("store redis: master_name cannot be combined with a URL; give the sentinels with addrs")
			}
			sc.MasterName, err = oneArg(d)
		case "username":
			sc.Username, err = oneArg(d)
		case "password":
			sc.Password, err = oneArg(d)
		case "sentinel_username":
			sc.SentinelUsername, err = oneArg(d)
		case "sentinel_password":
			sc.SentinelPassword, err = oneArg(d)
		case "ca_file":
			sc.CAFile, err = oneArg(d)
		case "cert_file":
			sc.CertFile, err = oneArg(d)
		case "key_file":
			sc.KeyFile, err = oneArg(d)
		case "prefix":
			sc.Prefix, err = oneArg(d)

		case "db":
			var n int
			if n, err = intArg(d); err != nil {
				return err
			}
			if n < 0 {
				return d.Errf("store redis: db %d is negative", n)
			}
			sc.DB = n

		case "tls":
			if d.NextArg() {
				return argErr(d, "tls (takes no arguments)")
			}
			if sc.URL != "" {
				return d.Errf("store redis: tls cannot be combined with a URL; use a rediss:// URL for TLS")
			}
			sc.TLS = true
			err = noBlock(d, opt)

		case "timeout":
			sc.Timeout, err = durationArg(d)

		case "encryption_keys":
			// encryption_keys <key> [<older key>...]: the first seals,
			// all open. A literal key is checked now; the error names
			// its position, never its text.
			args := d.RemainingArgs()
			if len(args) == 0 {
				return argErr(d, "encryption_keys")
			}
			for i, k := range args {
				if hasPlaceholder(k) {
					continue
				}
				ks := keyseal.SplitKeys(k)
				if len(ks) == 0 {
					return d.Errf("store redis: encryption key %d is empty", i+1)
				}
				for _, one := range ks {
					if _, kerr := keyseal.ParseKey(one); kerr != nil {
						return d.Errf("store redis: encryption key %d: %v", i+1, kerr)
					}
				}
			}
			sc.EncryptionKeys = args
			err = noBlock(d, opt)

		case "encryption_allow_plain":
			if d.NextArg() {
				return argErr(d, "encryption_allow_plain (takes no arguments)")
			}
			sc.EncryptionAllowPlain = true
			plainTok = d.Token()
			err = noBlock(d, opt)

		default:
			return d.Errf("unrecognized store redis option '%s'", opt)
		}
		if err != nil {
			return err
		}
	}
	if sc.EncryptionAllowPlain && len(sc.EncryptionKeys) == 0 {
		return errAt(plainTok, "store redis: encryption_allow_plain needs encryption_keys")
	}
	return nil
}

// parseField parses "field <kind> <name>"; the dispenser is on "field".
func parseField(d *cf.Dispenser, f *module.Fields) error {
	var kind, name string
	if !d.AllArgs(&kind, &name) {
		return argErr(d, "field (want: field <kind> <name>)")
	}
	if err := noBlock(d, "field"); err != nil {
		return err
	}
	switch kind {
	case "code":
		f.Code = name
	case "anonymous_code":
		f.AnonymousCode = name
	case "encrypted_data":
		f.EncryptedData = name
	case "iv":
		f.IV = name
	case "phone_code":
		f.PhoneCode = name
	default:
		return d.Errf("unknown field kind '%s' (want code, anonymous_code, encrypted_data, iv or phone_code)", kind)
	}
	return nil
}

// oneArg reads exactly one argument and no block.
func oneArg(d *cf.Dispenser) (string, error) {
	sub := d.Val()
	var v string
	if !d.AllArgs(&v) {
		return "", argErr(d, sub)
	}
	if err := noBlock(d, sub); err != nil {
		return "", err
	}
	if v == "" {
		return "", d.Errf("%s: empty value", sub)
	}
	return v, nil
}

// durationArg reads one positive duration such as 30m or 1.5s.
func durationArg(d *cf.Dispenser) (caddy.Duration, error) {
	sub := d.Val()
	v, err := oneArg(d)
	if err != nil {
		return 0, err
	}
	dur, err := caddy.ParseDuration(v)
	if err != nil {
		return 0, d.Errf("%s: bad duration '%s': %v", sub, v, err)
	}
	if dur <= 0 {
		return 0, d.Errf("%s: duration '%s' must be greater than zero", sub, v)
	}
	return caddy.Duration(dur), nil
}

// intArg reads one integer.
func intArg(d *cf.Dispenser) (int, error) {
	sub := d.Val()
	v, err := oneArg(d)
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, d.Errf("%s: '%s' is not an integer", sub, v)
	}
	return n, nil
}

// pathArg reads one route path, which must start with "/".
func pathArg(d *cf.Dispenser) (string, error) {
	sub := d.Val()
	v, err := oneArg(d)
	if err != nil {
		return "", err
	}
	if err := module.CheckRoutePath(v); err != nil {
		return "", d.Errf("%s: %v", sub, err)
	}
	return v, nil
}

// argErr is d.ArgErr prefixed with what was being parsed.
func argErr(d *cf.Dispenser, what string) error {
	return fmt.Errorf("%s: %w", what, d.ArgErr())
}

// errAt is d.Errf for a token the dispenser has moved past: the error names
// that token's file and line (and import chain).
func errAt(tok cf.Token, format string, args ...any) error {
	d := cf.NewDispenser([]cf.Token{tok})
	d.Next()
	return d.Errf(format, args...)
}

// noBlock fails if a block follows the current line.
func noBlock(d *cf.Dispenser, sub string) error {
	if d.NextBlock(d.Nesting()) {
		return d.Errf("%s does not take a block", sub)
	}
	return nil
}

// hasPlaceholder reports whether s holds a {placeholder}, which is replaced
// at provisioning and so cannot be checked now.
func hasPlaceholder(s string) bool {
	i := strings.IndexByte(s, '{')
	return i >= 0 && strings.IndexByte(s[i:], '}') > 0
}

// checkAPIBase wants an http(s) origin, optionally with a path prefix; no
// user info, query or fragment.
func checkAPIBase(s string) error {
	if hasPlaceholder(s) {
		return nil
	}
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("'%s' is not a URL: %v", s, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("'%s' must be an http:// or https:// URL", s)
	}
	if u.Host == "" {
		return fmt.Errorf("'%s' has no host", s)
	}
	if u.User != nil || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return fmt.Errorf("'%s' must be an origin (no user info, query or fragment)", s)
	}
	return nil
}

// checkRedisURL wants redis://[user:pass@]host[:port][/db] or rediss://.
func checkRedisURL(s string) error {
	if hasPlaceholder(s) {
		return nil
	}
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("'%s' is not a URL: %v", redactURL(s), err)
	}
	if u.Scheme != "redis" && u.Scheme != "rediss" {
		return fmt.Errorf("URL '%s' must start with redis:// or rediss://", redactURL(s))
	}
	if u.Hostname() == "" {
		return fmt.Errorf("URL '%s' has no host", redactURL(s))
	}
	if p := u.Port(); p != "" {
		if n, perr := strconv.Atoi(p); perr != nil || n < 1 || n > 65535 {
			return fmt.Errorf("URL '%s' has a bad port", redactURL(s))
		}
	}
	if db := strings.TrimPrefix(u.Path, "/"); db != "" {
		if n, perr := strconv.Atoi(db); perr != nil || n < 0 {
			return fmt.Errorf("URL '%s': path must be a database number, like /0", redactURL(s))
		}
	}
	if u.Fragment != "" {
		return fmt.Errorf("URL '%s' must not have a fragment", redactURL(s))
	}
	return nil
}

// redactURL hides a password in an error message.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		if i := strings.LastIndexByte(s, '@'); i >= 0 {
			return "<redacted>" + s[i:]
		}
		return s
	}
	return u.Redacted()
}
