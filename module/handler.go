// Package module is the miniprogram HTTP handler: it exchanges login codes
// eagerly, keeps sessions, decrypts phone and other payloads, and injects the
// results into the request that reaches the upstream.
//
// The parts it is made of live in internal/: platform (the platforms' API
// clients), wxcrypt (decryption), store (sessions), reqbody (reading and
// rewriting request bodies) and mperr (the README's error table).
package module

import (
	"context"
	"fmt"
	"net/http"
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
	// Platform is a registered platform's name (platform.Names: wechat,
	// douyin). The handler knows it by its descriptor only (h.platformDesc).
	Platform string `json:"platform,omitempty"`
	// AppID and AppSecret of the mini-program; placeholders such as
	// {env.MP_APP_SECRET} are replaced at provisioning.
	AppID     string `json:"app_id,omitempty"`
	AppSecret string `json:"app_secret,omitempty"`
	// APIBase is the platform API origin; default the platform's real one.
	// It replaces every origin the handler calls (Douyin's
	// developer.toutiao.com and open.douyin.com alike).
	APIBase string `json:"api_base,omitempty"`
	// PrivateKey is the Douyin app's RSA private key, PKCS#1 or PKCS#8
	// PEM: the path of a PEM file, or the PEM text itself (an
	// {env.X} holding it). Douyin's phone-code answers are encrypted with
	// its public half, uploaded in Douyin's console; without it Douyin
	// phone codes are refused.
	PrivateKey string `json:"private_key,omitempty"`
	// PlatformPublicKey is the platform's own RSA public key, for a
	// platform whose answers are signed (Alipay's public key, from its
	// console): the path of a PEM file, or the key itself (PEM, or the
	// bare base64 the console shows; an {env.X} holding it).
	PlatformPublicKey string `json:"platform_public_key,omitempty"`
	// AESKey is the app's content encryption key (Alipay's 接口内容加密
	// AES key, base64), for a platform whose phone payloads are opened with
	// the app's keys; typically {env.X}.
	AESKey string `json:"aes_key,omitempty"`

	// Apps are several apps served by this one handler (any platforms),
	// each request going to the app SelectApp picks; the fields above
	// (platform to aes_key, and access_token) are then per app, every
	// other field shared. See apps.go.
	Apps []AppConfig `json:"apps,omitempty"`
	// SelectApp is how a request picks its app among Apps, in order:
	// the first selector that names a configured app decides.
	SelectApp []AppSelector `json:"select_app,omitempty"`

	// Store keeps sessions; default memory.
	Store *StoreConfig `json:"store,omitempty"`
	// SessionTTL is how long a session is kept after its last login
	// (default 30m; 1m to 720h).
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
	// (default 5s; 100ms to 1m).
	PlatformTimeout caddy.Duration `json:"platform_timeout,omitempty"`
	// PlatformRetries is how often a transient platform failure is
	// retried (default 2; 0 = never).
	PlatformRetries *int `json:"platform_retries,omitempty"`
	// ExchangeWait bounds how long a request waits for another instance
	// that is exchanging the same code (default PlatformTimeout + 1s;
	// 100ms to 2m).
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
	// Gateway relays the backend's server-API calls with the shared token
	// added (open-API gateway).
	Gateway *GatewayConfig `json:"gateway,omitempty"`
	// TokenBinding binds the upstream's login token to the session.
	TokenBinding *TokenBindingConfig `json:"token_binding,omitempty"`
	// IdentityCache is how long the identity of a token's session is kept
	// in the process for requests off the routes (see idcache.go): with a
	// Redis store default 1s, with the memory store off; 0 turns it off.
	// A logout (or expiry) on another instance takes effect here at most
	// this much later.
	IdentityCache *caddy.Duration `json:"identity_cache,omitempty"`
	// HeaderNames names the identity headers: "mp" (default: X-Mp-Openid,
	// X-Mp-Unionid, X-Mp-Platform, X-Mp-App-Id), "cloudrun" (X-WX-OPENID,
	// X-WX-UNIONID, X-WX-APPID, as WeChat's hosted containers give them) or
	// "both". Client-sent headers of both families are always removed.
	HeaderNames string `json:"header_names,omitempty"`
	// Session makes the handler issue its own session token at login
	// (see session.go).
	Session *SessionConfig `json:"session,omitempty"`
	// RequireSession lists paths (Caddy path matcher patterns) where a
	// request off the handler's routes without a valid session (issued or
	// bound token) is answered 401 session_not_found, or 503
	// store_unavailable when the store cannot be reached.
	RequireSession []string `json:"require_session,omitempty"`
	// Logout lists paths where a request's session (issued or bound
	// token) is ended in the store before the request goes on.
	Logout []string `json:"logout,omitempty"`

	logger *zap.Logger
	// accessLog is Caddy's http.log.access logger, for the access lines
	// the handler writes itself (see accesslog.go).
	accessLog *zap.Logger
	// binding is set when TokenBinding or Session is configured (see
	// binding.go).
	binding *tokenBinding
	// idCache fronts the store for identity on every request; nil when
	// off (see idcache.go).
	idCache *identityCache
	// sessions is set when Session is configured (see session.go).
	sessions *issuedSessions
	// required and logout match RequireSession and Logout (nil: none).
	required, logout *routepath.Matcher
	// tokens keeps the token of the phone-code exchange (the platform's
	// PhoneCodeSpec: WeChat's access token, or Douyin's client token when
	// private_key is set; see phonecode.go); nil when the platform's phone
	// codes are refused.
	tokens *accesstoken.Manager
	// failures counts failed exchanges per client; nil when off (see
	// failures.go).
	failures *clientlimit.Limiter
	// compat is set when Compat is configured (see compat.go).
	compat *compatServer
	// gw is set when Gateway is configured (see gateway.go).
	gw     *gatewayServer
	client platform.Client
	// desc is the platform's descriptor, set at provisioning (see
	// platformDesc).
	desc   *platform.Descriptor
	store  store.Store
	flight *singleflight.Group
	// requestsOK are the "ok" request counters of each route label,
	// resolved once (see metrics.go).
	requestsOK [numRouteLabels]prometheus.Counter
	// refusals summarises the refusals logged at DEBUG (see refusals.go).
	refusals *refusalSummary
	// unbound summarises login answers token_binding could not bind.
	unbound *refusalSummary
	// unreachable summarises requests that passed without identity because
	// the store could not be reached.
	unreachable *refusalSummary
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
	// replaced: replacePlaceholders has run (see validate.go).
	replaced bool
	// appKeys open the phone payloads of a platform whose payloads are
	// opened with the app's keys (see appkeyphone.go).
	appKeys platform.AppKeys
	// apps is set when Apps is configured: the handler then serves
	// through one provisioned handler per app (see apps.go).
	apps *appSet
	// appName is the name of the app this handler serves within a
	// handler of several apps ("" alone): its session tokens carry it.
	appName string
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.miniprogram",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision sets the handler up: placeholders, defaults and the
// configuration's rules (validate) first, then the platform client and the
// session store (shared across config reloads).
func (h *Handler) Provision(ctx caddy.Context) error {
	if len(h.Apps) > 0 {
		return h.provisionApps(ctx) // several apps (apps.go)
	}
	h.logger = ctx.Logger()
	h.accessLog = ctx.Logger(caddyhttp.App{}).Named("log.access")
	if err := h.replacePlaceholders(); err != nil {
		return err
	}
	h.applyDefaults()
	// Every rule of the configuration, before anything is made.
	if err := h.validate(); err != nil {
		return err
	}

	h.desc = h.platformDesc()

	if err := registerMetrics(ctx.GetMetricsRegistry()); err != nil {
		return err
	}
	for l, name := range routeLabels {
		h.requestsOK[l] = metrics.requests.WithLabelValues(h.Platform, name, "ok")
	}
	h.refusals = newRefusalSummary(h.logger)
	h.unbound = newSummary(h.logger, "login answers not bound to a token (at most one line per minute per reason; each is logged at DEBUG)", "reason")
	h.unreachable = newSummary(h.logger, "requests passed without identity: the session store cannot be reached (at most one line per minute)", "error")
	h.f = h.fieldNames()
	h.payloadProtected = append(append(append([]string(nil), identityFields...), resultFields...), h.f.EncryptedData, h.f.IV)
	if h.desc.AppKeyPayloads != nil {
		h.payloadProtected = append(h.payloadProtected, h.f.Response)
	}
	h.flight = new(singleflight.Group)
	h.unsaved = newUnsavedSessions()

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
	privateKey, err := h.loadPrivateKey()
	if err != nil {
		return err
	}
	if err := h.loadAppKeys(); err != nil {
		return err
	}
	client, err = platform.New(h.Platform, platform.Config{
		PrivateKey:        privateKey,
		PlatformPublicKey: h.appKeys.PlatformPublicKey,
		AppID:             h.AppID,
		AppSecret:         h.AppSecret,
		APIBase:           h.APIBase,
		Timeout:           time.Duration(h.PlatformTimeout),
		MaxRetries:        retries,
		Logger:            h.logger.Named("platform"),
		Tokens:            h.withToken,
	})
	if err != nil {
		return err
	}
	h.client = client

	st, err := h.openStore(ctx)
	if err != nil {
		return err
	}
	// Every store operation, the access-token manager's too, goes
	// through the timed store (see storemetrics.go).
	h.store = newTimedStore(st, h.Store.Type)
	if err := h.provisionAccessToken(ctx); err != nil {
		return err
	}
	if err := h.provisionCompat(ctx); err != nil {
		return err
	}
	if err := h.provisionGateway(ctx); err != nil {
		return err
	}
	if err := h.provisionTokenBinding(ctx); err != nil {
		return err
	}
	h.provisionSessions()
	h.provisionIdentityCache()
	if err := h.provisionSessionPaths(); err != nil {
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

// applyDefaults sets the defaults of the durations and sizes left at
// zero. A negative value is kept, for validate to refuse.
func (h *Handler) applyDefaults() {
	if h.SessionTTL == 0 {
		h.SessionTTL = DefaultSessionTTL
	}
	if h.MaxBodySize == 0 {
		h.MaxBodySize = DefaultMaxBodySize
	}
	if h.PlatformTimeout == 0 {
		h.PlatformTimeout = DefaultPlatformTimeout
	}
	if h.ExchangeWait == 0 {
		h.ExchangeWait = h.PlatformTimeout + caddy.Duration(time.Second)
	}
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
		{"app_id", &h.AppID}, {"app_secret", &h.AppSecret}, {"api_base", &h.APIBase}, {"private_key", &h.PrivateKey},
		{"platform_public_key", &h.PlatformPublicKey}, {"aes_key", &h.AESKey},
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
	h.replaced = true
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
		o := h.Store.redisOptions()
		o.Prefix, o.KeyCodec = prefix+scope+":", codec
		r, err := store.OpenRedis(o, h.logger.Named("store"))
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

// Cleanup releases the handler's resources (its reference to the shared
// store).
func (h *Handler) Cleanup() error {
	if h.apps != nil {
		return h.apps.cleanup()
	}
	if h.client != nil {
		_ = h.client.Close() // idle connections only: nothing to report
	}
	if h.gw != nil {
		h.gw.g.Close()
	}
	if h.store != nil {
		return h.store.Close()
	}
	return nil
}

func (h *Handler) fieldNames() Fields {
	f := Fields{Code: "code", AnonymousCode: "anonymous_code", EncryptedData: "encryptedData", IV: "iv", PhoneCode: "code", Response: "response"}
	if s := h.platformDesc().AppKeyPayloads; s != nil {
		f.Response = s.Field
	}
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
		set(&f.Response, h.Fields.Response)
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
	routeGateway
	routeUnclear
)

// route tells which of the handler's routes r is on: any reading a
// backend could make of its path (internal/routepath), as Caddy's rewrites
// left it or as the client sent it (rewrite, uri and try_files run ahead
// of the handler: try_files may hand it /index.php for a request the
// backend routes as the login). routeUnclear: a path encoded too deeply
// to decide.
func (h *Handler) route(r *http.Request) route {
	if h.gatewayHost(r) {
		// The platform's API host (host mode): never a route of the
		// front end's.
		return routeGateway
	}
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
	if h.gatewayMatches(r.URL.Path) {
		return routeGateway
	}
	return routeNone
}

// ServeHTTP implements caddyhttp.MiddlewareHandler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if h.apps != nil {
		// Several apps: the boundary once, then the request's app
		// (apps.go).
		return h.apps.serveHTTP(w, r, next)
	}
	// The session token the handler issued, read before the boundary
	// strips X-Mp-* headers, and stripped too (the upstream never sees
	// it).
	var issued string
	if h.sessions != nil {
		issued = h.sessions.take(r)
	}
	// Every request: no client-sent header, trailer or Connection token
	// of the handler's own reaches the upstream.
	stripClientHeaders(r.Header)
	stripTrailers(r)
	rt := h.route(r)
	stripConnectionTokens(r.Header, rt != routeNone)
	return h.serveRouted(w, r, next, rt, issued)
}

// serveRouted serves a request the boundary has been applied to, on route
// rt; issued is the session token taken off it.
func (h *Handler) serveRouted(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, rt route, issued string) error {
	if rt == routeNone {
		return h.serveOffRoute(w, r, next, issued)
	}
	// Every request on a route or a compat endpoint is counted here, and
	// only here, whichever way it leaves.
	res := requestResult{route: labelOf(rt)}
	defer h.countRequest(&res)
	if rt == routeCompat {
		h.serveCompat(w, r, &res)
		return nil
	}
	if rt == routeGateway {
		h.serveGateway(w, r, &res)
		return nil
	}
	// The rewritten body goes into a shallow copy of the request; the
	// header map is shared. (Caddy clones the request for its access log
	// before any handler runs, so injected values never show there: the
	// integration tests check it.)
	ctx := r.Context()
	if issued != "" {
		ctx = context.WithValue(ctx, issuedTokenKey{}, issued)
	}
	r = r.WithContext(ctx)
	if uriHasQuery(r) {
		var p *privateURI
		p, w = h.beginPrivateURI(w, r)
		return p.end(h.serveRouteRequest(w, r, next, rt, &res))
	}
	return h.serveRouteRequest(w, r, next, rt, &res)
}

// serveRouteRequest handles a request the handler recognised as one of its
// routes (or could not tell: routeUnclear). It sets res.result when the
// request is not a success of the route.
func (h *Handler) serveRouteRequest(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, rt route, res *requestResult) error {
	if rt == routeUnclear {
		res.result = h.fail(w, r, res.route, mperr.New(mperr.BadRequest, "the request path or its route parameters do not tell one route, or name a protected field as a path parameter"))
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
		res.result = resultPreflight
		return next.ServeHTTP(w, r)
	}
	return h.serveRoute(w, r, next, rt, query, res)
}

// serveRoute does a route's work and hands the request on, or answers an
// error itself.
func (h *Handler) serveRoute(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, rt route, query string, res *requestResult) error {
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
	if err != nil {
		res.result = h.fail(w, r, res.route, err)
		return nil
	}
	// An anonymous login has no user to issue a session or bind a token
	// to.
	if rt == routeLogin && s.OpenID != "" {
		if h.sessions != nil && h.issueSession(w, r, s) {
			// Once the answer is out, the token leaves the header map
			// Caddy's access log reads (it logs response headers).
			defer h.sessions.hideHeader(w)
		}
		if h.binding != nil && h.binding.upstream {
			return h.proxyAndBind(w, r, next, s)
		}
	}
	return next.ServeHTTP(w, r)
}

// The Caddy variables the handler sets; their names have no dot, so that
// the Caddyfile's shorthand {vars.NAME} reaches them (its NAME stops at a
// dot).
const (
	// errorVar: the error code of a request the handler answered itself.
	errorVar = "mp_error"
	// openidVar: the openid of the request's session, once known.
	openidVar = "mp_openid"
)

// setErrorVar exposes the error code the handler answers r with:
// {vars.mp_error} ({http.vars.mp_error}), the vars matcher's mp_error.
func setErrorVar(r *http.Request, code string) {
	caddyhttp.SetVar(r.Context(), errorVar, code)
}

// fail answers the request with the README's JSON error; the upstream is not
// called. It sets {vars.mp_error}, logs as Caddy's server does (a refusal,
// 4xx, at DEBUG and in the refusal summary; a failure, 5xx, at ERROR) and
// returns the error code.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, rl routeLabel, err error) string {
	e := mperr.From(err)
	code := string(e.Code)
	setErrorVar(r, code)
	level, msg := zap.DebugLevel, "request refused"
	if e.Status() >= 500 {
		level, msg = zap.ErrorLevel, "request failed"
	} else {
		h.refusals.note(code, routeLabels[rl])
	}
	if c := h.logger.Check(level, msg); c != nil {
		fields := []zap.Field{
			zap.String("path", r.URL.Path),
			zap.String("error", code),
			zap.String("message", e.Message),
		}
		if e.HasErrcode {
			fields = append(fields, zap.Int("platform_errcode", e.Errcode))
		}
		if e.Err != nil {
			fields = append(fields, zap.NamedError("cause", e.Err))
		}
		c.Write(fields...)
	}
	mperr.Write(w, e)
	return code
}
