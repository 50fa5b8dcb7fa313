// Package caddyfile parses the miniprogram Caddyfile directive into the
// http.handlers.miniprogram module's JSON configuration (module.Handler).
//
// Syntax:
//
//	miniprogram [<matcher>] {
//		platform         wechat|douyin    (a registered platform: internal/platform)
//		app_id           <id>
//		app_secret       <secret>
//		api_base         <http(s) origin>
//		private_key      <PEM file>|{env.X}   (Douyin, Alipay: the app's RSA private key)
//		platform_public_key <PEM file>|{env.X} (Alipay: Alipay's public key)
//		aes_key          <base64>|{env.X}     (Alipay: the app's content encryption key)
//		store            memory [{
//			max_sessions <n>
//		}]
//		store            redis <redis://...|rediss://...> [{
//			<redis options, except addrs, master_name and tls>
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
//			encryption_keys        <key> [<older key>...]
//			encryption_allow_plain
//		}
//		session_ttl      <duration>
//		login            <path>
//		phone            <path>
//		decrypt          <path>
//		decrypt_watermark required|optional
//		route_param      <query parameter>...
//		max_body_size    <size>
//		platform_timeout <duration>
//		platform_retries <n>
//		exchange_wait    <duration>
//		field            code|anonymous_code|encrypted_data|iv|phone_code|response <name>
//		max_failed_exchanges <n>/<window>|off
//		access_token     [stable|classic] [{
//			refresh <fraction>
//		}]
//		compat           <prefix> [{
//			allow_public
//		}]
//		gateway          <prefix> {
//			allow        <api path>...
//			max_buffer   <size>
//			host_mode
//			allow_public
//		}
//		token_binding    {
//			from              json <dotted.path>|header <name>|cookie <name>
//			request           bearer|header <name>|cookie <name>
//			max_response_size <size>
//			identity          all|routes
//			rebind            <path>...
//		}
//		header_names     mp|cloudrun|both
//		identity_cache   <duration>|off
//		session          [{
//			header        <name>
//			cookie        <name>
//			ttl           <duration>
//			max_age       <duration>
//			refresh_every <duration>
//		}]
//		require_session  <path>...
//		logout           <path>...
//	}
//
// Several apps in one handler: app blocks instead of platform, app_id,
// app_secret, api_base, private_key, platform_public_key, aes_key and
// access_token (every other subdirective is shared by the apps), and how a
// request names its app:
//
//	miniprogram {
//		select_app header <name> | query <name> | path | referer ...
//		app <name> {
//			platform, app_id, app_secret, api_base, private_key,
//			platform_public_key, aes_key, access_token (as above)
//			path <pattern>...
//		}
//		app <name> { ... }
//		login /api/login
//		...
//	}
//
// platform, app_id and app_secret (but for Alipay) are required, and so is
// at least one of login, phone, decrypt, compat and gateway. Values holding
// a placeholder such as
// {env.MP_APP_ID} are kept verbatim (the handler replaces them when it is
// provisioned, and checks them then).
//
// The parser holds no rule of meaning: it turns tokens into module.Handler
// (refusing only what does not parse: unknown names, argument counts,
// numbers, durations and sizes), then runs the handler's own Validate, the
// one Caddy runs on a JSON config, and reports its refusal at the line of
// the field it names (module.FieldError).
package caddyfile

import (
	"errors"
	"math"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	cf "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/dustin/go-humanize"

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

// parser reads one directive; fields remembers the token that set each
// field (by module.FieldError's names), to report a rule's refusal there.
type parser struct {
	d      *cf.Dispenser
	fields map[string]cf.Token
}

// mark records the current token as the one that set field.
func (p *parser) mark(field string) { p.fields[field] = p.d.Token() }

// tokenOf is the token that set the field err names (or its enclosing
// field's: "store.username" falls back to "store"), else def.
func (p *parser) tokenOf(err error, def cf.Token) cf.Token {
	var fe *module.FieldError
	if !errors.As(err, &fe) {
		return def
	}
	for f := fe.Field; f != ""; {
		if t, ok := p.fields[f]; ok {
			return t
		}
		i := strings.LastIndexByte(f, '.')
		if i < 0 {
			break
		}
		f = f[:i]
	}
	return def
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

	p := &parser{d: d, fields: make(map[string]cf.Token)}
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
		if sub == "app" {
			// app may repeat, once per name
			if d.NextArg() {
				key = "app " + d.Val()
				d.Prev()
			}
		}
		if seen[key] {
			return d.Errf("duplicate subdirective '%s' in %s", key, name)
		}
		seen[key] = true
		p.mark(sub)

		var err error
		switch sub {
		case "platform":
			h.Platform, err = oneArg(d)
		case "app_id":
			h.AppID, err = oneArg(d)
		case "app_secret":
			h.AppSecret, err = oneArg(d)
		case "api_base":
			h.APIBase, err = oneArg(d)
		case "private_key":
			h.PrivateKey, err = oneArg(d)
		case "platform_public_key":
			h.PlatformPublicKey, err = oneArg(d)
		case "aes_key":
			h.AESKey, err = oneArg(d)

		case "app":
			err = p.parseApp(h)
		case "select_app":
			err = p.parseSelectApp(h)

		case "store":
			h.Store, err = p.parseStore()

		case "session_ttl":
			h.SessionTTL, err = durationArg(d, sub)
		case "platform_timeout":
			h.PlatformTimeout, err = durationArg(d, sub)
		case "exchange_wait":
			h.ExchangeWait, err = durationArg(d, sub)

		case "login":
			h.Login, err = oneArg(d)
		case "phone":
			h.Phone, err = oneArg(d)
		case "decrypt":
			h.Decrypt, err = oneArg(d)
		case "decrypt_watermark":
			h.DecryptWatermark, err = oneArg(d)
		case "header_names":
			h.HeaderNames, err = oneArg(d)
		case "identity_cache":
			var v string
			if v, err = oneArg(d); err == nil {
				var dur caddy.Duration
				if v != "off" {
					pd, perr := caddy.ParseDuration(v)
					if perr != nil {
						return d.Errf("identity_cache: bad duration '%s' (want e.g. 1s, 500ms, or off)", v)
					}
					dur = caddy.Duration(pd)
				}
				h.IdentityCache = &dur
			}

		case "route_param":
			h.RouteParams, err = someArgs(d)

		case "max_body_size":
			var n int64
			if n, err = sizeArg(d); err == nil {
				if cerr := module.CheckMaxBodySize(n); cerr != nil {
					return d.Errf("%v", cerr)
				}
				h.MaxBodySize = n
			}

		case "platform_retries":
			var n int
			if n, err = intArg(d); err == nil {
				h.PlatformRetries = &n
			}

		case "max_failed_exchanges":
			h.MaxFailedExchanges, err = oneArg(d)

		case "field":
			if h.Fields == nil {
				h.Fields = new(module.Fields)
			}
			err = parseField(d, h.Fields)

		case "access_token":
			err = p.parseAccessToken(h)
		case "compat":
			err = p.parseCompat(h)
		case "gateway":
			err = p.parseGateway(h)
		case "token_binding":
			err = p.parseTokenBinding(h)
		case "session":
			err = p.parseSession(h)
		case "require_session":
			h.RequireSession, err = someArgs(d)
		case "logout":
			h.Logout, err = someArgs(d)

		default:
			return d.Errf("unrecognized %s subdirective '%s'", name, sub)
		}
		if err != nil {
			return err
		}
	}

	// The handler's own rules, as for a JSON config; a refusal is
	// reported at the line of the field it names, else the directive's.
	if err := h.Validate(); err != nil {
		return errAt(p.tokenOf(err, directive), "%v", err)
	}
	return nil
}

// parseStore parses "store memory [{...}]" or "store redis [<url>] [{...}]";
// the dispenser is on "store".
func (p *parser) parseStore() (*module.StoreConfig, error) {
	d := p.d
	if !d.NextArg() {
		return nil, missingValue(d, "store", "memory or redis")
	}
	p.mark("store.type")
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
			p.mark("store." + opt)
			switch opt {
			case "max_sessions":
				n, err := intArg(d)
				if err != nil {
					return nil, err
				}
				if err := module.CheckMaxSessions(n); err != nil {
					return nil, d.Errf("%v", err)
				}
				sc.MaxSessions = n
			default:
				return nil, d.Errf("unrecognized store memory option '%s'", opt)
			}
		}
		return sc, nil

	case "redis":
		if d.NextArg() {
			p.mark("store.url")
			sc.URL = d.Val()
			if d.NextArg() {
				return nil, d.Errf("store redis takes one URL, got another argument '%s'", d.Val())
			}
		}
		return sc, p.parseRedisBlock(sc)

	default:
		return nil, d.Errf("%v", module.CheckStoreType(sc.Type))
	}
}

// parseRedisBlock reads the optional block after "store redis [<url>]".
func (p *parser) parseRedisBlock(sc *module.StoreConfig) error {
	d := p.d
	seen := make(map[string]bool)
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		if seen[opt] {
			return d.Errf("duplicate store redis option '%s'", opt)
		}
		seen[opt] = true
		p.mark("store." + opt)
		var err error
		switch opt {
		case "addrs":
			sc.Addrs, err = someArgs(d)
		case "master_name":
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
			sc.DB, err = intArg(d)
		case "tls":
			sc.TLS, err = true, flagArg(d)
		case "timeout":
			sc.Timeout, err = durationArg(d, "store.timeout")
		case "encryption_keys":
			// encryption_keys <key> [<older key>...]: the first seals,
			// all open.
			sc.EncryptionKeys, err = someArgs(d)
		case "encryption_allow_plain":
			sc.EncryptionAllowPlain, err = true, flagArg(d)
		default:
			return d.Errf("unrecognized store redis option '%s'", opt)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// parseField parses "field <kind> <name>"; the dispenser is on "field".
func parseField(d *cf.Dispenser, f *module.Fields) error {
	args := d.RemainingArgs()
	if len(args) != 2 {
		if len(args) == 0 {
			return missingValue(d, "field", "a kind and a name: field <kind> <name>")
		}
		return d.Errf("field takes a kind and a name (field <kind> <name>), got %d value(s)", len(args))
	}
	if err := noBlock(d, "field"); err != nil {
		return err
	}
	kind, name := args[0], args[1]
	if name == "" {
		return emptyValue(d, "field "+kind)
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
	case "response":
		f.Response = name
	default:
		return d.Errf("unknown field kind '%s' (want code, anonymous_code, encrypted_data, iv, phone_code or response)", kind)
	}
	return nil
}

// envHint explains an empty or missing value: Caddy replaces {$VAR} when
// it reads the Caddyfile, and an unset variable leaves nothing there.
const envHint = "if it is written {$VAR}, that environment variable may be unset or empty"

// missingValue is the error for a subdirective given no value; want says
// what it takes.
func missingValue(d *cf.Dispenser, sub, want string) error {
	return d.Errf("%s: no value given (want %s); %s", sub, want, envHint)
}

// emptyValue is the error for a value that is the empty string.
func emptyValue(d *cf.Dispenser, sub string) error {
	return d.Errf("%s: the value is empty; %s", sub, envHint)
}

// oneArg reads exactly one non-empty argument and no block.
func oneArg(d *cf.Dispenser) (string, error) {
	sub := d.Val()
	args := d.RemainingArgs()
	switch {
	case len(args) == 0:
		return "", missingValue(d, sub, "one value")
	case len(args) > 1:
		return "", d.Errf("%s takes one value, got %d (quote a value that holds spaces)", sub, len(args))
	}
	if err := noBlock(d, sub); err != nil {
		return "", err
	}
	if args[0] == "" {
		return "", emptyValue(d, sub)
	}
	return args[0], nil
}

// someArgs reads one or more non-empty arguments and no block.
func someArgs(d *cf.Dispenser) ([]string, error) {
	sub := d.Val()
	args := d.RemainingArgs()
	if len(args) == 0 {
		return nil, missingValue(d, sub, "one or more values")
	}
	if err := noBlock(d, sub); err != nil {
		return nil, err
	}
	for _, a := range args {
		if a == "" {
			return nil, emptyValue(d, sub)
		}
	}
	return args, nil
}

// flagArg reads a flag: no argument, no block.
func flagArg(d *cf.Dispenser) error {
	sub := d.Val()
	if d.NextArg() {
		return d.Errf("%s takes no value, got '%s'", sub, d.Val())
	}
	return noBlock(d, sub)
}

// durationArg reads one duration such as 30m or 1.5s, and checks it
// against field's rule (module.CheckDuration).
func durationArg(d *cf.Dispenser, field string) (caddy.Duration, error) {
	sub := d.Val()
	v, err := oneArg(d)
	if err != nil {
		return 0, err
	}
	dur, err := caddy.ParseDuration(v)
	if err != nil {
		return 0, d.Errf("%s: bad duration '%s' (want a duration such as 5s, 30m or 1h)", sub, v)
	}
	if err := module.CheckDuration(field, caddy.Duration(dur)); err != nil {
		return 0, d.Errf("%v", err)
	}
	return caddy.Duration(dur), nil
}

// sizeArg reads a size such as 64KiB, 1MB or 65536; "64 KiB" (the unit
// as its own argument) is read as 64KiB.
func sizeArg(d *cf.Dispenser) (int64, error) {
	sub := d.Val()
	args := d.RemainingArgs()
	switch len(args) {
	case 0:
		return 0, missingValue(d, sub, "a size such as 64KiB")
	case 1, 2:
	default:
		return 0, d.Errf("%s takes one size such as 64KiB, got %d values", sub, len(args))
	}
	if err := noBlock(d, sub); err != nil {
		return 0, err
	}
	v := strings.Join(args, " ")
	if len(args) == 2 && !isUnit(args[1]) {
		return 0, d.Errf("%s takes one size such as 64KiB, got '%s'", sub, v)
	}
	size, err := humanize.ParseBytes(v)
	if err != nil {
		return 0, d.Errf("%s: bad size '%s' (want a size such as 64KiB, 1MB or 65536)", sub, v)
	}
	if size > math.MaxInt64 {
		return 0, d.Errf("%s: size '%s' is too large", sub, v)
	}
	return int64(size), nil
}

// isUnit reports whether s is made of letters only (a size unit: KiB, MB).
func isUnit(s string) bool {
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return s != ""
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
