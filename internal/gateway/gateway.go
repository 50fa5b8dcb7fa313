// Package gateway relays a backend's calls to a platform's server API with
// the app's shared token added: the open-API gateway. The backend never
// fetches a token, so no two services fight over one.
//
// What it knows of the platform is a platform.GatewaySpec: its upstreams
// ("kinds": origin, token carriers, error numbers, paths never relayed),
// each with its own token from a TokenSource (the handler's
// accesstoken.Manager). The HTTP wiring (prefix, host mode, listener
// checks) is the handler's (module/gateway.go).
//
// # Kinds
//
// A platform with one kind (WeChat) is called with the kind's API paths
// as they are ("/wxa/msg_sec_check"). A platform with several (Douyin:
// open.douyin.com and developer.toutiao.com) is called with the kind's
// name as the first path segment ("/open.douyin.com/api/apps/v1/censor/image/"),
// and its allow-list entries are written the same way; in host mode the
// request's Host names the kind (HostPath).
//
// # Allow-list
//
// Only paths on the allow-list are relayed; anything else is refused with
// 403. An entry is an exact API path ("/wxa/msg_sec_check") or a prefix
// ending in "/*" ("/cgi-bin/media/*": every path under /cgi-bin/media/). A
// request path is matched as sent (escaped form): it must be a clean
// absolute path without percent-escapes, dot segments or empty segments
// (one final "/" where the kind's paths end in one), else it matches
// nothing. The kind's never-relayed paths are refused whatever the
// allow-list says (an entry naming one is a configuration error, see
// CheckAllow; a prefix entry covering one does not let it through),
// compared without regard to case.
//
// # Token
//
// Each relayed call carries the kind's shared token in each of the kind's
// carriers: a query parameter, a request header, a member of the JSON
// object body. Every client-sent token query parameter
// (ClientTokenParams), token header (ClientTokenHeaders) and body member
// of the carrier's name (in any case) is removed first. The request keeps
// its method, other query parameters, body, Content-Type and Accept; no
// other request header is sent. A kind that carries the token in the body
// needs a JSON object body (or none) of at most Options.MaxBuffer bytes:
// anything else is refused (400, 413) without a platform call.
//
// # Token errors and retries
//
// Platforms answer errors with HTTP 200 and a JSON error number, often
// labelled text/plain, while some answers (media downloads, QR codes) are
// binary. An answer is inspected only when it is a 200 labelled JSON or
// text/plain (or not labelled) and at most SniffLimit bytes long; it is
// then passed on byte for byte. Anything else streams through untouched.
// The error number is the first of the kind's error fields present with a
// non-zero number.
//
// When the error number is one of that field's token errors, the token is
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

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/jsonobj"
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
	// Origin replaces every kind's Origin when set (api_base).
	Origin string
	// Allow is the allow-list (see CheckAllow).
	Allow []string
	// MaxBuffer: request bodies up to this size are buffered (retryable);
	// 0 means DefaultMaxBuffer.
	MaxBuffer int64
	// Tokens gives each kind's token, by the kind's Token ("" for the
	// platform's own). Every kind's must be there.
	Tokens map[string]TokenSource
	// Timeout bounds the wait for the platform's answer headers once the
	// request is sent (each attempt); 0: 30s.
	Timeout time.Duration
	// Transport, when set, replaces the gateway's own (tests).
	Transport http.RoundTripper
	// Logger; nil: none.
	Logger *zap.Logger
}

// kind is one upstream, provisioned.
type kind struct {
	spec   *platform.GatewayKind
	prefix string // "/" + Name when the platform has several kinds, else ""
	origin *url.URL
	tokens TokenSource
}

// Gateway relays calls. It is safe for concurrent use.
type Gateway struct {
	spec      *platform.GatewaySpec
	kinds     []*kind
	exact     map[string]bool
	prefixes  []string // "/x/" for an entry "/x/*"
	maxBuffer int64
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
	// Errcode is a bounded label: "0", one of the kind's token or rate
	// errors, "-1", or an Errcode* constant.
	Errcode string
	// Retried: a token error was answered and the call sent again.
	Retried bool
	// RetryRefused: the retry's token was refused too.
	RetryRefused bool
	// Refreshed: a token error made the gateway invalidate the token.
	Refreshed bool
	// Streamed: the request body was larger than MaxBuffer (never retried).
	Streamed bool
	// Err is the gateway's own failure, if any (no secrets).
	Err error
}

// multi: API paths start with the kind's name.
func multi(spec *platform.GatewaySpec) bool { return len(spec.Kinds) > 1 }

// kindOf splits a gateway path into its kind and the kind's API path
// ("/open.douyin.com/api/x" → open.douyin.com, "/api/x"). ok is false
// when it names no kind.
func kindOf(spec *platform.GatewaySpec, p string) (k *platform.GatewayKind, api string, ok bool) {
	if len(spec.Kinds) == 0 {
		return nil, "", false
	}
	if !multi(spec) {
		return &spec.Kinds[0], p, true
	}
	rest, found := strings.CutPrefix(p, "/")
	if !found {
		return nil, "", false
	}
	name, tail, _ := strings.Cut(rest, "/")
	for i := range spec.Kinds {
		if spec.Kinds[i].Name == name {
			return &spec.Kinds[i], "/" + tail, true
		}
	}
	return nil, "", false
}

// kindNames lists the kinds' names for messages.
func kindNames(spec *platform.GatewaySpec) string {
	n := make([]string, len(spec.Kinds))
	for i, k := range spec.Kinds {
		n[i] = "/" + k.Name + "/..."
	}
	return platform.OrList(n)
}

// plainPath: p holds only the characters API paths are made of (letters,
// digits, "_", "-", ".", "/"), and no segment ends in "." — nothing a
// platform's server might read differently from the allow-list and the
// never-relayed paths ("/cgi-bin/token;x", "/cgi-bin/token.", "%2F", "~").
func plainPath(p string) bool {
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '-', c == '/':
		case c == '.':
			if i+1 == len(p) || p[i+1] == '/' {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// clean: p is a clean absolute path (one final "/" allowed when
// trailingSlash).
func clean(p string, trailingSlash bool) bool {
	if trailingSlash && len(p) > 1 && strings.HasSuffix(p, "/") {
		p = p[:len(p)-1]
	}
	return p != "" && p[0] == '/' && path.Clean(p) == p
}

// CheckAllow checks an allow-list against spec: each entry an exact path
// or a "/*" prefix, clean, absolute, without escapes, naming a kind when
// the platform has several; none naming a path the kind never relays.
func CheckAllow(spec *platform.GatewaySpec, allow []string) error {
	if len(spec.Kinds) == 0 {
		return errors.New("the platform's gateway has no API")
	}
	if len(allow) == 0 {
		ex := "/wxa/msg_sec_check"
		if multi(spec) {
			ex = "/" + spec.Kinds[0].Name + "/api/..."
		}
		return fmt.Errorf("needs at least one API path (allow %s ...)", ex)
	}
	seen := map[string]bool{}
	for _, a := range allow {
		p := strings.TrimSuffix(a, "/*")
		switch {
		case a == "" || a[0] != '/':
			return fmt.Errorf("API path %q must start with /", a)
		case a == "/*" || a == "/":
			return fmt.Errorf("API path %q would allow every API: list the APIs the backend calls", a)
		}
		k, api, ok := kindOf(spec, p)
		if !ok {
			return fmt.Errorf("API path %q names no API host: start it with %s", a, kindNames(spec))
		}
		trailing := k.TrailingSlash && !strings.HasSuffix(a, "/*")
		switch {
		case api == "" || api == "/":
			return fmt.Errorf("API path %q would allow every API of %s: list the APIs the backend calls", a, k.Name)
		case !clean(api, trailing) || !clean(p, trailing):
			return fmt.Errorf("API path %q is not a clean path (want %q)", a, path.Clean(p))
		case !plainPath(p):
			return fmt.Errorf("API path %q must be a plain path (letters, digits, _ - . / only; no escapes, query, spaces or * but a final /*)", a)
		case seen[a]:
			return fmt.Errorf("API path %q is listed twice", a)
		}
		seen[a] = true
		if n, ok := never(k, api); ok && !strings.HasSuffix(a, "/*") {
			return fmt.Errorf("API path %q is never relayed: %s", a, n.Why)
		}
	}
	return nil
}

// never reports whether api (an API path of kind k) is one it never
// relays.
func never(k *platform.GatewayKind, api string) (platform.NeverPath, bool) {
	lp := strings.ToLower(api)
	for _, n := range k.Never {
		ln := strings.ToLower(strings.TrimSuffix(n.Path, "/"))
		if lp == ln || strings.HasPrefix(lp, ln+"/") {
			return n, true
		}
	}
	return platform.NeverPath{}, false
}

// New returns a gateway. The options must have passed CheckAllow.
func New(o Options) (*Gateway, error) {
	if o.Spec == nil {
		return nil, errors.New("gateway: no platform spec")
	}
	if err := CheckAllow(o.Spec, o.Allow); err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	g := &Gateway{
		spec:      o.Spec,
		exact:     map[string]bool{},
		maxBuffer: o.MaxBuffer,
		log:       o.Logger,
	}
	for i := range o.Spec.Kinds {
		ks := &o.Spec.Kinds[i]
		origin := o.Origin
		if origin == "" {
			origin = ks.Origin
		}
		u, err := url.Parse(origin)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("gateway: unusable API origin %q", origin)
		}
		ts := o.Tokens[ks.Token]
		if ts == nil {
			return nil, fmt.Errorf("gateway: no token source for %s", ks.Name)
		}
		k := &kind{spec: ks, origin: u, tokens: ts}
		if multi(o.Spec) {
			k.prefix = "/" + ks.Name
		}
		g.kinds = append(g.kinds, k)
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

// Hosts are the kinds' API hosts (host mode).
func (g *Gateway) Hosts() []string {
	var h []string
	for _, k := range g.kinds {
		if k.spec.Host != "" {
			h = append(h, k.spec.Host)
		}
	}
	return h
}

// HostPath turns the path of a host-mode request (Host host, path p as
// sent) into the gateway path Relay takes: p itself with one kind, the
// kind's name then p with several. ok is false when host is no kind's.
func (g *Gateway) HostPath(host, p string) (string, bool) {
	for _, k := range g.kinds {
		if k.spec.Host != "" && strings.EqualFold(host, k.spec.Host) {
			return k.prefix + p, true
		}
	}
	return "", false
}

// match tells the kind, its API path and the allow-list entry a gateway
// path (as sent: escaped form) matches, or ok false. A path that names no
// kind, is not clean, carries escapes or is never relayed matches nothing.
func (g *Gateway) match(p string) (k *kind, api, entry string, ok bool) {
	ks, api, found := kindOf(g.spec, p)
	if !found || !plainPath(p) || !clean(api, ks.TrailingSlash) || !clean(p, ks.TrailingSlash) {
		return nil, "", "", false
	}
	if _, n := never(ks, api); n {
		return nil, "", "", false
	}
	for _, kk := range g.kinds {
		if kk.spec == ks {
			k = kk
		}
	}
	if g.exact[p] {
		return k, api, p, true
	}
	for _, pre := range g.prefixes {
		if strings.HasPrefix(p, pre) && len(p) > len(pre) {
			return k, api, pre + "*", true
		}
	}
	return nil, "", "", false
}

// Match tells the allow-list entry a gateway path (as sent: escaped form)
// matches, or ok false.
func (g *Gateway) Match(p string) (entry string, ok bool) {
	_, _, entry, ok = g.match(p)
	return entry, ok
}

// Relay serves one backend request for the gateway path p (escaped form,
// as sent, without the gateway's prefix; see HostPath in host mode) and
// writes the answer to w.
func (g *Gateway) Relay(w http.ResponseWriter, r *http.Request, p string) Call {
	k, api, entry, ok := g.match(p)
	if !ok {
		c := Call{API: APIOther, Status: http.StatusForbidden, Errcode: ErrcodeForbidden}
		writeForbidden(w, g.spec, p)
		return c
	}
	c := Call{API: entry}
	ctx := r.Context()
	if _, err := url.ParseQuery(r.URL.RawQuery); err != nil {
		// Relayed, its unreadable pairs would be dropped silently (or
		// read otherwise by the platform).
		c.Err = mperr.Wrap(mperr.BadRequest, "the query string does not parse", err)
		return g.fail(w, c)
	}

	body, streamed, err := g.readBody(r)
	if err != nil {
		c.Err = mperr.Wrap(mperr.BadRequest, "could not read the request body", err)
		return g.fail(w, c)
	}
	c.Streamed = streamed != nil
	bodyField := k.spec.TokenBodyField
	if bodyField != "" {
		switch {
		case streamed != nil:
			c.Err = mperr.Newf(mperr.BodyTooLarge, "the request body is larger than the gateway's max_buffer (%d bytes): this API carries the token in its JSON body", g.maxBuffer)
			return g.fail(w, c)
		case body != nil && !jsonobj.IsObject(body):
			c.Err = mperr.Newf(mperr.BadRequest, "the request body must be a JSON object: this API carries the token in its %q member", bodyField)
			return g.fail(w, c)
		}
	}

	for attempt := 0; ; attempt++ {
		tok, err := k.tokens.Token(ctx)
		if err != nil {
			c.Err = tokenErr(err)
			return g.fail(w, c)
		}
		var rd io.Reader
		n := len(body)
		switch {
		case streamed != nil:
			rd = streamed
		case bodyField != "" && (body != nil || bodyMethod(r.Method)):
			b := withMember(body, bodyField, tok)
			rd, n = bytes.NewReader(b), len(b)
		case body != nil:
			rd = bytes.NewReader(body)
		}
		resp, err := g.send(ctx, k, r, api, tok, rd, n)
		if err != nil {
			c.Err = sendErr(ctx, err)
			return g.fail(w, c)
		}
		prefix, complete, errcode, field, found := g.sniff(k, resp)
		c.Errcode = label(k, resp.StatusCode, errcode, field, found)
		if found && field != nil && slices.Contains(field.Token, errcode) {
			c.Refreshed = true
			c.RetryRefused = attempt > 0
			if ierr := k.tokens.Invalidate(ctx, tok); ierr != nil {
				g.log.Warn("gateway: the token store could not be reached while invalidating a refused token", zap.Error(ierr))
			}
			if attempt == 0 && streamed == nil && ctx.Err() == nil {
				resp.Body.Close()
				c.Retried = true
				continue
			}
		}
		c.Status = resp.StatusCode
		g.write(w, resp, prefix, complete, tok)
		return c
	}
}

// bodyMethod: a method that sends a body (a body-carrier kind then sends
// one holding the token even when the backend sent none).
func bodyMethod(m string) bool {
	return m == http.MethodPost || m == http.MethodPut || m == http.MethodPatch
}

// withMember returns the JSON object body (nil: {}) with the member name
// set to value: first, every member whose key is name in any case (a
// platform decoding keys without regard to case would take the last)
// left out.
func withMember(body []byte, name, value string) []byte {
	out := make([]byte, 0, len(body)+len(name)+len(value)+8)
	out = append(out, '{')
	out = jsonobj.AppendString(out, name)
	out = append(out, ':')
	out = jsonobj.AppendString(out, value)
	if body != nil {
		it, _ := jsonobj.Object(body)
		for {
			key, val, ok := it.Next()
			if !ok {
				break
			}
			if jsonobj.EqualFold(key, name) {
				continue
			}
			out = append(out, ',')
			out = append(out, key...)
			out = append(out, ':')
			out = append(out, val...)
		}
	}
	return append(out, '}')
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
func (g *Gateway) send(ctx context.Context, k *kind, r *http.Request, api, tok string, body io.Reader, n int) (*http.Response, error) {
	ks := k.spec
	u := *k.origin
	u.Path = strings.TrimSuffix(u.Path, "/") + api
	u.RawPath = ""
	q, _ := url.ParseQuery(r.URL.RawQuery) // Relay refused one that does not parse
	for key := range q {
		lk := strings.ToLower(key)
		for _, c := range ks.ClientTokenParams {
			// Any spelling a server might read as the token parameter:
			// case, and suffixes ("access_token[]", "access_token ").
			if strings.HasPrefix(lk, strings.ToLower(c)) {
				q.Del(key)
			}
		}
	}
	if ks.TokenParam != "" {
		q.Set(ks.TokenParam, tok)
	}
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
		if slices.ContainsFunc(ks.ClientTokenHeaders, func(c string) bool { return strings.EqualFold(c, h) }) {
			continue
		}
		if v := r.Header.Values(h); len(v) > 0 {
			out.Header[h] = slices.Clone(v)
		}
	}
	if ks.TokenBodyField != "" && body != nil && out.Header.Get("Content-Type") == "" {
		out.Header.Set("Content-Type", "application/json")
	}
	if ks.TokenHeader != "" {
		out.Header.Set(ks.TokenHeader, tok)
	}
	out.Header.Set("User-Agent", "caddy-miniprogram-gateway")
	return g.client.Do(out)
}

// sniff reads an answer that may be a JSON error: a 200 labelled JSON or
// text/plain (or not labelled), up to SniffLimit bytes. It returns what it
// read (prefix), whether that is the whole body, and the error number and
// the field it was in (found: the answer is a JSON object; errcode 0 and
// no field when it has no error).
func (g *Gateway) sniff(k *kind, resp *http.Response) (prefix []byte, complete bool, errcode int, field *platform.ErrcodeField, found bool) {
	if resp.StatusCode != http.StatusOK || !jsonish(resp.Header.Get("Content-Type")) || resp.Header.Get("Content-Disposition") != "" {
		// An attachment (a media download) is the file, whatever its
		// label: never read as an error, so that content the backend
		// uploaded cannot pass for a token error and churn the token.
		return nil, false, 0, nil, false
	}
	if resp.ContentLength > SniffLimit {
		return nil, false, 0, nil, false
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, SniffLimit+1))
	if err != nil || len(b) > SniffLimit {
		return b, false, 0, nil, false
	}
	paths := make([]string, len(k.spec.Errcodes))
	for i, f := range k.spec.Errcodes {
		paths[i] = f.Path
	}
	n, at, found := Errcode(b, paths...)
	if at >= 0 {
		field = &k.spec.Errcodes[at]
	}
	return b, true, n, field, found
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

// Errcode reads the error number of a JSON object body: the first of
// paths (a member, or a dotted path into nested objects:
// "data.error_code") present with a non-zero number (a JSON number or a
// string of digits). at is that path's index, -1 when none has one (n is
// then 0). found is false for anything but a JSON object, and for an
// object whose only error fields present hold no number at all.
func Errcode(body []byte, paths ...string) (n, at int, found bool) {
	b := bytes.TrimSpace(body)
	if len(b) == 0 || b[0] != '{' {
		return 0, -1, false
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return 0, -1, false
	}
	numbers, others := 0, 0
	for i, p := range paths {
		raw, ok := lookup(m, p)
		if !ok {
			continue
		}
		v, ok := number(raw)
		if !ok {
			others++
			continue
		}
		numbers++
		if v != 0 {
			return v, i, true
		}
	}
	if others > 0 && numbers == 0 {
		return 0, -1, false
	}
	return 0, -1, true
}

// lookup finds a dotted path in a decoded object (null counts as absent).
func lookup(m map[string]json.RawMessage, p string) (json.RawMessage, bool) {
	for {
		name, rest, nested := strings.Cut(p, ".")
		raw, ok := m[name]
		if !ok || string(bytes.TrimSpace(raw)) == "null" {
			return nil, false
		}
		if !nested {
			return raw, true
		}
		var sub map[string]json.RawMessage
		if json.Unmarshal(raw, &sub) != nil || sub == nil {
			return nil, false
		}
		m, p = sub, rest
	}
}

// number reads a JSON number or a string of digits as an int.
func number(raw json.RawMessage) (int, bool) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		raw = json.RawMessage(strings.TrimSpace(s))
	}
	v, err := strconv.Atoi(string(raw))
	return v, err == nil
}

// label is the bounded errcode label of an answer.
func label(k *kind, status, errcode int, field *platform.ErrcodeField, found bool) string {
	switch {
	case status != http.StatusOK:
		return ErrcodeHTTP
	case !found:
		return ErrcodeNone
	case errcode == 0:
		return "0"
	case errcode == -1, field != nil && (slices.Contains(field.Token, errcode) || slices.Contains(field.Rate, errcode)):
		return strconv.Itoa(errcode)
	}
	return ErrcodeOther
}

// hopHeaders are not relayed back.
var hopHeaders = []string{"Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Connection", "Te", "Trailer", "Transfer-Encoding", "Upgrade", "Content-Length", "Set-Cookie"}

// write relays the answer: headers, status, the sniffed prefix, the rest.
// The token the call carried is never relayed: header values and a sniffed
// (whole, JSON or text) body that quote it (a redirect's Location, an
// error page echoing the URL) get "[token]" instead. Binary and larger
// bodies are relayed as they are.
func (g *Gateway) write(w http.ResponseWriter, resp *http.Response, prefix []byte, complete bool, tok string) {
	defer resp.Body.Close()
	hdr := w.Header()
	var named []string // headers the answer's Connection names: hop-by-hop too
	for _, v := range resp.Header.Values("Connection") {
		for _, f := range strings.Split(v, ",") {
			if f = strings.TrimSpace(f); f != "" {
				named = append(named, http.CanonicalHeaderKey(f))
			}
		}
	}
	for k, v := range resp.Header {
		ck := http.CanonicalHeaderKey(k)
		if slices.Contains(hopHeaders, ck) || slices.Contains(named, ck) {
			continue
		}
		vs := slices.Clone(v)
		for i := range vs {
			vs[i] = redact(vs[i], tok)
		}
		hdr[k] = vs
	}
	if complete {
		prefix = redactBytes(prefix, tok)
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

// redact replaces tok, raw or URL-escaped, in s.
func redact(s, tok string) string {
	if tok == "" {
		return s
	}
	s = strings.ReplaceAll(s, tok, "[token]")
	if e := url.QueryEscape(tok); e != tok {
		s = strings.ReplaceAll(s, e, "[token]")
	}
	return s
}

func redactBytes(b []byte, tok string) []byte {
	if tok == "" || !bytes.Contains(b, []byte(tok)) && !bytes.Contains(b, []byte(url.QueryEscape(tok))) {
		return b
	}
	return []byte(redact(string(b), tok))
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
func writeForbidden(w http.ResponseWriter, spec *platform.GatewaySpec, p string) {
	msg := "this API is not on the gateway's allow-list"
	if k, api, ok := kindOf(spec, p); !ok && multi(spec) {
		msg = "this path names no API host of the gateway's: start it with " + kindNames(spec)
	} else if n, ok := never(k, api); ok {
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
