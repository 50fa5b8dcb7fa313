package module

// Zero-change mode for legacy backends.
//
// Many backends call code2session (and fetch access tokens) themselves and
// can change nothing but a base URL. With `compat <prefix>` the handler
// answers, itself and never through the upstream, the platform's own
// endpoints under that prefix, in the platform's own shapes and error
// numbers, so that an unchanged SDK pointed at
// http://internal-host/mp-compat cannot tell it from the platform:
//
// WeChat (platform wechat):
//
//	GET  {prefix}/sns/jscode2session?appid&secret&js_code&grant_type=authorization_code
//	     → {"openid","session_key"[,"unionid"]} (no errcode, like the platform)
//	GET  {prefix}/cgi-bin/token?grant_type=client_credential&appid&secret
//	POST {prefix}/cgi-bin/stable_token {"grant_type":"client_credential","appid","secret","force_refresh"}
//	     → {"access_token","expires_in"}
//	errors (HTTP 200, as the platform): {"errcode":N,"errmsg":"... rid: ..."}
//	anything else under the prefix → 40066 "invalid url"
//
// Douyin (platform douyin):
//
//	POST {prefix}/api/apps/v2/jscode2session {"appid","secret","code","anonymous_code"}
//	     → {"err_no":0,"err_tips":"success","log_id","data":{"session_key","openid","anonymous_openid","unionid"}}
//	     errors (HTTP 200): {"err_no":N,"err_tips":"...","log_id","data":null}
//	GET  {prefix}/api/apps/jscode2session?appid&secret&code&anonymous_code (legacy v1)
//	     → {"session_key","openid","anonymous_openid"[,"unionid"]} / {"errcode":N,"errmsg":"..."}
//	anything else under the prefix → HTTP 404 {"err_no":404,"err_tips":"invalid url","data":null}
//
// code2session is answered from the session the login route exchanged
// eagerly (h.exchange): a code seen at login gives its stored session, at
// any time while the session lives and however often it is asked, without
// a platform call; an unseen code falls through to one real exchange (once,
// then from the store). The access token is the handler's shared one (the
// "central token server" WeChat recommends): a backend call never fetches a
// new token.
//
// This endpoint necessarily returns the session_key (that is what the SDK
// expects): the compat listener must be internal only, reachable by the
// backend and nobody else. Provisioning therefore refuses compat on a
// server with any listen address that is not loopback (127.0.0.0/8, ::1,
// localhost) or a unix socket — a Caddyfile site "http://127.0.0.1:9001"
// without "bind 127.0.0.1" listens on every interface — unless the operator
// sets allow_public (logged at WARN). As defence in depth, each compat
// request must also have come in on a loopback or unix connection unless
// allow_public is set; others get 403 and never reach an endpoint.
//
// Secrets and logs: appid and secret are compared in constant time. Caddy's
// access log records a request's URI, which here carries the app secret and
// the login code in its query string; compat requests are therefore left out
// of the access log (log_skip) and the handler logs one line of its own per
// request (method, path, status, platform error number, duration), never the
// code, secret, session key or token: at DEBUG, or at ERROR when the
// request failed on the handler's side (store, platform, internal: errcode
// -1), like Caddy's own request lines; refusals also go to the refusal
// summary (refusals.go).
//
// Metrics: each request counts in requests_total under its own route label
// (compat_code2session, compat_token, compat_other) with the result "ok",
// the README code of the failure's cause, "bad_request" for a request the
// endpoint refuses by its parameters, credentials, method or path, or
// "forbidden" (connection check). That result, when not ok, is also
// {vars.mp_error}.

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/mperr"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/platform"
)

// CompatConfig serves platform-compatible endpoints (zero-change mode).
type CompatConfig struct {
	// Prefix the endpoints are served under, e.g. "/mp-compat". It must
	// start with "/", must not end with "/" and must not overlap the
	// login, phone and decrypt paths.
	Prefix string `json:"prefix,omitempty"`
	// AllowPublic serves the endpoints on a server that listens on
	// addresses other than loopback and unix sockets (e.g. a private
	// network address the backend reaches). Without it such a server
	// fails to load. They hand out session keys and access tokens: protect
	// that listener some other way (firewall, network policy).
	AllowPublic bool `json:"allow_public,omitempty"`
}

// compatFallbackExpiresIn is the expires_in the token endpoints answer when
// the token's real remaining lifetime cannot be read from the store: 300 s,
// the least WeChat itself ever answers for a stable token (it rotates 5
// minutes before expiry). A backend that caches the token for that long
// simply asks again sooner; asking is cheap (no platform call).
const compatFallbackExpiresIn = 300

// compatDialect is one dialect of compat endpoints, selected by the
// platform's descriptor (platform.Descriptor.Compat).
type compatDialect struct {
	// serve answers a request at rest, its path under the prefix.
	serve func(h *Handler, r *http.Request, rest string) compatAnswer
	// code2session and token are the paths (under the prefix) of its
	// code2session and token endpoints, for the route label.
	code2session, token []string
	// tokens: its token endpoints hand out the handler's shared token
	// (h.tokens must be set).
	tokens bool
}

// compatDialects are the dialects by name.
var compatDialects = map[string]compatDialect{
	platform.CompatWX: {
		serve:        (*Handler).compatWeChat,
		code2session: []string{"/sns/jscode2session"},
		token:        []string{"/cgi-bin/token", "/cgi-bin/stable_token"},
		tokens:       true,
	},
	platform.CompatTT: {
		serve:        (*Handler).compatDouyin,
		code2session: []string{"/api/apps/v2/jscode2session", "/api/apps/jscode2session"},
	},
}

// compatServer is the provisioned compat configuration.
type compatServer struct {
	dialect compatDialect
	prefix  string
	// allowPublic: AllowPublic (requests on any connection are served).
	allowPublic bool
	appIDSum    [sha256.Size]byte
	secretSum   [sha256.Size]byte
	logger      *zap.Logger
}

// validateCompat checks the compat prefix (part of validate).
func (h *Handler) validateCompat() error {
	if h.Compat == nil {
		return nil
	}
	p := h.Compat.Prefix
	if err := CheckCompatPrefix(p); err != nil {
		return err
	}
	if h.Platform != "" {
		if _, ok := compatDialects[h.platformDesc().Compat]; !ok {
			return fieldErr("compat", "platform %q has no compat endpoints", h.Platform)
		}
	}
	for _, r := range []struct{ name, pattern string }{{"login", h.Login}, {"phone", h.Phone}, {"decrypt", h.Decrypt}} {
		if compatOverlaps(p, r.pattern) {
			return fieldErr("compat", "prefix %q overlaps the %s path %q", p, r.name, r.pattern)
		}
	}
	return nil
}

// CheckCompatPrefix checks the shape of a compat prefix: a clean path
// starting with /, not ending with one, and not / itself; no *, ? or #.
// (Overlaps with the handler's routes are checked by Validate.)
func CheckCompatPrefix(p string) error { return checkPrefix("compat", p, "/mp-compat") }

// checkPrefix checks the prefix of field (compat, gateway): a clean path
// starting with /, not ending with one, and not / itself; no *, ? or #.
// example is a good prefix, for the messages.
func checkPrefix(field, p, example string) error {
	switch {
	case p == "":
		return fieldErr(field, "needs a path prefix, e.g. %s", example)
	case p == "/":
		return fieldErr(field, "prefix must not be / (it would take every request); use a path such as %s", example)
	case !strings.HasPrefix(p, "/"):
		return fieldErr(field, "prefix %q must start with /", p)
	case strings.HasSuffix(p, "/"):
		return fieldErr(field, "prefix %q must not end with / (write %s, not %s/)", p, example, example)
	case strings.ContainsAny(p, "*?#%"):
		return fieldErr(field, "prefix %q must be a plain path (no *, ?, # or %%)", p)
	case path.Clean(p) != p:
		return fieldErr(field, "prefix %q is not a clean path (want %q)", p, path.Clean(p))
	}
	return nil
}

// compatOverlaps reports whether a route pattern ("/x" exact, "/x*"
// prefix) matches any path under the compat prefix (prefix itself or
// prefix + "/...").
func compatOverlaps(prefix, pattern string) bool {
	if pattern == "" {
		return false
	}
	if q, ok := strings.CutSuffix(pattern, "*"); ok {
		return strings.HasPrefix(prefix, q) || strings.HasPrefix(q, prefix+"/")
	}
	return pattern == prefix || strings.HasPrefix(pattern, prefix+"/")
}

func (h *Handler) provisionCompat(ctx caddy.Context) error {
	if h.Compat == nil {
		return nil
	}
	if err := h.checkInternalListeners(ctx, h.compatInternal()); err != nil {
		return err
	}
	dialect, ok := compatDialects[h.platformDesc().Compat]
	if !ok {
		return fmt.Errorf("miniprogram: compat: platform %q has no compat endpoints", h.Platform)
	}
	c := &compatServer{
		dialect:     dialect,
		prefix:      h.Compat.Prefix,
		allowPublic: h.Compat.AllowPublic,
		appIDSum:    sha256.Sum256([]byte(h.AppID)),
		secretSum:   sha256.Sum256([]byte(h.AppSecret)),
		logger:      h.logger.Named("compat"),
	}
	if dialect.tokens && h.tokens == nil {
		// provisionAccessToken (which runs first) sets it up.
		return errors.New("miniprogram: compat: no access token manager for the token endpoints")
	}
	h.compat = c
	h.logger.Info("compat endpoints enabled; they return session keys and access tokens: keep this listener internal",
		zap.String("prefix", c.prefix), zap.String("platform", h.Platform))
	return nil
}

// compatInternal describes the compat endpoints for the internal-listener
// checks (internal.go).
func (h *Handler) compatInternal() internalEndpoints {
	return internalEndpoints{
		name: "compat", what: "compat endpoints", they: "they", does: "hand out session keys and access tokens",
		answer:      "the compat endpoints answer",
		allowPublic: h.Compat.AllowPublic,
	}
}

func (h *Handler) compatMatches(p string) bool {
	if h.compat == nil {
		return false
	}
	return p == h.compat.prefix || strings.HasPrefix(p, h.compat.prefix+"/")
}

// compatAnswer is what a compat endpoint answers.
type compatAnswer struct {
	status  int
	body    any
	errcode int   // the platform error number answered; 0 on success
	err     error // the cause of a failure, for the log (no secrets)
}

// compatResultForbidden is the result (and {vars.mp_error}) of a compat
// request refused for its connection.
const compatResultForbidden = "forbidden"

// compatLabel is the route label of a compat request by its path under the
// prefix.
func (h *Handler) compatLabel(rest string) routeLabel {
	switch d := h.compat.dialect; {
	case slices.Contains(d.code2session, rest):
		return labelCompatCode2Session
	case slices.Contains(d.token, rest):
		return labelCompatToken
	}
	return labelCompatOther
}

// result is the requests_total result of an answer ("" for ok), and
// whether it is a failure on the handler's side (logged at ERROR).
func (a compatAnswer) result() (result string, failed bool) {
	switch {
	case a.errcode == 0:
		return "", false
	case a.err != nil:
		e := mperr.From(a.err)
		return string(e.Code), e.Status() >= 500 || a.errcode == -1
	case a.errcode == -1:
		return string(mperr.Internal), true
	}
	return string(mperr.BadRequest), false
}

// serveCompat answers a request under the compat prefix and sets res.
func (h *Handler) serveCompat(w http.ResponseWriter, r *http.Request, res *requestResult) {
	start := time.Now()
	// The query string carries the secret and the code: keep this
	// request out of Caddy's access log (logged below instead).
	caddyhttp.SetVar(r.Context(), caddyhttp.LogSkipVar, true)
	rest := strings.TrimPrefix(r.URL.Path, h.compat.prefix)
	res.route = h.compatLabel(rest)
	if !h.compat.allowPublic {
		if local, why, ok := internalRequest(r); !ok {
			res.result = compatResultForbidden
			setErrorVar(r, res.result)
			h.refusals.note(res.result, routeLabels[res.route])
			refuseNotInternal(w, r, h.compat.logger, h.compatInternal(), local, why)
			return
		}
	}
	a := h.compat.dialect.serve(h, r, rest)

	var buf strings.Builder
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(a.body); err != nil {
		h.logger.Error("compat: cannot encode the answer", zap.Error(err))
		a = compatAnswer{status: http.StatusInternalServerError, body: map[string]any{}, errcode: -1}
		buf.Reset()
		buf.WriteString("{}\n")
	}
	hdr := w.Header()
	hdr.Set("Content-Type", "application/json; charset=utf-8")
	hdr.Set("Content-Length", strconv.Itoa(buf.Len()))
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Content-Type-Options", "nosniff")
	result, failed := a.result()
	res.result = result
	if result != "" {
		setErrorVar(r, result)
		if !failed {
			h.refusals.note(result, routeLabels[res.route])
		}
	}
	w.WriteHeader(a.status)
	_, _ = io.WriteString(w, buf.String())

	level, msg := zap.DebugLevel, "compat request"
	switch {
	case failed:
		// Ours or the platform's failure: the backend will retry.
		level, msg = zap.ErrorLevel, "compat request failed"
	case result != "":
		msg = "compat request refused"
	}
	c := h.compat.logger.Check(level, msg)
	if c == nil {
		return
	}
	fields := []zap.Field{
		zap.String("method", r.Method),
		zap.String("path", r.URL.Path),
		zap.Int("status", a.status),
		zap.Int("errcode", a.errcode),
		zap.Duration("took", time.Since(start)),
	}
	if a.err != nil {
		e := mperr.From(a.err)
		fields = append(fields, zap.String("error", string(e.Code)), zap.String("message", e.Message))
		if e.HasErrcode {
			fields = append(fields, zap.Int("platform_errcode", e.Errcode))
		}
		if e.Err != nil {
			fields = append(fields, zap.NamedError("cause", e.Err))
		}
	}
	c.Write(fields...)
}

// sameSecret compares got with a configured value in constant time
// (hashes first, so that not even the length leaks).
func sameSecret(got string, want *[sha256.Size]byte) bool {
	sum := sha256.Sum256([]byte(got))
	return subtle.ConstantTimeCompare(sum[:], want[:]) == 1
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// readCompatBody reads a POST body, bounded by MaxBodySize.
func (h *Handler) readCompatBody(r *http.Request) ([]byte, error) {
	if r.Body == nil {
		return nil, nil
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, h.MaxBodySize+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > h.MaxBodySize {
		return nil, fmt.Errorf("body over %d bytes", h.MaxBodySize)
	}
	return b, nil
}

// --- WeChat -----------------------------------------------------------

// wxCompatMessages are WeChat's errmsg prefixes, as its API answers them;
// ", rid: ..." follows, as the platform does.
var wxCompatMessages = map[int]string{
	-1:    "system error",
	40001: "invalid credential, access_token is invalid or not latest",
	40002: "invalid grant_type",
	40013: "invalid appid",
	40029: "invalid code",
	40066: "invalid url",
	40125: "invalid appsecret",
	40163: "code been used",
	40226: "code blocked",
	41002: "appid missing",
	41004: "appsecret missing",
	41008: "missing code",
	43001: "require GET method",
	43002: "require POST method",
	45009: "reach max api daily quota limit",
	45011: "api minute-quota reach limit mustslower retry next minute",
	47001: "data format error",
}

type wxCompatError struct {
	Errcode int    `json:"errcode"`
	Errmsg  string `json:"errmsg"`
}

func wxCompatErr(n int) compatAnswer {
	msg, ok := wxCompatMessages[n]
	if !ok {
		msg = "system error"
	}
	rid := fmt.Sprintf("%08x-%s-%s", uint32(time.Now().Unix()), randHex(4), randHex(4))
	return compatAnswer{status: http.StatusOK, errcode: n, body: wxCompatError{Errcode: n, Errmsg: msg + ", rid: " + rid}}
}

// wxErrcode maps a failure back onto WeChat's own number: the one the
// platform gave (carried in the mperr.Error, also when replayed from the
// store), else the closest one; store failures, timeouts and anything
// unexpected are -1 "system error" (retry later).
func wxErrcode(err error) int {
	e := mperr.From(err)
	if e.HasErrcode && e.Errcode != 0 {
		return e.Errcode
	}
	switch e.Code {
	case mperr.InvalidCode:
		return 40029
	case mperr.RateLimited:
		return 45011
	case mperr.MissingCode:
		return 41008
	}
	return -1
}

func (h *Handler) compatWeChat(r *http.Request, rest string) compatAnswer {
	switch rest {
	case "/sns/jscode2session":
		return h.wxCompatCode2Session(r)
	case "/cgi-bin/token":
		return h.wxCompatToken(r)
	case "/cgi-bin/stable_token":
		return h.wxCompatStableToken(r)
	}
	return wxCompatErr(40066)
}

type wxCompatSession struct {
	OpenID     string `json:"openid"`
	SessionKey string `json:"session_key"`
	UnionID    string `json:"unionid,omitempty"`
}

// wxCompatCode2Session: GET {prefix}/sns/jscode2session.
func (h *Handler) wxCompatCode2Session(r *http.Request) compatAnswer {
	if r.Method != http.MethodGet {
		// WeChat reads the query of a GET only: anything else lacks an appid.
		return wxCompatErr(41002)
	}
	q := r.URL.Query()
	appID, secret, code := q.Get("appid"), q.Get("secret"), q.Get("js_code")
	switch {
	case appID == "":
		return wxCompatErr(41002)
	case secret == "":
		return wxCompatErr(41004)
	case code == "":
		return wxCompatErr(41008)
	case q.Get("grant_type") != "authorization_code":
		return wxCompatErr(40002)
	}
	// Both are checked (no early return) so that timing tells nothing.
	appOK, secretOK := sameSecret(appID, &h.compat.appIDSum), sameSecret(secret, &h.compat.secretSum)
	if !appOK {
		return wxCompatErr(40013)
	}
	if !secretOK {
		return wxCompatErr(40125)
	}
	s, err := h.exchange(r.Context(), platform.LoginCodes{Code: code})
	if err != nil {
		return wxCompatErr(wxErrcode(err)).because(err)
	}
	return compatAnswer{status: http.StatusOK, body: wxCompatSession{OpenID: s.OpenID, SessionKey: s.SessionKey, UnionID: s.UnionID}}
}

// wxCompatToken: GET {prefix}/cgi-bin/token.
func (h *Handler) wxCompatToken(r *http.Request) compatAnswer {
	if r.Method != http.MethodGet {
		return wxCompatErr(43001)
	}
	q := r.URL.Query()
	return h.wxCompatTokenAnswer(r.Context(), q.Get("grant_type"), q.Get("appid"), q.Get("secret"))
}

// wxCompatStableToken: POST {prefix}/cgi-bin/stable_token. force_refresh
// is accepted and ignored: the handler owns the token, and a backend
// forcing refreshes would invalidate everyone's token and use up the
// platform's 20 forced refreshes a day.
func (h *Handler) wxCompatStableToken(r *http.Request) compatAnswer {
	if r.Method != http.MethodPost {
		return wxCompatErr(43002)
	}
	b, err := h.readCompatBody(r)
	if err != nil {
		return wxCompatErr(47001)
	}
	var req struct {
		GrantType    string          `json:"grant_type"`
		AppID        string          `json:"appid"`
		Secret       string          `json:"secret"`
		ForceRefresh json.RawMessage `json:"force_refresh"`
	}
	if err := json.Unmarshal(b, &req); err != nil {
		return wxCompatErr(47001)
	}
	return h.wxCompatTokenAnswer(r.Context(), req.GrantType, req.AppID, req.Secret)
}

type wxCompatToken struct {
	AccessToken string `json:"access_token"`
	ExpiresIn   int    `json:"expires_in"`
}

// wxCompatTokenAnswer checks the parameters as both token endpoints do and
// answers the shared token. A wrong secret is 40001 here, as the platform's
// token endpoints say (code2session says 40125).
func (h *Handler) wxCompatTokenAnswer(ctx context.Context, grantType, appID, secret string) compatAnswer {
	switch {
	case appID == "":
		return wxCompatErr(41002)
	case secret == "":
		return wxCompatErr(41004)
	case grantType != "client_credential":
		return wxCompatErr(40002)
	}
	appOK, secretOK := sameSecret(appID, &h.compat.appIDSum), sameSecret(secret, &h.compat.secretSum)
	if !appOK {
		return wxCompatErr(40013)
	}
	if !secretOK {
		return wxCompatErr(40001)
	}
	if h.tokens == nil {
		return wxCompatErr(-1).because(errors.New("no access token manager"))
	}
	tok, keepUntil, err := h.tokens.TokenInfo(ctx)
	if err != nil {
		n := -1
		if e, ok := mperr.As(err); ok && e.HasErrcode && e.Errcode != 0 {
			n = e.Errcode
		}
		return wxCompatErr(n).because(err)
	}
	return compatAnswer{status: http.StatusOK, body: wxCompatToken{AccessToken: tok, ExpiresIn: compatExpiresIn(keepUntil)}}
}

// compatExpiresIn is the expires_in answered for a token the backend may
// keep until keepUntil (accesstoken.Manager.TokenInfo), or
// compatFallbackExpiresIn when the manager cannot tell.
func compatExpiresIn(keepUntil time.Time) int {
	if keepUntil.IsZero() {
		return compatFallbackExpiresIn
	}
	return max(1, int(time.Until(keepUntil)/time.Second))
}

// because records the cause of a failure for the request's log line.
func (a compatAnswer) because(err error) compatAnswer {
	a.err = err
	return a
}

// --- Douyin -----------------------------------------------------------

// ttCompatMessages are err_tips / errmsg texts (numbers as Douyin's SDKs
// and documentation give them; the official v2 table was not retrieved).
var ttCompatMessages = map[int]string{
	-1:    "system error",
	40014: "bad params",
	40015: "bad appid",
	40017: "bad secret",
	40018: "bad code",
	40019: "bad anonymous_code",
}

func ttCompatMessage(n int) string {
	if m, ok := ttCompatMessages[n]; ok {
		return m
	}
	return "error " + strconv.Itoa(n)
}

type ttCompatData struct {
	SessionKey      string `json:"session_key"`
	OpenID          string `json:"openid"`
	AnonymousOpenID string `json:"anonymous_openid"`
	UnionID         string `json:"unionid"`
}

type ttCompatV2 struct {
	ErrNo   int           `json:"err_no"`
	ErrTips string        `json:"err_tips"`
	LogID   string        `json:"log_id"`
	Data    *ttCompatData `json:"data"`
}

type ttCompatV1Error struct {
	Errcode int    `json:"errcode"`
	Errmsg  string `json:"errmsg"`
}

type ttCompatV1 struct {
	SessionKey      string `json:"session_key"`
	OpenID          string `json:"openid"`
	AnonymousOpenID string `json:"anonymous_openid"`
	UnionID         string `json:"unionid,omitempty"`
}

func ttLogID() string {
	return time.Now().Format("20060102150405") + strings.ToUpper(randHex(10))
}

func ttCompatV2Err(n int) compatAnswer {
	return compatAnswer{status: http.StatusOK, errcode: n, body: ttCompatV2{ErrNo: n, ErrTips: ttCompatMessage(n), LogID: ttLogID()}}
}

func ttCompatV1Err(n int) compatAnswer {
	return compatAnswer{status: http.StatusOK, errcode: n, body: ttCompatV1Error{Errcode: n, Errmsg: ttCompatMessage(n)}}
}

// ttErrcode maps a failure back onto Douyin's own number (see wxErrcode).
func ttErrcode(err error, anonOnly bool) int {
	e := mperr.From(err)
	if e.HasErrcode && e.Errcode != 0 {
		return e.Errcode
	}
	switch e.Code {
	case mperr.InvalidCode:
		if anonOnly {
			return 40019
		}
		return 40018
	case mperr.MissingCode:
		return 40014
	}
	return -1
}

func (h *Handler) compatDouyin(r *http.Request, rest string) compatAnswer {
	switch rest {
	case "/api/apps/v2/jscode2session":
		if r.Method != http.MethodPost {
			return ttCompatV2Err(40014)
		}
		b, err := h.readCompatBody(r)
		if err != nil {
			return ttCompatV2Err(40014)
		}
		var req struct {
			AppID         string `json:"appid"`
			Secret        string `json:"secret"`
			Code          string `json:"code"`
			AnonymousCode string `json:"anonymous_code"`
		}
		if err := json.Unmarshal(b, &req); err != nil {
			return ttCompatV2Err(40014)
		}
		d, n, err := h.ttCompatSession(r.Context(), req.AppID, req.Secret, req.Code, req.AnonymousCode)
		if n != 0 {
			return ttCompatV2Err(n).because(err)
		}
		return compatAnswer{status: http.StatusOK, body: ttCompatV2{ErrNo: 0, ErrTips: "success", LogID: ttLogID(), Data: &d}}

	case "/api/apps/jscode2session":
		if r.Method != http.MethodGet {
			return ttCompatV1Err(40014)
		}
		q := r.URL.Query()
		d, n, err := h.ttCompatSession(r.Context(), q.Get("appid"), q.Get("secret"), q.Get("code"), q.Get("anonymous_code"))
		if n != 0 {
			return ttCompatV1Err(n).because(err)
		}
		return compatAnswer{status: http.StatusOK, body: ttCompatV1(d)}
	}
	return compatAnswer{status: http.StatusNotFound, errcode: 404, body: map[string]any{"err_no": 404, "err_tips": "invalid url", "data": nil}}
}

// ttCompatSession checks the parameters as Douyin does and gives the
// session: a login code from the store (or one real exchange); an
// anonymous code alone from the login route's anonymous exchange (one real
// exchange, its result kept for retries like a login code's).
func (h *Handler) ttCompatSession(ctx context.Context, appID, secret, code, anon string) (ttCompatData, int, error) {
	if appID == "" || secret == "" || (code == "" && anon == "") {
		return ttCompatData{}, 40014, nil
	}
	appOK, secretOK := sameSecret(appID, &h.compat.appIDSum), sameSecret(secret, &h.compat.secretSum)
	if !appOK {
		return ttCompatData{}, 40015, nil
	}
	if !secretOK {
		return ttCompatData{}, 40017, nil
	}
	var d ttCompatData
	if code != "" {
		s, err := h.exchange(ctx, platform.LoginCodes{Code: code, Anonymous: anon})
		if err != nil {
			return d, ttErrcode(err, false), err
		}
		d = ttCompatData{SessionKey: s.SessionKey, OpenID: s.OpenID, UnionID: s.UnionID}
		if anon != "" {
			d.AnonymousOpenID = s.Fields[platform.FieldAnonymousOpenID]
		}
		return d, 0, nil
	}
	aoid, err := h.exchangeAnonymous(ctx, anon)
	if err != nil {
		return d, ttErrcode(err, true), err
	}
	return ttCompatData{AnonymousOpenID: aoid[platform.FieldAnonymousOpenID]}, 0, nil
}
