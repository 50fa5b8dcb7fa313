package module

// The API gateway in a handler of several apps.
//
// The gateway block is shared configuration (prefix, allow, max_buffer,
// host_mode, allow_public); each app whose platform has a gateway
// (WeChat, Douyin) gets its own relay with its own shared tokens, in its
// own store scope, exactly as if it were configured alone (appHandler
// hands it the block). A gateway request (under the prefix, or in host
// mode for one of the apps' platforms' API hosts) is a backend's call:
// it names its app by select_app's header or query selector only (the
// Referer is a mini-program's, and the path under the prefix is the
// platform's API path), and that app relays it. The selector's header
// and query parameter are removed before it is relayed. A gateway request
// that names no app, or an app without a relay, is answered 400
// unknown_app without a platform call. The internal-listener check comes
// first, as for one app.
//
// The allow-list is shared and each entry goes to the apps whose platform
// it is written for: an entry starting with an API host of a platform of
// several hosts (/open.douyin.com/..., /developer.toutiao.com/...) is
// that platform's; any other entry is for the platforms of one host
// (WeChat's paths as they are). An entry no app's platform takes is
// refused at load; each app's share is then checked by its platform's
// rules (never-relayed paths, clean paths). An app whose platform takes
// no entry has no relay.

import (
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/mperr"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/platform"
)

// appsGatewaySpecs are the gateway descriptions of the apps' platforms
// (nil for a platform without a gateway), by app index.
func (h *Handler) appsGatewaySpecs() []*platform.GatewaySpec {
	specs := make([]*platform.GatewaySpec, len(h.Apps))
	for i := range h.Apps {
		if d, ok := platform.Lookup(h.Apps[i].Platform); ok {
			specs[i] = d.Gateway
		}
	}
	return specs
}

// gatewayHosts are the API hosts of the platforms of several hosts among
// specs: an allow-list entry starting with one is that platform's.
func gatewayHosts(specs []*platform.GatewaySpec) []string {
	var hosts []string
	for _, s := range specs {
		if s == nil || len(s.Kinds) < 2 {
			continue
		}
		for _, k := range s.Kinds {
			hosts = append(hosts, k.Name)
		}
	}
	return hosts
}

// allowedFor reports whether allow-list entry a is for a platform of
// gateway spec (see the file comment).
func allowedFor(spec *platform.GatewaySpec, hosts []string, a string) bool {
	if spec == nil || len(spec.Kinds) == 0 {
		return false
	}
	first, _, _ := strings.Cut(strings.TrimPrefix(a, "/"), "/")
	if len(spec.Kinds) > 1 {
		return slices.ContainsFunc(spec.Kinds, func(k platform.GatewayKind) bool { return k.Name == first })
	}
	return !slices.Contains(hosts, first)
}

// appGateway is app i's share of the gateway block: a copy with the
// allow-list entries for its platform, or nil when its platform has no
// gateway or takes no entry.
func (h *Handler) appGateway(i int) *GatewayConfig {
	if h.Gateway == nil {
		return nil
	}
	specs := h.appsGatewaySpecs()
	if specs[i] == nil {
		return nil
	}
	hosts := gatewayHosts(specs)
	c := *h.Gateway
	c.Allow = nil
	for _, a := range h.Gateway.Allow {
		if allowedFor(specs[i], hosts, a) {
			c.Allow = append(c.Allow, a)
		}
	}
	if len(c.Allow) == 0 {
		return nil
	}
	return &c
}

// validateAppsGateway checks the gateway block of a handler of several
// apps against the apps, once they passed their own rules (validateGateway
// checked its shared rules before; each app's share is checked by its own
// validate).
func (h *Handler) validateAppsGateway() error {
	if !slices.ContainsFunc(h.SelectApp, func(s AppSelector) bool { return s.By == SelectByHeader || s.By == SelectByQuery }) {
		return fieldErr("gateway", "needs select_app header or query: a backend's call names its app by them (e.g. X-Mp-App: tt); the Referer and the path do not apply to it")
	}
	specs := h.appsGatewaySpecs()
	var with []string
	for i, s := range specs {
		if s != nil {
			with = append(with, h.Apps[i].Platform)
		}
	}
	if len(with) == 0 {
		return fieldErr("gateway", "none of the apps' platforms has an API gateway")
	}
	if len(h.Gateway.Allow) == 0 {
		return fieldErr("gateway.allow", "needs at least one API path (allow /wxa/msg_sec_check ...)")
	}
	hosts := gatewayHosts(specs)
	for _, a := range h.Gateway.Allow {
		if !slices.ContainsFunc(specs, func(s *platform.GatewaySpec) bool { return allowedFor(s, hosts, a) }) {
			want := "a platform of one API host takes an API path as it is (/wxa/msg_sec_check)"
			if len(hosts) > 0 {
				want += "; a platform of several starts it with its host (" + strings.Join(hosts, ", ") + ")"
			}
			return fieldErr("gateway.allow", "API path %q is for none of the apps' platforms (%s): %s", a, strings.Join(slices.Compact(slices.Sorted(slices.Values(with))), ", "), want)
		}
	}
	return nil
}

// gatewayRequest reports whether r is a gateway request: under the
// prefix, or, in host mode, for an API host of an app's platform.
func (s *appSet) gatewayRequest(r *http.Request) bool {
	if s.gateway == nil {
		return false
	}
	if p := r.URL.Path; p == s.gateway.Prefix || strings.HasPrefix(p, s.gateway.Prefix+"/") {
		return true
	}
	if !s.gateway.HostMode {
		return false
	}
	for _, a := range s.apps {
		if a.h.gatewayHost(r) {
			return true
		}
	}
	return false
}

// serveGateway serves a gateway request (the boundary applied, the
// selection read): the internal-listener check, then the app its header
// or query selector names relays it.
func (s *appSet) serveGateway(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, sel selection, issued string) error {
	lead := s.lead
	if !s.gateway.AllowPublic {
		if local, why, ok := internalRequest(r); !ok {
			caddyhttp.SetVar(r.Context(), caddyhttp.LogSkipVar, true)
			res := requestResult{route: labelGateway, result: compatResultForbidden}
			setErrorVar(r, res.result)
			lead.refusals.note(res.result, routeLabels[res.route])
			refuseNotInternal(w, r, s.logger.Named("gateway"), gatewayEndpoints(false), local, why)
			lead.countRequest(&res)
			return nil
		}
	}
	var a *app
	for i, x := range s.selectors {
		if (x.By == SelectByHeader || x.By == SelectByQuery) && sel.values[i] != "" {
			if a = s.byName[sel.values[i]]; a != nil {
				break
			}
		}
	}
	s.strip(r)
	if a == nil || a.h.gw == nil {
		caddyhttp.SetVar(r.Context(), caddyhttp.LogSkipVar, true)
		var err error
		if a == nil {
			err = mperr.Newf(mperr.UnknownApp, "this gateway request names none of the configured apps (select_app: %s; e.g. X-Mp-App: <app name>)", s.describeFor(SelectByHeader, SelectByQuery))
		} else {
			err = mperr.Newf(mperr.UnknownApp, "app %s has no API gateway (its platform %s has none, or no allow entry is for it)", a.name, a.h.Platform)
		}
		res := requestResult{route: labelGateway}
		res.result = lead.fail(w, r, res.route, err)
		lead.countRequest(&res)
		return nil
	}
	return a.h.serveRouted(w, r, next, routeGateway, issued)
}

// describeFor is select_app's selectors of the given kinds as a message.
func (s *appSet) describeFor(kinds ...string) string {
	var parts []string
	for _, x := range s.selectors {
		if slices.Contains(kinds, x.By) {
			parts = append(parts, strings.TrimSpace(x.By+" "+x.Name))
		}
	}
	return strings.Join(parts, ", ")
}

// gatewayApps are the names of the apps with a relay, for the log line.
func (s *appSet) gatewayApps() []string {
	var names []string
	for _, a := range s.apps {
		if a.h.gw != nil {
			names = append(names, fmt.Sprintf("%s:%s", a.h.Platform, a.name))
		}
	}
	return names
}
