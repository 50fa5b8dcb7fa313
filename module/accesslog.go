package module

import (
	"errors"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// A route request whose URI carries a query (wx.request's GET puts the
// login code, encryptedData and iv there) must not put that URI in a log:
// a login code is a bearer credential until its session expires. Caddy
// logs the URI as the client sent it, from a copy taken before any handler
// runs, in its access log and, when a handler returns an error (a dead
// upstream), in its error log, with or without a log directive. The
// handler cannot edit those copies, so for such requests it skips Caddy's
// access line (LogSkipVar) and writes its own with the query's values
// redacted, to the same access loggers, and answers an upstream error
// itself instead of handing it to Caddy's error log.

// privateURI is set up for a route request whose URI carries a query.
type privateURI struct {
	h     *Handler
	r     *http.Request
	rec   caddyhttp.ResponseRecorder
	start time.Time
}

// uriHasQuery reports whether the URI Caddy would log for r (the
// client's) carries a query.
func uriHasQuery(r *http.Request) bool {
	if or, ok := originalRequest(r); ok {
		return strings.IndexByte(or.RequestURI, '?') >= 0 || or.URL.RawQuery != ""
	}
	return strings.IndexByte(r.RequestURI, '?') >= 0 || r.URL.RawQuery != ""
}

// beginPrivateURI takes the request out of Caddy's access log and returns
// the writer to use from now on.
func (h *Handler) beginPrivateURI(w http.ResponseWriter, r *http.Request) (*privateURI, http.ResponseWriter) {
	caddyhttp.SetVar(r.Context(), caddyhttp.LogSkipVar, true)
	p := &privateURI{h: h, r: r, rec: caddyhttp.NewResponseRecorder(w, nil, nil), start: time.Now()}
	return p, p.rec
}

// end writes the handler's own access line, and answers err (from the
// handlers after this one) itself so that Caddy does not log the URI with
// it. It returns what ServeHTTP returns.
func (p *privateURI) end(err error) error {
	if err != nil {
		status := http.StatusInternalServerError
		var he caddyhttp.HandlerError
		if errors.As(err, &he) && he.StatusCode > 0 {
			status = he.StatusCode
		}
		if p.rec.Status() == 0 {
			p.rec.WriteHeader(status)
		}
		p.h.logger.Error("upstream request failed",
			zap.String("uri", redactedURI(p.r)),
			zap.Int("status", status),
			zap.Error(err))
	}
	for _, l := range p.h.accessLoggers(p.r) {
		level := zap.InfoLevel
		if p.rec.Status() >= 500 {
			level = zap.ErrorLevel
		}
		if c := l.Check(level, "handled request"); c != nil {
			c.Write(
				zap.Object("request", redactedRequest{p.r}),
				zap.Duration("duration", time.Since(p.start)),
				zap.Int("size", p.rec.Size()),
				zap.Int("status", p.rec.Status()),
				zap.String("redacted_by", "miniprogram"))
		}
	}
	return nil
}

// redactedURI is the client's URI with every query value replaced.
func redactedURI(r *http.Request) string {
	uri := r.RequestURI
	if or, ok := originalRequest(r); ok {
		uri = or.RequestURI
	}
	path, query, ok := strings.Cut(uri, "?")
	if !ok {
		return uri
	}
	var b strings.Builder
	b.Grow(len(uri))
	b.WriteString(path)
	b.WriteByte('?')
	for i, pair := range strings.Split(query, "&") {
		if i > 0 {
			b.WriteByte('&')
		}
		name, _, hasValue := strings.Cut(pair, "=")
		b.WriteString(name)
		if hasValue {
			b.WriteString("=REDACTED")
		}
	}
	return b.String()
}

// redactedRequest logs a request the way Caddy's access log does, with
// the URI redacted and without headers.
type redactedRequest struct{ r *http.Request }

func (rr redactedRequest) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	r := rr.r
	ip, port, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		ip, port = r.RemoteAddr, ""
	}
	enc.AddString("remote_ip", ip)
	enc.AddString("remote_port", port)
	if cip, ok := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string); ok {
		enc.AddString("client_ip", cip)
	}
	enc.AddString("proto", r.Proto)
	method, host := r.Method, r.Host
	if or, ok := originalRequest(r); ok {
		method, host = or.Method, or.Host
	}
	enc.AddString("method", method)
	enc.AddString("host", host)
	enc.AddString("uri", redactedURI(r))
	return nil
}

// accessLoggers are the loggers Caddy's server would write r's access line
// to (none when the server has no access logging), chosen as Caddy
// chooses them: the request's log_name, else the host's logger names.
func (h *Handler) accessLoggers(r *http.Request) []*zap.Logger {
	srv, _ := r.Context().Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server)
	if srv == nil || srv.Logs == nil {
		return nil
	}
	base := h.accessLog
	var names []string
	if vs, ok := caddyhttp.GetVar(r.Context(), caddyhttp.AccessLoggerNameVarKey).([]any); ok {
		for _, v := range vs {
			if s, ok := v.(string); ok {
				names = append(names, s)
			}
		}
	} else {
		host, _, err := net.SplitHostPort(r.Host)
		if err != nil {
			host = r.Host
		}
		names = loggerNamesFor(srv.Logs, strings.ToLower(host))
		if names == nil {
			if srv.Logs.SkipUnmappedHosts || hostSkipped(srv.Logs, host) {
				return nil
			}
			names = []string{srv.Logs.DefaultLoggerName}
		}
	}
	loggers := make([]*zap.Logger, 0, len(names))
	for _, n := range names {
		if n == "" {
			loggers = append(loggers, base)
		} else {
			loggers = append(loggers, base.Named(n))
		}
	}
	return loggers
}

// loggerNamesFor is the host's logger names (exact, then wildcard labels),
// nil when the host is not mapped.
func loggerNamesFor(lc *caddyhttp.ServerLogConfig, host string) []string {
	for k, v := range lc.LoggerNames {
		if strings.EqualFold(k, host) {
			return v
		}
	}
	labels := strings.Split(host, ".")
	for i := range labels {
		if labels[i] == "" {
			continue
		}
		labels[i] = "*"
		wild := strings.Join(labels, ".")
		for k, v := range lc.LoggerNames {
			if strings.EqualFold(k, wild) {
				return v
			}
		}
	}
	return nil
}

func hostSkipped(lc *caddyhttp.ServerLogConfig, host string) bool {
	for _, h := range lc.SkipHosts {
		if strings.EqualFold(h, host) {
			return true
		}
		if strings.HasPrefix(h, "*.") {
			if _, rest, ok := strings.Cut(host, "."); ok && strings.EqualFold(rest, h[2:]) {
				return true
			}
		}
	}
	return false
}
