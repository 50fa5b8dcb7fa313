package module

// The open-API gateway: `gateway <prefix>` relays a backend's calls to the
// platform's server API, {prefix}/wxa/msg_sec_check → the platform's
// /wxa/msg_sec_check, with the app's shared token (one per app across
// every instance sharing the store) added, so that no backend ever fetches
// a token. A platform with several upstreams (Douyin: open.douyin.com with
// the client token, developer.toutiao.com with the mini-app access_token)
// is called with the upstream's host first:
// {prefix}/open.douyin.com/api/apps/v1/censor/image/. What is relayed,
// how, and when a call is retried is internal/gateway's; what the platform
// is (upstreams, token carriers, token-error numbers, paths never relayed)
// is its descriptor's (platform.GatewaySpec). This file wires it into the
// handler: each upstream's token (the platform's Token is h.tokens, the
// phone-code exchange's, when that is set up; any other is a manager of
// the gateway's own, under its own store name), the prefix and host mode,
// the internal-listener checks shared with compat (internal.go), metrics
// and the log line.
//
// Host mode (host_mode): a request whose Host is one of the platform's API
// hosts (GatewayKind.Host) is relayed with its path as it is, whatever the
// path: for a backend that calls the platform's URL unchanged, its hosts
// file pointing that name at this (plain HTTP) listener.
//
// Logs: gateway requests are left out of Caddy's access log (a client may
// still send a token in the query string); the handler logs one line per
// request (method, API entry, status, errcode label, retried, duration) at
// DEBUG, or at ERROR when the gateway itself failed (no token, platform
// unreachable). Never the query string, the body or a token.

import (
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/accesstoken"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/gateway"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/mperr"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/platform"
)

// gatewayServer is the provisioned gateway.
type gatewayServer struct {
	g           *gateway.Gateway
	prefix      string
	hostMode    bool
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
	return gatewayEndpoints(h.Gateway.AllowPublic)
}

// gatewayEndpoints describes a gateway for the internal-listener checks.
func gatewayEndpoints(allowPublic bool) internalEndpoints {
	return internalEndpoints{
		name: "gateway", what: "the API gateway", they: "it", does: "calls the platform's API with the app's access token for whoever reaches it",
		answer:      "the API gateway answers",
		allowPublic: allowPublic,
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
	tokens, err := h.gatewayTokens(ctx, spec)
	if err != nil {
		return err
	}
	g, err := gateway.New(gateway.Options{
		Spec:      spec,
		Origin:    h.APIBase,
		Allow:     c.Allow,
		MaxBuffer: c.MaxBuffer,
		Tokens:    tokens,
		Timeout:   time.Duration(h.PlatformTimeout),
		Logger:    h.logger.Named("gateway"),
	})
	if err != nil {
		return &FieldError{Field: "gateway", Err: err}
	}
	h.gw = &gatewayServer{g: g, prefix: c.Prefix, hostMode: c.HostMode, allowPublic: c.AllowPublic, logger: h.logger.Named("gateway")}
	h.logger.Info("API gateway enabled: calls under its prefix go to the platform with the app's access token; keep this listener internal",
		zap.String("prefix", c.Prefix), zap.Strings("allow", c.Allow), zap.Bool("host_mode", c.HostMode))
	return nil
}

// gatewayTokens gives each of the spec's kinds its token source, by the
// kind's token name: the platform's Token is h.tokens when the phone-code
// exchange (or the login) set it up, else a manager of the gateway's own
// under the same store name (so still one token per app); any other token
// (GatewaySpec.Tokens) gets a manager under its own store name.
func (h *Handler) gatewayTokens(ctx caddy.Context, spec *platform.GatewaySpec) (map[string]gateway.TokenSource, error) {
	d := h.platformDesc()
	out := map[string]gateway.TokenSource{}
	for _, k := range spec.Kinds {
		if _, ok := out[k.Token]; ok {
			continue
		}
		ts := d.Token
		if k.Token != "" && (ts == nil || k.Token != ts.Name) {
			ts = nil
			for _, t := range spec.Tokens {
				if t.Name == k.Token {
					ts = t
				}
			}
		}
		if ts == nil {
			return nil, fieldErr("gateway", "no %s token for the gateway's %s APIs", d.Title, k.Name)
		}
		if ts == d.Token && h.tokens != nil {
			out[k.Token] = h.tokens
			continue
		}
		m, err := h.newTokenManager(ctx, ts)
		if err != nil {
			return nil, err
		}
		out[k.Token] = m
	}
	return out, nil
}

// newTokenManager returns a manager of the token ts describes, as
// provisionAccessToken makes the platform's.
func (h *Handler) newTokenManager(ctx caddy.Context, ts *platform.TokenSpec) (*accesstoken.Manager, error) {
	opts, err := h.accessTokenOptions()
	if err != nil {
		return nil, err
	}
	tc, ok := ts.Tokens(h.client)
	if !ok {
		return nil, fmt.Errorf("miniprogram: the %s client cannot fetch its %s", h.Platform, ts.Title)
	}
	if !ts.Modes {
		opts.Mode = accesstoken.ModeClassic
	} else if _, ok := tc.(platform.StableTokenClient); !ok {
		return nil, fmt.Errorf("miniprogram: the %s client cannot fetch stable tokens", h.Platform)
	}
	opts.Name = ts.Name
	opts.Logger = ctx.Logger().Named(ts.Name)
	return accesstoken.New(tc, h.store, opts), nil
}

// gatewayMatches: p is under the gateway's prefix.
func (h *Handler) gatewayMatches(p string) bool {
	if h.gw == nil {
		return false
	}
	return p == h.gw.prefix || strings.HasPrefix(p, h.gw.prefix+"/")
}

// gatewayHost: host mode, and r is for one of the platform's API hosts.
func (h *Handler) gatewayHost(r *http.Request) bool {
	if h.gw == nil || !h.gw.hostMode {
		return false
	}
	_, ok := h.gw.g.HostPath(requestHost(r), "/")
	return ok
}

// requestHost is r's Host without its port.
func requestHost(r *http.Request) string {
	host := r.Host
	if hh, _, err := net.SplitHostPort(host); err == nil {
		host = hh
	}
	return host
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
	if h.gatewayHost(r) {
		p, _ = h.gw.g.HostPath(requestHost(r), p)
	} else {
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
		if c.Retried && !c.RetryRefused {
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
