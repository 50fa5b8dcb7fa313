package module

// The open-API gateway: `gateway <prefix>` relays a backend's calls to the
// platform's server API, {prefix}/wxa/msg_sec_check → the platform's
// /wxa/msg_sec_check, with the app's shared token (h.tokens, the token of
// the phone-code exchange: one per app across every instance sharing the
// store) added, so that no backend ever fetches a token. What is relayed,
// how, and when a call is retried is internal/gateway's; what the platform
// is (origin, token parameter, token-error numbers, paths never relayed) is
// its descriptor's (platform.GatewaySpec). This file wires it into the
// handler: the prefix and host mode, the internal-listener checks shared
// with compat (internal.go), metrics and the log line.
//
// Host mode (host_mode): a request whose Host is the platform's API host
// (GatewaySpec.Host) is relayed with its path as it is, whatever the
// path: for a backend that calls the platform's URL unchanged, its hosts
// file pointing that name at this (plain HTTP) listener.
//
// Logs: gateway requests are left out of Caddy's access log (a client may
// still send a token in the query string); the handler logs one line per
// request (method, API entry, status, errcode label, retried, duration) at
// DEBUG, or at ERROR when the gateway itself failed (no token, platform
// unreachable). Never the query string, the body or a token.

import (
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/gateway"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/mperr"
)

// gatewayServer is the provisioned gateway.
type gatewayServer struct {
	g           *gateway.Gateway
	prefix      string
	host        string // the API host in host mode; "" otherwise
	allowPublic bool
	logger      *zap.Logger
}

// validateGateway checks the gateway block (part of validate).
func (h *Handler) validateGateway() error {
	c := h.Gateway
	if c == nil {
		return nil
	}
	if h.Platform != "" && h.platformDesc().Gateway == nil {
		return fieldErr("gateway", "platform %q has no API gateway", h.Platform)
	}
	if err := checkPrefix("gateway", c.Prefix, "/mp-api"); err != nil {
		return err
	}
	for _, r := range []struct{ name, pattern string }{{"login", h.Login}, {"phone", h.Phone}, {"decrypt", h.Decrypt}} {
		if compatOverlaps(c.Prefix, r.pattern) {
			return fieldErr("gateway", "prefix %q overlaps the %s path %q", c.Prefix, r.name, r.pattern)
		}
	}
	if h.Compat != nil {
		p, q := c.Prefix, h.Compat.Prefix
		if p == q || strings.HasPrefix(p, q+"/") || strings.HasPrefix(q, p+"/") {
			return fieldErr("gateway", "prefix %q overlaps the compat prefix %q", p, q)
		}
	}
	if h.Platform != "" {
		if err := gateway.CheckAllow(h.platformDesc().Gateway, c.Allow); err != nil {
			return &FieldError{Field: "gateway.allow", Err: err}
		}
	}
	if c.MaxBuffer < 0 || c.MaxBuffer > gateway.MaxMaxBuffer {
		return fieldErr("gateway.max_buffer", "%d is out of range: want 1 byte to %d MiB (0: the default, 1 MiB)", c.MaxBuffer, gateway.MaxMaxBuffer>>20)
	}
	return nil
}

// gatewayInternal describes the gateway for the internal-listener checks.
func (h *Handler) gatewayInternal() internalEndpoints {
	return internalEndpoints{
		name: "gateway", what: "the API gateway", they: "it", does: "calls the platform's API with the app's access token for whoever reaches it",
		answer:      "the API gateway answers",
		allowPublic: h.Gateway.AllowPublic,
	}
}

func (h *Handler) provisionGateway(ctx caddy.Context) error {
	c := h.Gateway
	if c == nil {
		return nil
	}
	if err := h.checkInternalListeners(ctx, h.gatewayInternal()); err != nil {
		return err
	}
	spec := h.platformDesc().Gateway
	if h.tokens == nil {
		// provisionAccessToken (which runs first) sets it up.
		return fieldErr("gateway", "no shared %s token for the gateway", h.platformDesc().Title)
	}
	g, err := gateway.New(gateway.Options{
		Spec:      spec,
		Origin:    h.APIBase,
		Allow:     c.Allow,
		MaxBuffer: c.MaxBuffer,
		Tokens:    h.tokens,
		Timeout:   time.Duration(h.PlatformTimeout),
		Logger:    h.logger.Named("gateway"),
	})
	if err != nil {
		return &FieldError{Field: "gateway", Err: err}
	}
	s := &gatewayServer{g: g, prefix: c.Prefix, allowPublic: c.AllowPublic, logger: h.logger.Named("gateway")}
	if c.HostMode {
		s.host = spec.Host
	}
	h.gw = s
	h.logger.Info("API gateway enabled: calls under its prefix go to the platform with the app's access token; keep this listener internal",
		zap.String("prefix", c.Prefix), zap.Strings("allow", c.Allow), zap.Bool("host_mode", c.HostMode))
	return nil
}

// gatewayMatches: p is under the gateway's prefix.
func (h *Handler) gatewayMatches(p string) bool {
	if h.gw == nil {
		return false
	}
	return p == h.gw.prefix || strings.HasPrefix(p, h.gw.prefix+"/")
}

// gatewayHost: host mode, and r is for the platform's API host.
func (h *Handler) gatewayHost(r *http.Request) bool {
	if h.gw == nil || h.gw.host == "" {
		return false
	}
	host := r.Host
	if hh, _, err := net.SplitHostPort(host); err == nil {
		host = hh
	}
	return strings.EqualFold(host, h.gw.host)
}

// serveGateway relays a gateway request and sets res.
func (h *Handler) serveGateway(w http.ResponseWriter, r *http.Request, res *requestResult) {
	start := time.Now()
	caddyhttp.SetVar(r.Context(), caddyhttp.LogSkipVar, true)
	res.route = labelGateway
	if !h.gw.allowPublic {
		if local, why, ok := internalRequest(r); !ok {
			res.result = compatResultForbidden
			setErrorVar(r, res.result)
			h.refusals.note(res.result, routeLabels[res.route])
			refuseNotInternal(w, r, h.gw.logger, h.gatewayInternal(), local, why)
			return
		}
	}
	p := r.URL.EscapedPath()
	if !h.gatewayHost(r) {
		if rest, ok := strings.CutPrefix(p, h.gw.prefix); ok {
			p = rest
		} else {
			p = "" // the prefix came escaped: matches nothing
		}
	}
	c := h.gw.g.Relay(w, r, p)
	took := time.Since(start)

	metrics.gatewayCalls.WithLabelValues(h.Platform, c.API, c.Errcode).Inc()
	metrics.gatewayTime.WithLabelValues(h.Platform, c.API).Observe(took.Seconds())
	if c.Refreshed {
		outcome := "not_retried"
		if c.Retried && c.Errcode == "0" {
			outcome = "retried"
		}
		metrics.gatewayRetries.WithLabelValues(h.Platform, c.API, outcome).Inc()
	}
	level, msg := zap.DebugLevel, "gateway request"
	switch {
	case c.Errcode == gateway.ErrcodeForbidden:
		res.result = compatResultForbidden
		msg = "gateway request refused"
	case c.Err != nil:
		e := mperr.From(c.Err)
		res.result = string(e.Code)
		if e.Status() >= 500 {
			level, msg = zap.ErrorLevel, "gateway request failed"
		} else {
			msg = "gateway request refused"
		}
	}
	if res.result != "" {
		setErrorVar(r, res.result)
		if level != zap.ErrorLevel {
			h.refusals.note(res.result, routeLabels[res.route])
		}
	}
	ce := h.gw.logger.Check(level, msg)
	if ce == nil {
		return
	}
	fields := []zap.Field{
		zap.String("method", r.Method),
		zap.String("api", c.API),
		zap.Int("status", c.Status),
		zap.String("errcode", c.Errcode),
		zap.Bool("retried", c.Retried),
		zap.Bool("streamed", c.Streamed),
		zap.Duration("took", took),
	}
	if c.API == gateway.APIOther {
		// The path refused (no query string: it may carry a token).
		fields = append(fields, zap.String("path", r.URL.Path))
	}
	if c.Err != nil {
		fields = append(fields, zap.NamedError("cause", c.Err))
	}
	ce.Write(fields...)
}
