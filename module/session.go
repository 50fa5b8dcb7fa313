package module

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/mperr"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/routepath"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/store"
)

// Sessions the handler issues itself, for backends without a login token
// of their own (as WeChat CloudRun backends have none).
//
// On a successful login the handler makes a random opaque token, stores
// only its hash pointing at the user (store.Bind, for ttl) and hands the
// token to the front end in the login answer: a response header (default
// X-Mp-Session) and/or a cookie, set on the answer before the upstream's
// own headers are added to it. Later requests carry the token back the same
// way; it gives the session's identity on every path (like a bound token,
// see identity.go) and finds the session on the phone and decrypt routes.
// By default later requests send it as "Authorization: Bearer <token>",
// which Caddy's access log redacts (a session token is a credential: no log
// line may show it); request header sends it back in the answer's header
// instead (Caddy logs that header unless the site's log filters it). The
// token is read before the trust boundary strips the client's X-Mp-*
// headers, and is stripped too: the backend never sees the token. A bearer
// token that is not one the handler issues (the backend's own) is left
// alone.
//
// Lifetime: a session lives ttl after its last extension; a request
// extends it (store.Touch) when it was last extended refresh_every ago or
// more, so a busy session costs one store write per refresh_every, not one
// per request. No session lives past max_age after its login: the last
// extension stops there and an older token finds nothing.
//
// JSON, e.g.:
//
//	"session": {"header": "X-Mp-Session", "ttl": "2h", "max_age": "720h", "refresh_every": "5m"}
type SessionConfig struct {
	// Header is the header that carries the token in the login answer.
	// Default X-Mp-Session, unless only Cookie is set.
	Header string `json:"header,omitempty"`
	// Request is where later requests carry the token: "bearer"
	// (default with a header: Authorization: Bearer <token>, redacted in
	// Caddy's access log), "header" (the same header as the answer: Caddy
	// logs it unless the site's log filters it), or "cookie" (the cookie,
	// the default when only Cookie is set).
	Request string `json:"request,omitempty"`
	// Cookie is the name of a cookie that carries the token (Set-Cookie
	// in the login answer: Path=/, HttpOnly, Secure, SameSite=Lax,
	// Max-Age=max_age). With Header set too, both are given and either
	// is accepted.
	Cookie string `json:"cookie,omitempty"`
	// TTL is how long a session lives without requests (default
	// session_ttl; 1s to 720h).
	TTL caddy.Duration `json:"ttl,omitempty"`
	// MaxAge is the longest a session lives after its login, however
	// active (default 720h; 1s to 8760h; at least ttl). max_age equal to
	// ttl is a fixed lifetime.
	MaxAge caddy.Duration `json:"max_age,omitempty"`
	// RefreshEvery is how often at most an active session is extended
	// (one store write each time); default ttl/10; less than ttl.
	RefreshEvery caddy.Duration `json:"refresh_every,omitempty"`
}

// Session defaults.
const (
	DefaultSessionHeader = "X-Mp-Session"
	DefaultSessionMaxAge = caddy.Duration(720 * time.Hour)
)

// Session token carriers in requests.
const (
	SessionRequestBearer = "bearer"
	SessionRequestHeader = "header"
	SessionRequestCookie = "cookie"
)

// issuedSessions is the provisioned session configuration.
type issuedSessions struct {
	header  string // canonical; "" for none
	bearer  bool   // requests carry it as Authorization: Bearer
	reqHdr  bool   // requests carry it in header
	cookie  string // "" for none
	ttl     time.Duration
	maxAge  time.Duration
	refresh time.Duration
	now     func() time.Time
	// tag is the app's name in a handler of several apps: its tokens
	// end in "." and it (see newSessionToken); "" alone.
	tag string
}

// sessionDurations are a configuration's effective ttl, max_age and
// refresh_every, defaults applied (sessionTTL: the handler's session_ttl,
// 0 for its default).
func (c *SessionConfig) durations(sessionTTL caddy.Duration) (ttl, maxAge, refresh time.Duration) {
	ttl = time.Duration(c.TTL)
	if ttl == 0 {
		ttl = time.Duration(sessionTTL)
		if ttl == 0 {
			ttl = time.Duration(DefaultSessionTTL)
		}
	}
	maxAge = time.Duration(c.MaxAge)
	if maxAge == 0 {
		maxAge = max(time.Duration(DefaultSessionMaxAge), ttl)
	}
	refresh = time.Duration(c.RefreshEvery)
	if refresh == 0 {
		refresh = ttl / 10
	}
	return ttl, maxAge, refresh
}

// requestCarrier is where requests carry the token, the default applied:
// bearer when the answer has a header, else the cookie.
func (c *SessionConfig) requestCarrier() string {
	if c.Request != "" {
		return c.Request
	}
	if header, _ := c.carriers(); header != "" {
		return SessionRequestBearer
	}
	return SessionRequestCookie
}

// carriers are the configuration's header (canonical) and cookie, the
// default header applied.
func (c *SessionConfig) carriers() (header, cookie string) {
	header, cookie = c.Header, c.Cookie
	if header == "" && cookie == "" {
		header = DefaultSessionHeader
	}
	if header != "" {
		header = http.CanonicalHeaderKey(header)
	}
	return header, cookie
}

func (h *Handler) provisionSessions() {
	c := h.Session
	if c == nil {
		return
	}
	s := &issuedSessions{now: time.Now, tag: h.appName}
	s.header, s.cookie = c.carriers()
	switch c.requestCarrier() {
	case SessionRequestBearer:
		s.bearer = true
	case SessionRequestHeader:
		s.reqHdr = true
	}
	s.ttl, s.maxAge, s.refresh = c.durations(h.SessionTTL)
	h.sessions = s
	h.logger.Debug("issued sessions", zap.String("header", s.header), zap.String("cookie", s.cookie),
		zap.Duration("ttl", s.ttl), zap.Duration("max_age", s.maxAge), zap.Duration("refresh_every", s.refresh))
}

// A token is "mps1." and base64url (no padding) of its issue time (Unix
// ms, 8 bytes, big endian) and 32 random bytes. The store knows it only by
// its hash, so a token whose time was changed finds nothing: the issue
// time needs no signature, and max_age needs no store read. The prefix
// tells it from a backend's own bearer token without a store read. In a
// handler of several apps the token ends in "." and its app's name (the
// tag), which tells the request's app before any store read; the tag is
// part of what is hashed, and each app's store (platform and app id in
// every key) knows only its own tokens, so a token whose tag was changed
// finds nothing either.
const (
	sessionTokenPrefix = "mps1."
	sessionRandomBytes = 32
	sessionTokenBytes  = 8 + sessionRandomBytes
)

var sessionTokenLen = len(sessionTokenPrefix) + base64.RawURLEncoding.EncodedLen(sessionTokenBytes)

// newSessionToken makes a token issued at now, tagged with tag (an app's
// name; "" for none).
func newSessionToken(now time.Time, tag string) (string, error) {
	var b [sessionTokenBytes]byte
	binary.BigEndian.PutUint64(b[:8], uint64(now.UnixMilli()))
	if _, err := rand.Read(b[8:]); err != nil {
		return "", err
	}
	t := sessionTokenPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	if tag != "" {
		t += "." + tag
	}
	return t, nil
}

// sessionTokenTag is the app tag of a token ("" for an untagged one, or
// one that is not a session token).
func sessionTokenTag(token string) string {
	if len(token) <= sessionTokenLen+1 || !strings.HasPrefix(token, sessionTokenPrefix) || token[sessionTokenLen] != '.' {
		return ""
	}
	return token[sessionTokenLen+1:]
}

// sessionIssuedAt is a token's issue time; ok is false when the token is
// not one the handler makes (no store read is needed to refuse it). A
// tagged token must carry tag; an untagged one is accepted with any tag
// (issued before the handler served several apps: its store ref, scoped
// by platform and app id, finds it only in the app that issued it).
func sessionIssuedAt(token, tag string) (time.Time, bool) {
	if t := sessionTokenTag(token); t != "" {
		if t != tag {
			return time.Time{}, false
		}
		token = token[:sessionTokenLen]
	}
	if len(token) != sessionTokenLen || !strings.HasPrefix(token, sessionTokenPrefix) {
		return time.Time{}, false
	}
	var b [sessionTokenBytes]byte
	if n, err := base64.RawURLEncoding.Decode(b[:], []byte(token[len(sessionTokenPrefix):])); err != nil || n != sessionTokenBytes {
		return time.Time{}, false
	}
	return time.UnixMilli(int64(binary.BigEndian.Uint64(b[:8]))), true
}

// sessionRef is the store reference of an issued token: a hash.
func (h *Handler) sessionRef(token string) string { return h.ref('s', token) }

// take returns the session token r carries (header first, then cookie),
// and removes every carrier of it from r, so the upstream never sees it.
// It runs before the trust boundary strips X-Mp-* headers.
func (s *issuedSessions) take(r *http.Request) string {
	var token string
	if s.bearer {
		if v := strings.TrimSpace(r.Header.Get("Authorization")); len(v) > 7 && strings.EqualFold(v[:7], "bearer ") {
			if t := strings.TrimSpace(v[7:]); strings.HasPrefix(t, sessionTokenPrefix) {
				token = t
				r.Header.Del("Authorization")
			}
		}
	}
	if s.header != "" {
		if s.reqHdr && token == "" {
			token = cleanToken(r.Header.Get(s.header))
		}
		// The answer's header sent back is the handler's too: never the
		// backend's (X-Mp-Session is also stripped as X-Mp-*).
		want := strings.ToLower(s.header)
		for k := range r.Header {
			if headerNameIs(k, want) {
				delete(r.Header, k)
			}
		}
	}
	if s.cookie != "" {
		if token == "" {
			if c, err := r.Cookie(s.cookie); err == nil {
				token = cleanToken(c.Value)
			}
		}
		stripCookies(r.Header, []string{s.cookie})
	}
	return token
}

// issuedTokenKey is the request context key of the session token ServeHTTP
// took off a request on one of the routes (for boundSession).
type issuedTokenKey struct{}

// issuedToken is the session token ServeHTTP took off r, or "".
func issuedToken(r *http.Request) string {
	v, _ := r.Context().Value(issuedTokenKey{}).(string)
	return v
}

// issueSession makes the session of a successful login and hands its token
// to the front end in the answer's headers (set before the upstream writes
// its own, which reverse_proxy adds to them). A failure is logged (without
// the token) and leaves the answer without a token; the login itself goes
// on. It reports whether the answer carries a token.
func (h *Handler) issueSession(w http.ResponseWriter, r *http.Request, s store.Session) bool {
	ss := h.sessions
	now := ss.now()
	token, err := newSessionToken(now, ss.tag)
	if err != nil {
		h.logger.Error("could not make a session token", zap.Error(err))
		return false
	}
	ref := h.sessionRef(token)
	// Detached from the client, as a bind: the answer promises the token.
	ctx := context.WithoutCancel(r.Context())
	err = h.store.Bind(ctx, ref, s.OpenID, ss.ttl)
	if err == nil && ss.ttl > time.Duration(h.SessionTTL) {
		// The user's record lives session_ttl from this login: make it
		// live as long as the session, or the session's ref would dangle.
		err = h.store.Touch(ctx, ref, s.OpenID, ss.ttl)
	}
	if err != nil {
		h.logger.Warn("could not store the session of a login; its answer carries no session token",
			zap.String("path", r.URL.Path), zap.String("openid", s.OpenID), zap.Error(err))
		return false
	}
	hdr := w.Header()
	if ss.header != "" {
		hdr.Set(ss.header, token)
	}
	if ss.cookie != "" {
		hdr.Add("Set-Cookie", (&http.Cookie{Name: ss.cookie, Value: token, Path: "/", MaxAge: int(ss.maxAge / time.Second),
			HttpOnly: true, Secure: true, SameSite: http.SameSiteLaxMode}).String())
	}
	h.logger.Debug("session issued", zap.String("openid", s.OpenID))
	return true
}

// hideHeader removes the session header from the answer's header map once
// the answer has been written (a header map changed after WriteHeader no
// longer reaches the client), so that Caddy's access log, which logs the
// response headers from that map, does not show the token. (The cookie is
// redacted there by Caddy itself.)
func (s *issuedSessions) hideHeader(w http.ResponseWriter) {
	if s.header != "" {
		w.Header().Del(s.header)
	}
}

// endCookie deletes the session cookie in the answer (after a logout).
func (s *issuedSessions) endCookie(w http.ResponseWriter) {
	if s.cookie != "" {
		w.Header().Add("Set-Cookie", (&http.Cookie{Name: s.cookie, Value: "", Path: "/", MaxAge: -1,
			HttpOnly: true, Secure: true, SameSite: http.SameSiteLaxMode}).String())
	}
}

// tokenKind tells which token found a request's session.
type tokenKind uint8

const (
	tokenNone   tokenKind = iota // the request carries none
	tokenIssued                  // a session token the handler issued
	tokenBound                   // the upstream's token, bound at login
)

// tokenSession finds the session of the token r carries: the session token
// the handler issued (issued, taken off the request by ServeHTTP) when it
// carries one, else, when bound is true, the upstream's bound token. It
// returns the session's store ref and which kind of token found it; err is
// store.ErrNotFound for an unknown, expired or too old token, or a store
// error. An issued session due for extension is extended (see extend).
//
// With identityOnly (a request off the handler's routes, which needs only
// openid, unionid and identity fields), the identity cache (identity_cache) answers first;
// the session it returns then holds nothing else.
func (h *Handler) tokenSession(ctx context.Context, r *http.Request, issued string, bound, identityOnly bool) (s store.Session, ref string, kind tokenKind, err error) {
	cache := h.idCache
	if !identityOnly {
		cache = nil
	}
	if issued != "" && h.sessions != nil {
		ref = h.sessionRef(issued)
		at, ok := sessionIssuedAt(issued, h.sessions.tag)
		if !ok {
			return s, ref, tokenIssued, store.ErrNotFound
		}
		ss := h.sessions
		now := ss.now()
		if now.Sub(at) >= ss.maxAge {
			return s, ref, tokenIssued, store.ErrNotFound
		}
		if cache != nil {
			if id, ok := cache.get(ref); ok {
				return id, ref, tokenIssued, nil
			}
		}
		var left time.Duration
		s, left, err = h.store.LookupTTL(ctx, ref)
		if err != nil {
			return s, ref, tokenIssued, err
		}
		h.extend(ctx, ref, s.OpenID, at, now, left)
		if cache != nil {
			cache.put(ref, s, min(left, ss.maxAge-now.Sub(at)))
		}
		return s, ref, tokenIssued, nil
	}
	if !bound || h.binding == nil {
		return s, "", tokenNone, nil
	}
	token := h.binding.requestToken(r)
	if token == "" {
		return s, "", tokenNone, nil
	}
	ref = h.tokenRef(token)
	if cache != nil {
		if id, ok := cache.get(ref); ok {
			return id, ref, tokenBound, nil
		}
	}
	s, err = h.store.Lookup(ctx, ref)
	if err == nil && cache != nil {
		cache.put(ref, s, 0)
	}
	return s, ref, tokenBound, err
}

// extend extends an issued session found with left to live, when it was
// last extended refresh_every ago or more: to ttl, or to what max_age
// leaves of it (then once, the last time). A failure is logged at DEBUG:
// the session still lives what it had.
func (h *Handler) extend(ctx context.Context, ref, openid string, issuedAt, now time.Time, left time.Duration) {
	ss := h.sessions
	if left <= 0 {
		return // no expiry: not a session this handler issued
	}
	want := ss.ttl
	capped := false
	if rest := ss.maxAge - now.Sub(issuedAt); rest <= want {
		want, capped = rest, true
	}
	gain := want - left
	if gain < ss.refresh && (!capped || gain <= 0) {
		return
	}
	if err := h.store.Touch(context.WithoutCancel(ctx), ref, openid, want); err != nil {
		if c := h.logger.Check(zap.DebugLevel, "session not extended"); c != nil {
			c.Write(zap.String("openid", openid), zap.Error(err))
		}
	}
}

// endSession ends the session of ref in the store (logout): this instance
// sees it at once, the others when their identity cache entry expires (at
// most identity_cache later; at once with identity_cache off).
func (h *Handler) endSession(ctx context.Context, ref string) error {
	if h.idCache != nil {
		h.idCache.del(ref) // at once here; other instances' caches expire
	}
	return h.store.Unbind(context.WithoutCancel(ctx), ref)
}

// sessionErr is a route's error for tokenSession's: an unknown token is
// session_not_found, an unreachable store store_unavailable.
func sessionErr(err error, kind tokenKind) error {
	if errors.Is(err, store.ErrNotFound) {
		if kind == tokenIssued {
			return mperr.New(mperr.SessionNotFound, "no session for this session token: log in again")
		}
		return mperr.New(mperr.SessionNotFound, "no session for this token: log in again")
	}
	return storeErr(err)
}

// provisionSessionPaths sets up require_session and logout. Their paths
// are recognised as the handler's routes are (internal/routepath): on the
// current and the original path and a front controller's route
// parameter, under every reading a backend may give them, so that no
// spelling of a protected path reaches the backend without a session.
func (h *Handler) provisionSessionPaths() error {
	for _, p := range []struct {
		name  string
		paths []string
		dst   **routepath.Matcher
	}{{"require_session", h.RequireSession, &h.required}, {"logout", h.Logout, &h.logout}} {
		if len(p.paths) == 0 {
			continue
		}
		m, err := routepath.NewMatcher(p.paths...)
		if err != nil {
			return fmt.Errorf("miniprogram: %s: %w", p.name, err)
		}
		*p.dst = m
	}
	return nil
}

// onPaths reports whether r is on one of m's paths under any reading a
// backend may give it (a path too deeply encoded to tell counts as on
// them).
func (h *Handler) onPaths(m *routepath.Matcher, r *http.Request) bool {
	if m == nil {
		return false
	}
	paths := make([]string, 1, 4)
	paths[0] = r.URL.EscapedPath()
	if or, ok := originalRequest(r); ok {
		paths = append(paths, or.URL.EscapedPath())
	}
	if r.URL.RawQuery != "" || originalHasQuery(r) {
		for _, p := range h.routeParamPaths(r) {
			paths = append(paths, p.path)
		}
	}
	return m.Match(paths...) != routepath.NoMatch
}
