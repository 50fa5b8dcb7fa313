package module

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/store"
)

// DefaultMaxResponseSize bounds the login response buffered to find a JSON
// token (1 MiB).
const DefaultMaxResponseSize = 1 << 20

// TokenBindingConfig binds the token the upstream returns at login to the
// user's session, so that later phone and decrypt requests can find the
// session by that token instead of the login code.
//
// On the login route, after code2session succeeded, the handler forwards
// the request and reads the token from the upstream's answer (From). Only a
// 2xx answer binds. The answer reaches the client unchanged: same status,
// headers and body bytes. The store keeps a hash of the token pointing at
// the user (for session_ttl), never the token itself.
//
// On the phone and decrypt routes, a request that carries a token where
// Request says finds its session by it (an unknown or expired token is
// 401 session_not_found, whatever else the request carries); a request
// without one falls back to the login code.
//
// JSON, e.g.:
//
//	"token_binding": {
//		"from": {"json": "data.token"},
//		"request": {"bearer": true},
//		"max_response_size": 1048576
//	}
//
// A token value is trimmed of spaces and of a leading "Bearer " (any case),
// wherever it is read.
type TokenBindingConfig struct {
	// From is where the upstream puts the token in its login answer;
	// exactly one of its fields is set. Required.
	From TokenSource `json:"from"`
	// Request is where clients send the token later. Default: an
	// "Authorization: Bearer <token>" header when From is JSON or a header;
	// the same cookie when From is a cookie.
	Request *TokenCarrier `json:"request,omitempty"`
	// MaxResponseSize bounds the login answer buffered to read a JSON
	// token (default 1 MiB). A larger answer streams through to the client
	// unchanged and is not bound (a warning is logged).
	MaxResponseSize int64 `json:"max_response_size,omitempty"`
	// Identity is where a bound token gives its session's identity:
	// "all" (default) on every request the handler sees, any path (the
	// identity headers, see identity.go); "routes" only on the phone and
	// decrypt routes, to find the session.
	Identity string `json:"identity,omitempty"`
	// Rebind lists paths (Caddy path matcher patterns, e.g.
	// "/api/token/refresh") where the backend hands out a new token for
	// the session of the bound token the request carries: the new token,
	// read from the 2xx answer as at login (From), is bound to the same
	// session, so identity survives the backend's own token rotation.
	Rebind []string `json:"rebind,omitempty"`
}

// Token binding's identity modes.
const (
	IdentityAll    = "all"
	IdentityRoutes = "routes"
)

// TokenSource is where the upstream's login answer carries the token.
// Exactly one field is set.
type TokenSource struct {
	// JSON is a dotted path into a JSON object body, e.g. "data.token";
	// a segment of digits indexes an array ("data.tokens.0"). The value
	// must be a non-empty string (a number is taken as its text). Only a
	// 2xx answer with a JSON content type (application/json, */*+json)
	// and no Content-Encoding is read; the handler removes the request's
	// Accept-Encoding so the upstream does not compress it.
	JSON string `json:"json,omitempty"`
	// Header is a response header's name, e.g. "X-Token".
	Header string `json:"header,omitempty"`
	// Cookie is the name of a cookie the answer sets (Set-Cookie). A
	// cookie being deleted (Max-Age<0, or an Expires in the past) or
	// empty is not bound.
	Cookie string `json:"cookie,omitempty"`
}

// TokenCarrier is where clients send the token on the phone and decrypt
// routes. At most one field is set.
type TokenCarrier struct {
	// Bearer: the Authorization header, scheme Bearer.
	Bearer bool `json:"bearer,omitempty"`
	// Header is a request header's name, e.g. "X-Token".
	Header string `json:"header,omitempty"`
	// Cookie is a cookie's name (Cookie header), e.g. "sid".
	Cookie string `json:"cookie,omitempty"`
}

// Validate checks the configuration (exactly one source, at most one
// carrier, well-formed names and path, the response bound); part of the
// handler's validate.
func (c *TokenBindingConfig) Validate() error {
	n := 0
	for _, v := range []string{c.From.JSON, c.From.Header, c.From.Cookie} {
		if v != "" {
			n++
		}
	}
	if n != 1 {
		return fieldErr("token_binding.from", "exactly one of from json, from header, from cookie is needed")
	}
	if c.From.JSON != "" {
		if err := checkJSONPath(c.From.JSON); err != nil {
			return &FieldError{Field: "token_binding.from", Err: fmt.Errorf("json: %w", err)}
		}
	}
	if c.From.Header != "" && !ValidTokenName(c.From.Header) {
		return fieldErr("token_binding.from", "header: %q is not a header name", c.From.Header)
	}
	if c.From.Cookie != "" && !ValidTokenName(c.From.Cookie) {
		return fieldErr("token_binding.from", "cookie: %q is not a cookie name", c.From.Cookie)
	}
	if q := c.Request; q != nil {
		n := 0
		if q.Bearer {
			n++
		}
		if q.Header != "" {
			n++
			if !ValidTokenName(q.Header) {
				return fieldErr("token_binding.request", "header: %q is not a header name", q.Header)
			}
		}
		if q.Cookie != "" {
			n++
			if !ValidTokenName(q.Cookie) {
				return fieldErr("token_binding.request", "cookie: %q is not a cookie name", q.Cookie)
			}
		}
		if n > 1 {
			return fieldErr("token_binding.request", "takes one of bearer, header, cookie")
		}
	}
	if c.MaxResponseSize != 0 {
		if err := CheckMaxResponseSize(c.MaxResponseSize); err != nil {
			return err
		}
	}
	switch c.Identity {
	case "", IdentityAll, IdentityRoutes:
	default:
		return fieldErr("token_binding.identity", "%q is not all or routes", c.Identity)
	}
	for _, p := range c.Rebind {
		if err := CheckRebindPath(p); err != nil {
			return err
		}
	}
	return nil
}

// CheckRebindPath checks one token_binding rebind path: a Caddy path
// pattern starting with "/".
func CheckRebindPath(p string) error {
	if !strings.HasPrefix(p, "/") || strings.ContainsAny(p, " \t\r\n") {
		return fieldErr("token_binding.rebind", "%q is not a path (want e.g. /api/token/refresh or /api/auth/*)", p)
	}
	return nil
}

// checkJSONPath wants dot-separated non-empty segments.
func checkJSONPath(p string) error {
	for seg := range strings.SplitSeq(p, ".") {
		if seg == "" {
			return fmt.Errorf("path %q has an empty segment (want e.g. data.token)", p)
		}
	}
	return nil
}

// ValidTokenName reports whether s is an RFC 9110 token (header and
// cookie names).
func ValidTokenName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// tokenBinding is the provisioned binding. It is also set, with upstream
// false and no carrier, when only session is configured: h.binding != nil
// then means "a token in the request may find its session" (boundSession).
type tokenBinding struct {
	// upstream: token_binding is configured (the upstream's token is
	// bound at login).
	upstream bool
	// where the upstream puts it
	jsonPath     []string // set for a JSON source
	fromHeader   string   // canonical header name
	fromCookie   string
	maxResponse  int64
	reqBearer    bool
	reqHeader    string
	reqCookie    string
	sourceKind   string // "json", "header" or "cookie", for logs
	carrierLabel string // for logs
	// everywhere: a bound token gives identity on any path (Identity all).
	everywhere bool
	// rebind matches the paths whose answers rebind (nil: none).
	rebind caddyhttp.MatchPath
}

func (h *Handler) provisionTokenBinding(ctx caddy.Context) error {
	c := h.TokenBinding
	if c == nil {
		if h.Session != nil {
			h.binding = &tokenBinding{} // issued sessions only
		}
		return nil
	}
	b := &tokenBinding{upstream: true, maxResponse: c.MaxResponseSize}
	if b.maxResponse == 0 {
		b.maxResponse = DefaultMaxResponseSize
	}
	switch {
	case c.From.JSON != "":
		b.jsonPath = strings.Split(c.From.JSON, ".")
		b.sourceKind = "json"
	case c.From.Header != "":
		b.fromHeader = http.CanonicalHeaderKey(c.From.Header)
		b.sourceKind = "header"
	default:
		b.fromCookie = c.From.Cookie
		b.sourceKind = "cookie"
	}
	q := c.Request
	switch {
	case q != nil && q.Header != "":
		b.reqHeader = http.CanonicalHeaderKey(q.Header)
		b.carrierLabel = "header " + b.reqHeader
	case q != nil && q.Cookie != "":
		b.reqCookie = q.Cookie
		b.carrierLabel = "cookie " + b.reqCookie
	case q != nil && q.Bearer, b.fromCookie == "":
		b.reqBearer = true
		b.carrierLabel = "bearer"
	default:
		b.reqCookie = b.fromCookie
		b.carrierLabel = "cookie " + b.reqCookie
	}
	b.everywhere = c.Identity != IdentityRoutes
	if len(c.Rebind) > 0 {
		b.rebind = caddyhttp.MatchPath(append([]string(nil), c.Rebind...))
		if err := b.rebind.Provision(ctx); err != nil {
			return fmt.Errorf("miniprogram: token_binding rebind: %w", err)
		}
	}
	h.binding = b
	h.logger.Debug("token binding", zap.String("from", b.sourceKind), zap.String("request", b.carrierLabel),
		zap.Int64("max_response_size", b.maxResponse))
	return nil
}

// tokenRef is the store reference of an upstream token: a hash, never the
// token.
func (h *Handler) tokenRef(token string) string { return h.ref('t', token) }

// cleanToken trims spaces and an optional "Bearer " scheme.
func cleanToken(v string) string {
	v = strings.TrimSpace(v)
	if len(v) > 7 && strings.EqualFold(v[:7], "bearer ") {
		v = strings.TrimSpace(v[7:])
	}
	return v
}

// requestToken returns the token r carries per the configuration, or "".
func (b *tokenBinding) requestToken(r *http.Request) string {
	switch {
	case b.reqBearer:
		v := strings.TrimSpace(r.Header.Get("Authorization"))
		if len(v) > 7 && strings.EqualFold(v[:7], "bearer ") {
			return strings.TrimSpace(v[7:])
		}
		return ""
	case b.reqHeader != "":
		return cleanToken(r.Header.Get(b.reqHeader))
	case b.reqCookie != "":
		if c, err := r.Cookie(b.reqCookie); err == nil {
			return cleanToken(c.Value)
		}
	}
	return ""
}

// boundSession finds the session by the token the request carries: the
// session token the handler issued, or the upstream's bound token (see
// tokenSession); ok is false when it carries none (the caller then uses
// the login code). An unknown token is session_not_found, an unreachable
// store store_unavailable.
func (h *Handler) boundSession(ctx context.Context, r *http.Request) (s store.Session, ok bool, err error) {
	s, _, kind, err := h.tokenSession(ctx, r, issuedToken(r), true, false)
	if kind == tokenNone {
		return s, false, nil
	}
	if err != nil {
		return s, true, sessionErr(err, kind)
	}
	return s, true, nil
}

// responseToken returns the token in the response header map for a header
// or cookie source, or "".
func (b *tokenBinding) responseToken(hdr http.Header) string {
	if b.fromHeader != "" {
		return cleanToken(hdr.Get(b.fromHeader))
	}
	// The last Set-Cookie of that name wins, as in a browser.
	token := ""
	for _, line := range hdr.Values("Set-Cookie") {
		c, err := http.ParseSetCookie(line)
		if err != nil || c.Name != b.fromCookie {
			continue
		}
		if c.MaxAge < 0 || (!c.Expires.IsZero() && c.Expires.Before(time.Now())) {
			token = "" // the upstream deletes the cookie
			continue
		}
		token = cleanToken(c.Value)
	}
	return token
}

// jsonToken follows the path in a JSON body; "" when it leads nowhere or
// not to a string or number.
func (b *tokenBinding) jsonToken(body []byte) string {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return ""
	}
	for _, seg := range b.jsonPath {
		switch x := v.(type) {
		case map[string]any:
			v = x[seg]
		case []any:
			i, err := strconv.Atoi(seg)
			if err != nil || i < 0 || i >= len(x) {
				return ""
			}
			v = x[i]
		default:
			return ""
		}
	}
	switch x := v.(type) {
	case string:
		return cleanToken(x)
	case json.Number:
		return x.String()
	}
	return ""
}

// isJSONType reports whether a Content-Type is JSON.
func isJSONType(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	return mt == "application/json" || mt == "text/json" || strings.HasSuffix(mt, "+json")
}

var bindBufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// bind points the token at the user. A failure is logged (without the
// token) and does not affect the login answer.
func (h *Handler) bind(r *http.Request, token string, s store.Session) {
	// Detached from the client: a client leaving must not undo a bind the
	// upstream's answer promised. The store bounds its own operations.
	ctx := context.WithoutCancel(r.Context())
	if err := h.store.Bind(ctx, h.tokenRef(token), s.OpenID, time.Duration(h.SessionTTL)); err != nil {
		h.logger.Warn("could not bind the upstream's login token to the session; phone and decrypt requests with that token will fail",
			zap.String("path", r.URL.Path), zap.String("openid", s.OpenID), zap.Error(err))
		return
	}
	h.logger.Debug("login token bound", zap.String("openid", s.OpenID), zap.String("from", h.binding.sourceKind))
}

// proxyAndBind forwards the login request and binds the token found in the
// upstream's response to the session. The response reaches the client
// unchanged.
//
// A header or cookie token is read from the response headers when the
// upstream writes them, and bound before they go out to the client (so the
// client cannot race its next request against the bind); the body streams.
// A JSON token needs the body: a 2xx JSON answer is buffered (up to
// max_response_size), read, bound, then written out byte for byte.
func (h *Handler) proxyAndBind(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, s store.Session) error {
	b := h.binding
	isJSON := b.jsonPath != nil
	if isJSON {
		// An uncompressed answer, so its body can be read. (Caddy's own
		// transport may still ask for gzip and decompresses it itself.)
		r.Header.Del("Accept-Encoding")
	}

	var (
		status int
		skip   string // why a JSON answer was not buffered, for the log
	)
	shouldBuffer := func(code int, hdr http.Header) bool {
		status = code
		if code < 200 || code > 299 {
			return false // informational or not a success: nothing to bind
		}
		if !isJSON {
			if token := b.responseToken(hdr); token != "" {
				h.bind(r, token, s)
			} else {
				h.notBound(r, "no token in the answer", code)
			}
			return false
		}
		switch {
		case r.Method == http.MethodHead || code == http.StatusNoContent || code == http.StatusResetContent:
			skip = "no body"
		case !isJSONType(hdr.Get("Content-Type")):
			skip = "not JSON (content type " + strconv.Quote(hdr.Get("Content-Type")) + ")"
		case hdr.Get("Content-Encoding") != "" && !strings.EqualFold(hdr.Get("Content-Encoding"), "identity"):
			skip = "compressed (content encoding " + strconv.Quote(hdr.Get("Content-Encoding")) + ")"
		default:
			if cl := hdr.Get("Content-Length"); cl != "" {
				if n, err := strconv.ParseInt(cl, 10, 64); err == nil && n > b.maxResponse {
					skip = "larger than max_response_size"
					return false
				}
			}
			return true
		}
		return false
	}

	buf := bindBufPool.Get().(*bytes.Buffer)
	buf.Reset()
	defer func() {
		if buf.Cap() <= 2*int(b.maxResponse) {
			bindBufPool.Put(buf)
		}
	}()
	rec := caddyhttp.NewResponseRecorder(w, buf, shouldBuffer)
	cw := &cappedRecorder{ResponseRecorder: rec, w: w, max: b.maxResponse}
	err := next.ServeHTTP(cw, r)
	if err != nil {
		// Whatever was buffered is dropped: the error handler answers
		// (nothing has reached the client yet), or, streaming, the
		// response is already out.
		return err
	}
	if status == 0 {
		return nil // nothing written at all: the server answers 200 with no body, as it would have
	}
	if cw.spilled {
		skip = "larger than max_response_size"
	}
	if !isJSON || !rec.Buffered() || cw.spilled {
		if isJSON && status >= 200 && status <= 299 {
			h.notBound(r, skip, status)
		}
		return nil
	}

	if token := b.jsonToken(buf.Bytes()); token != "" {
		h.bind(r, token, s)
	} else {
		h.notBound(r, "no token at the configured path", status)
	}

	// Out unchanged. The header map is the client's; the body is whole, so
	// its length is known (the upstream's Content-Length, when it sent one,
	// is this very length).
	hdr := w.Header()
	if hdr.Get("Content-Length") == "" && hdr.Get("Trailer") == "" {
		hdr.Set("Content-Length", strconv.Itoa(buf.Len()))
	}
	w.WriteHeader(status)
	_, err = w.Write(buf.Bytes())
	if err != nil {
		h.logger.Debug("writing the login answer to the client", zap.Error(err))
	}
	return nil
}

// cappedRecorder stops buffering past max: it sends what was buffered and
// streams the rest, unchanged.
type cappedRecorder struct {
	caddyhttp.ResponseRecorder
	w       http.ResponseWriter // the client's
	max     int64
	spilled bool
}

func (c *cappedRecorder) Write(p []byte) (int, error) {
	if c.spilled {
		return c.w.Write(p)
	}
	c.ResponseRecorder.WriteHeader(http.StatusOK) // no-op once written, as in the recorder
	buf := c.Buffer()
	if !c.Buffered() || int64(buf.Len()+len(p)) <= c.max {
		return c.ResponseRecorder.Write(p)
	}
	c.spilled = true
	c.w.WriteHeader(c.Status())
	if _, err := c.w.Write(buf.Bytes()); err != nil {
		return 0, err
	}
	buf.Reset()
	return c.w.Write(p)
}

// FlushError flushes the client's writer once streaming; while buffering,
// the recorder suppresses flushes.
func (c *cappedRecorder) FlushError() error {
	if c.spilled {
		return http.NewResponseController(c.w).Flush()
	}
	return http.NewResponseController(c.ResponseRecorder).Flush()
}

// Unwrap lets http.ResponseController reach the recorder (Hijack etc.).
func (c *cappedRecorder) Unwrap() http.ResponseWriter { return c.ResponseRecorder }

// notBound notes a successful login answer that token_binding could not
// bind (the backend's answer and the configuration disagree): at DEBUG per
// request, and in a once-a-minute WARN summary by reason.
func (h *Handler) notBound(r *http.Request, reason string, status int) {
	if c := h.logger.Check(zap.DebugLevel, "login answer not bound to a token"); c != nil {
		c.Write(zap.String("path", r.URL.Path), zap.String("reason", reason), zap.Int("status", status))
	}
	h.unbound.note(reason, "login")
}
