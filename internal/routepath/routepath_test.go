package routepath

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// loginSpellings are paths some backend routes to /api/login.
var loginSpellings = []string{
	"/api/login",
	"/API/login",
	"/api/Login",
	"/API/LOGIN",
	"/api/login/",
	"/api//login",
	"//api/login",
	"/api/login//",
	"/api/./login",
	"/./api/login",
	"/api/login/.",
	"/api/x/../login",
	"/api/login/x/..",
	"/../api/login",
	"/x/y/../../api/login",
	"/api/%2e/login",
	"/api/%2E/login",
	"/api/%2e%2e/api/login",
	"/api/%2E%2E/api/login",
	"/api/.%2e/api/login",
	"/api/%252e%252e/api/login",
	"/api/%252e/login",
	"/api/%25252e/login",
	"/api/login;x",
	"/api/login;jsessionid=A",
	"/api;x/login",
	"/api/login;x/",
	"/x/..;/api/login",
	"/x/..;a=b/api/login",
	"/api/login%3bx",
	"/api/login%2F",
	"/api%2flogin",
	"/api%2Flogin",
	"/api%252Flogin",
	"/api/login%00",
	"/api/login%00.png",
	"/api/login%2500",
	"/api/login%3F",
	"/api/login%23frag",
	"/api\\login",
	"\\api\\login",
	"/api%5clogin",
	"/api%5Clogin",
	"/api/%6cogin",
	"/%61%70%69/%6C%6F%67%69%6E",
	"/api/%u006cogin",
	"/api/%U006Cogin",
	"/api/%c0%ae/login",
	"/api%c0%aflogin",
	"/api/log%C4%B0n",
	"/api/LOG%C4%B1N",
	"/api/login.json",
	"/api/login.html",
	"/api/login.do",
	"/api/login.",
	"/api/login..",
	"/api/login%20",
	"/api/login%20%20",
	"/api/login.%20",
	"/api./login",
	"/api%20/login",
	"/index.php/api/login",
	"/index.PHP/api/login",
	"/index.php/api/login.html",
	"/a/b.php/api/login/",
	"/api/login?code=1",
	"/api/login#x",
	"http://example.com/api/login",
	"HTTPS://example.com//api//login/?x=1",
	"/api/login/;x/..",         // nginx: ";x" is a segment
	"/api/login//..",           // RFC 3986 / WHATWG: ".." removes the empty segment
	"/api/login/.. /..",        // Tomcat: ".. " is a name
	"/api/login/x/.. ",         // Windows: ".. " is ".."
	"/api/login/%252e%252e/..", // decoded once: "%2e%2e" is a name
	"/api/login/;x/..%00",      // C backend: cut at NUL, ";x" is a name
	"/x%00/../api/login",       // Tomcat without the NUL check
	"/x%3F/../api/login",       // "?" decoded is a name
}

// notLogin are near misses that must not be the /api/login route.
var notLogin = []string{
	"/api/loginx",
	"/api/logi",
	"/apix/login",
	"/api/login2",
	"/api/loginhistory",
	"/api/login-history",
	"/api/login_",
	"/api/login/x",
	"/api/login/x/y/..",
	"/api",
	"/api/",
	"/login",
	"/api/x/login",
	"/api/login/..",
	"/api/login/%2e%2e",
	"/xapi/login",
	"/api/log/in",
	"/api/log%2Fin",
	"/api/log;in",
	"/api/log%00in",
	"/api/lo gin",
	"/api/.login",
	"/index.php/login",
	"/index.php/api/loginx",
	"/",
	"",
}

func mustMatcher(t testing.TB, ps ...string) *Matcher {
	t.Helper()
	m, err := NewMatcher(ps...)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestLoginSpellings(t *testing.T) {
	m := mustMatcher(t, "/api/login")
	for _, p := range loginSpellings {
		if got := m.Match(p); got != 0 {
			t.Errorf("Match(%q) = %d (canonical %q), want 0", p, got, Canonical(p))
		}
	}
}

func TestUnicodeFolding(t *testing.T) {
	m := mustMatcher(t, "/api/losin", "/api/login", "/api/kogin")
	for _, c := range []struct {
		path string
		want int
	}{
		{"/api/lo%C5%BFin", 0},     // ſ
		{"/api/LO%C5%BFIN", 0},     //
		{"/api/log%C4%B1n", 1},     // ı
		{"/api/log%C4%B0n", 1},     // İ
		{"/api/%E2%84%AAogin", 2},  // Kelvin sign
		{"/api/%E2%84%AAOGIN", 2},  //
		{"/api/l%EF%BD%8Fgin", -1}, // fullwidth o is not o
		{"/api/lo%CC%81gin", -1},   // combining mark stays
	} {
		if got := m.Match(c.path); got != c.want {
			t.Errorf("Match(%q) = %d (canonical %q), want %d", c.path, got, Canonical(c.path), c.want)
		}
	}
}

func TestNearMisses(t *testing.T) {
	m := mustMatcher(t, "/api/login")
	for _, p := range notLogin {
		if got := m.Match(p); got != NoMatch {
			t.Errorf("Match(%q) = %d (canonical %q), want NoMatch", p, got, Canonical(p))
		}
	}
}

func TestPrefixPatterns(t *testing.T) {
	m := mustMatcher(t, "/api/*", "/wx*", "/*")
	for _, c := range []struct {
		path string
		want int
	}{
		{"/api/x", 0},
		{"/API//x", 0},
		{"/api", 0},
		{"/api/", 0},
		{"/Api;x/y", 0},
		{"/api/..", 0},            // Express and Werkzeug: a path under /api
		{"/api/%2e%2e/secret", 0}, // Werkzeug decodes once: under /api
		{"/api/x/../../y", 0},
		{"/x/../api/%252e%252e", 0},
		{"/index.php/api/x", 0},
		{"/index.php/api/..", 0},
		{"/apix", 2},
		{"/ap%C4%B1/x", 0},
		{"/wx", 1},
		{"/WXlogin", 1},
		{"/wx.json", 1},
		{"/w%78", 1},
		{"/", 2},
		{"/other", 2},
	} {
		if got := m.Match(c.path); got != c.want {
			t.Errorf("Match(%q) = %d (canonical %q), want %d", c.path, got, Canonical(c.path), c.want)
		}
	}
	m = mustMatcher(t, "/api/*")
	for _, p := range []string{"/apix", "/ap", "/", "/x/api", "/api.x/../y"} {
		if got := m.Match(p); got != NoMatch {
			t.Errorf("/api/*: Match(%q) = %d, want NoMatch", p, got)
		}
	}
}

func TestMatchOrderAndCandidates(t *testing.T) {
	m := mustMatcher(t, "", "/api/phone", "/api/*")
	if got := m.Match("/api/phone"); got != 1 {
		t.Errorf("first matching pattern: got %d", got)
	}
	if got := m.Match("/index.php", "/API/Phone/"); got != 1 {
		t.Errorf("original path: got %d", got)
	}
	if got := m.Match("/other", "/x"); got != NoMatch {
		t.Errorf("got %d", got)
	}
	if got := m.Match(); got != NoMatch {
		t.Errorf("no paths: got %d", got)
	}
	if got := mustMatcher(t, "").Match("/"); got != NoMatch {
		t.Errorf("empty pattern matched: %d", got)
	}
}

func TestUnclear(t *testing.T) {
	m := mustMatcher(t, "/api/login")
	deep := "/api/%2e"
	for range maxPasses {
		deep = strings.Replace(deep, "%", "%25", 1)
	}
	if got := m.Match(deep); got != Unclear {
		t.Errorf("deep: got %d", got)
	}
	long := "/API/" + strings.Repeat("a", maxSlowLen)
	if got := m.Match(long); got != Unclear {
		t.Errorf("long: got %d", got)
	}
	if got := m.Match("/api/" + strings.Repeat("a", maxSlowLen)); got != NoMatch {
		t.Errorf("long canonical: got %d", got)
	}
	// Nine levels still decode.
	nine := "/api/%2e/login"
	for range maxPasses - 2 {
		nine = strings.Replace(nine, "%", "%25", 1)
	}
	if got := m.Match(nine); got != 0 {
		t.Errorf("%s: got %d", nine, got)
	}
}

func TestCanonical(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"/", "/"},
		{"", "/"},
		{"//", "/"},
		{"/..", "/"},
		{"/a/b/../../..", "/"},
		{"/A%42c", "/abc"},
		{"/a%zz", "/a%zz"},
		{"/a%", "/a%"},
		{"/a%2", "/a%2"},
		{"/a%%32%65", "/a"},           // "%2e" after one decoding: "." ends "/a."
		{"/a/%%32%65%%32%65/b", "/b"}, // ".." after two
		{"/a;b/c;d", "/a/c"},
		{"/a/%3Bb/c", "/a/c"},
		{"/a/b%00/../c", "/a/b"},
		{"/a/b?/c", "/a/b"},
		{"/a/login.tar.gz", "/a/login"},
		{"/a/.env", "/a/.env"},
		{"/a/.env.local", "/a/.env"},
		{"/a/...", "/a/..."},
		{"/a/. .x", "/a/. .x"},
		{"/a.b/c", "/a.b/c"},
		{"/a./c", "/a/c"},
		{"/a/%E2%84%AA", "/a/k"},
		{"/a/%C3%84", "/a/" + string(foldRune('Ä'))},
		{"/a/%FF", "/a/\xff"},
		{"/%C0", "/\xc0"},
		{"*", "/*"},
	} {
		if got := Canonical(c.in); got != c.want {
			t.Errorf("Canonical(%q) = %q, want %q", c.in, got, c.want)
		}
		if got := Canonical(c.want); got != c.want {
			t.Errorf("Canonical(%q) = %q: not idempotent", c.want, got)
		}
	}
}

func TestFastCheckAgrees(t *testing.T) {
	for _, p := range append(append(loginSpellings, notLogin...),
		"/a.b/c", "/.well-known/x", "/a/.env", "/a-b_c~d/e!$&'()*+,=:@") {
		if !isCanonical(p) {
			continue
		}
		for _, r := range readings {
			var s scratch
			out, ok := read(p, r, nil, &s)
			if !ok || string(out) != p {
				t.Errorf("isCanonical(%q) but reading %b gives %q", p, r, out)
			}
		}
	}
}

func TestCanonicalNoAllocWhenCanonical(t *testing.T) {
	m := mustMatcher(t, "/api/login", "/api/phone", "/mp/*")
	for _, p := range []string{"/api/login", "/static/app.js/x", "/"} {
		if n := testing.AllocsPerRun(100, func() { _ = Canonical(p) }); n != 0 {
			t.Errorf("Canonical(%q): %v allocs", p, n)
		}
		if n := testing.AllocsPerRun(100, func() { _ = m.Match(p, p) }); n != 0 {
			t.Errorf("Match(%q): %v allocs", p, n)
		}
	}
	if n := testing.AllocsPerRun(100, func() { _ = m.Match("/API//x/../Login;x") }); n != 0 {
		t.Errorf("Match(hostile): %v allocs", n)
	}
}

func TestFoldRuneIdempotent(t *testing.T) {
	for r := rune(0); r <= utf8.MaxRune; r++ {
		f := foldRune(r)
		if g := foldRune(f); g != f {
			t.Fatalf("foldRune(%U) = %U, foldRune(%U) = %U", r, f, f, g)
		}
		if utf8.RuneLen(f) > utf8.RuneLen(r) && utf8.ValidRune(r) {
			t.Fatalf("foldRune(%U) = %U is longer", r, f)
		}
	}
}

func TestCheckPattern(t *testing.T) {
	for _, p := range []string{"/", "/*", "/api/login", "/api/*", "/api*", "/API/Login", "/wx/login.do", "/index.php/api/login", "/a-b_c~d!$&'()+,=:@"} {
		if err := CheckPattern(p); err != nil {
			t.Errorf("CheckPattern(%q) = %v", p, err)
		}
	}
	for _, c := range []struct{ p, want string }{
		{"", "empty"},
		{"api/login", "must start with /"},
		{"/api/*/x", "only allowed at the end"},
		{"/api/**", "only allowed at the end"},
		{"/api/%6cogin", "decoded"},
		{"/api/login;x", "path parameters"},
		{"/api\\login", "read as /"},
		{"/api/login?x", "query"},
		{"/api/login#x", "query"},
		{"/api/log in", "spaces"},
		{"/api/log\x00in", "control"},
		{"/api/lögin", "ASCII"},
		{"/api/<x>", "not allowed"},
		{"/api//login", "empty segment"},
		{"//*", "empty segment"},
		{"//", "trailing /"},
		{"/api/./login", ". and .."},
		{"/api/../login", ". and .."},
		{"/api/login.", "end in ."},
		{"/api/login/", "trailing /"},
		{"/api/v1.2*", "prefix may not contain ."},
	} {
		err := CheckPattern(c.p)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("CheckPattern(%q) = %v, want %q", c.p, err, c.want)
		}
		if _, err := NewMatcher(c.p); err == nil && c.p != "" {
			t.Errorf("NewMatcher(%q) accepted it", c.p)
		}
	}
}

func TestPatternMatch(t *testing.T) {
	for _, c := range []struct {
		pattern, canonical string
		want               bool
	}{
		{"/api/login", "/api/login", true},
		{"/API/Login", "/api/login", true},
		{"/api/login", "/api/loginx", false},
		{"/wx/login.do", "/wx/login", true},
		{"/api/*", "/api", true},
		{"/api/*", "/api/x/y", true},
		{"/api/*", "/apix", false},
		{"/api*", "/apix", true},
		{"/api*", "/ap", false},
		{"/*", "/", true},
		{"/*", "/x", true},
	} {
		p, err := Compile(c.pattern)
		if err != nil {
			t.Fatal(err)
		}
		if got := p.Match(c.canonical); got != c.want {
			t.Errorf("%q.Match(%q) = %v", c.pattern, c.canonical, got)
		}
		if p.String() != c.pattern {
			t.Errorf("String() = %q", p.String())
		}
	}
	if (Pattern{}).Match("/") {
		t.Error("zero Pattern matched")
	}
}

func TestPatternCovers(t *testing.T) {
	for _, c := range []struct {
		p, q string
		want bool
	}{
		{"/m/*", "/m/*", true},
		{"/m/*", "/m/tt/*", true},
		{"/m/*", "/m", true},
		{"/m/*", "/m/x.do", true},
		{"/m/*", "/m*", false},
		{"/m/*", "/mtt/*", false},
		{"/m/*", "/m/a*", true},
		{"/m*", "/m/*", true},
		{"/m*", "/mtt/login", true},
		{"/m*", "/m", true},
		{"/m", "/m/*", false},
		{"/m", "/M", true},
		{"/api/login", "/api/login.do", true},
		{"/api/login", "/api/loginx", false},
		{"/*", "/tt/*", true},
		{"/*", "/*", true},
		{"/tt/*", "/*", false},
		{"/m/a*", "/m/*", false},
		{"/m/tt/*", "/m/*", false},
	} {
		p, err := Compile(c.p)
		if err != nil {
			t.Fatal(err)
		}
		q, err := Compile(c.q)
		if err != nil {
			t.Fatal(err)
		}
		if got := p.Covers(q); got != c.want {
			t.Errorf("%q.Covers(%q) = %v", c.p, c.q, got)
		}
	}
	if (Pattern{}).Covers(Pattern{}) {
		t.Error("zero Pattern covers")
	}
}

func BenchmarkCanonical(b *testing.B) {
	for _, c := range []struct{ name, path string }{
		{"plain", "/api/user/profile"},
		{"hostile", "/API//x/..;a=b/%252e%252e/api/./Login%2F;jsessionid=A%00.json"},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = Canonical(c.path)
			}
		})
	}
}

func BenchmarkMatch(b *testing.B) {
	m := mustMatcher(b, "/api/login", "/api/phone", "/api/decrypt", "/mp/*")
	for _, c := range []struct{ name, path string }{
		{"plain", "/api/user/profile"},
		{"upper", "/Static/Img/Logo.PNG"},
		{"hostile", "/API//x/..;a=b/%252e%252e/api/./Login%2F;jsessionid=A%00.json"},
		{"long-hostile", strings.Repeat("/A.php%2f;b/..", 580)},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = m.Match(c.path, c.path)
			}
		})
	}
}
