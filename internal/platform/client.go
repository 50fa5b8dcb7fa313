package platform

import (
	"context"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/mperr"
)

// Defaults of Config.
const (
	DefaultTimeout    = 5 * time.Second
	DefaultMaxRetries = 2
	DefaultBackoff    = 50 * time.Millisecond

	// DefaultWeChatAPIBase and DefaultDouyinAPIBase are the platforms' real
	// API origins.
	DefaultWeChatAPIBase = "https://api.weixin.qq.com"
	DefaultDouyinAPIBase = "https://developer.toutiao.com"
	// DefaultDouyinOpenAPIBase is the origin of Douyin's open platform
	// (client token, phone code exchange); APIBase replaces it too.
	DefaultDouyinOpenAPIBase = "https://open.douyin.com"

	// MaxAnswerBytes bounds how much of a platform answer is read.
	MaxAnswerBytes = 1 << 20

	maxBackoffStep = 2 * time.Second
	maxCauseRunes  = 200 // the longest error cause text kept for logs
)

// ErrTokenInvalid is wrapped (in the Err field of the *mperr.Error) by
// GetUserPhoneNumber's error when the platform says the access token is
// invalid, not the latest, or expired (40001, 40014, 42001): the caller
// should refresh the token and retry once.
var ErrTokenInvalid = errors.New("platform: access token invalid or expired")

// ErrConsumedByRetry marks a "code been used" (WeChat 40163) answered to a
// retry: the earlier attempt, whose answer was lost (-1, HTTP 5xx, a
// connection reset), consumed the single-use code. It is not the client's
// bad code, and is reported as such.
var ErrConsumedByRetry = errors.New("platform: an earlier attempt whose answer was lost consumed the code")

// Config configures a platform client.
type Config struct {
	AppID, AppSecret string
	// APIBase is the platform API origin, e.g. "http://127.0.0.1:9090"
	// (a path prefix is allowed); "" means the platform's real one.
	APIBase string
	// Timeout bounds one whole call, retries and backoff included; the
	// caller's context deadline applies too. Default 5s.
	Timeout time.Duration
	// MaxRetries is how many times a transient failure (errcode -1, HTTP
	// 5xx, connection error) is retried. 0 means the default, 2 (so at most
	// 3 attempts); negative means no retry.
	MaxRetries int
	// Backoff is the first wait before a retry, doubling each time, with a
	// small jitter. Default 50ms.
	Backoff time.Duration
	// HTTPClient is used for every call. Default: a client of its own,
	// tuned for many concurrent calls to one host. Redirects are never
	// followed, whichever client is used.
	HTTPClient *http.Client
	// PrivateKey is the app's RSA private key (Douyin): the phone-code
	// exchange's answers are encrypted with its public half. Nil: no
	// Douyin phone codes.
	PrivateKey *rsa.PrivateKey
	// PlatformPublicKey is the platform's own RSA public key, for a
	// platform whose answers are signed (Descriptor.SignedAPI: Alipay's
	// public key).
	PlatformPublicKey *rsa.PublicKey
	// Logger gets debug lines (platform, endpoint, attempt, status, errcode,
	// duration). May be nil.
	Logger *zap.Logger
	// Tokens runs f with the app's shared server token (the platform's
	// Descriptor.Token), for a platform whose login needs it
	// (Descriptor.LoginToken): when f's error wraps ErrTokenInvalid the
	// token is refreshed and f runs once more. The handler sets it; nil:
	// such a login fails with an internal_error.
	Tokens func(ctx context.Context, f func(token string) error) error
}

// New returns the client of the named platform (a registered one, in any
// case). It fails on an unknown name or an unusable APIBase.
func New(platformName string, cfg Config) (Client, error) {
	if err := CheckAPIBase(cfg.APIBase); err != nil {
		return nil, fmt.Errorf("platform: api_base: %w", err)
	}
	d, ok := Lookup(strings.ToLower(strings.TrimSpace(platformName)))
	if !ok {
		return nil, fmt.Errorf("platform: unknown platform %q (want %s)", platformName, quotedOr(Names()))
	}
	return d.New(cfg), nil
}

// quotedOr is OrList of the names quoted.
func quotedOr(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = strconv.Quote(n)
	}
	return OrList(q)
}

// CheckAPIBase is the rule for a configured API origin ("" is fine: the
// platform's real one): an http(s) URL with a host, optionally a path
// prefix, and no user info, query or fragment. The handler's configuration
// check and New both apply it. The error quotes the value with any
// password hidden.
func CheckAPIBase(base string) error {
	if base == "" {
		return nil
	}
	u, err := url.Parse(base)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // url.Error repeats the value, password included
		}
		return fmt.Errorf("%q is not a URL (%v); want an origin such as %s", redactUserInfo(base), err, DefaultWeChatAPIBase)
	}
	shown := base
	if u.User != nil {
		shown = u.Redacted()
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("%q must be an http:// or https:// URL, such as %s", shown, DefaultWeChatAPIBase)
	}
	if u.Host == "" {
		return fmt.Errorf("%q has no host", shown)
	}
	if u.User != nil || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return fmt.Errorf("%q must be an origin, optionally with a path prefix (no user info, query or fragment)", shown)
	}
	return nil
}

// redactUserInfo hides what precedes an "@" (user info) in a value that
// did not parse as a URL.
func redactUserInfo(s string) string {
	if i := strings.LastIndexByte(s, '@'); i >= 0 {
		return "<redacted>" + s[i:]
	}
	return s
}

// newHTTPClient is the default client: its own transport (never
// http.DefaultTransport), keep-alives on, many idle connections per host, no
// client-level timeout (every call is bounded by its context), no redirects.
func newHTTPClient() *http.Client {
	dialer := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dialer.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   5 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	return &http.Client{Transport: tr, CheckRedirect: noRedirect}
}

func noRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// core is what both platforms' clients share: configuration and the call
// loop (timeout, retries, bounded reads, logging).
type core struct {
	platform   string
	appID      string
	secret     string
	base       string // without trailing slash
	timeout    time.Duration
	maxRetries int
	backoff    time.Duration
	http       *http.Client
	ownsHTTP   bool
	log        *zap.Logger
}

func newCore(platform, defaultBase string, cfg Config) core {
	c := core{
		platform:   platform,
		appID:      cfg.AppID,
		secret:     cfg.AppSecret,
		base:       strings.TrimRight(cfg.APIBase, "/"),
		timeout:    cfg.Timeout,
		maxRetries: cfg.MaxRetries,
		backoff:    cfg.Backoff,
		log:        cfg.Logger,
	}
	if c.base == "" {
		c.base = defaultBase
	}
	if c.timeout <= 0 {
		c.timeout = DefaultTimeout
	}
	switch {
	case c.maxRetries == 0:
		c.maxRetries = DefaultMaxRetries
	case c.maxRetries < 0:
		c.maxRetries = 0
	}
	if c.backoff <= 0 {
		c.backoff = DefaultBackoff
	}
	if cfg.HTTPClient != nil {
		// A copy, so that redirects are refused without touching the
		// caller's client.
		hc := *cfg.HTTPClient
		hc.CheckRedirect = noRedirect
		c.http = &hc
	} else {
		c.http = newHTTPClient()
		c.ownsHTTP = true
	}
	if c.log == nil {
		c.log = zap.NewNop()
	}
	return c
}

// Close releases the client's resources: the idle connections of its own
// HTTP client (not of a Config.HTTPClient given by the caller). The client
// must not be used afterwards.
func (c *core) Close() error {
	if c.ownsHTTP {
		c.http.CloseIdleConnections()
	}
	return nil
}

// endpointURL joins the base and a path with an already encoded query.
func (c *core) endpointURL(path string, query url.Values) string {
	u := c.base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	return u
}

// verdict is what the parser of one answer decides.
type verdict struct {
	err       *mperr.Error // nil: success
	transient bool         // worth another attempt
}

// attempt describes one HTTP exchange, for the call loop.
type attempt struct {
	endpoint string // the path, for logs only (never the URL: it may hold secrets)
	// newRequest builds a fresh request for every attempt.
	newRequest func(ctx context.Context) (*http.Request, error)
	// parse reads one complete answer (status and at most MaxAnswerBytes
	// of body). It returns the platform errcode it saw, for logs.
	parse func(status int, body []byte) (errcode *int, v verdict)
	// secrets are the values that must never show in an error: the app
	// secret, codes, tokens.
	secrets []string
}

// do runs a call: up to 1+maxRetries attempts, all within c.timeout and the
// caller's deadline. Only transient failures are retried.
func (c *core) do(ctx context.Context, a attempt) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()

	var last *mperr.Error
	for n := 1; ; n++ {
		if n > 1 {
			if err := c.wait(ctx, n-1, last); err != nil {
				return err
			}
		}
		err, transient := c.once(ctx, n, a)
		if err == nil {
			return nil
		}
		if n > 1 && err.HasErrcode && err.Errcode == 40163 {
			err = &mperr.Error{Code: mperr.InvalidCode, HasErrcode: true, Errcode: 40163, Err: ErrConsumedByRetry,
				Message: "the platform consumed the code on an earlier attempt whose answer was lost: log in again"}
			return err
		}
		if !transient || n > c.maxRetries {
			return err
		}
		last = err
	}
}

// wait sleeps before retry number k (1-based). When the deadline would pass
// during the sleep it gives up at once and returns last, the failure that
// would have been retried (the platform did answer; it is not a timeout).
func (c *core) wait(ctx context.Context, k int, last *mperr.Error) error {
	d := c.backoff << (k - 1)
	if d <= 0 || d > maxBackoffStep {
		d = maxBackoffStep
	}
	d += time.Duration(rand.Int64N(int64(d)/5 + 1)) // up to +20% jitter
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) <= d {
		return last
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return c.contextError(ctx)
	}
}

// once runs one attempt.
func (c *core) once(ctx context.Context, n int, a attempt) (err *mperr.Error, transient bool) {
	start := time.Now()
	status := 0
	var errcode *int
	defer func() {
		fields := []zap.Field{
			zap.String("platform", c.platform),
			zap.String("endpoint", a.endpoint),
			zap.Int("attempt", n),
			zap.Int("status", status),
		}
		if errcode != nil {
			fields = append(fields, zap.Int("errcode", *errcode))
		}
		fields = append(fields, zap.Duration("duration", time.Since(start)))
		c.log.Debug("platform call", fields...)
	}()

	req, rerr := a.newRequest(ctx)
	if rerr != nil {
		// Only an unusable APIBase gets here (New refuses those). rerr is
		// dropped: its text holds the URL, and with it the secrets.
		return mperr.New(mperr.PlatformError, "the platform API address is unusable"), false
	}
	resp, derr := c.http.Do(req)
	if derr != nil {
		return c.transportError(ctx, derr, a.secrets)
	}
	status = resp.StatusCode
	body, berr := io.ReadAll(io.LimitReader(resp.Body, MaxAnswerBytes+1))
	resp.Body.Close()
	if berr != nil {
		if ctx.Err() != nil {
			return c.contextError(ctx), false
		}
		// The answer was on its way, so the platform has handled the
		// request (and consumed a single-use code): never retried.
		return mperr.Wrap(mperr.PlatformError, "the platform's answer was cut off", safeCause("reading the answer failed", berr, a.secrets)), false
	}
	if len(body) > MaxAnswerBytes {
		return mperr.New(mperr.PlatformError, "the platform's answer is too large"), false
	}
	var v verdict
	errcode, v = a.parse(status, body)
	if v.err != nil && v.err.Err != nil {
		v.err.Err = safeCause(v.err.Err.Error(), v.err.Err, a.secrets)
	}
	return v.err, v.transient
}

// transportError maps an error of http.Client.Do.
func (c *core) transportError(ctx context.Context, err error, secrets []string) (*mperr.Error, bool) {
	if ctx.Err() != nil {
		return c.contextError(ctx), false
	}
	// *url.Error's text holds the URL, hence the query and its secrets:
	// keep only the inner error.
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return mperr.Wrap(mperr.PlatformTimeout, "the platform did not answer in time", safeCause("", err, secrets)), false
	}
	var (
		verifyErr   *tls.CertificateVerificationError
		certErr     x509.CertificateInvalidError
		unknownAuth x509.UnknownAuthorityError
		hostnameErr x509.HostnameError
	)
	if errors.As(err, &verifyErr) || errors.As(err, &certErr) || errors.As(err, &unknownAuth) || errors.As(err, &hostnameErr) {
		return mperr.Wrap(mperr.PlatformError, "cannot reach the platform securely", safeCause("", err, secrets)), false
	}
	// Connection errors are retried. A refused or failed dial never sent
	// anything, so a retry is safe. An error after the request was sent
	// (connection reset while waiting for the answer) is ambiguous: the
	// platform may have consumed the single-use code, and the retry then
	// gets "code been used" (40163, mapped to invalid_code), which is the
	// honest outcome; net/http itself already retries requests that were
	// provably not sent on a reused connection.
	return mperr.Wrap(mperr.PlatformError, "cannot reach the platform", safeCause("", err, secrets)), true
}

// contextError maps the end of ctx: the deadline (Config.Timeout or the
// caller's) is platform_timeout; a cancellation by the caller is a
// platform_error wrapping context.Canceled.
func (c *core) contextError(ctx context.Context) *mperr.Error {
	err := ctx.Err()
	if errors.Is(err, context.DeadlineExceeded) {
		return mperr.Wrap(mperr.PlatformTimeout, "the platform did not answer in time", context.DeadlineExceeded)
	}
	return mperr.Wrap(mperr.PlatformError, "the platform call was canceled", err)
}

// causeError is an error cause whose text was checked for secrets; it still
// unwraps to the original error for errors.Is/As.
type causeError struct {
	msg string
	err error
}

func (e *causeError) Error() string { return e.msg }
func (e *causeError) Unwrap() error { return e.err }

// safeCause wraps err with a text free of the given secrets. When msg is
// "", err's own text is used. A text holding a secret (raw or
// URL-escaped) is replaced as a whole: nothing is partly redacted.
func safeCause(msg string, err error, secrets []string) error {
	if msg == "" {
		msg = err.Error()
	}
	if containsSecret(msg, secrets) {
		msg = "(detail withheld: it quoted the request)"
		// The platform's own text leaves the chain too; what callers test
		// with errors.Is stays.
		var said *platformSaid
		if errors.As(err, &said) {
			if errors.Is(err, ErrTokenInvalid) {
				err = ErrTokenInvalid
			} else {
				err = nil
			}
		}
	}
	if r := []rune(msg); len(r) > maxCauseRunes {
		msg = string(r[:maxCauseRunes]) + "…"
	}
	return &causeError{msg: msg, err: err}
}

func containsSecret(s string, secrets []string) bool {
	for _, sec := range secrets {
		if sec == "" {
			continue
		}
		if strings.Contains(s, sec) || strings.Contains(s, url.QueryEscape(sec)) || strings.Contains(s, url.PathEscape(sec)) {
			return true
		}
	}
	return false
}
