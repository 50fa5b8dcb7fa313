package module

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func TestPublicListeners(t *testing.T) {
	for _, c := range []struct {
		listen []string
		public string // the public ones, joined with |
	}{
		{[]string{"127.0.0.1:9001"}, ""},
		{[]string{"127.0.0.2:9001", "[::1]:9001", "localhost:9001", "tcp4/127.0.0.1:9001-9003"}, ""},
		{[]string{"unix//run/caddy/compat.sock", "unix//run/x.sock|0222", "unixpacket//tmp/y"}, ""},
		{[]string{"[::ffff:127.0.0.1]:9001"}, ""},
		{[]string{":9001"}, ":9001 (every interface)"},
		{[]string{"0.0.0.0:9001"}, "0.0.0.0:9001 (every interface)"},
		{[]string{"[::]:9001"}, "[::]:9001 (every interface)"},
		{[]string{"127.0.0.1:9001", "10.0.0.5:9001"}, "10.0.0.5:9001"},
		{[]string{"192.168.1.2:80"}, "192.168.1.2:80"},
		{[]string{"example.com:80"}, "example.com:80"},
		{[]string{"fd/3"}, "fd/3 (a file descriptor: cannot tell)"},
		{nil, "(no listen address: the default, every interface)"},
	} {
		if got := strings.Join(publicListeners(c.listen), "|"); got != c.public {
			t.Errorf("%q: public %q, want %q", c.listen, got, c.public)
		}
	}
}

// compatHandler provisions a compat-only handler as if on a server with
// the given listen addresses (nil: outside any server).
func compatHandler(t *testing.T, listen []string, allowPublic bool) (*Handler, error) {
	t.Helper()
	h := &Handler{Platform: "douyin", AppID: "ttdemoapp0000001", AppSecret: "s", APIBase: "http://127.0.0.1:1",
		Store: &StoreConfig{Type: "memory", MaxSessions: 10}, Compat: &CompatConfig{Prefix: "/mp-compat", AllowPublic: allowPublic}}
	base := context.Background()
	if listen != nil {
		base = context.WithValue(base, caddyhttp.ServerCtxKey, &caddyhttp.Server{Listen: listen})
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: base})
	t.Cleanup(cancel)
	err := h.Provision(ctx)
	if err == nil {
		t.Cleanup(func() { h.Cleanup() })
	}
	return h, err
}

func TestCompatRefusesPublicListeners(t *testing.T) {
	for _, c := range []struct {
		listen      []string
		allowPublic bool
		ok          bool
	}{
		{[]string{"127.0.0.1:9001"}, false, true},
		{[]string{"unix//tmp/compat.sock"}, false, true},
		{[]string{":9001"}, false, false},
		{[]string{"127.0.0.1:9001", "10.0.0.5:9001"}, false, false},
		{[]string{":9001"}, true, true},
		{[]string{"10.0.0.5:9001"}, true, true},
		{nil, false, true}, // outside a server: checked per request
	} {
		_, err := compatHandler(t, c.listen, c.allowPublic)
		if (err == nil) != c.ok {
			t.Errorf("listen %q allow_public %v: %v", c.listen, c.allowPublic, err)
		}
		if err != nil && (!strings.Contains(err.Error(), "bind 127.0.0.1") || !strings.Contains(err.Error(), "allow_public")) {
			t.Errorf("error %q does not say what to do", err)
		}
	}
}

// A request reaches internal endpoints only directly on a loopback or
// unix connection: not on another address, not through a proxy on the
// same host (a proxy header, or Caddy's client_ip not loopback), unless
// allow_public.
func TestCompatRequestNeedsLoopbackConnection(t *testing.T) {
	lo := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9001}
	for _, c := range []struct {
		local       net.Addr
		allowPublic bool
		served      bool
		hdr         []string // name, value
		clientIP    string
	}{
		{local: lo, served: true},
		{local: &net.TCPAddr{IP: net.IPv6loopback, Port: 9001}, served: true},
		{local: &net.UnixAddr{Name: "/tmp/compat.sock", Net: "unix"}, served: true},
		{local: &net.UDPAddr{IP: net.IPv4(127, 0, 0, 3), Port: 9001}, served: true},
		{local: &net.TCPAddr{IP: net.IPv4(10, 0, 0, 5), Port: 9001}},
		{local: &net.UDPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 9001}},
		{},
		{local: &net.TCPAddr{IP: net.IPv4(10, 0, 0, 5), Port: 9001}, allowPublic: true, served: true},
		{local: lo, hdr: []string{"X-Forwarded-For", "192.0.2.2"}},
		{local: lo, hdr: []string{"X-Forwarded-For", "127.0.0.1"}},
		{local: lo, hdr: []string{"Forwarded", "for=192.0.2.2"}},
		{local: lo, hdr: []string{"X-Real-IP", "192.0.2.2"}},
		{local: lo, hdr: []string{"Via", "1.1 nginx"}},
		{local: lo, clientIP: "192.0.2.2"},
		{local: lo, clientIP: "::ffff:127.0.0.1", served: true},
		{local: lo, hdr: []string{"X-Forwarded-For", "192.0.2.2"}, allowPublic: true, served: true},
	} {
		h, err := compatHandler(t, nil, c.allowPublic)
		if err != nil {
			t.Fatal(err)
		}
		req := httptest.NewRequest("GET", "/mp-compat/api/apps/jscode2session?appid=x", nil)
		if c.local != nil {
			req = req.WithContext(context.WithValue(req.Context(), http.LocalAddrContextKey, c.local))
		}
		for i := 0; i+1 < len(c.hdr); i += 2 {
			req.Header.Set(c.hdr[i], c.hdr[i+1])
		}
		w := httptest.NewRecorder()
		req = caddyhttp.PrepareRequest(req, caddy.NewReplacer(), w, nil)
		if c.clientIP != "" {
			caddyhttp.SetVar(req.Context(), caddyhttp.ClientIPVarKey, c.clientIP)
		}
		next := caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error {
			t.Fatal("a compat request reached the next handler")
			return nil
		})
		if err := h.ServeHTTP(w, req, next); err != nil {
			t.Fatal(err)
		}
		// Served: Douyin's own answer to missing parameters (HTTP 200,
		// errcode 40014). Refused: 403.
		served := w.Code == 200 && strings.Contains(w.Body.String(), `"errcode":40014`)
		refused := w.Code == 403 && strings.Contains(w.Body.String(), "loopback")
		if served != c.served || refused == c.served {
			t.Errorf("local %v allow_public %v headers %q client_ip %q: %d %s", c.local, c.allowPublic, c.hdr, c.clientIP, w.Code, w.Body)
		}
	}
}
