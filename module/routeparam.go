package module

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/reqbody"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/routepath"
)

// Front controllers that route by a query parameter (ThinkPHP's
// /index.php?s=/api/login) take the route from the query, not the path: a
// client can send that request directly, and the backend routes it to the
// login endpoint. RouteParams names such parameters; every value of each,
// in the request's query as Caddy left it and as the client sent it, is
// matched as a path too.

// CheckRoutePath is the rule for a route path (field login, phone or
// decrypt).
func CheckRoutePath(field, p string) error {
	if err := routepath.CheckPattern(p); err != nil {
		return &FieldError{Field: field, Err: err} // err quotes the path
	}
	return nil
}

// CheckRouteParam is the rule for a route_param name.
func CheckRouteParam(name string) error {
	if name == "" || strings.ContainsAny(name, "&=;#?% \t") {
		return fieldErr("route_param", "%q: want a plain query parameter name (such as s)", name)
	}
	return nil
}

func (h *Handler) validateRouteParams() error {
	if len(h.RouteParams) > 0 && h.Login == "" && h.Phone == "" && h.Decrypt == "" {
		return fieldErr("route_param", "needs a login, phone or decrypt route")
	}
	for _, p := range h.RouteParams {
		if err := CheckRouteParam(p); err != nil {
			return err
		}
	}
	return nil
}

// paramPath is a route parameter's value read as a path; configured tells
// that its name is one of RouteParams (not only ThinkPHP's "s", which is
// always checked for conflicts).
type paramPath struct {
	path       string
	configured bool
}

// routeParamPaths reads the request's route parameters ("s" and
// RouteParams, under any spelling a binder equates), in the query Caddy
// left and in the client's, once per request.
func (h *Handler) routeParamPaths(r *http.Request) []paramPath {
	var paths []paramPath
	add := func(raw string) {
		for seg := range strings.SplitSeq(raw, "&") {
			for pair := range strings.SplitSeq(seg, ";") {
				k, v, _ := strings.Cut(pair, "=")
				if k == "" {
					continue
				}
				name := unescapeLenient(k)
				matched := reqbody.SameName(name, "s")
				configured := false
				for _, p := range h.RouteParams {
					if reqbody.SameName(name, p) {
						matched, configured = true, true
						break
					}
				}
				if !matched {
					continue
				}
				v = unescapeLenient(v)
				if !strings.HasPrefix(v, "/") {
					v = "/" + v // ThinkPHP takes s=api/login too
				}
				paths = append(paths, paramPath{path: v, configured: configured})
			}
		}
	}
	add(r.URL.RawQuery)
	if or, ok := originalRequest(r); ok && or.URL.RawQuery != r.URL.RawQuery {
		add(or.URL.RawQuery)
	}
	return paths
}

// routeOfParams tells which route the route parameters name (only the
// configured ones when configuredOnly): routeUnclear when they name more
// than one (PHP takes the last of repeated parameters, other parsers the
// first).
func (h *Handler) routeOfParams(params []paramPath, configuredOnly bool) route {
	found := routeNone
	for _, p := range params {
		if configuredOnly && !p.configured {
			continue
		}
		rt := routeOfMatch(h.routes.Match(p.path))
		switch {
		case rt == routeNone:
		case found == routeNone:
			found = rt
		case rt != found:
			return routeUnclear
		}
	}
	return found
}

// pathParamsAfterRoute reports whether a path (the request's, the
// client's, or a route parameter's value) extends a route with segments
// that name a protected field (/api/login/openid/x): ThinkPHP's dispatcher
// turns /action/name/value into request parameters that override the
// body, so such a request cannot be made trustworthy.
func (h *Handler) pathParamsAfterRoute(r *http.Request, params []paramPath) bool {
	if h.extendsRoute(r.URL.EscapedPath()) {
		return true
	}
	if or, ok := originalRequest(r); ok && h.extendsRoute(or.URL.EscapedPath()) {
		return true
	}
	for _, p := range params {
		if h.extendsRoute(p.path) {
			return true
		}
	}
	return false
}

// extendsRoute: see pathParamsAfterRoute.
func (h *Handler) extendsRoute(p string) bool {
	c := routepath.Canonical(p)
	for _, prefix := range h.routePrefixes {
		rest, ok := strings.CutPrefix(c, prefix)
		if !ok {
			continue
		}
		for seg := range strings.SplitSeq(rest, "/") {
			for _, name := range h.payloadProtected {
				if seg != "" && reqbody.SameName(seg, name) {
					return true
				}
			}
		}
	}
	return false
}

// unescapeLenient decodes a query component like url.QueryUnescape, and
// keeps s as it is when that fails (PHP keeps invalid escapes).
func unescapeLenient(s string) string {
	if u, err := url.QueryUnescape(s); err == nil {
		return u
	}
	return s
}

// routeOfMatch is the route of a routepath.Matcher result over the
// patterns (login, phone, decrypt).
func routeOfMatch(m int) route {
	switch m {
	case 0:
		return routeLogin
	case 1:
		return routePhone
	case 2:
		return routeDecrypt
	case routepath.Unclear:
		return routeUnclear
	}
	return routeNone
}

// Values of DecryptWatermark.
const (
	WatermarkRequired = "required"
	WatermarkOptional = "optional"
)

// CheckDecryptWatermark is the rule for decrypt_watermark.
func CheckDecryptWatermark(v string) error {
	switch v {
	case "", WatermarkRequired, WatermarkOptional:
		return nil
	}
	return fieldErr("decrypt_watermark", "%q: want required or optional", v)
}

// CheckRoutes is the rule for the three routes together: no two on one
// path, and none that an earlier one (the handler tries login, then phone,
// then decrypt) makes unreachable. Paths are compared in the canonical
// form routes are recognised in (case folded). The error names the later
// route (the one that conflicts).
func CheckRoutes(login, phone, decrypt string) error {
	routes := []struct{ name, path string }{{"login", login}, {"phone", phone}, {"decrypt", decrypt}}
	for i, a := range routes {
		for _, b := range routes[i+1:] {
			if a.path == "" || b.path == "" {
				continue
			}
			ca, cb := canonicalPattern(a.path), canonicalPattern(b.path)
			if ca == cb {
				return fieldErr(b.name, "path %q is the same as the %s path %q (paths are compared ignoring case)", b.path, a.name, a.path)
			}
			if prefix, ok := strings.CutSuffix(ca, "*"); ok && strings.HasPrefix(strings.TrimSuffix(cb, "*"), prefix) {
				return fieldErr(b.name, "path %q is unreachable: the %s path %q, which is checked first, takes all its requests",
					b.path, a.name, a.path)
			}
		}
	}
	return nil
}

// routePrefixes are what a path extending a route starts with, in
// canonical form: "<route>/" for an exact route, the prefix of a prefix
// route.
func routePrefixes(patterns ...string) []string {
	var out []string
	for _, p := range patterns {
		if p == "" {
			continue
		}
		cp := canonicalPattern(p)
		if prefix, ok := strings.CutSuffix(cp, "*"); ok {
			out = append(out, prefix)
		} else {
			out = append(out, cp+"/")
		}
	}
	return out
}

// canonicalPattern is a route pattern in canonical form, its "*" kept.
func canonicalPattern(p string) string {
	if prefix, ok := strings.CutSuffix(p, "*"); ok {
		c := routepath.Canonical(prefix)
		if strings.HasSuffix(prefix, "/") && c != "/" {
			c += "/"
		}
		return c + "*"
	}
	return routepath.Canonical(p)
}

// originalHasQuery reports whether the client's request had a query.
func originalHasQuery(r *http.Request) bool {
	or, ok := originalRequest(r)
	return ok && or.URL.RawQuery != ""
}
