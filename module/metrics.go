package module

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/mperr"
)

// Metrics, created once and registered into each config's registry (Caddy
// serves it on the admin endpoint's /metrics). Label values are bounded:
// platforms, routes, README error codes, store operations; never openids
// or codes.
var metrics = struct {
	code2session     *prometheus.CounterVec
	code2sessionTime *prometheus.HistogramVec
	requests         *prometheus.CounterVec
	dedup            *prometheus.CounterVec
	storeErrors      *prometheus.CounterVec
	storeTime        *prometheus.HistogramVec
	tokenCalls       *prometheus.CounterVec
	refused          *prometheus.CounterVec
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
		Help: "Requests on the handler's routes, by route and result (ok or README error code).",
	}, []string{"platform", "route", "result"}),
	dedup: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "miniprogram", Name: "exchange_dedup_total",
		Help: "Logins answered without a code2session call of their own: store (code seen before), singleflight (same process, at once), instance (another instance exchanged it).",
	}, []string{"platform", "kind"}),
	storeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "miniprogram", Name: "store_errors_total",
		Help: "Session store operations that failed (store unreachable).",
	}, []string{"store", "op"}),
	storeTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "caddy", Subsystem: "miniprogram", Name: "store_duration_seconds",
		Help:    "Latency of session store operations.",
		Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .1, .5, 1},
	}, []string{"store", "op"}),
	tokenCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "miniprogram", Name: "phone_code_total",
		Help: "WeChat phone-code exchanges (getuserphonenumber), by outcome.",
	}, []string{"outcome"}),
	refused: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "miniprogram", Name: "refused_total",
		Help: "Requests refused before any platform call to bound abuse, by reason (too_many_failures: the client's failed code exchanges are over max_failed_exchanges).",
	}, []string{"platform", "reason"}),
}

func registerMetrics(reg *prometheus.Registry) error {
	if reg == nil {
		return nil
	}
	for _, c := range []prometheus.Collector{
		metrics.code2session, metrics.code2sessionTime, metrics.requests, metrics.dedup,
		metrics.storeErrors, metrics.storeTime, metrics.tokenCalls, metrics.refused,
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

// observeStore records one store operation.
func (h *Handler) observeStore(op string, start time.Time, err error) {
	metrics.storeTime.WithLabelValues(h.Store.Type, op).Observe(time.Since(start).Seconds())
	if err != nil && storeFailed(err) {
		metrics.storeErrors.WithLabelValues(h.Store.Type, op).Inc()
	}
}

var routeNames = [...]string{routeNone: "none", routeLogin: "login", routePhone: "phone", routeDecrypt: "decrypt", routeCompat: "compat", routeUnclear: "unclear"}
