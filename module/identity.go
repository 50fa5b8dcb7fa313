package module

import (
	"errors"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/platform"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/reqbody"
	"net/http"
	"net/textproto"
	"strings"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/mperr"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/store"
)

// Identity on every request: with token_binding (identity all, the
// default), a request on any path that carries a bound token gets its
// session's identity headers, so a backend reads who is calling without
// handling codes or sessions. A request without a token, or with one the
// store does not know (expired, never bound, forged), gets none; the
// client's own are always removed (boundary.go). When the store cannot be
// reached the request passes without identity.

// The identity headers WeChat's hosted containers (CloudRun, 微信云托管)
// give their backends; header_names cloudrun (or both) injects them. The
// handler never sets X-WX-SOURCE, which asserts the call came through
// WeChat's own network: the sidecar cannot know that.
const (
	HeaderWXOpenID  = "X-Wx-Openid"
	HeaderWXUnionID = "X-Wx-Unionid"
	HeaderWXAppID   = "X-Wx-Appid"
)

// header_names values.
const (
	HeaderNamesMP       = "mp"       // X-Mp-Openid, X-Mp-Unionid, X-Mp-Platform, X-Mp-App-Id (default)
	HeaderNamesCloudRun = "cloudrun" // X-WX-OPENID, X-WX-UNIONID, X-WX-APPID
	HeaderNamesBoth     = "both"     // both sets
)

// identityHeaders are the header names of the registered platforms'
// identity fields: X-Mp- and the field's name with "_" as "-", in
// canonical form (anonymous_openid: X-Mp-Anonymous-Openid). The boundary
// strips every client X-Mp-* header, so each is protected.
var identityHeaders = func() map[string]string {
	m := map[string]string{}
	for _, f := range platform.IdentityFields() {
		m[f] = identityHeader(f)
	}
	return m
}()

// identityHeader is the header of an identity field named f.
func identityHeader(f string) string {
	return "X-Mp-" + textproto.CanonicalMIMEHeaderKey(strings.ReplaceAll(f, "_", "-"))
}

// declaredFields keeps of fields those the platform declares
// (Descriptor.IdentityFields) and are not empty; nil when none is left.
// Only these are stored and injected.
func (h *Handler) declaredFields(fields map[string]string) map[string]string {
	if len(fields) == 0 {
		return nil
	}
	var out map[string]string
	for _, f := range h.platformDesc().IdentityFields {
		if v := fields[f]; v != "" {
			if out == nil {
				out = make(map[string]string, len(fields))
			}
			out[f] = v
		}
	}
	return out
}

// setIdentityBody sets a login's identity fields in the body: openid (when
// known), unionid and the platform's identity fields when known, every
// other identity name removed.
func (h *Handler) setIdentityBody(body *reqbody.Body, openid, unionid string, fields map[string]string) {
	body.Del(identityFields...)
	if openid != "" {
		body.Set(FieldOpenID, openid)
	}
	if unionid != "" {
		body.Set(FieldUnionID, unionid)
	}
	for _, f := range h.platformDesc().IdentityFields {
		if v := fields[f]; v != "" {
			body.Set(f, v)
		}
	}
}

// setIdentity sets a session's identity headers, in the configured names:
// openid and unionid when known, the platform and the app id; and the
// platform's identity fields when known, as X-Mp-<Name> whatever the
// header names (CloudRun has no names for them).
func (h *Handler) setIdentity(hdr http.Header, openid, unionid string, fields map[string]string) {
	for _, f := range h.platformDesc().IdentityFields {
		if v := fields[f]; v != "" {
			hdr.Set(identityHeaders[f], v)
		}
	}
	if h.HeaderNames != HeaderNamesCloudRun {
		if openid != "" {
			hdr.Set(HeaderOpenID, openid)
		}
		if unionid != "" {
			hdr.Set(HeaderUnionID, unionid)
		}
		hdr.Set(HeaderPlatform, h.Platform)
		hdr.Set(HeaderAppID, h.AppID)
	}
	if h.HeaderNames == HeaderNamesCloudRun || h.HeaderNames == HeaderNamesBoth {
		if openid != "" {
			hdr.Set(HeaderWXOpenID, openid)
		}
		if unionid != "" {
			hdr.Set(HeaderWXUnionID, unionid)
		}
		hdr.Set(HeaderWXAppID, h.AppID)
	}
}

// serveOffRoute serves a request on none of the handler's routes: a
// session token the handler issued (issued, taken off the request by
// ServeHTTP) or, with token_binding's identity everywhere, a bound token
// gives its session's identity; on a rebind path, the answer's new token
// is bound to that session. On a require_session path a request without a
// session is answered 401 session_not_found (503 store_unavailable when
// the store cannot be reached) and never reaches the upstream. On a
// logout path the request's session is ended before the request goes on
// (with the identity of the session it ended).
func (h *Handler) serveOffRoute(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, issued string) error {
	b := h.binding
	bound := b != nil && b.everywhere
	protected := h.onPaths(h.required, r)
	logout := h.onPaths(h.logout, r)
	if issued == "" && !bound && !protected && !logout {
		return next.ServeHTTP(w, r)
	}
	s, ref, kind, err := h.tokenSession(r.Context(), r, issued, bound, !logout)
	if kind == tokenNone && !protected && !logout {
		return next.ServeHTTP(w, r)
	}
	res := requestResult{route: labelBound}
	switch {
	case logout:
		res.route = labelLogout
	case protected:
		res.route = labelProtected
	case kind == tokenIssued:
		res.route = labelSession
	}
	defer h.countRequest(&res)
	if kind == tokenNone {
		err = store.ErrNotFound
	}
	switch {
	case err == nil:
		if logout {
			if err := h.endSession(r.Context(), ref); err != nil {
				res.result = h.fail(w, r, res.route, mperr.Wrap(mperr.StoreUnavailable, "the session store cannot be reached: the session was not ended", err))
				return nil
			}
			if kind == tokenIssued {
				h.sessions.endCookie(w)
			}
		}
		h.setIdentity(r.Header, s.OpenID, s.UnionID, s.Fields)
		caddyhttp.SetVar(r.Context(), openidVar, s.OpenID)
		if kind == tokenBound && !logout && b.rebind != nil && b.rebind.Match(r) {
			return h.proxyAndBind(w, r, next, s)
		}
	case errors.Is(err, store.ErrNotFound):
		if protected {
			msg := "this path needs a session: log in first"
			if kind != tokenNone {
				msg = "no session for this token: log in again"
			}
			res.result = h.fail(w, r, res.route, mperr.New(mperr.SessionNotFound, msg))
			return nil
		}
		res.result = resultNoSession
	default:
		if protected || logout {
			res.result = h.fail(w, r, res.route, storeErr(err))
			return nil
		}
		res.result = resultStoreUnavailable
		if c := h.logger.Check(zap.DebugLevel, "identity: the store cannot be reached; the request passes without identity"); c != nil {
			c.Write(zap.String("path", r.URL.Path), zap.Error(err))
		}
		h.unreachable.note("store_unavailable", routeLabels[res.route])
	}
	return next.ServeHTTP(w, r)
}
