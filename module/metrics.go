package module

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/mperr"
)

// Metrics, created once and registered into each config's registry (Caddy
// serves it on the admin endpoint's /metrics). Label values are bounded:
// platforms, route labels, README error codes, store kinds and operations;
// never openids or codes. Requests are counted in one place (countRequest,
// deferred by ServeHTTP), store operations in one place (timedStore, the
// handler's store).
var metrics = struct {
	code2session     *prometheus.CounterVec
	code2sessionTime *prometheus.HistogramVec
	requests         *prometheus.CounterVec
	dedup            *prometheus.CounterVec
	storeErrors      *prometheus.CounterVec
	storeTime        *prometheus.HistogramVec
	tokenCalls       *prometheus.CounterVec
	refused          *prometheus.CounterVec
	gatewayCalls     *prometheus.CounterVec
	gatewayTime      *prometheus.HistogramVec
	gatewayRetries   *prometheus.CounterVec
}{
	code2session: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "miniprogram", Name: "code2session_total",
		Help: "code2session calls to the platform, by platform and outcome (ok or README error code).",
	}, []string{"platform", "outcome"}),
	code2sessionTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "caddy", Subsystem: "miniprogram", Name: "code2session_duration_seconds",
		Help:    "Latency of code2session calls, retries included.",
		Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"platform"}),
	requests: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "miniprogram", Name: "requests_total",
		Help: "Requests on the handler's routes and compat endpoints, by route and result (ok, preflight, or the error code answered).",
	}, []string{"platform", "route", "result"}),
	dedup: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "miniprogram", Name: "exchange_dedup_total",
		Help: "Logins answered without a code2session call of their own: store (code seen before), singleflight (same process, at once), instance (another instance exchanged it).",
	}, []string{"platform", "kind"}),
	storeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "miniprogram", Name: "store_errors_total",
		Help: "Session store operations that failed (store unreachable; a plain not-found is no failure).",
	}, []string{"store", "op"}),
	storeTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "caddy", Subsystem: "miniprogram", Name: "store_duration_seconds",
		Help:    "Latency of session store operations.",
		Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .1, .5, 1},
	}, []string{"store", "op"}),
	tokenCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "miniprogram", Name: "phone_code_total",
		Help: "Phone-code exchanges (WeChat getuserphonenumber, Douyin get_phonenumber_info), by outcome.",
	}, []string{"outcome"}),
	refused: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "miniprogram", Name: "refused_total",
		Help: "Requests refused before any platform call to bound abuse, by reason (too_many_failures: the client's failed code exchanges are over max_failed_exchanges).",
	}, []string{"platform", "reason"}),
	gatewayCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "miniprogram", Name: "gateway_requests_total",
		Help: "Requests to the API gateway, by API (the allow-list entry matched, or \"(refused)\") and errcode (0, a token or rate-limit error number, -1, other, none: not inspected, http_error, forbidden, gateway_error).",
	}, []string{"platform", "api", "errcode"}),
	gatewayTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "caddy", Subsystem: "miniprogram", Name: "gateway_duration_seconds",
		Help:    "Latency of API gateway requests, the answer relayed whole and a retry included, by API.",
		Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	}, []string{"platform", "api"}),
	gatewayRetries: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "miniprogram", Name: "gateway_token_errors_total",
		Help: "API calls the platform refused for their token, by API and what followed: retried (sent again with the next token), not_retried (the body was streamed, or the retry was refused too).",
	}, []string{"platform", "api", "outcome"}),
}

func registerMetrics(reg *prometheus.Registry) error {
	if reg == nil {
		return nil
	}
	for _, c := range []prometheus.Collector{
		metrics.code2session, metrics.code2sessionTime, metrics.requests, metrics.dedup,
		metrics.storeErrors, metrics.storeTime, metrics.tokenCalls, metrics.refused,
		metrics.gatewayCalls, metrics.gatewayTime, metrics.gatewayRetries,
	} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return err
			}
		}
	}
	return nil
}

// outcome is "ok" or the README error code of err.
func outcome(err error) string {
	if err == nil {
		return "ok"
	}
	return string(mperr.From(err).Code)
}

// routeLabel is the route label of requests_total: the handler's routes,
// a request whose route could not be told, and the compat endpoints by
// kind. A fixed set: the labels stay bounded whatever the paths.
type routeLabel uint8

const (
	labelLogin routeLabel = iota
	labelPhone
	labelDecrypt
	labelUnclear
	labelCompatCode2Session
	labelCompatToken
	labelCompatOther
	labelBound
	labelSession
	labelProtected
	labelLogout
	labelGateway
	numRouteLabels
)

var routeLabels = [numRouteLabels]string{
	labelLogin:              "login",
	labelPhone:              "phone",
	labelDecrypt:            "decrypt",
	labelUnclear:            "unclear",
	labelCompatCode2Session: "compat_code2session",
	labelCompatToken:        "compat_token",
	labelCompatOther:        "compat_other",
	labelBound:              "bound",
	labelSession:            "session",
	labelProtected:          "protected",
	labelLogout:             "logout",
	labelGateway:            "gateway",
}

// labelOf is the route label of a request on one of the handler's routes
// (serveCompat sets a compat request's own).
func labelOf(rt route) routeLabel {
	switch rt {
	case routeLogin:
		return labelLogin
	case routePhone:
		return labelPhone
	case routeDecrypt:
		return labelDecrypt
	}
	return labelUnclear
}

// resultPreflight is the result of a CORS preflight on a route: passed on
// untouched, neither a success of the route nor a failure.
const resultPreflight = "preflight"

// Results of a request off the routes carrying a token (route "bound" for
// the upstream's bound token, "session" for a session token the handler
// issued; "logout" on a logout path): ok (identity given; on a logout
// path, the session ended), or the token has no session, or the store
// could not be reached (both pass without identity, but a logout path
// answers 503 store_unavailable). On a require_session path (route
// "protected") the results are ok or the error code answered
// (session_not_found, store_unavailable).
const (
	resultNoSession        = "no_session"
	resultStoreUnavailable = "store_unavailable"
)

// requestResult is what requests_total counts for one request: its route
// label and its result ("" for ok, else the error code answered).
type requestResult struct {
	route  routeLabel
	result string
}

// countRequest counts one request. ServeHTTP defers it for every request
// on a route or compat endpoint, so that each is counted exactly once,
// whichever way it leaves.
func (h *Handler) countRequest(res *requestResult) {
	if res.result == "" {
		h.requestsOK[res.route].Inc()
		return
	}
	metrics.requests.WithLabelValues(h.Platform, routeLabels[res.route], res.result).Inc()
}
