package gateway

import (
	"net/url"
	"strings"
	"testing"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/platform"
)

// lenientReadings are ways a platform's server might read a path the
// gateway relays: as is, lower-cased, percent-decoded, with ";params"
// dropped, with trailing dots and slashes trimmed, cleaned of dot
// segments.
func lenientReadings(p string) []string {
	out := []string{p, strings.ToLower(p)}
	if d, err := url.PathUnescape(p); err == nil {
		out = append(out, d, strings.ToLower(d))
	}
	var segs []string
	for _, s := range strings.Split(strings.ToLower(p), "/") {
		if i := strings.IndexByte(s, ';'); i >= 0 {
			s = s[:i]
		}
		segs = append(segs, strings.TrimRight(s, ". "))
	}
	out = append(out, strings.Join(segs, "/"), strings.TrimRight(strings.Join(segs, "/"), "/"))
	return out
}

// No path the gateway relays under a broad allow-list is, read leniently,
// one the platform's spec never relays (WeChat's and Douyin's).
func FuzzGatewayNeverRelayed(f *testing.F) {
	for _, p := range []string{"/cgi-bin/token", "/cgi-bin/token;x", "/cgi-bin/token.", "/CGI-BIN/Token", "/cgi-bin/%74oken", "/cgi-bin/openapi/rid/get", "/sns/jscode2session/", "/wxa/business/getuserphonenumber", "/cgi-bin/./token", "/cgi-bin//token", "/open.douyin.com/oauth/client_token/", "/developer.toutiao.com/api/apps/v2/token"} {
		f.Add(p)
	}
	specs := map[string][]string{
		platform.WeChat: {"/cgi-bin/*", "/sns/*", "/wxa/*"},
		platform.Douyin: {"/open.douyin.com/oauth/*", "/open.douyin.com/api/*", "/developer.toutiao.com/api/*"},
	}
	gws := map[string]*Gateway{}
	for name, allow := range specs {
		d, _ := platform.Lookup(name)
		ts := map[string]TokenSource{"": &tokens{}}
		for _, k := range d.Gateway.Kinds {
			ts[k.Token] = &tokens{}
		}
		g, err := New(Options{Spec: d.Gateway, Origin: "http://127.0.0.1:1", Allow: allow, Tokens: ts})
		if err != nil {
			f.Fatal(err)
		}
		gws[name] = g
	}
	f.Fuzz(func(t *testing.T, p string) {
		for name, g := range gws {
			if _, ok := g.Match(p); !ok {
				continue
			}
			d, _ := platform.Lookup(name)
			k, api, _ := kindOf(d.Gateway, p)
			for _, r := range lenientReadings(api) {
				for _, n := range k.Never {
					np := strings.ToLower(strings.TrimRight(n.Path, "/"))
					if r == np || strings.TrimRight(r, "/") == np {
						t.Fatalf("%s relays %q, which reads as never-relayed %q", name, p, n.Path)
					}
				}
			}
		}
	})
}
