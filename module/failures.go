package module

// Bounding failed code exchanges per client.
//
// A random login code costs one code2session call (a random phone code one
// getuserphonenumber call) before the platform says it is invalid. Each
// client (the client IP Caddy determined, so trusted_proxies counts; an
// IPv6 client by its /64) may cause max_failed_exchanges such failures at
// once, refilled at that many per window; over it, its login and phone-code
// requests are answered 429 too_many_failures, with Retry-After, before any
// platform call. Only failures that cost a platform call in this request
// and are the client's fault count (the platform rejected the code), not
// timeouts or platform errors, and not a dead code answered from the store.
// The compat endpoints are neither counted nor bounded: their one client is
// the operator's backend. The counters are in memory, per handler and
// process: N instances allow a client N times the bound.

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/clientlimit"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/mperr"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/platform"
)

// DefaultMaxFailedExchanges is max_failed_exchanges when not set.
const DefaultMaxFailedExchanges = "30/1m"

// failLimitKey is the context key under which a request that may cost a
// platform call carries its client's limiter key, down to where the call
// fails (exchangeClaimed, inside a single-flight detached from the request).
type failLimitKey struct{}

// parseFailureLimit reads max_failed_exchanges: "<n>/<window>", "off", or
// "" for DefaultMaxFailedExchanges.
func parseFailureLimit(s string) (limit int, window time.Duration, off bool, err error) {
	switch s {
	case "off":
		return 0, 0, true, nil
	case "":
		s = DefaultMaxFailedExchanges
	}
	limit, window, err = clientlimit.ParseRate(s)
	if err != nil {
		return 0, 0, false, fieldErr("max_failed_exchanges", "%v (or off)", err)
	}
	return limit, window, false, nil
}

func (h *Handler) validateFailureLimit() error {
	return CheckMaxFailedExchanges(h.MaxFailedExchanges)
}

// CheckMaxFailedExchanges is the rule for max_failed_exchanges.
func CheckMaxFailedExchanges(s string) error {
	_, _, _, err := parseFailureLimit(s)
	return err
}

// provisionFailureLimit sets h.failures up (nil when off); Validate has
// checked the value.
func (h *Handler) provisionFailureLimit() {
	limit, window, off, err := parseFailureLimit(h.MaxFailedExchanges)
	if err != nil || off {
		h.failures = nil
		return
	}
	h.failures = clientlimit.New(clientlimit.Config{Limit: limit, Window: window})
}

// checkFailures refuses a client over its bound of failed exchanges with
// too_many_failures; otherwise it returns the request's context carrying
// the client's key, for countFailure.
func (h *Handler) checkFailures(r *http.Request) (context.Context, error) {
	ctx := r.Context()
	if h.failures == nil {
		return ctx, nil
	}
	key := clientKey(r)
	if wait := h.failures.Wait(key); wait > 0 {
		metrics.refused.WithLabelValues(h.Platform, string(mperr.TooManyFailures)).Inc()
		e := mperr.Newf(mperr.TooManyFailures, "too many failed code exchanges from this client; retry in %d s", int((wait+time.Second-1)/time.Second))
		e.RetryAfter = wait
		return ctx, e
	}
	return context.WithValue(ctx, failLimitKey{}, key), nil
}

// countFailure counts a failed platform call against the client whose
// request made it (none for compat requests), when the failure is the
// client's fault: the platform rejected the code.
func (h *Handler) countFailure(ctx context.Context, e *mperr.Error) {
	key, ok := ctx.Value(failLimitKey{}).(string)
	if !ok || h.failures == nil || (e.Code != mperr.InvalidCode && e.Code != mperr.UserBlocked) {
		return
	}
	if errors.Is(e, platform.ErrConsumedByRetry) {
		return // the platform's lost answer, not the client's bad code
	}
	if h.failures.Fail(key) {
		h.logger.Warn("a client reached max_failed_exchanges: its logins are refused for a while",
			zap.String("client", key), zap.Duration("retry_after", h.failures.Wait(key)))
	}
}

// clientKey is the limiter key of the request's client: the client IP
// Caddy determined (trusted_proxies applied), else the connection's.
func clientKey(r *http.Request) string {
	if ip, _ := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string); ip != "" {
		return clientlimit.Key(ip)
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	return clientlimit.Key(host)
}
