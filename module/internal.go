package module

// Endpoints that must stay on internal listeners (compat, gateway): the
// check of the server's listen addresses at provisioning and of each
// request's connection, shared.
//
// Provisioning refuses such endpoints on a server with any listen address
// that is not loopback (127.0.0.0/8, ::1, localhost) or a unix socket — a
// Caddyfile site "http://127.0.0.1:9001" without "bind 127.0.0.1" listens
// on every interface — unless the operator sets allow_public (logged at
// WARN). As defence in depth, each request must also have come in on a
// loopback or unix connection, and not through a proxy on the same host,
// unless allow_public is set; others get 403 and never reach an endpoint.
// A proxy is told by the headers proxies add (Forwarded, X-Forwarded-For,
// X-Real-IP, Via) and by Caddy's client_ip (with trusted_proxies): a
// public site on the same host that proxies to the internal listener
// (Caddy's reverse_proxy, or nginx with the usual proxy headers) would
// otherwise come in on a loopback connection. A proxy that adds no header
// at all cannot be told from the backend: never route public traffic to
// the internal listener.

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
)

// internalEndpoints names endpoints for the checks' messages.
type internalEndpoints struct {
	name   string // the directive ("compat")
	what   string // "compat endpoints"
	they   string // the pronoun of what: "they" or "it"
	does   string // what makes them sensitive: "hand out session keys and access tokens"
	answer string // "the compat endpoints answer"
	// allowPublic: the block's allow_public.
	allowPublic bool
}

// checkInternalListeners refuses the endpoints on a server that listens
// on any address that is not loopback or a unix socket, unless
// allowPublic. The handler's own server is known at provisioning: the
// http app provisions each server's routes (subroutes, error routes and
// named routes included) with the server in the context
// (caddyhttp.ServerCtxKey), after replacing the placeholders in its listen
// addresses. A handler provisioned outside any server (not done by Caddy
// itself) cannot check: it relies on the per-request check
// (refuseNotInternal).
func (h *Handler) checkInternalListeners(ctx caddy.Context, e internalEndpoints) error {
	srv, _ := ctx.Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server)
	if srv == nil {
		if !e.allowPublic {
			h.logger.Warn(e.name + ": cannot see this handler's server to check its listen addresses; " + e.name + " requests on other than loopback or unix connections will be refused")
		}
		return nil
	}
	public := publicListeners(srv.Listen)
	switch {
	case len(public) == 0:
		if e.allowPublic {
			h.logger.Warn(e.name+" allow_public is set, though every listener is loopback or a unix socket", zap.Strings("listen", srv.Listen))
		}
		return nil
	case e.allowPublic:
		h.logger.Warn(e.what+" on a listener other hosts can reach (allow_public): "+e.they+" "+e.does+"; keep that network closed to anyone but the backend",
			zap.Strings("listen", srv.Listen), zap.Strings("not_loopback", public))
		return nil
	}
	return fmt.Errorf("miniprogram: %s %s, but this server listens on %s, "+
		"which is not loopback (127.0.0.0/8, ::1) or a unix socket: bind the site to loopback (Caddyfile: bind 127.0.0.1; "+
		"a site address like http://127.0.0.1:9001 alone listens on every interface), or, if other hosts must reach it "+
		"on purpose, set allow_public in the %s block (JSON \"allow_public\": true)", e.what, e.does, strings.Join(public, ", "), e.name)
}

// publicListeners returns the listen addresses that are not loopback
// (127.0.0.0/8, ::1, localhost) or a unix socket, as written, with a note
// for those that are every interface. No address at all counts as public
// (nothing shows it is not); so do a file descriptor (fd/) whose socket
// cannot be seen here and a host name other than localhost, which is
// resolved only when Caddy listens.
func publicListeners(listen []string) []string {
	if len(listen) == 0 {
		return []string{"(no listen address: the default, every interface)"}
	}
	var public []string
	for _, l := range listen {
		na, err := caddy.ParseNetworkAddress(l)
		switch {
		case err != nil:
			public = append(public, l+" (unparsable)")
		case na.IsUnixNetwork():
		case na.IsFdNetwork():
			public = append(public, l+" (a file descriptor: cannot tell)")
		case na.Host == "":
			public = append(public, l+" (every interface)")
		case na.Host == "localhost":
		default:
			ip, perr := netip.ParseAddr(na.Host)
			if perr != nil || !ip.Unmap().IsLoopback() {
				if perr == nil && ip.IsUnspecified() {
					l += " (every interface)"
				}
				public = append(public, l)
			}
		}
	}
	return public
}

// loopbackConn reports whether r came in on a loopback or unix connection,
// and the local address it came in on.
func loopbackConn(r *http.Request) (string, bool) {
	switch a := r.Context().Value(http.LocalAddrContextKey).(type) {
	case nil:
		return "", false
	case *net.UnixAddr:
		return a.String(), true
	case *net.TCPAddr:
		return a.String(), a.IP.IsLoopback()
	case *net.UDPAddr: // HTTP/3
		return a.String(), a.IP.IsLoopback()
	case net.Addr:
		ap, err := netip.ParseAddrPort(a.String())
		return a.String(), err == nil && ap.Addr().Unmap().IsLoopback()
	}
	return "", false
}

// proxyHeaders are the request headers a proxy adds: a request carrying
// one was relayed by a proxy, whatever connection it came in on.
var proxyHeaders = []string{"Forwarded", "X-Forwarded-For", "X-Real-Ip", "Via"}

// internalRequest reports whether r may reach internal endpoints: it came
// in on a loopback or unix connection, carries no proxy header, and
// Caddy's client_ip (when set) is loopback. Otherwise why says what was
// wrong (for the log) and local is the connection's local address.
func internalRequest(r *http.Request) (local, why string, ok bool) {
	local, ok = loopbackConn(r)
	if !ok {
		return local, "it came in on an address other than loopback or a unix socket", false
	}
	for _, h := range proxyHeaders {
		if _, found := r.Header[h]; found {
			return local, "it carries " + h + ": it came through a proxy", false
		}
	}
	if ip, _ := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string); ip != "" {
		if a, err := netip.ParseAddr(ip); err == nil && !a.Unmap().IsLoopback() {
			return local, "its client address (client_ip) is not loopback", false
		}
	}
	return local, "", true
}

// refuseNotInternal answers a request that internalRequest refused,
// without allow_public (the listen check at provisioning leaves only a
// proxy on the same host, a handler provisioned outside a server, or a
// listener that is not what its address said).
func refuseNotInternal(w http.ResponseWriter, r *http.Request, logger *zap.Logger, e internalEndpoints, local, why string) {
	if c := logger.Check(zap.DebugLevel, e.name+" request refused: "+why+", and allow_public is not set"); c != nil {
		c.Write(zap.String("method", r.Method), zap.String("path", r.URL.Path), zap.String("local_addr", local))
	}
	body := `{"error":"forbidden","message":"` + e.answer + ` on loopback listeners only, to requests that did not come through a proxy"}` + "\n"
	hdr := w.Header()
	hdr.Set("Content-Type", "application/json; charset=utf-8")
	hdr.Set("Content-Length", strconv.Itoa(len(body)))
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusForbidden)
	_, _ = io.WriteString(w, body)
}
