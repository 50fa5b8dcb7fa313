package module

// The configuration's rules, in one place.
//
// Every rule of meaning about the handler's configuration lives here (or
// in the file of the part it configures, called from here): validate is
// run at the top of Provision, once placeholders are replaced and defaults
// applied and before any client, store or goroutine is made, and Validate
// (which Caddy calls after Provision) runs it again. The Caddyfile adapter
// runs the same Validate on the handler it parsed, before placeholders are
// replaced: a value that holds a placeholder is then checked at
// provisioning only. A rule's refusal is a *FieldError naming the field by
// its Caddyfile/JSON name, which lets the adapter point at the line that
// set it.

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/accesstoken"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/keyseal"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/platform"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/routepath"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/store"
)

// FieldError is a configuration rule's refusal of one field.
type FieldError struct {
	// Field is the field's Caddyfile/JSON name; a nested one is dotted:
	// "platform_timeout", "store.url", "token_binding.from".
	Field string
	// Err is the reason.
	Err error
}

func (e *FieldError) Error() string { return "miniprogram: " + e.Field + ": " + e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Err: fmt.Errorf(format, args...)}
}

// Validate checks the configuration against every rule (see validate).
// Caddy calls it after Provision; before provisioning (the Caddyfile
// adapter, a test) a value still holding a placeholder is not checked.
func (h *Handler) Validate() error {
	if h.apps != nil {
		return nil // each app's handler was validated at its provisioning
	}
	return h.validate()
}

// validate is the configuration's check: pure (no I/O, no state kept).
// Zero values are the defaults' (Provision applies them first).
func (h *Handler) validate() error {
	if len(h.Apps) > 0 {
		return h.validateApps() // several apps (apps.go)
	}
	if h.SelectApp != nil {
		return fieldErr("select_app", "is for several apps (app <name> { ... } blocks)")
	}
	if h.Platform != "" {
		if err := CheckPlatform(h.Platform); err != nil {
			return err
		}
	}
	var missing []string
	for _, r := range []struct{ name, val string }{
		{"platform", h.Platform}, {"app_id", h.AppID}, {"app_secret", h.AppSecret},
	} {
		if r.name == "app_secret" && h.platformDesc().SignedAPI {
			continue // its calls are signed with private_key instead
		}
		if r.val == "" {
			missing = append(missing, r.name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("miniprogram: missing required field(s): %s", strings.Join(missing, ", "))
	}
	if !h.pending(h.APIBase) {
		if err := platform.CheckAPIBase(h.APIBase); err != nil {
			return &FieldError{Field: "api_base", Err: err}
		}
	}

	if h.Login == "" && h.Phone == "" && h.Decrypt == "" && h.Compat == nil && h.Gateway == nil {
		return errors.New("miniprogram: at least one route is needed: login, phone, decrypt, compat or gateway")
	}
	for _, r := range []struct{ name, path string }{{"login", h.Login}, {"phone", h.Phone}, {"decrypt", h.Decrypt}} {
		if r.path == "" {
			continue
		}
		if err := CheckRoutePath(r.name, r.path); err != nil {
			return err
		}
	}
	if err := CheckRoutes(h.Login, h.Phone, h.Decrypt); err != nil {
		return err
	}
	if d := h.platformDesc(); d.NoPayloads {
		for _, r := range []struct{ name, path string }{{"phone", h.Phone}, {"decrypt", h.Decrypt}} {
			if r.path != "" {
				return fieldErr(r.name, "%s has no %s route: how its encryptedData is encrypted is not published, and it has no phone-code exchange", d.Title, r.name)
			}
		}
	}
	if err := h.validateRouteParams(); err != nil {
		return err
	}
	if err := CheckDecryptWatermark(h.DecryptWatermark); err != nil {
		return err
	}
	if h.DecryptWatermark == WatermarkOptional && h.Decrypt == "" {
		return fieldErr("decrypt_watermark", "optional needs a decrypt route")
	}

	for _, d := range []struct {
		name string
		v    caddy.Duration
	}{{"session_ttl", h.SessionTTL}, {"platform_timeout", h.PlatformTimeout}, {"exchange_wait", h.ExchangeWait}} {
		if d.v != 0 {
			if err := CheckDuration(d.name, d.v); err != nil {
				return err
			}
		}
	}
	if h.MaxBodySize != 0 {
		if err := CheckMaxBodySize(h.MaxBodySize); err != nil {
			return err
		}
	}
	if h.PlatformRetries != nil {
		if err := CheckPlatformRetries(*h.PlatformRetries); err != nil {
			return err
		}
	}
	if err := h.validateFailureLimit(); err != nil {
		return err
	}

	if err := CheckHeaderNames(h.HeaderNames); err != nil {
		return err
	}
	if c := h.IdentityCache; c != nil && (*c < 0 || *c > caddy.Duration(time.Minute)) {
		return fieldErr("identity_cache", "%v is out of range: want 0 (off) to 1m", time.Duration(*c))
	}
	if err := h.validateAccessTokenConfig(); err != nil {
		return err
	}
	if err := h.validatePrivateKey(); err != nil {
		return err
	}
	if err := h.validateAppKeys(); err != nil {
		return err
	}
	if err := h.validateCompat(); err != nil {
		return err
	}
	if err := h.validateGateway(); err != nil {
		return err
	}
	if c := h.TokenBinding; c != nil {
		if err := c.Validate(); err != nil {
			return err
		}
		if h.Login == "" {
			return fieldErr("token_binding", "needs the login route (login <path>)")
		}
	}
	if err := h.validateSessions(); err != nil {
		return err
	}
	if h.Store != nil {
		if err := h.Store.validate(h.pending); err != nil {
			return err
		}
	}
	return nil
}

// validateSessions checks session, require_session and logout.
func (h *Handler) validateSessions() error {
	if c := h.Session; c != nil {
		if c.Header != "" {
			if !ValidTokenName(c.Header) {
				return fieldErr("session.header", "%q is not a header name", c.Header)
			}
			if isProtectedHeader(c.Header) && !strings.EqualFold(c.Header, DefaultSessionHeader) {
				return fieldErr("session.header", "%q is in the identity headers' families (X-Mp-*, X-WX-*): use %s or a name of your own", c.Header, DefaultSessionHeader)
			}
		}
		if c.Cookie != "" && !ValidTokenName(c.Cookie) {
			return fieldErr("session.cookie", "%q is not a cookie name", c.Cookie)
		}
		switch c.Request {
		case "", SessionRequestBearer:
		case SessionRequestHeader:
			if header, _ := c.carriers(); header == "" {
				return fieldErr("session.request", "header needs the answer's header (session header <name>)")
			}
		case SessionRequestCookie:
			if c.Cookie == "" {
				return fieldErr("session.request", "cookie needs session cookie <name>")
			}
		default:
			return fieldErr("session.request", "%q is not bearer, header or cookie", c.Request)
		}
		for _, d := range []struct {
			name string
			v    caddy.Duration
		}{{"session.ttl", c.TTL}, {"session.max_age", c.MaxAge}, {"session.refresh_every", c.RefreshEvery}} {
			if d.v != 0 {
				if err := CheckDuration(d.name, d.v); err != nil {
					return err
				}
			}
		}
		ttl, maxAge, refresh := c.durations(h.SessionTTL)
		if maxAge < ttl {
			return fieldErr("session.max_age", "%v is shorter than the session's ttl %v", maxAge, ttl)
		}
		if refresh >= ttl {
			return fieldErr("session.refresh_every", "%v is not shorter than the session's ttl %v", refresh, ttl)
		}
		if h.Login == "" {
			return fieldErr("session", "needs the login route (login <path>)")
		}
		if tb := h.TokenBinding; tb != nil {
			header, cookie := c.carriers()
			if q := tb.Request; q != nil && q.Header != "" && strings.EqualFold(q.Header, header) {
				return fieldErr("session.header", "%q also carries token_binding's token", header)
			}
			if cookie != "" && (cookie == tb.From.Cookie || (tb.Request != nil && cookie == tb.Request.Cookie)) {
				return fieldErr("session.cookie", "%q is also token_binding's cookie", cookie)
			}
		}
	}
	for _, p := range []struct {
		name  string
		paths []string
	}{{"require_session", h.RequireSession}, {"logout", h.Logout}} {
		if len(p.paths) == 0 {
			continue
		}
		for _, v := range p.paths {
			if err := CheckSessionPath(p.name, v); err != nil {
				return err
			}
		}
		if h.Session == nil && (h.TokenBinding == nil || h.TokenBinding.Identity == IdentityRoutes) {
			return fieldErr(p.name, "needs session, or token_binding with identity all: no request would have a session there")
		}
	}
	return nil
}

// CheckSessionPath checks one require_session or logout path: a route
// pattern (an exact path, or a prefix ending in * or /*), matched the way
// backends route, like the login, phone and decrypt routes.
func CheckSessionPath(field, p string) error {
	if err := routepath.CheckPattern(p); err != nil {
		return &FieldError{Field: field, Err: fmt.Errorf("%w (want e.g. /api/* or /api/logout)", err)}
	}
	return nil
}

// pending reports whether v holds a placeholder not replaced yet (before
// provisioning): such a value is checked once replaced.
func (h *Handler) pending(v string) bool {
	return !h.replaced && hasPlaceholder(v)
}

// hasPlaceholder reports whether s holds a {placeholder}.
func hasPlaceholder(s string) bool {
	i := strings.IndexByte(s, '{')
	return i >= 0 && strings.IndexByte(s[i:], '}') > 0
}

// CheckPlatform is the rule for platform: a registered one
// (internal/platform's registry).
func CheckPlatform(p string) error {
	if _, ok := platform.Lookup(p); ok {
		return nil
	}
	return fieldErr("platform", "unknown platform %q (want %s)", p, platform.OrList(platform.Names()))
}

// noPlatform is the descriptor of a platform that is not registered (no
// capabilities): validate refuses such a configuration.
var noPlatform platform.Descriptor

// platformDesc is the descriptor of h.Platform (noPlatform when unknown).
func (h *Handler) platformDesc() *platform.Descriptor {
	if h.desc != nil {
		return h.desc
	}
	if d, ok := platform.Lookup(h.Platform); ok {
		return d
	}
	return &noPlatform
}

// durationBounds are the durations' accepted ranges, inclusive.
var durationBounds = map[string]struct{ min, max time.Duration }{
	// Long enough for a login and the phone request after it; a month
	// at most (each login renews it).
	"session_ttl": {time.Minute, 30 * 24 * time.Hour},
	// One platform call with its retries: a client (wx.request's default
	// timeout is 60s) gives up before a minute.
	"platform_timeout": {100 * time.Millisecond, time.Minute},
	// Waiting for another instance's exchange (one platform call).
	"exchange_wait": {100 * time.Millisecond, 2 * time.Minute},
	// One store operation.
	"store.timeout": {10 * time.Millisecond, 30 * time.Second},
	// An issued session's idle lifetime, its longest and how often an
	// active one is extended at most.
	"session.ttl":           {time.Second, 30 * 24 * time.Hour},
	"session.max_age":       {time.Second, 365 * 24 * time.Hour},
	"session.refresh_every": {100 * time.Millisecond, 30 * 24 * time.Hour},
}

// DurationBounds returns the accepted range of a duration field
// (session_ttl, platform_timeout, exchange_wait, store.timeout).
func DurationBounds(field string) (min, max time.Duration, ok bool) {
	b, ok := durationBounds[field]
	return b.min, b.max, ok
}

// CheckDuration is the rule for a given duration field: greater than zero
// and within the field's bounds.
func CheckDuration(field string, d caddy.Duration) error {
	b, ok := durationBounds[field]
	if !ok {
		return fieldErr(field, "not a duration field") // a programming error
	}
	v := time.Duration(d)
	if v <= 0 {
		return fieldErr(field, "%v: want a duration greater than zero, from %v to %v", v, b.min, b.max)
	}
	if v < b.min || v > b.max {
		return fieldErr(field, "%v is out of range: want %v to %v", v, b.min, b.max)
	}
	return nil
}

// CheckMaxBodySize is the rule for a given max_body_size.
func CheckMaxBodySize(n int64) error {
	if n <= 0 {
		return fieldErr("max_body_size", "%d: want a size greater than zero, such as 64KiB", n)
	}
	return nil
}

// CheckPlatformRetries is the rule for platform_retries.
func CheckPlatformRetries(n int) error {
	if n < 0 {
		return fieldErr("platform_retries", "%d is negative (0 means no retries)", n)
	}
	return nil
}

// validateAccessTokenConfig checks access_token: its mode and refresh,
// and the platform (validateAccessToken).
func (h *Handler) validateAccessTokenConfig() error {
	c := h.AccessToken
	if c == nil {
		return nil
	}
	if err := CheckAccessTokenMode(c.Mode); err != nil {
		return err
	}
	if c.Refresh != 0 {
		if err := CheckAccessTokenRefresh(c.Refresh); err != nil {
			return err
		}
	}
	if err := h.validateAccessToken(); err != nil {
		msg := strings.TrimPrefix(err.Error(), "miniprogram: access_token")
		return &FieldError{Field: "access_token", Err: errors.New(strings.TrimSpace(strings.TrimPrefix(msg, ":")))}
	}
	return nil
}

// CheckAccessTokenMode is the rule for access_token's mode ("" is the
// default, stable); the modes are internal/accesstoken's.
func CheckAccessTokenMode(m string) error {
	if err := (accesstoken.Options{Mode: m}).Validate(); err != nil {
		return fieldErr("access_token.mode", "unknown mode %q (want %s or %s)", m, accesstoken.ModeStable, accesstoken.ModeClassic)
	}
	return nil
}

// CheckAccessTokenRefresh is the rule for a given access_token refresh
// (internal/accesstoken's, where 0 is its default).
func CheckAccessTokenRefresh(f float64) error {
	if f == 0 || (accesstoken.Options{Refresh: f}).Validate() != nil {
		return fieldErr("access_token.refresh", "%v must be between 0 and 1, exclusive (a fraction of the token's lifetime, such as 0.8)", f)
	}
	return nil
}

// MaxMaxResponseSize bounds token_binding's max_response_size.
const MaxMaxResponseSize = 1 << 40

// CheckMaxResponseSize is the rule for a given token_binding
// max_response_size.
func CheckMaxResponseSize(n int64) error {
	if n <= 0 || n > MaxMaxResponseSize {
		return fieldErr("token_binding.max_response_size", "%d: want a size from 1 byte to 1TiB, such as 1MiB", n)
	}
	return nil
}

// CheckMaxSessions is the rule for a given store max_sessions.
func CheckMaxSessions(n int) error {
	if n <= 0 {
		return fieldErr("store.max_sessions", "%d: want a number greater than zero", n)
	}
	return nil
}

// CheckStoreType is the rule for store type ("" is the default, memory).
func CheckStoreType(t string) error {
	switch t {
	case "", "memory", "redis":
		return nil
	}
	return fieldErr("store.type", "unknown store type %q (want memory or redis)", t)
}

// validate checks the store's configuration; pending(v) tells a value
// whose placeholder is not replaced yet (not checked).
func (c *StoreConfig) validate(pending func(string) bool) error {
	switch c.Type {
	case "", "memory":
		for _, f := range []struct {
			name string
			set  bool
		}{
			{"url", c.URL != ""}, {"addrs", len(c.Addrs) > 0}, {"master_name", c.MasterName != ""},
			{"username", c.Username != ""}, {"password", c.Password != ""}, {"db", c.DB != 0},
			{"sentinel_username", c.SentinelUsername != ""}, {"sentinel_password", c.SentinelPassword != ""},
			{"tls", c.TLS}, {"ca_file", c.CAFile != ""}, {"cert_file", c.CertFile != ""}, {"key_file", c.KeyFile != ""},
			{"timeout", c.Timeout != 0}, {"prefix", c.Prefix != ""},
			{"encryption_keys", len(c.EncryptionKeys) > 0}, {"encryption_allow_plain", c.EncryptionAllowPlain},
		} {
			if f.set {
				return fieldErr("store."+f.name, "is for store redis only (the memory store keeps sessions inside the process)")
			}
		}
		if c.MaxSessions != 0 {
			return CheckMaxSessions(c.MaxSessions)
		}
		return nil
	case "redis":
	default:
		return CheckStoreType(c.Type)
	}

	if c.MaxSessions != 0 {
		return fieldErr("store.max_sessions", "is for store memory only (Redis keeps sessions for session_ttl)")
	}
	// Which Redis options go together: the store's rules.
	if err := c.redisOptions().Check(); err != nil {
		var oe *store.OptionError
		if errors.As(err, &oe) {
			if oe.Option == "url" {
				return fieldErr("store", "%s", oe.Reason)
			}
			return fieldErr("store."+oe.Option, "%s", oe.Reason)
		}
		return err
	}
	if c.URL != "" && !pending(c.URL) {
		if err := CheckRedisURL(c.URL); err != nil {
			return err
		}
	}
	for _, a := range c.Addrs {
		if !pending(a) {
			if err := CheckRedisAddr(a); err != nil {
				return err
			}
		}
	}
	if c.Timeout != 0 {
		if err := CheckDuration("store.timeout", c.Timeout); err != nil {
			return err
		}
	}
	return c.validateEncryption(pending)
}

// validateEncryption checks encryption_keys and encryption_allow_plain.
// Errors name a key by its position, never its text.
func (c *StoreConfig) validateEncryption(pending func(string) bool) error {
	if c.EncryptionAllowPlain && len(c.EncryptionKeys) == 0 {
		return fieldErr("store.encryption_allow_plain", "needs encryption_keys")
	}
	n := len(c.EncryptionKeys)
	var keys []string
	complete := true
	for i, k := range c.EncryptionKeys {
		if pending(k) {
			complete = false
			continue
		}
		ks := keyseal.SplitKeys(k)
		if len(ks) == 0 {
			return fieldErr("store.encryption_keys", "encryption key %d of %d is empty (is its environment variable set?)", i+1, n)
		}
		for _, one := range ks {
			if _, err := keyseal.ParseKey(one); err != nil {
				return fieldErr("store.encryption_keys", "encryption key %d of %d: %v", i+1, n, err)
			}
		}
		keys = append(keys, ks...)
	}
	if complete && len(keys) > 0 {
		// Keys given twice (keyseal numbers the keys once split).
		if _, err := keyseal.New(keys); err != nil {
			return fieldErr("store.encryption_keys", "%v", strings.TrimPrefix(err.Error(), "keyseal: "))
		}
	}
	return nil
}

// redisURLHelp is what a Redis URL looks like.
const redisURLHelp = "expected redis://host:port[/db] or rediss://host:port[/db] (TLS), e.g. redis://127.0.0.1:6379/0"

// CheckRedisURL is the rule for store url: redis://[user:pass@]host[:port][/db]
// or rediss://. The error never shows a password.
func CheckRedisURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") {
		return fieldErr("store.url", "%q is not a Redis URL: %s", redactURL(s), redisURLHelp)
	}
	if u.Hostname() == "" {
		return fieldErr("store.url", "%q has no host: %s", redactURL(s), redisURLHelp)
	}
	if p := u.Port(); p != "" {
		if n, perr := strconv.Atoi(p); perr != nil || n < 1 || n > 65535 {
			return fieldErr("store.url", "%q has a bad port: %s", redactURL(s), redisURLHelp)
		}
	}
	if db := strings.TrimPrefix(u.Path, "/"); db != "" {
		if n, perr := strconv.Atoi(db); perr != nil || n < 0 {
			return fieldErr("store.url", "%q: the path must be a database number, like /0", redactURL(s))
		}
	}
	if u.Fragment != "" {
		return fieldErr("store.url", "%q must not have a fragment", redactURL(s))
	}
	return nil
}

// CheckRedisAddr is the rule for one of store addrs: host:port.
func CheckRedisAddr(a string) error {
	host, port, err := net.SplitHostPort(a)
	if err != nil || host == "" || port == "" {
		return fieldErr("store.addrs", "address %q is not host:port (such as 10.0.0.1:6379)", a)
	}
	if p, perr := strconv.Atoi(port); perr != nil || p < 1 || p > 65535 {
		return fieldErr("store.addrs", "address %q has a bad port", a)
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

// CheckHeaderNames checks header_names.
func CheckHeaderNames(v string) error {
	switch v {
	case "", HeaderNamesMP, HeaderNamesCloudRun, HeaderNamesBoth:
		return nil
	}
	return fieldErr("header_names", "%q is not mp, cloudrun or both", v)
}
