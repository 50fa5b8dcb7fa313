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

func TestCompatRequestNeedsLoopbackConnection(t *testing.T) {
	for _, c := range []struct {
		local       net.Addr
		allowPublic bool
		served      bool
	}{
		{&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9001}, false, true},
		{&net.TCPAddr{IP: net.IPv6loopback, Port: 9001}, false, true},
		{&net.UnixAddr{Name: "/tmp/compat.sock", Net: "unix"}, false, true},
		{&net.UDPAddr{IP: net.IPv4(127, 0, 0, 3), Port: 9001}, false, true},
		{&net.TCPAddr{IP: net.IPv4(10, 0, 0, 5), Port: 9001}, false, false},
		{&net.UDPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 9001}, false, false},
		{nil, false, false},
		{&net.TCPAddr{IP: net.IPv4(10, 0, 0, 5), Port: 9001}, true, true},
	} {
		h, err := compatHandler(t, nil, c.allowPublic)
		if err != nil {
			t.Fatal(err)
		}
		req := httptest.NewRequest("GET", "/mp-compat/api/apps/jscode2session?appid=x", nil)
		if c.local != nil {
			req = req.WithContext(context.WithValue(req.Context(), http.LocalAddrContextKey, c.local))
		}
		w := httptest.NewRecorder()
		req = caddyhttp.PrepareRequest(req, caddy.NewReplacer(), w, nil)
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
			t.Errorf("local %v allow_public %v: %d %s", c.local, c.allowPublic, w.Code, w.Body)
		}
	}
}
