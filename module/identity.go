package module

import (
	"errors"
	"net/http"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

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

// setIdentity sets a session's identity headers, in the configured names:
// openid and unionid when known, the platform and the app id.
func (h *Handler) setIdentity(hdr http.Header, openid, unionid string) {
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

// serveOffRoute serves a request on none of the handler's routes: with
// token_binding's identity everywhere, a bound token gives its session's
// identity; on a rebind path, the answer's new token is bound to that
// session.
func (h *Handler) serveOffRoute(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	b := h.binding
	if b == nil || !b.everywhere {
		return next.ServeHTTP(w, r)
	}
	token := b.requestToken(r)
	if token == "" {
		return next.ServeHTTP(w, r)
	}
	res := requestResult{route: labelBound}
	defer h.countRequest(&res)
	s, err := h.store.Lookup(r.Context(), h.tokenRef(token))
	switch {
	case err == nil:
		h.setIdentity(r.Header, s.OpenID, s.UnionID)
		caddyhttp.SetVar(r.Context(), openidVar, s.OpenID)
		if b.rebind != nil && b.rebind.Match(r) {
			return h.proxyAndBind(w, r, next, s)
		}
	case errors.Is(err, store.ErrNotFound):
		res.result = resultNoSession
	default:
		res.result = resultStoreUnavailable
		if c := h.logger.Check(zap.DebugLevel, "bound identity: the store cannot be reached; the request passes without identity"); c != nil {
			c.Write(zap.String("path", r.URL.Path), zap.Error(err))
		}
		h.unreachable.note("store_unavailable", routeLabels[labelBound])
	}
	return next.ServeHTTP(w, r)
}
