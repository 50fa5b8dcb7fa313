// Package gateway relays a backend's calls to a platform's server API with
// the app's shared token added: the open-API gateway. The backend never
// fetches a token, so no two services fight over one.
//
// What it knows of the platform is a platform.GatewaySpec (origin, token
// parameter, token-error and rate-limit error numbers, paths never
// relayed); the token comes from a TokenSource (the handler's
// accesstoken.Manager). The HTTP wiring (prefix, host mode, listener
// checks) is the handler's (module/gateway.go).
//
// # Allow-list
//
// Only paths on the allow-list are relayed; anything else is refused with
// 403. An entry is an exact API path ("/wxa/msg_sec_check") or a prefix
// ending in "/*" ("/cgi-bin/media/*": every path under /cgi-bin/media/). A
// request path is matched as sent (escaped form): it must be a clean
// absolute path without percent-escapes, dot segments or empty segments,
// else it matches nothing. The spec's never-relayed paths are refused
// whatever the allow-list says (an entry naming one is a configuration
// error, see CheckAllow; a prefix entry covering one does not let it
// through), compared without regard to case.
//
// # Token
//
// Each relayed call carries the shared token in the spec's token
// parameter; every client-sent token parameter (ClientTokenParams) is
// removed first. The request keeps its method, other query parameters,
// body, Content-Type and Accept; no other request header is sent.
//
// # Token errors and retries
//
// Platforms answer errors with HTTP 200 and a JSON error number, often
// labelled text/plain, while some answers (media downloads) are binary. An
// answer is inspected only when it is a 200 labelled JSON or text/plain (or
// not labelled) and at most SniffLimit bytes long; it is then passed on
// byte for byte. Anything else streams through untouched.
//
// When the error number is one of the spec's token errors, the token is
// invalidated (TokenSource.Invalidate: across instances, through the
// store) and, when the request body can be sent again, the call is retried
// exactly once with the next token; a second token error is passed on.
// Request bodies up to Options.MaxBuffer bytes are buffered and can be
// sent again; larger ones stream to the platform and their call is never
// retried (the token is still invalidated, so the backend's own retry gets
// a fresh one). Rate-limit errors (and every other error) pass through,
// never retried.
//
// # Secrets
//
// Tokens never appear in a log line, an error or an answer header: the
// platform's answer is relayed, the request URL sent is never logged.
package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/mperr"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/platform"
)

// TokenSource gives the shared token (accesstoken.Manager implements it).
type TokenSource interface {
	// Token returns a valid token.
	Token(ctx context.Context) (string, error)
	// Invalidate records that the platform refused bad; the next Token
	// returns another one.
	Invalidate(ctx context.Context, bad string) error
}

// Defaults and limits.
const (
	DefaultMaxBuffer = 1 << 20  // 1 MiB
	MaxMaxBuffer     = 64 << 20 // 64 MiB
	// SniffLimit bounds the answers inspected for an error number; larger
	// ones stream through uninspected.
	SniffLimit = 256 << 10
)

// Errcode labels of Call.Errcode besides the spec's own numbers, "0" and
// "-1" (all bounded).
const (
	ErrcodeNone      = "none"          // not inspected: binary, too large, or not JSON
	ErrcodeOther     = "other"         // a non-zero error number of no other label
	ErrcodeHTTP      = "http_error"    // the platform answered an HTTP status other than 200
	ErrcodeForbidden = "forbidden"     // refused by the allow-list (never relayed)
	ErrcodeGateway   = "gateway_error" // no token, or the platform could not be reached
)

// APIOther is the API label of a refused request (bounded: the allow-list
// entries and this).
const APIOther = "(refused)"

// Options configure a Gateway.
type Options struct {
	// Spec is the platform's API description.
	Spec *platform.GatewaySpec
	// Origin replaces Spec.Origin when set (api_base).
	Origin string
	// Allow is the allow-list (see CheckAllow).
	Allow []string
	// MaxBuffer: request bodies up to this size are buffered (retryable);
	// 0 means DefaultMaxBuffer.
	MaxBuffer int64
	// Tokens gives the token.
	Tokens TokenSource
	// Timeout bounds the wait for the platform's answer headers once the
	// request is sent (each attempt); 0: 30s.
	Timeout time.Duration
	// Transport, when set, replaces the gateway's own (tests).
	Transport http.RoundTripper
	// Logger; nil: none.
	Logger *zap.Logger
}

// Gateway relays calls. It is safe for concurrent use.
type Gateway struct {
	spec      *platform.GatewaySpec
	origin    *url.URL
	exact     map[string]bool
	prefixes  []string // "/x/" for an entry "/x/*"
	maxBuffer int64
	tokens    TokenSource
	client    *http.Client
	log       *zap.Logger
}

// Call is what one relayed (or refused) request came to, for metrics and
// the log line. It holds no token.
type Call struct {
	// API is the allow-list entry it matched, or APIOther.
	API string
	// Status is the HTTP status answered.
	Status int
	// Errcode is a bounded label: "0", one of the spec's token or rate
	// errors, "-1", or an Errcode* constant.
	Errcode string
	// Retried: a token error was answered and the call sent again.
	Retried bool
	// Refreshed: a token error made the gateway invalidate the token.
	Refreshed bool
	// Streamed: the request body was larger than MaxBuffer (never retried).
	Streamed bool
	// Err is the gateway's own failure, if any (no secrets).
	Err error
}

// CheckAllow checks an allow-list against spec: each entry an exact path
// or a "/*" prefix, clean, absolute, without escapes; none naming a path
// the platform's gateway never relays.
func CheckAllow(spec *platform.GatewaySpec, allow []string) error {
	if len(allow) == 0 {
		return errors.New("needs at least one API path (allow /wxa/msg_sec_check ...)")
	}
	seen := map[string]bool{}
	for _, a := range allow {
		p := strings.TrimSuffix(a, "/*")
		switch {
		case a == "" || a[0] != '/':
			return fmt.Errorf("API path %q must start with /", a)
		case a == "/*" || a == "/":
			return fmt.Errorf("API path %q would allow every API: list the APIs the backend calls", a)
		case strings.ContainsAny(p, "%?#*\\ "):
			return fmt.Errorf("API path %q must be a plain path (no escapes, query, spaces or * but a final /*)", a)
		case path.Clean(p) != p:
			return fmt.Errorf("API path %q is not a clean path (want %q)", a, path.Clean(p))
		case seen[a]:
			return fmt.Errorf("API path %q is listed twice", a)
		}
		seen[a] = true
		if n, ok := never(spec, p); ok && !strings.HasSuffix(a, "/*") {
			return fmt.Errorf("API path %q is never relayed: %s", a, n.Why)
		}
	}
	return nil
}

// never reports whether p (an API path) is one the spec never relays.
func never(spec *platform.GatewaySpec, p string) (platform.NeverPath, bool) {
	for _, n := range spec.Never {
		if strings.EqualFold(p, n.Path) || strings.HasPrefix(strings.ToLower(p), strings.ToLower(n.Path)+"/") {
			return n, true
		}
	}
	return platform.NeverPath{}, false
}

// New returns a gateway. The options must have passed CheckAllow.
func New(o Options) (*Gateway, error) {
	if o.Spec == nil || o.Tokens == nil {
		return nil, errors.New("gateway: no platform spec or token source")
	}
	if err := CheckAllow(o.Spec, o.Allow); err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	origin := o.Origin
	if origin == "" {
		origin = o.Spec.Origin
	}
	u, err := url.Parse(origin)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("gateway: unusable API origin %q", origin)
	}
	g := &Gateway{
		spec:      o.Spec,
		origin:    u,
		exact:     map[string]bool{},
		maxBuffer: o.MaxBuffer,
		tokens:    o.Tokens,
		log:       o.Logger,
	}
	if g.maxBuffer <= 0 {
		g.maxBuffer = DefaultMaxBuffer
	}
	if g.log == nil {
		g.log = zap.NewNop()
	}
	for _, a := range o.Allow {
		if p, ok := strings.CutSuffix(a, "/*"); ok {
			g.prefixes = append(g.prefixes, p+"/")
		} else {
			g.exact[a] = true
		}
	}
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	rt := o.Transport
	if rt == nil {
		rt = &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSHandshakeTimeout:   10 * time.Second,
			ResponseHeaderTimeout: timeout,
			MaxIdleConnsPerHost:   16,
			IdleConnTimeout:       90 * time.Second,
			ForceAttemptHTTP2:     true,
		}
	}
	g.client = &http.Client{
		Transport: rt,
		// A redirect is the platform's answer, relayed as it is.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return g, nil
}

// Close releases idle connections.
func (g *Gateway) Close() { g.client.CloseIdleConnections() }

// Match tells the allow-list entry an API path (as sent: escaped form)
// matches, or ok false. A path that is not clean, carries escapes or is
// never relayed matches nothing.
func (g *Gateway) Match(p string) (entry string, ok bool) {
	if p == "" || p[0] != '/' || strings.ContainsAny(p, "%\\") || path.Clean(p) != p {
		return "", false
	}
	if _, n := never(g.spec, p); n {
		return "", false
	}
	if g.exact[p] {
		return p, true
	}
	for _, pre := range g.prefixes {
		if strings.HasPrefix(p, pre) && len(p) > len(pre) {
			return pre + "*", true
		}
	}
	return "", false
}

// Relay serves one backend request for the API path p (escaped form, as
// sent, without the gateway's prefix) and writes the answer to w.
func (g *Gateway) Relay(w http.ResponseWriter, r *http.Request, p string) Call {
	api, ok := g.Match(p)
	if !ok {
		c := Call{API: APIOther, Status: http.StatusForbidden, Errcode: ErrcodeForbidden}
		writeForbidden(w, p, g.spec)
		return c
	}
	c := Call{API: api}
	ctx := r.Context()

	body, streamed, err := g.readBody(r)
	if err != nil {
		c.Err = mperr.Wrap(mperr.BadRequest, "could not read the request body", err)
		return g.fail(w, c)
	}
	c.Streamed = streamed != nil

	for attempt := 0; ; attempt++ {
		tok, err := g.tokens.Token(ctx)
		if err != nil {
			c.Err = tokenErr(err)
			return g.fail(w, c)
		}
		var rd io.Reader
		switch {
		case streamed != nil:
			rd = streamed
		case body != nil:
			rd = bytes.NewReader(body)
		}
		resp, err := g.send(ctx, r, p, tok, rd, len(body))
		if err != nil {
			c.Err = sendErr(ctx, err)
			return g.fail(w, c)
		}
		prefix, complete, errcode, found := g.sniff(resp)
		c.Errcode = g.label(resp.StatusCode, errcode, found)
		if found && slices.Contains(g.spec.TokenErrcodes, errcode) {
			c.Refreshed = true
			if ierr := g.tokens.Invalidate(ctx, tok); ierr != nil {
				g.log.Warn("gateway: the token store could not be reached while invalidating a refused token", zap.Error(ierr))
			}
			if attempt == 0 && streamed == nil && ctx.Err() == nil {
				resp.Body.Close()
				c.Retried = true
				continue
			}
		}
		c.Status = resp.StatusCode
		g.write(w, resp, prefix, complete)
		return c
	}
}

// readBody buffers a body of at most maxBuffer bytes (body, nil), or
// returns a reader streaming the whole body (nil, reader) when it is
// larger. No body: (nil, nil).
func (g *Gateway) readBody(r *http.Request) ([]byte, io.Reader, error) {
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		return nil, nil, nil
	}
	if r.ContentLength > g.maxBuffer {
		return nil, r.Body, nil
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, g.maxBuffer+1))
	if err != nil {
		return nil, nil, err
	}
	if int64(len(b)) > g.maxBuffer {
		// Unknown length (chunked): what was read, then the rest.
		return nil, io.MultiReader(bytes.NewReader(b), r.Body), nil
	}
	if len(b) == 0 {
		return nil, nil, nil
	}
	return b, nil, nil
}

// send makes one call to the platform. n is the buffered body's length
// (a streamed body keeps the request's own ContentLength).
func (g *Gateway) send(ctx context.Context, r *http.Request, p, tok string, body io.Reader, n int) (*http.Response, error) {
	u := *g.origin
	u.Path = strings.TrimSuffix(u.Path, "/") + p
	u.RawPath = ""
	q, _ := url.ParseQuery(r.URL.RawQuery)
	for k := range q {
		for _, c := range g.spec.ClientTokenParams {
			if strings.EqualFold(k, c) {
				q.Del(k)
			}
		}
	}
	q.Set(g.spec.TokenParam, tok)
	u.RawQuery = q.Encode()
	out, err := http.NewRequestWithContext(ctx, r.Method, u.String(), body)
	if err != nil {
		return nil, err
	}
	switch {
	case body == nil:
		out.ContentLength = 0
	case n > 0:
		out.ContentLength = int64(n)
	default:
		out.ContentLength = r.ContentLength
	}
	for _, h := range []string{"Content-Type", "Accept"} {
		if v := r.Header.Values(h); len(v) > 0 {
			out.Header[h] = slices.Clone(v)
		}
	}
	out.Header.Set("User-Agent", "caddy-miniprogram-gateway")
	return g.client.Do(out)
}

// sniff reads an answer that may be a JSON error: a 200 labelled JSON or
// text/plain (or not labelled), up to SniffLimit bytes. It returns what it
// read (prefix), whether that is the whole body, and the error number
// (found: the answer is a JSON object; errcode 0 when it has none).
func (g *Gateway) sniff(resp *http.Response) (prefix []byte, complete bool, errcode int, found bool) {
	if resp.StatusCode != http.StatusOK || !jsonish(resp.Header.Get("Content-Type")) {
		return nil, false, 0, false
	}
	if resp.ContentLength > SniffLimit {
		return nil, false, 0, false
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, SniffLimit+1))
	if err != nil || len(b) > SniffLimit {
		return b, false, 0, false
	}
	n, found := Errcode(b, g.spec.ErrcodeField)
	return b, true, n, found
}

// jsonish: a Content-Type an error answer may come in.
func jsonish(ct string) bool {
	if ct == "" {
		return true
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	return mt == "application/json" || mt == "text/plain" || strings.HasSuffix(mt, "+json")
}

// Errcode reads the error number of a JSON object body: field as a JSON
// number or a string of digits. found is false for anything else
// (binary, not an object, no such field).
func Errcode(body []byte, field string) (n int, found bool) {
	b := bytes.TrimSpace(body)
	if len(b) == 0 || b[0] != '{' {
		return 0, false
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return 0, false
	}
	raw, ok := m[field]
	if !ok {
		return 0, true
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		raw = json.RawMessage(strings.TrimSpace(s))
	}
	v, err := strconv.Atoi(string(raw))
	if err != nil {
		return 0, false
	}
	return v, true
}

// label is the bounded errcode label of an answer.
func (g *Gateway) label(status, errcode int, found bool) string {
	switch {
	case status != http.StatusOK:
		return ErrcodeHTTP
	case !found:
		return ErrcodeNone
	case errcode == 0:
		return "0"
	case errcode == -1, slices.Contains(g.spec.TokenErrcodes, errcode), slices.Contains(g.spec.RateErrcodes, errcode):
		return strconv.Itoa(errcode)
	}
	return ErrcodeOther
}

// hopHeaders are not relayed back.
var hopHeaders = []string{"Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Connection", "Te", "Trailer", "Transfer-Encoding", "Upgrade", "Content-Length", "Set-Cookie"}

// write relays the answer: headers, status, the sniffed prefix, the rest.
func (g *Gateway) write(w http.ResponseWriter, resp *http.Response, prefix []byte, complete bool) {
	defer resp.Body.Close()
	hdr := w.Header()
	for k, v := range resp.Header {
		if !slices.Contains(hopHeaders, http.CanonicalHeaderKey(k)) {
			hdr[k] = slices.Clone(v)
		}
	}
	switch {
	case complete:
		hdr.Set("Content-Length", strconv.Itoa(len(prefix)))
	case resp.ContentLength >= 0:
		hdr.Set("Content-Length", strconv.FormatInt(resp.ContentLength, 10))
	}
	w.WriteHeader(resp.StatusCode)
	if _, err := w.Write(prefix); err != nil || complete {
		return
	}
	if _, err := io.Copy(w, resp.Body); err != nil {
		g.log.Debug("gateway: the answer could not be relayed whole", zap.Error(err))
	}
}

// fail answers the gateway's own failure (README error format).
func (g *Gateway) fail(w http.ResponseWriter, c Call) Call {
	e := mperr.From(c.Err)
	c.Status = e.Status()
	c.Errcode = ErrcodeGateway
	mperr.Write(w, e)
	return c
}

func tokenErr(err error) error {
	if e, ok := mperr.As(err); ok {
		return e
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return mperr.Wrap(mperr.PlatformTimeout, "timed out obtaining the access token", err)
	}
	return mperr.Wrap(mperr.PlatformError, "could not obtain an access token", err)
}

func sendErr(ctx context.Context, err error) error {
	// The URL (and so the token) is in a *url.Error: keep only its cause.
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) {
		return mperr.Wrap(mperr.PlatformTimeout, "the platform did not answer in time", err)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return mperr.Wrap(mperr.PlatformTimeout, "the platform did not answer in time", err)
	}
	return mperr.Wrap(mperr.PlatformError, "the platform could not be reached", err)
}

// writeForbidden answers a path off the allow-list (or never relayed).
func writeForbidden(w http.ResponseWriter, p string, spec *platform.GatewaySpec) {
	msg := "this API is not on the gateway's allow-list"
	if n, ok := never(spec, p); ok {
		msg = "this API is never relayed: " + n.Why
	}
	b, _ := json.Marshal(map[string]string{"error": "forbidden", "message": msg})
	b = append(b, '\n')
	hdr := w.Header()
	hdr.Set("Content-Type", "application/json; charset=utf-8")
	hdr.Set("Content-Length", strconv.Itoa(len(b)))
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusForbidden)
	_, _ = w.Write(b)
}
