package routepath

import (
	"math/rand/v2"
	"path"
	"strings"
	"testing"
)

// The models below are small re-implementations of how backends route a
// raw request path (the escaped path the upstream receives). They err on
// the lenient side: a model routing more paths than the real router only
// makes the property stronger.

// modelPattern is one protected route as each model spells it.
type modelPattern int

const (
	mpLogin modelPattern = iota // exact /api/login
	mpAPI                       // /api/* (a mount point)
	mpXP                        // /x/p* (a string prefix)
)

var modelPatterns = [...]string{mpLogin: "/api/login", mpAPI: "/api/*", mpXP: "/x/p*"}

type model struct {
	name  string
	route func(raw string, pat modelPattern) bool
}

var models = []model{
	{"tomcat", func(raw string, pat modelPattern) bool { return tomcat(raw, pat, true) }},
	{"tomcat-lenient", func(raw string, pat modelPattern) bool { return tomcat(raw, pat, false) }},
	{"spring", spring},
	{"express", func(raw string, pat modelPattern) bool { return express(raw, pat, false) }},
	{"express-urlparse", func(raw string, pat modelPattern) bool { return express(raw, pat, true) }},
	{"werkzeug", werkzeug},
	{"nginx", nginx},
	{"go-servemux", goServeMux},
	{"whatwg", whatwg},
	{"laravel", func(raw string, pat modelPattern) bool { return frontController(raw, pat, false) }},
	{"thinkphp", func(raw string, pat modelPattern) bool { return frontController(raw, pat, true) }},
	{"iis", iis},
	{"c-nul", cBackend},
	{"nginx-then-tomcat", nginxThenTomcat},
}

// cutQuery drops the query and fragment of a request-target.
func cutQuery(s string) string {
	if i := strings.IndexAny(s, "?#"); i >= 0 {
		return s[:i]
	}
	return s
}

// decodeOnce decodes %XX once; with strict, an invalid escape fails.
func decodeOnce(s string, strict bool) (string, bool) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' {
			if i+2 < len(s) {
				h, ok1 := unhex(s[i+1])
				l, ok2 := unhex(s[i+2])
				if ok1 && ok2 {
					b.WriteByte(h<<4 | l)
					i += 2
					continue
				}
			}
			if strict {
				return "", false
			}
		}
		b.WriteByte(s[i])
	}
	return b.String(), true
}

// resolve merges slashes and resolves dot segments; above the root fails
// when strict. A trailing "/" is kept.
func resolve(p string, strict bool) (string, bool) {
	var out []string
	segs := strings.Split(p, "/")
	for _, s := range segs {
		switch s {
		case "", ".":
		case "..":
			if len(out) == 0 {
				if strict {
					return "", false
				}
				continue
			}
			out = out[:len(out)-1]
		default:
			out = append(out, s)
		}
	}
	r := "/" + strings.Join(out, "/")
	if len(out) > 0 && strings.HasSuffix(p, "/") {
		r += "/"
	}
	return r, true
}

func mergeSlashes(p string) string {
	for strings.Contains(p, "//") {
		p = strings.ReplaceAll(p, "//", "/")
	}
	return p
}

func lowerASCII(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// routes is the common comparison: exact (optionally with a trailing
// slash), mount point, string prefix.
func routes(p string, pat modelPattern, trailingSlash bool) bool {
	switch pat {
	case mpLogin:
		return p == "/api/login" || trailingSlash && p == "/api/login/"
	case mpAPI:
		return p == "/api" || strings.HasPrefix(p, "/api/")
	case mpXP:
		return strings.HasPrefix(p, "/x/p")
	}
	return false
}

// tomcatNormalize is Tomcat 10's CoyoteAdapter: strip ";params" per
// segment, decode once, then merge "//" and resolve dots. strict is the
// default configuration (reject %2F, "\", %00, bad escapes, above root).
func tomcatNormalize(raw string, strict bool) (string, bool) {
	s := cutQuery(raw)
	segs := strings.Split(s, "/")
	for i, seg := range segs {
		if k := strings.IndexByte(seg, ';'); k >= 0 {
			segs[i] = seg[:k]
		}
	}
	s = strings.Join(segs, "/")
	if strict && (strings.Contains(strings.ToLower(s), "%2f") || strings.Contains(strings.ToLower(s), "%00")) {
		return "", false
	}
	d, ok := decodeOnce(s, strict)
	if !ok {
		return "", false
	}
	if strings.Contains(d, "\\") {
		if strict {
			return "", false
		}
		d = strings.ReplaceAll(d, "\\", "/")
	}
	return resolve(d, strict)
}

func tomcat(raw string, pat modelPattern, strict bool) bool {
	p, ok := tomcatNormalize(raw, strict)
	return ok && pat != mpXP && routes(p, pat, false)
}

// spring runs on Tomcat and adds trailing-slash and suffix pattern match.
func spring(raw string, pat modelPattern) bool {
	p, ok := tomcatNormalize(raw, true)
	if !ok || pat == mpXP {
		return false
	}
	if pat == mpLogin {
		if rest, ok := strings.CutPrefix(p, "/api/login."); ok && !strings.Contains(rest, "/") {
			return true
		}
	}
	return routes(p, pat, true)
}

// express is Express 4: path-to-regexp on the raw pathname,
// case-insensitive (ASCII), optional trailing slash, no decoding. With
// urlparse, Node's url.parse turned "\" into "/" (it does when the path
// has a character parseurl's fast path refuses).
func express(raw string, pat modelPattern, urlparse bool) bool {
	s := cutQuery(raw)
	if urlparse {
		s = strings.ReplaceAll(s, "\\", "/")
	}
	return routes(lowerASCII(s), pat, true)
}

// werkzeug is Flask: the WSGI server decodes once, the map merges slashes
// (a redirect the client follows), no dot resolution, case-sensitive.
func werkzeug(raw string, pat modelPattern) bool {
	d, _ := decodeOnce(cutQuery(raw), false)
	return routes(mergeSlashes(d), pat, true)
}

// nginx decodes once, merges slashes and resolves dots before location
// matching (";" is an ordinary character).
func nginx(raw string, pat modelPattern) bool {
	d, _ := decodeOnce(cutQuery(raw), false)
	p, ok := resolve(d, true)
	return ok && routes(p, pat, false)
}

// goServeMux redirects to path.Clean of the decoded path (counted as
// routed: the client may follow with the same body).
func goServeMux(raw string, pat modelPattern) bool {
	d, ok := decodeOnce(cutQuery(raw), true)
	if !ok || !strings.HasPrefix(d, "/") {
		return false
	}
	return routes(path.Clean(d), pat, true)
}

// whatwg parses the URL the way browsers and WinterCG runtimes (Deno, Bun,
// Workers) do: "\" is "/", "%2e" is a dot, dot segments are removed with
// empty segments counting (RFC 3986); the app then decodes once.
func whatwg(raw string, pat modelPattern) bool {
	s := strings.ReplaceAll(cutQuery(raw), "\\", "/")
	if !strings.HasPrefix(s, "/") {
		return false
	}
	var out []string
	segs := strings.Split(s[1:], "/")
	for i, seg := range segs {
		last := i == len(segs)-1
		switch strings.ToLower(seg) {
		case ".", "%2e":
			if last {
				out = append(out, "")
			}
		case "..", ".%2e", "%2e.", "%2e%2e":
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
			if last {
				out = append(out, "")
			}
		default:
			out = append(out, seg)
		}
	}
	d, _ := decodeOnce("/"+strings.Join(out, "/"), false)
	return routes(d, pat, true) || routes(mergeSlashes(d), pat, true)
}

// frontController is a PHP app behind Caddy's php_fastcgi: the decoded
// path is split after the first ".php" (PATH_INFO), the framework trims
// "/" (Laravel) or also drops a ".html" suffix and ignores case
// (ThinkPHP).
func frontController(raw string, pat modelPattern, thinkphp bool) bool {
	d, _ := decodeOnce(cutQuery(raw), false)
	if i := strings.Index(lowerASCII(d), ".php"); i >= 0 {
		d = d[i+len(".php"):]
	}
	t := strings.Trim(d, "/")
	if thinkphp {
		t = lowerASCII(t)
		t = strings.TrimSuffix(t, ".html")
	}
	return routes("/"+t, pat, false)
}

// iis decodes once (also %uXXXX), reads "\" as "/", ignores trailing dots
// and spaces of a name and compares ignoring case.
func iis(raw string, pat modelPattern) bool {
	s := cutQuery(raw)
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' {
			if r, w := unescape(s[i:]); w > 0 {
				if w == 3 {
					b.WriteByte(byte(r))
				} else {
					b.WriteRune(r)
				}
				i += w - 1
				continue
			}
		}
		b.WriteByte(s[i])
	}
	d := strings.ReplaceAll(b.String(), "\\", "/")
	var out []string
	for _, seg := range strings.Split(d, "/") {
		if strings.Trim(seg, ". ") == "" {
			if strings.TrimRight(seg, " ") == ".." && len(out) > 0 {
				out = out[:len(out)-1]
			}
			continue
		}
		out = append(out, strings.TrimRight(seg, ". "))
	}
	p := "/" + strings.Join(out, "/")
	switch pat {
	case mpLogin:
		return strings.EqualFold(p, "/api/login")
	case mpAPI:
		return strings.EqualFold(p, "/api") || len(p) > 5 && strings.EqualFold(p[:5], "/api/")
	case mpXP:
		return len(p) >= 4 && strings.EqualFold(p[:4], "/x/p")
	}
	return false
}

// cBackend decodes once, stops at NUL and resolves dots.
func cBackend(raw string, pat modelPattern) bool {
	d, _ := decodeOnce(cutQuery(raw), false)
	if i := strings.IndexByte(d, 0); i >= 0 {
		d = d[:i]
	}
	p, ok := resolve(d, false)
	return ok && routes(p, pat, true)
}

// nginxThenTomcat is nginx normalising and proxying the decoded path to
// Tomcat, which decodes again.
func nginxThenTomcat(raw string, pat modelPattern) bool {
	d, _ := decodeOnce(cutQuery(raw), false)
	p, ok := resolve(d, true)
	return ok && tomcat(p, pat, false)
}

var fuzzMatchers = func() (ms [len(modelPatterns)]*Matcher) {
	for i, p := range modelPatterns {
		m, err := NewMatcher(p)
		if err != nil {
			panic(err)
		}
		ms[i] = m
	}
	return ms
}()

// checkCovers is the property: whatever a model routes to a protected
// pattern, the Matcher recognises (or reports as Unclear, which refuses
// it); and Canonical is idempotent.
func checkCovers(t *testing.T, raw string) {
	t.Helper()
	for i := range modelPatterns {
		if !strings.HasPrefix(raw, "/") {
			break // servers only route origin-form targets
		}
		got := fuzzMatchers[i].Match(raw)
		if got == Unclear {
			continue
		}
		for _, md := range models {
			if md.route(raw, modelPattern(i)) && got != 0 {
				t.Errorf("%s routes %q to %s; Match = %d (canonical %q)", md.name, raw, modelPatterns[i], got, Canonical(raw))
			}
		}
	}
	c, ok := canonicalOK(raw)
	if !ok {
		return
	}
	if c2 := Canonical(c); c2 != c {
		t.Errorf("Canonical(%q) = %q, Canonical of that = %q", raw, c, c2)
	}
	if c == "" || c[0] != '/' || strings.Contains(c, "//") || len(c) > 1 && c[len(c)-1] == '/' || strings.ContainsAny(c, ";\\") {
		t.Errorf("Canonical(%q) = %q is not canonical", raw, c)
	}
	for i, p := range modelPatterns {
		pat, _ := Compile(p)
		if got := fuzzMatchers[i].Match(raw); pat.Match(c) && got != 0 && got != Unclear {
			t.Errorf("%s matches Canonical(%q) = %q but not the Matcher", p, raw, c)
		}
	}
}

func TestModelsRouteTheTable(t *testing.T) {
	// The models are not vacuous: each routes some of the spellings.
	for _, md := range models {
		n := 0
		for _, p := range loginSpellings {
			if md.route(p, mpLogin) {
				n++
			}
		}
		if n < 2 {
			t.Errorf("%s routes only %d login spellings", md.name, n)
		}
	}
	for _, p := range append(append([]string{}, loginSpellings...), notLogin...) {
		checkCovers(t, p)
	}
}

// TestRandomPathsCoverRouters checks the property on paths drawn (with a
// fixed seed) from fragments that matter to routers.
func TestRandomPathsCoverRouters(t *testing.T) {
	frags := []string{"/", ".", "..", "%", "%2e", "%2E", "%2f", "%25", ";", "\\", "a", "A", "p", "x", "api", "API", "login",
		"%00", " ", "%20", "?", "#", "%u", "%u002e", "%c0", "%ae", ".php", "//", "%3b", "php", "h", "0", "2", "5", "e", "f", ".html"}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		var b strings.Builder
		b.WriteByte('/')
		for range rng.IntN(12) {
			b.WriteString(frags[rng.IntN(len(frags))])
		}
		checkCovers(t, b.String())
		if t.Failed() {
			return
		}
	}
}

func FuzzCanonicalCoversRouters(f *testing.F) {
	for _, p := range loginSpellings {
		f.Add(p)
	}
	for _, p := range notLogin {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		if len(raw) > 512 {
			return
		}
		checkCovers(t, raw)
	})
}
