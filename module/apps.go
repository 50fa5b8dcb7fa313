package module

// Several apps in one handler.
//
// A cross-platform backend has one /api/login for its WeChat, Douyin,
// Alipay... mini-programs. With apps, one handler serves them all: each
// app is its own provisioned Handler (the shared configuration with the
// app's platform, credentials and keys: its own platform client, tokens,
// store scope, compat dialect), made at provisioning, and a request is
// handed to the app select_app picks. Everything per app (store keys,
// code and token hashes, access tokens, metrics' platform label) stays
// as it is for one app, untouched.
//
// ServeHTTP applies the trust boundary once, as for one app (the session
// token taken off the request, client X-Mp-*/X-WX-* headers, trailers and
// Connection tokens stripped: whatever the app, and when there is none;
// select_app's own header and query parameter removed too), then:
//
//   - on a route (login, phone, decrypt): the app select_app names; on
//     the phone and decrypt routes, else the app an issued session
//     token's tag names; else 400 unknown_app;
//   - under the compat prefix: the app whose app id the request's appid
//     names (query, or the JSON body's), else the first app whose dialect
//     has that endpoint, which refuses the appid in its own dialect;
//   - off the routes: an issued session token's app (its tag, see
//     session.go), else the app select_app names; else the request passes
//     without identity (a require_session path answers 401
//     session_not_found);
//   - under the gateway prefix (or, in host mode, for an API host of an
//     app's platform): the app select_app's header or query selector
//     names, else 400 unknown_app (gatewayapps.go);
//   - on a logout path, a token that names no app (a bound token, an
//     untagged session token) has its session ended in every app that
//     knows it, whatever the selection (serveLogout).
//
// Selection is client-chosen (a header, a query parameter, the Referer,
// the path) and never trusted for more than choosing: a login code of app
// A sent as app B is refused by B's platform; a session of app A is not
// found under app B (another store scope, and refs that hash platform and
// app id); a session token of A tagged B finds nothing.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/mperr"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/routepath"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/store"
)

// AppConfig is one app of a handler serving several (Handler.Apps): the
// fields that are per app. Every other field of the handler is shared.
type AppConfig struct {
	// Name names the app in select_app's header and query values, in
	// session tokens and in errors; default its app id. Letters, digits,
	// "_" and "-", at most 64.
	Name              string `json:"name,omitempty"`
	Platform          string `json:"platform,omitempty"`
	AppID             string `json:"app_id,omitempty"`
	AppSecret         string `json:"app_secret,omitempty"`
	APIBase           string `json:"api_base,omitempty"`
	PrivateKey        string `json:"private_key,omitempty"`
	PlatformPublicKey string `json:"platform_public_key,omitempty"`
	AESKey            string `json:"aes_key,omitempty"`
	// AccessToken configures the app's server token (as the handler's
	// access_token for one app).
	AccessToken *AccessTokenConfig `json:"access_token,omitempty"`
	// Paths are route patterns (an exact path, or a prefix ending in *)
	// whose requests are this app's, for select_app path; matched on the
	// current and the original path (before a rewrite or uri
	// strip_prefix).
	Paths []string `json:"paths,omitempty"`
}

// AppSelector is one way a request names its app (Handler.SelectApp).
type AppSelector struct {
	// By is "header" (the header Name holds the app's name or app id),
	// "query" (the query parameter Name does), "path" (the apps' paths)
	// or "referer" (the Referer the platforms set on their requests).
	By   string `json:"by"`
	Name string `json:"name,omitempty"`
}

// select_app kinds.
const (
	SelectByHeader  = "header"
	SelectByQuery   = "query"
	SelectByPath    = "path"
	SelectByReferer = "referer"
)

// appFields are the handler's fields that are per app with Apps.
var appFields = []string{"platform", "app_id", "app_secret", "api_base", "private_key", "platform_public_key", "aes_key", "access_token"}

// notSelectorHeaders are headers select_app header may not name: the
// selector's header is removed from the request, and these carry the
// request itself (or the session token, or the Referer selector's value).
var notSelectorHeaders = []string{"Authorization", "Cookie", "Referer", "Host", "Origin", "Content-Type", "Content-Length",
	"Content-Encoding", "Transfer-Encoding", "Connection", "Upgrade", "Te", "Trailer", "Expect", "Accept", "User-Agent"}

var appNameRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// appName is the name of app a (its app id by default).
func (a *AppConfig) name() string {
	if a.Name != "" {
		return a.Name
	}
	return a.AppID
}

// appErr is a rule's refusal of an app's field (or of the app as a whole,
// field ""): apps[<name>].<field>.
func appErr(name, field string, err error) error {
	f := "apps[" + name + "]"
	if field != "" {
		f += "." + field
	}
	return &FieldError{Field: f, Err: err}
}

// validateApps checks a configuration with Apps: nothing per app at the
// top level, names, selectors, and each app's handler by every rule of
// one (validate).
func (h *Handler) validateApps() error {
	for _, f := range []struct{ name, v string }{
		{"platform", h.Platform}, {"app_id", h.AppID}, {"app_secret", h.AppSecret}, {"api_base", h.APIBase},
		{"private_key", h.PrivateKey}, {"platform_public_key", h.PlatformPublicKey}, {"aes_key", h.AESKey},
	} {
		if f.v != "" {
			return fieldErr(f.name, "goes in each app when apps are configured (app <name> { %s ... })", f.name)
		}
	}
	if h.AccessToken != nil {
		return fieldErr("access_token", "goes in each app when apps are configured")
	}
	if err := h.validateGateway(); err != nil { // its shared rules (Platform is "")
		return err
	}
	names := map[string]int{} // name or app id → app index
	withPaths := false
	for i := range h.Apps {
		a := &h.Apps[i]
		name := a.name()
		if name == "" {
			return fieldErr("apps", "app %d of %d has neither a name nor an app_id", i+1, len(h.Apps))
		}
		if !h.pending(name) && !appNameRE.MatchString(name) {
			return appErr(name, "name", fmt.Errorf("%q is not an app name: letters, digits, _ and -, at most 64 (the name ends the app's session tokens); give the app a name", name))
		}
		for _, k := range []string{name, a.AppID} {
			if k == "" || h.pending(k) {
				continue
			}
			if j, ok := names[k]; ok && j != i {
				return appErr(name, "", fmt.Errorf("%q names app %d too: names and app ids must tell every app apart", k, j+1))
			}
			names[k] = i
		}
		for _, p := range a.Paths {
			if err := routepath.CheckPattern(p); err != nil {
				return appErr(name, "path", fmt.Errorf("%w (want e.g. /wx/*)", err))
			}
		}
		withPaths = withPaths || len(a.Paths) > 0
		sub := h.appHandler(i)
		if sub.Login == "" && sub.Phone == "" && sub.Decrypt == "" && sub.Compat == nil && sub.Gateway == nil && CheckPlatform(sub.Platform) == nil {
			// A gateway-only handler, and this app's platform has no
			// gateway (or no allow entry is for it).
			return appErr(name, "", fmt.Errorf("has nothing to serve: the handler has no login, phone, decrypt or compat route, and %s has no API gateway here (its platform has none, or no allow entry is for it)", name))
		}
		if err := sub.validate(); err != nil {
			return appRuleErr(name, err)
		}
	}
	if err := h.checkAppPaths(); err != nil {
		return err
	}
	if len(h.SelectApp) == 0 {
		return fieldErr("select_app", "is needed with apps: how a request names its app (header <name>, query <name>, path, referer)")
	}
	seen := map[string]bool{}
	byPath := false
	for _, s := range h.SelectApp {
		key := s.By + " " + s.Name
		if seen[key] {
			return fieldErr("select_app", "%s is given twice", strings.TrimSpace(key))
		}
		seen[key] = true
		switch s.By {
		case SelectByHeader, SelectByQuery:
			if !ValidTokenName(s.Name) {
				return fieldErr("select_app", "%s needs a name (select_app %s <name>), got %q", s.By, s.By, s.Name)
			}
			if s.By == SelectByHeader && slices.Contains(notSelectorHeaders, http.CanonicalHeaderKey(s.Name)) {
				return fieldErr("select_app", "header %s cannot name the app (the selector's header is removed before the request goes on: use a header of your own, e.g. X-Mp-App)", s.Name)
			}
		case SelectByPath, SelectByReferer:
			if s.Name != "" {
				return fieldErr("select_app", "%s takes no name", s.By)
			}
			byPath = byPath || s.By == SelectByPath
		default:
			return fieldErr("select_app", "unknown selector %q (want header, query, path or referer)", s.By)
		}
	}
	if byPath != withPaths {
		if byPath {
			return fieldErr("select_app", "path needs apps with paths (path <pattern>... in an app)")
		}
		return fieldErr("select_app", "the apps have paths but select_app does not say path")
	}
	if h.Gateway != nil {
		if err := h.validateAppsGateway(); err != nil {
			return err
		}
	}
	if h.Compat != nil {
		has := false
		for i := range h.Apps {
			has = has || h.appHandler(i).Compat != nil
		}
		if !has {
			return fieldErr("compat", "none of the apps' platforms has compat endpoints")
		}
	}
	return nil
}

// checkAppPaths refuses a path pattern of an app that another app's
// pattern covers (or equals): a request on it would always be the other
// app's, or the app chosen would depend on the order of the apps. One
// app's own patterns may overlap. Run after each pattern was checked.
func (h *Handler) checkAppPaths() error {
	pats := make([][]routepath.Pattern, len(h.Apps))
	for i := range h.Apps {
		for _, p := range h.Apps[i].Paths {
			c, err := routepath.Compile(p)
			if err != nil {
				return appErr(h.Apps[i].name(), "path", err)
			}
			pats[i] = append(pats[i], c)
		}
	}
	covered := func(i, j int) error {
		for _, q := range pats[i] {
			for _, p := range pats[j] {
				if p.Covers(q) {
					return appErr(h.Apps[i].name(), "path", fmt.Errorf("%q is covered by app %s's %q: a path must name one app (give the apps disjoint paths)", q, h.Apps[j].name(), p))
				}
			}
		}
		return nil
	}
	for i := 1; i < len(h.Apps); i++ {
		for j := 0; j < i; j++ {
			if err := covered(i, j); err != nil {
				return err
			}
			if err := covered(j, i); err != nil {
				return err
			}
		}
	}
	return nil
}

// appRuleErr names the app in a rule's refusal of its handler: a per-app
// field as apps[<name>].<field>, a shared one as it is.
func appRuleErr(name string, err error) error {
	var fe *FieldError
	if errors.As(err, &fe) {
		base, _, _ := strings.Cut(fe.Field, ".")
		if slices.Contains(appFields, base) {
			return appErr(name, fe.Field, fe.Err)
		}
		if base == "gateway" {
			// The shared block as the app's platform reads it.
			return &FieldError{Field: fe.Field, Err: fmt.Errorf("app %s: %w", name, fe.Err)}
		}
		return err
	}
	return appErr(name, "", errors.New(strings.TrimPrefix(err.Error(), "miniprogram: ")))
}

// appHandler is the configuration of app i's own handler: a copy of the
// shared fields (a deep copy: provisioning writes into it), with the
// app's. An app whose platform has no compat endpoints gets none.
func (h *Handler) appHandler(i int) *Handler {
	shared := &Handler{}
	b, err := json.Marshal(h)
	if err == nil {
		err = json.Unmarshal(b, shared)
	}
	if err != nil {
		// Cannot happen: the configuration came from JSON.
		panic("miniprogram: copying the configuration: " + err.Error())
	}
	a := h.Apps[i]
	shared.Apps, shared.SelectApp = nil, nil
	shared.Platform, shared.AppID, shared.AppSecret, shared.APIBase = a.Platform, a.AppID, a.AppSecret, a.APIBase
	shared.PrivateKey, shared.PlatformPublicKey, shared.AESKey = a.PrivateKey, a.PlatformPublicKey, a.AESKey
	if a.AccessToken != nil {
		c := *a.AccessToken
		shared.AccessToken = &c
	}
	if shared.Compat != nil {
		if _, ok := compatDialects[shared.platformDesc().Compat]; !ok {
			shared.Compat = nil
		}
	}
	// The gateway block is shared; the app's relay gets the allow-list
	// entries for its platform, and none without (gatewayapps.go).
	shared.Gateway = h.appGateway(i)
	shared.appName = a.name()
	return shared
}

// app is one provisioned app of a handler serving several.
type app struct {
	h     *Handler
	name  string
	paths *routepath.Matcher // nil: none
}

// appSet is the provisioned apps and how a request selects one.
type appSet struct {
	apps []*app
	// lead answers what does not depend on the app (route recognition,
	// require_session and logout paths, refusals without an app).
	lead *Handler
	// byName finds an app by its name or app id (header, query).
	byName map[string]*app
	// byPlatformID finds an app by platform and app id (Referer).
	byPlatformID map[string]*app
	selectors    []AppSelector
	compatPrefix string
	// gateway is the shared gateway block, nil without (gatewayapps.go).
	gateway *GatewayConfig
	logger  *zap.Logger
}

// provisionApps provisions one handler per app and the selection.
func (h *Handler) provisionApps(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	if err := h.validate(); err != nil {
		return err
	}
	s := &appSet{byName: map[string]*app{}, byPlatformID: map[string]*app{}, selectors: h.SelectApp, logger: h.logger}
	for i := range h.Apps {
		name, err := h.provisionedAppName(i)
		if err != nil {
			_ = s.cleanup()
			return err
		}
		sub := h.appHandler(i)
		sub.appName = name
		if err := sub.Provision(ctx); err != nil {
			// What it opened before it failed (its store, its client)
			// is released too: it is in none of s.apps.
			_ = sub.Cleanup()
			_ = s.cleanup()
			return appRuleErr(name, err)
		}
		a := &app{h: sub, name: name}
		s.apps = append(s.apps, a)
		if len(h.Apps[i].Paths) > 0 {
			m, err := routepath.NewMatcher(h.Apps[i].Paths...)
			if err != nil {
				_ = s.cleanup()
				return appErr(name, "path", err)
			}
			a.paths = m
		}
		// App ids are known now (placeholders replaced).
		for _, k := range []string{name, sub.AppID} {
			if o, ok := s.byName[k]; ok && o != a {
				_ = s.cleanup()
				return appErr(name, "", fmt.Errorf("%q names app %q too: names and app ids must tell every app apart", k, o.name))
			}
			s.byName[k] = a
		}
		s.byPlatformID[sub.Platform+"\x00"+sub.AppID] = a
		if sub.compat != nil {
			s.compatPrefix = sub.compat.prefix
		}
	}
	s.lead = s.apps[0].h
	// One bound of failed exchanges per client for the handler, not one
	// per app.
	for _, a := range s.apps[1:] {
		a.h.failures = s.lead.failures
	}
	h.apps = s
	h.replaced = true
	names := make([]string, len(s.apps))
	for i, a := range s.apps {
		names[i] = a.h.Platform + ":" + a.name
	}
	h.logger.Info("miniprogram handler serves several apps", zap.Strings("apps", names), zap.Any("select_app", h.SelectApp))
	if h.Gateway != nil {
		c := *h.Gateway
		s.gateway = &c
		h.logger.Info("API gateway serves several apps: a call names its app by select_app's header or query", zap.Strings("apps", s.gatewayApps()))
	}
	return nil
}

// provisionedAppName is app i's name once placeholders are replaced: its
// name's value, else its app id's, checked by the name rule (validate
// skips a name still holding a placeholder).
func (h *Handler) provisionedAppName(i int) (string, error) {
	a := &h.Apps[i]
	v, field, hint := a.Name, "name", ""
	if v == "" {
		v, field, hint = a.AppID, "app_id", "; give the app a name"
	}
	name, err := caddy.NewReplacer().ReplaceOrErr(v, true, true)
	if err != nil {
		return "", appErr(a.name(), field, fmt.Errorf("%v (is its environment variable set?)", err))
	}
	if !appNameRE.MatchString(name) {
		return "", appErr(name, "name", fmt.Errorf("%q is not an app name: letters, digits, _ and -, at most 64 (the name ends the app's session tokens)%s", name, hint))
	}
	return name, nil
}

func (s *appSet) cleanup() error {
	var errs []error
	for _, a := range s.apps {
		errs = append(errs, a.h.Cleanup())
	}
	return errors.Join(errs...)
}

// selection is what select_app's header and query selectors read, one
// value per selector ("" for the others): read before the boundary strips
// the client's X-Mp-* headers (an X-Mp-* name may carry the app's name),
// and before the selector's own header and query parameter are removed
// (strip).
type selection struct{ values []string }

func (s *appSet) readSelection(r *http.Request) selection {
	sel := selection{values: make([]string, len(s.selectors))}
	for i, x := range s.selectors {
		switch x.By {
		case SelectByHeader:
			sel.values[i] = strings.TrimSpace(r.Header.Get(x.Name))
		case SelectByQuery:
			sel.values[i] = queryValue(r, x.Name)
		}
	}
	return sel
}

// strip removes select_app's headers and query parameters from r: they
// are the handler's, and the upstream reads the app from X-Mp-App-Id,
// never from what the client sent (which may name another app, or none).
func (s *appSet) strip(r *http.Request) {
	var query []string
	for _, x := range s.selectors {
		switch x.By {
		case SelectByHeader:
			r.Header.Del(x.Name)
		case SelectByQuery:
			query = append(query, x.Name)
		}
	}
	if len(query) > 0 {
		stripQuery(r, query)
	}
}

func (s *appSet) serveHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	sel := s.readSelection(r)
	lead := s.lead
	// The boundary, as for one app (handler.go's ServeHTTP): every app
	// has the same session carriers.
	var issued string
	if lead.sessions != nil {
		issued = lead.sessions.take(r)
	}
	stripClientHeaders(r.Header)
	stripTrailers(r)
	rt := lead.route(r)
	if s.gatewayRequest(r) {
		rt = routeGateway
	}
	if rt == routeNone && s.compatPrefix != "" && (r.URL.Path == s.compatPrefix || strings.HasPrefix(r.URL.Path, s.compatPrefix+"/")) {
		rt = routeCompat
	}
	stripConnectionTokens(r.Header, rt != routeNone)
	if rt == routeCompat {
		// Answered here, never passed on (its appid may be a query
		// selector's name).
		return s.compatApp(r).h.serveRouted(w, r, next, rt, "")
	}
	if rt == routeGateway {
		// A backend's call: the app its header or query selector
		// names, or none (gatewayapps.go).
		return s.serveGateway(w, r, next, sel, issued)
	}
	s.strip(r)
	tagged := s.taggedApp(issued)
	if rt == routeNone {
		if sessionTokenTag(issued) != "" {
			if tagged == nil {
				return s.serveWithoutApp(w, r, next, issued)
			}
			return tagged.h.serveRouted(w, r, next, rt, issued)
		}
		a := s.selectApp(r, sel)
		if lead.onPaths(lead.logout, r) {
			return s.serveLogout(w, r, next, issued, a)
		}
		if a == nil {
			return s.serveWithoutApp(w, r, next, issued)
		}
		return a.h.serveRouted(w, r, next, rt, issued)
	}
	a := s.selectApp(r, sel)
	if a == nil && (rt == routePhone || rt == routeDecrypt) {
		// The session's app: its token's tag (a login names its app).
		a = tagged
	}
	if a == nil && r.Method == http.MethodOptions && (r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0) {
		// A CORS preflight carries no custom header (its
		// Access-Control-Request-Headers only names them): passed on
		// as any app would.
		a = s.apps[0]
	}
	if a == nil {
		res := requestResult{route: labelOf(rt)}
		res.result = lead.fail(w, r, res.route, mperr.Newf(mperr.UnknownApp, "this request names none of the configured apps (select_app: %s)", s.describe()))
		lead.countRequest(&res)
		return nil
	}
	return a.h.serveRouted(w, r, next, rt, issued)
}

// taggedApp is the app whose name an issued session token's tag is, or
// nil (untagged, or a tag of no configured app).
func (s *appSet) taggedApp(issued string) *app {
	tag := sessionTokenTag(issued)
	if a := s.byName[tag]; tag != "" && a != nil && a.name == tag {
		return a
	}
	return nil
}

// serveLogout serves a request on a logout path whose token (a bound
// token, or an untagged session token issued before the handler served
// several apps) tells no app: it may be any app's, and a logout the
// backend is told of must leave no session alive. So the token's session
// is looked up in every app and ended in each that knows it; then the app
// that knows it (the selected one first) serves the logout, with the
// identity of its session. When no app knows the token, the selected app
// serves it (or, with none, it passes without identity). When a store
// cannot be reached, the logout is answered 503 store_unavailable and
// never reaches the upstream: that store may hold the session.
func (s *appSet) serveLogout(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, issued string, selected *app) error {
	var found []*app
	var refs []string
	for _, c := range s.apps {
		b := c.h.binding
		_, ref, kind, err := c.h.tokenSession(r.Context(), r, issued, b != nil && b.everywhere, false)
		if kind == tokenNone {
			break // the request carries no token (every app reads the same carriers)
		}
		switch {
		case err == nil:
			found = append(found, c)
			refs = append(refs, ref)
		case errors.Is(err, store.ErrNotFound):
		default:
			return s.failLogout(w, r, err)
		}
	}
	owner := selected
	if len(found) > 0 && !slices.Contains(found, selected) {
		owner = found[0]
	}
	for i, c := range found {
		if c == owner {
			continue // ended by its own logout, below
		}
		if err := c.h.endSession(r.Context(), refs[i]); err != nil {
			return s.failLogout(w, r, err)
		}
	}
	if owner == nil {
		return s.serveWithoutApp(w, r, next, issued)
	}
	return owner.h.serveOffRoute(w, r, next, issued)
}

// failLogout answers a logout whose sessions could not all be looked up
// or ended: 503 store_unavailable, the upstream not called.
func (s *appSet) failLogout(w http.ResponseWriter, r *http.Request, err error) error {
	res := requestResult{route: labelLogout}
	res.result = s.lead.fail(w, r, res.route, mperr.Wrap(mperr.StoreUnavailable, "the session store cannot be reached: the session was not ended", err))
	s.lead.countRequest(&res)
	return nil
}

// describe is select_app as a message.
func (s *appSet) describe() string {
	parts := make([]string, len(s.selectors))
	for i, x := range s.selectors {
		parts[i] = strings.TrimSpace(x.By + " " + x.Name)
	}
	return strings.Join(parts, ", ")
}

// serveWithoutApp serves a request off the routes that names no app (or
// carries a session token of no configured app): it passes without
// identity, but a require_session path answers 401 session_not_found.
func (s *appSet) serveWithoutApp(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, issued string) error {
	lead := s.lead
	if lead.onPaths(lead.required, r) {
		msg := "this path needs a session: log in first"
		if issued != "" {
			msg = "no session for this token: log in again"
		}
		res := requestResult{route: labelProtected}
		res.result = lead.fail(w, r, res.route, mperr.New(mperr.SessionNotFound, msg))
		lead.countRequest(&res)
		return nil
	}
	if issued != "" {
		res := requestResult{route: labelSession, result: resultNoSession}
		if lead.onPaths(lead.logout, r) {
			res.route = labelLogout
		}
		defer lead.countRequest(&res)
	}
	return next.ServeHTTP(w, r)
}

// selectApp is the app the first selector that gives an answer names, or
// nil.
func (s *appSet) selectApp(r *http.Request, sel selection) *app {
	for i, x := range s.selectors {
		var a *app
		switch x.By {
		case SelectByHeader, SelectByQuery:
			if v := sel.values[i]; v != "" {
				a = s.byName[v]
			}
		case SelectByPath:
			for _, c := range s.apps {
				if c.paths != nil && s.lead.onPaths(c.paths, r) {
					a = c
					break
				}
			}
		case SelectByReferer:
			a = s.refererApp(r.Header.Get("Referer"))
		}
		if a != nil {
			return a
		}
	}
	return nil
}

// queryValue is the query parameter name of r, or of the original request
// when a rewrite dropped it.
func queryValue(r *http.Request, name string) string {
	if v := strings.TrimSpace(r.URL.Query().Get(name)); v != "" {
		return v
	}
	if or, ok := originalRequest(r); ok {
		return strings.TrimSpace(or.URL.Query().Get(name))
	}
	return ""
}

// refererApp is the configured app a platform's Referer names, or nil
// (see refererAppID).
func (s *appSet) refererApp(ref string) *app {
	platforms, id := refererAppID(ref)
	if id == "" {
		return nil
	}
	for _, p := range platforms {
		if a := s.byPlatformID[p+"\x00"+id]; a != nil {
			return a
		}
	}
	return nil
}

// refererAppID reads the app id from the Referer a platform's runtime
// sets on the mini-program's requests (wx.request and friends; the
// front end cannot set it), with the platforms that use that form:
//
//	WeChat          https://servicewechat.com/{appid}/{version}/page-frame.html
//	QQ              https://appservice.qq.com/{appid}/{version}/page-frame.html
//	Baidu           https://smartapps.cn/{appKey}/{version}/page-frame.html (before base library 3.170.0: https://smartapp.baidu.com/...)
//	Douyin, Feishu  https://tmaservice.developer.toutiao.com/?appid={appid}&version={version}
//	Alipay          https://{appid}.hybrid.alipay-eco.com/... (unconfirmed)
//
// Kuaishou publishes none. It is absent from devtools, web-views and H5
// builds, and a client outside the platform can send anything: it only
// chooses the app, which then refuses what is not its own.
func refererAppID(ref string) (platforms []string, appID string) {
	if ref == "" {
		return nil, ""
	}
	u, err := url.Parse(ref)
	if err != nil || u.Scheme != "https" || u.User != nil || u.Port() != "" {
		return nil, ""
	}
	host := strings.ToLower(u.Hostname())
	first := func() string {
		seg, _, _ := strings.Cut(strings.TrimPrefix(u.Path, "/"), "/")
		return seg
	}
	switch host {
	case "servicewechat.com":
		return []string{"wechat"}, first()
	case "appservice.qq.com":
		return []string{"qq"}, first()
	case "smartapps.cn", "smartapp.baidu.com":
		return []string{"baidu"}, first()
	case "tmaservice.developer.toutiao.com":
		return []string{"douyin", "feishu", "lark"}, u.Query().Get("appid")
	}
	if id, ok := strings.CutSuffix(host, ".hybrid.alipay-eco.com"); ok && id != "" && !strings.Contains(id, ".") {
		return []string{"alipay"}, id
	}
	return nil, ""
}

// compatApp is the app a compat request is for: the one whose app id its
// appid names (query, else a JSON body's "appid"), else the first app
// whose dialect has that endpoint (which refuses the appid as the
// platform does), else the first app with compat endpoints.
func (s *appSet) compatApp(r *http.Request) *app {
	id := r.URL.Query().Get("appid")
	if id == "" && r.Body != nil && r.Body != http.NoBody && r.Method == http.MethodPost {
		id = peekJSONAppID(r, s.lead.MaxBodySize)
	}
	var withCompat []*app
	for _, a := range s.apps {
		if a.h.compat == nil {
			continue
		}
		if id != "" && a.h.AppID == id {
			return a
		}
		withCompat = append(withCompat, a)
	}
	rest := strings.TrimPrefix(r.URL.Path, s.compatPrefix)
	for _, a := range withCompat {
		d := a.h.compat.dialect
		if slices.Contains(d.code2session, rest) || slices.Contains(d.token, rest) {
			return a
		}
	}
	return withCompat[0]
}

// peekJSONAppID reads r's body (at most limit bytes) for a JSON "appid"
// and puts the body back as it was.
func peekJSONAppID(r *http.Request, limit int64) string {
	b, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	r.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(b), r.Body), r.Body}
	if err != nil || int64(len(b)) > limit {
		return ""
	}
	var v struct {
		AppID string `json:"appid"`
	}
	if json.Unmarshal(b, &v) != nil {
		return ""
	}
	return v.AppID
}
