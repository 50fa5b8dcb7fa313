// Package module is the miniprogram HTTP handler: it exchanges login codes
// eagerly, keeps sessions, decrypts phone and other payloads, and injects the
// results into the request that reaches the upstream.
//
// The parts it is made of live in internal/: platform (the platforms' API
// clients), wxcrypt (decryption), store (sessions), reqbody (reading and
// rewriting request bodies) and mperr (the README's error table).
package module

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"golang.org/x/sync/singleflight"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/accesstoken"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/clientlimit"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/keyseal"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/mperr"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/platform"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/routepath"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/store"
)

// Interface guards.
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)

// Handler is the http.handlers.miniprogram module.
type Handler struct {
	// Platform is "wechat" or "douyin".
	Platform string `json:"platform,omitempty"`
	// AppID and AppSecret of the mini-program; placeholders such as
	// {env.MP_APP_SECRET} are replaced at provisioning.
	AppID     string `json:"app_id,omitempty"`
	AppSecret string `json:"app_secret,omitempty"`
	// APIBase is the platform API origin; default the platform's real one.
	APIBase string `json:"api_base,omitempty"`

	// Store keeps sessions; default memory.
	Store *StoreConfig `json:"store,omitempty"`
	// SessionTTL is how long a session is kept after its last login
	// (default 30m).
	SessionTTL caddy.Duration `json:"session_ttl,omitempty"`

	// Login, Phone and Decrypt are the routes' paths: exact, or a prefix
	// when ending in "*". Case-sensitive.
	Login   string `json:"login,omitempty"`
	Phone   string `json:"phone,omitempty"`
	Decrypt string `json:"decrypt,omitempty"`
	// RouteParams are query parameters a front controller routes by
	// (ThinkPHP's "s": /index.php?s=/api/login): their values are matched
	// as paths too.
	RouteParams []string `json:"route_params,omitempty"`
	// DecryptWatermark is "required" (default) or "optional" on the
	// decrypt route: optional accepts payloads without a watermark (some
	// WeRun-like data) when they have at least two cipher blocks. Weaker:
	// without the watermark a client who controls the IV can rewrite the
	// first 16 bytes of the plaintext. The phone route always requires it.
	DecryptWatermark string `json:"decrypt_watermark,omitempty"`

	// MaxBodySize bounds the bodies the handler reads (default 64 KiB).
	MaxBodySize int64 `json:"max_body_size,omitempty"`
	// PlatformTimeout bounds one platform call, retries included
	// (default 5s).
	PlatformTimeout caddy.Duration `json:"platform_timeout,omitempty"`
	// PlatformRetries is how often a transient platform failure is
	// retried (default 2; 0 = never).
	PlatformRetries *int `json:"platform_retries,omitempty"`
	// ExchangeWait bounds how long a request waits for another instance
	// that is exchanging the same code (default PlatformTimeout + 1s).
	ExchangeWait caddy.Duration `json:"exchange_wait,omitempty"`

	// Fields renames the request fields read.
	Fields *Fields `json:"fields,omitempty"`

	// MaxFailedExchanges bounds, per client IP, the code exchanges the
	// platform rejects: "<n>/<window>" such as "30/1m" (the default), or
	// "off". See failures.go.
	MaxFailedExchanges string `json:"max_failed_exchanges,omitempty"`

	// AccessToken configures WeChat's access token (phone-code flow).
	AccessToken *AccessTokenConfig `json:"access_token,omitempty"`
	// Compat serves platform-compatible endpoints for unchanged legacy
	// backends (zero-change mode).
	Compat *CompatConfig `json:"compat,omitempty"`
	// TokenBinding binds the upstream's login token to the session.
	TokenBinding *TokenBindingConfig `json:"token_binding,omitempty"`

	logger *zap.Logger
	// accessLog is Caddy's http.log.access logger, for the access lines
	// the handler writes itself (see accesslog.go).
	accessLog *zap.Logger
	// binding is set when TokenBinding is configured (see binding.go).
	binding *tokenBinding
	// tokens is set when WeChat's access token is needed (see phonecode.go).
	tokens *accesstoken.Manager
	// failures counts failed exchanges per client; nil when off (see
	// failures.go).
	failures *clientlimit.Limiter
	// compat is set when Compat is configured (see compat.go).
	compat *compatServer
	client platform.Client
	store  store.Store
	flight *singleflight.Group
	// requestsOK are the "ok" request counters of each route, resolved
	// once (see metrics.go).
	requestsOK [len(routeNames)]prometheus.Counter
	// unsaved holds exchanged sessions whose save failed (see unsaved.go).
	unsaved *unsavedSessions
	f       Fields // Fields with defaults
	// routes recognises the login, phone and decrypt routes the way
	// backends route (see internal/routepath).
	routes *routepath.Matcher
	// payloadProtected: identity and result names, and the payload's
	// own fields, removed from phone and decrypt requests.
	payloadProtected []string
	// routePrefixes: see routePrefixes (routeparam.go).
	routePrefixes []string
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.miniprogram",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision sets the handler up: defaults, placeholders, the platform
// client and the session store (shared across config reloads).
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	h.accessLog = ctx.Logger(caddyhttp.App{}).Named("log.access")
	if err := registerMetrics(ctx.GetMetricsRegistry()); err != nil {
		return err
	}
	for rt, name := range routeNames {
		h.requestsOK[rt] = metrics.requests.WithLabelValues(h.Platform, name, "ok")
	}
	if err := h.replacePlaceholders(); err != nil {
		return err
	}
	if h.SessionTTL <= 0 {
		h.SessionTTL = DefaultSessionTTL
	}
	if h.MaxBodySize <= 0 {
		h.MaxBodySize = DefaultMaxBodySize
	}
	if h.PlatformTimeout <= 0 {
		h.PlatformTimeout = DefaultPlatformTimeout
	}
	if h.ExchangeWait <= 0 {
		h.ExchangeWait = h.PlatformTimeout + caddy.Duration(time.Second)
	}
	h.f = h.fieldNames()
	h.payloadProtected = append(append(append([]string(nil), identityFields...), resultFields...), h.f.EncryptedData, h.f.IV)
	h.flight = new(singleflight.Group)
	h.unsaved = newUnsavedSessions()

	if err := h.Validate(); err != nil {
		return err
	}
	routes, err := routepath.NewMatcher(h.Login, h.Phone, h.Decrypt)
	if err != nil {
		return fmt.Errorf("miniprogram: %w", err)
	}
	h.routes = routes
	h.routePrefixes = routePrefixes(h.Login, h.Phone, h.Decrypt)
	h.provisionFailureLimit()

	var client platform.Client
	retries := DefaultPlatformRetries
	if h.PlatformRetries != nil {
		retries = *h.PlatformRetries
		if retries == 0 {
			retries = -1 // the client's "none"
		}
	}
	client, err = platform.New(h.Platform, platform.Config{
		AppID:      h.AppID,
		AppSecret:  h.AppSecret,
		APIBase:    h.APIBase,
		Timeout:    time.Duration(h.PlatformTimeout),
		MaxRetries: retries,
		Logger:     h.logger.Named("platform"),
	})
	if err != nil {
		return err
	}
	h.client = client

	st, err := h.openStore(ctx)
	if err != nil {
		return err
	}
	h.store = st
	if err := h.provisionAccessToken(ctx); err != nil {
		return err
	}
	if err := h.provisionCompat(ctx); err != nil {
		return err
	}
	if err := h.provisionTokenBinding(ctx); err != nil {
		return err
	}
	h.logger.Info("miniprogram handler provisioned",
		zap.String("platform", h.Platform),
		zap.String("app_id", h.AppID),
		zap.String("store", h.Store.Type),
		zap.String("login", h.Login),
		zap.String("phone", h.Phone),
		zap.String("decrypt", h.Decrypt),
		zap.Duration("session_ttl", time.Duration(h.SessionTTL)))
	return nil
}

// replacePlaceholders replaces the placeholders ({env.X}, {file.Y}) of the
// fields that take them, naming the field whose placeholder is unknown or
// empty (an unset environment variable). It also sets the store default.
func (h *Handler) replacePlaceholders() error {
	repl := caddy.NewReplacer()
	replace := func(field string, v *string) error {
		out, err := repl.ReplaceOrErr(*v, true, true)
		if err != nil {
			return fmt.Errorf("miniprogram: %s: %v (is its environment variable set?)", field, err)
		}
		*v = out
		return nil
	}
	if h.Store == nil {
		h.Store = &StoreConfig{Type: "memory"}
	}
	if h.Store.Type == "" {
		h.Store.Type = "memory"
	}
	for _, f := range []struct {
		name string
		v    *string
	}{
		{"app_id", &h.AppID}, {"app_secret", &h.AppSecret}, {"api_base", &h.APIBase},
		{"store url", &h.Store.URL}, {"store username", &h.Store.Username}, {"store password", &h.Store.Password},
		{"store sentinel_username", &h.Store.SentinelUsername}, {"store sentinel_password", &h.Store.SentinelPassword},
	} {
		if err := replace(f.name, f.v); err != nil {
			return err
		}
	}
	for i := range h.Store.Addrs {
		if err := replace("store addrs", &h.Store.Addrs[i]); err != nil {
			return err
		}
	}
	if len(h.Store.EncryptionKeys) > 0 {
		// A replaced value may hold several keys ("new,old").
		var keys []string
		for i, k := range h.Store.EncryptionKeys {
			if err := replace(fmt.Sprintf("encryption key %d of %d", i+1, len(h.Store.EncryptionKeys)), &k); err != nil {
				return err
			}
			if ks := keyseal.SplitKeys(k); len(ks) > 0 {
				keys = append(keys, ks...)
			} else {
				keys = append(keys, "") // for Validate to report
			}
		}
		h.Store.EncryptionKeys = keys
	}
	return nil
}

func (h *Handler) openStore(ctx caddy.Context) (store.Store, error) {
	prefix := h.Store.Prefix
	if prefix == "" {
		prefix = "mp:"
	}
	scope := h.Platform + ":" + h.AppID
	switch h.Store.Type {
	case "memory":
		max := h.Store.MaxSessions
		if max <= 0 {
			max = DefaultMaxSessions
		}
		return store.OpenMemory(scope, store.MemoryOptions{MaxSessions: max})
	case "redis":
		routeRedisLogs()
		var codec store.KeyCodec
		if len(h.Store.EncryptionKeys) > 0 {
			c, err := keyseal.New(h.Store.EncryptionKeys, keyseal.AllowPlain(h.Store.EncryptionAllowPlain))
			if err != nil {
				return nil, fmt.Errorf("miniprogram: store redis encryption_keys: %w", err)
			}
			codec = c
			h.logger.Info("session keys are sealed at rest (AES-GCM)",
				zap.String("write_key_id", c.WriteKeyID()),
				zap.Strings("key_ids", c.KeyIDs()),
				zap.Bool("allow_plain", h.Store.EncryptionAllowPlain))
		}
		r, err := store.OpenRedis(store.RedisOptions{
			URL:              h.Store.URL,
			Addrs:            h.Store.Addrs,
			MasterName:       h.Store.MasterName,
			Username:         h.Store.Username,
			Password:         h.Store.Password,
			SentinelUsername: h.Store.SentinelUsername,
			SentinelPassword: h.Store.SentinelPassword,
			DB:               h.Store.DB,
			TLS:              h.Store.TLS,
			CAFile:           h.Store.CAFile,
			CertFile:         h.Store.CertFile,
			KeyFile:          h.Store.KeyFile,
			Timeout:          time.Duration(h.Store.Timeout),
			Prefix:           prefix + scope + ":",
			KeyCodec:         codec,
		}, h.logger.Named("store"))
		if err != nil {
			return nil, err
		}
		// Only a TLS certificate that does not verify fails the load;
		// Redis down or starting is a warning (store_unavailable until
		// it answers).
		if err := r.Probe(ctx); err != nil {
			r.Close()
			return nil, err
		}
		return r, nil
	}
	return nil, fmt.Errorf("unknown store type %q", h.Store.Type)
}

// Validate checks the configuration.
func (h *Handler) Validate() error {
	switch h.Platform {
	case platform.WeChat, platform.Douyin:
	case "":
		return errors.New("miniprogram: platform is required (wechat or douyin)")
	default:
		return fmt.Errorf("miniprogram: unknown platform %q (wechat or douyin)", h.Platform)
	}
	if h.AppID == "" {
		return errors.New("miniprogram: app_id is required (is its environment variable set?)")
	}
	if h.AppSecret == "" {
		return errors.New("miniprogram: app_secret is required (is its environment variable set?)")
	}
	if h.APIBase != "" {
		u, err := url.Parse(h.APIBase)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("miniprogram: api_base %q is not an http(s) origin", h.APIBase)
		}
	}
	if h.Login == "" && h.Phone == "" && h.Decrypt == "" && (h.Compat == nil || h.Compat.Prefix == "") {
		return errors.New("miniprogram: no route configured: set login, phone, decrypt and/or compat")
	}
	for _, p := range []string{h.Login, h.Phone, h.Decrypt} {
		if p == "" {
			continue
		}
		if err := CheckRoutePath(p); err != nil {
			return fmt.Errorf("miniprogram: %w", err)
		}
	}
	if err := CheckRoutes(h.Login, h.Phone, h.Decrypt); err != nil {
		return fmt.Errorf("miniprogram: %w", err)
	}
	if h.PlatformRetries != nil && *h.PlatformRetries < 0 {
		return fmt.Errorf("miniprogram: platform_retries %d is negative (0 means no retries)", *h.PlatformRetries)
	}
	if err := h.validateRouteParams(); err != nil {
		return err
	}
	if err := CheckDecryptWatermark(h.DecryptWatermark); err != nil {
		return fmt.Errorf("miniprogram: %w", err)
	}
	if h.DecryptWatermark == WatermarkOptional && h.Decrypt == "" {
		return errors.New("miniprogram: decrypt_watermark optional needs a decrypt route")
	}
	if err := h.validateAccessToken(); err != nil {
		return err
	}
	if err := h.validateCompat(); err != nil {
		return err
	}
	if err := h.validateFailureLimit(); err != nil {
		return err
	}
	if h.Store != nil {
		switch h.Store.Type {
		case "", "memory":
		case "redis":
			if h.Store.URL == "" && len(h.Store.Addrs) == 0 {
				return errors.New("miniprogram: store redis needs a URL or addrs")
			}
			if err := h.Store.validateRedisClientCert(); err != nil {
				return err
			}
			if err := h.Store.validateRedisSentinelAuth(); err != nil {
				return err
			}
		default:
			return fmt.Errorf("miniprogram: unknown store type %q (memory or redis)", h.Store.Type)
		}
		// Session key encryption at rest (keys are checked here unless
		// they are still placeholders, before provisioning).
		if len(h.Store.EncryptionKeys) > 0 && h.Store.Type != "redis" {
			return errors.New("miniprogram: encryption_keys is for store redis only (the memory store never leaves the process)")
		}
		if h.Store.EncryptionAllowPlain && len(h.Store.EncryptionKeys) == 0 {
			return errors.New("miniprogram: encryption_allow_plain needs encryption_keys")
		}
		n := len(h.Store.EncryptionKeys)
		for i, k := range h.Store.EncryptionKeys {
			if strings.Contains(k, "{") {
				continue
			}
			ks := keyseal.SplitKeys(k)
			if len(ks) == 0 {
				return fmt.Errorf("miniprogram: encryption key %d of %d is empty (is its environment variable set?)", i+1, n)
			}
			for _, one := range ks {
				if _, err := keyseal.ParseKey(one); err != nil {
					return fmt.Errorf("miniprogram: encryption key %d of %d: %v", i+1, n, err)
				}
			}
		}
	}
	return nil
}

// Cleanup releases the handler's resources (its reference to the shared
// store).
func (h *Handler) Cleanup() error {
	if c, ok := h.client.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
	if h.store != nil {
		return h.store.Close()
	}
	return nil
}

func (h *Handler) fieldNames() Fields {
	f := Fields{Code: "code", AnonymousCode: "anonymous_code", EncryptedData: "encryptedData", IV: "iv", PhoneCode: "code"}
	if h.Fields != nil {
		set := func(dst *string, v string) {
			if v != "" {
				*dst = v
			}
		}
		set(&f.Code, h.Fields.Code)
		set(&f.AnonymousCode, h.Fields.AnonymousCode)
		set(&f.EncryptedData, h.Fields.EncryptedData)
		set(&f.IV, h.Fields.IV)
		set(&f.PhoneCode, h.Fields.PhoneCode)
	}
	return f
}

// route tells which of the handler's routes r is on.
type route int

const (
	routeNone route = iota
	routeLogin
	routePhone
	routeDecrypt
	routeCompat
	routeUnclear
)

// route tells which of the handler's routes r is on: any reading a
// backend could make of its path (internal/routepath), as Caddy's rewrites
// left it or as the client sent it (rewrite, uri and try_files run ahead
// of the handler: try_files may hand it /index.php for a request the
// backend routes as the login). routeUnclear: a path encoded too deeply
// to decide.
func (h *Handler) route(r *http.Request) route {
	p := r.URL.EscapedPath()
	var m int
	if or, ok := originalRequest(r); ok && or.URL.EscapedPath() != p {
		m = h.routes.Match(p, or.URL.EscapedPath())
	} else {
		m = h.routes.Match(p)
	}
	rt := routeOfMatch(m)
	var params []paramPath
	if r.URL.RawQuery != "" || originalHasQuery(r) {
		params = h.routeParamPaths(r)
	}
	if len(params) > 0 {
		// A front controller routes by its parameter, not the path: both
		// must tell the same route, or the backend may run another
		// endpoint than the one the handler prepared the request for.
		// ThinkPHP's "s" is always checked for such a conflict; the
		// configured route_params also make a route of a path that is
		// none.
		pr := h.routeOfParams(params, false)
		switch {
		case pr == routeUnclear, pr != routeNone && rt != routeNone && pr != rt:
			return routeUnclear
		case rt == routeNone:
			rt = h.routeOfParams(params, true)
		}
	}
	if h.pathParamsAfterRoute(r, params) {
		return routeUnclear
	}
	if rt != routeNone {
		return rt
	}
	if h.compatMatches(r.URL.Path) {
		return routeCompat
	}
	return routeNone
}

// ServeHTTP implements caddyhttp.MiddlewareHandler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	// Every request: no client-sent header, trailer or Connection token
	// of the handler's own reaches the upstream.
	stripClientHeaders(r.Header)
	stripTrailers(r)
	rt := h.route(r)
	stripConnectionTokens(r.Header, rt != routeNone)
	switch rt {
	case routeNone:
		return next.ServeHTTP(w, r)
	case routeCompat:
		return h.serveCompat(w, r)
	}
	// The rewritten body goes into a shallow copy of the request; the
	// header map is shared. (Caddy clones the request for its access log
	// before any handler runs, so injected values never show there: the
	// integration tests check it.)
	r = r.WithContext(r.Context())
	if uriHasQuery(r) {
		var p *privateURI
		p, w = h.beginPrivateURI(w, r)
		return p.end(h.serveRouteRequest(w, r, next, rt))
	}
	return h.serveRouteRequest(w, r, next, rt)
}

// serveRouteRequest handles a request the handler recognised as one of its
// routes (or could not tell: routeUnclear).
func (h *Handler) serveRouteRequest(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, rt route) error {
	if rt == routeUnclear {
		metrics.requests.WithLabelValues(h.Platform, routeNames[rt], string(mperr.BadRequest)).Inc()
		h.fail(w, r, mperr.New(mperr.BadRequest, "the request path or its route parameters do not tell one route, or name a protected field as a path parameter"))
		return nil
	}
	query := r.URL.RawQuery // the fields the handler reads may be there
	if uriHasQuery(r) {
		// What reverse_proxy logs (at DEBUG) as the upstream request's
		// URI: no code in it.
		r.RequestURI = redactedURI(r)
	}
	names := h.protectedNames(rt)
	stripQuery(r, names)
	stripCookies(r.Header, names)
	if r.Method == http.MethodOptions && (r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0) {
		// A CORS preflight: nothing to exchange, nothing to inject.
		return next.ServeHTTP(w, r)
	}
	return h.serveRoute(w, r, next, rt, query)
}

// serveRoute does a route's work and hands the request on, or answers an
// error itself.
func (h *Handler) serveRoute(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, rt route, query string) error {
	var s store.Session
	in, err := h.readInput(r, query)
	if err == nil {
		defer in.body.Close() // a multipart body's spooled files, once forwarded
		switch rt {
		case routeLogin:
			s, err = h.serveLogin(r, in)
		case routePhone:
			err = h.servePhone(r, in)
		case routeDecrypt:
			err = h.serveDecrypt(r, in)
		}
	}
	if err == nil {
		h.requestsOK[rt].Inc()
	} else {
		metrics.requests.WithLabelValues(h.Platform, routeNames[rt], outcome(err)).Inc()
		h.fail(w, r, err)
		return nil
	}
	if rt == routeLogin && h.binding != nil {
		return h.proxyAndBind(w, r, next, s)
	}
	return next.ServeHTTP(w, r)
}

// fail answers the request with the README's JSON error; the upstream is not
// called.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	e := mperr.From(err)
	fields := []zap.Field{
		zap.String("path", r.URL.Path),
		zap.String("error", string(e.Code)),
		zap.String("message", e.Message),
	}
	if e.HasErrcode {
		fields = append(fields, zap.Int("platform_errcode", e.Errcode))
	}
	if e.Err != nil {
		fields = append(fields, zap.NamedError("cause", e.Err))
	}
	switch {
	case e.Status() >= 500:
		h.logger.Error("request failed", fields...)
	case e.Status() == http.StatusTooManyRequests:
		h.logger.Warn("request failed", fields...)
	default:
		h.logger.Info("request refused", fields...)
	}
	mperr.Write(w, e)
}
