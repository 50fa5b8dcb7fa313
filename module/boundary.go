package module

import (
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/reqbody"
)

// The trust boundary's request-wide defences: what every request the
// handler sees loses before anything else happens (headers, Connection
// tokens, trailers), and how a route is recognised on the request Caddy
// rewrote as well as on the one the client sent.

// isProtectedHeader reports whether a header name is one the handler owns:
// X-Mp-..., and X-WX-... (the identity headers of WeChat's hosted
// containers, which header_names cloudrun injects and a backend moved from
// there trusts, X-WX-SOURCE and X-WX-FROM-* included), in any case, with
// '_' for '-' (PHP, CGI and nginx's underscores_in_headers map both
// spellings to one variable).
func isProtectedHeader(k string) bool {
	k = strings.TrimSpace(k)
	if len(k) < 5 {
		return false
	}
	p := strings.ReplaceAll(k[:5], "_", "-")
	return strings.EqualFold(p, "x-mp-") || strings.EqualFold(p, "x-wx-")
}

// stripIdentityHeaders removes every header a client may have sent that
// the handler owns (see isProtectedHeader).
func stripIdentityHeaders(hdr http.Header) {
	for k := range hdr {
		if isProtectedHeader(k) {
			delete(hdr, k)
		}
	}
}

// stripConnectionTokens removes the Connection header's tokens that would
// make a proxy drop, as hop-by-hop, a header the handler sets
// (Connection: X-Mp-Openid) or, on a rewritten request, the body's framing
// (Content-Type, Content-Length, Transfer-Encoding). Other tokens (close,
// keep-alive, Upgrade for websockets) are kept.
func stripConnectionTokens(hdr http.Header, framing bool) {
	vs, ok := hdr["Connection"]
	if !ok {
		return
	}
	drop := func(tok string) bool {
		tok = strings.TrimSpace(tok)
		if isProtectedHeader(tok) {
			return true
		}
		if framing {
			switch strings.ToLower(tok) {
			case "content-type", "content-length", "transfer-encoding", "content-encoding":
				return true
			}
		}
		return false
	}
	dirty := false
	for _, v := range vs {
		for tok := range strings.SplitSeq(v, ",") {
			if drop(tok) {
				dirty = true
				break
			}
		}
	}
	if !dirty {
		return
	}
	var kept []string
	for _, v := range vs {
		for tok := range strings.SplitSeq(v, ",") {
			if t := strings.TrimSpace(tok); t != "" && !drop(t) {
				kept = append(kept, t)
			}
		}
	}
	if len(kept) == 0 {
		delete(hdr, "Connection")
		return
	}
	hdr["Connection"] = []string{strings.Join(kept, ", ")}
}

// stripTrailers removes the handler's headers from the request's trailers:
// those declared now, and, since Go fills r.Trailer only when the body
// reaches EOF (HTTP/1 adding undeclared names too) and reverse_proxy copies
// it then, those that arrive at EOF: the body is wrapped to filter them
// there.
func stripTrailers(r *http.Request) {
	stripIdentityHeaders(r.Trailer)
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		return
	}
	r.Body = &trailerFilter{ReadCloser: r.Body, r: r}
}

// trailerFilter removes the handler's headers from r.Trailer when the body
// it wraps reaches EOF.
type trailerFilter struct {
	io.ReadCloser
	r *http.Request
}

func (t *trailerFilter) Read(p []byte) (int, error) {
	n, err := t.ReadCloser.Read(p)
	if err == io.EOF {
		stripIdentityHeaders(t.r.Trailer)
	}
	return n, err
}

// originalRequest is the request as the client sent it, before Caddy's
// rewrite, uri and try_files changed it; ok is false outside Caddy's
// server (unit tests).
func originalRequest(r *http.Request) (http.Request, bool) {
	or, ok := r.Context().Value(caddyhttp.OriginalRequestCtxKey).(http.Request)
	return or, ok && or.URL != nil
}

// stripClientHeaders removes, in one pass, the handler's own headers (see
// isProtectedHeader) and the headers some frameworks route by instead of
// the path (X-Original-URL, X-Rewrite-URL: Zend Framework 1, older Symfony
// and laminas, IIS URL Rewrite): with those a client could send a request
// the handler does not see as a route to a route's endpoint.
func stripClientHeaders(hdr http.Header) {
	for k := range hdr {
		if isProtectedHeader(k) || headerNameIs(k, "x-original-url") || headerNameIs(k, "x-rewrite-url") {
			delete(hdr, k)
		}
	}
}

// headerNameIs reports whether the header name k is want (lower case),
// ignoring case, surrounding blanks, and '_' for '-', without allocating.
func headerNameIs(k, want string) bool {
	k = strings.TrimSpace(k)
	if len(k) != len(want) {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		switch {
		case c == '_':
			c = '-'
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		}
		if c != want[i] {
			return false
		}
	}
	return true
}

// stripCookies removes cookies named like a protected field (under any
// spelling a binder equates): PHP's $_REQUEST merges cookies over the body
// when request_order is unset (php -n, many container images), and legacy
// ASP.NET's Request[name] falls back to them.
func stripCookies(hdr http.Header, names []string) {
	vs, ok := hdr["Cookie"]
	if !ok {
		return
	}
	protected := func(pair string) bool {
		name, _, _ := strings.Cut(pair, "=")
		name = strings.TrimSpace(name)
		if u, err := url.QueryUnescape(name); err == nil {
			name = u
		}
		for _, n := range names {
			if reqbody.SameName(name, n) {
				return true
			}
		}
		return false
	}
	var kept []string
	dirty := false
	for _, v := range vs {
		for pair := range strings.SplitSeq(v, ";") {
			if strings.TrimSpace(pair) == "" {
				continue
			}
			if protected(pair) {
				dirty = true
				continue
			}
			kept = append(kept, strings.TrimSpace(pair))
		}
	}
	if !dirty {
		return
	}
	if len(kept) == 0 {
		delete(hdr, "Cookie")
		return
	}
	hdr["Cookie"] = []string{strings.Join(kept, "; ")}
}
