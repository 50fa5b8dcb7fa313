package routepath

import (
	"errors"
	"fmt"
	"strings"
)

// kind is how a Pattern compares.
type kind uint8

const (
	exact     kind = iota + 1 // "/api/login"
	dirPrefix                 // "/api/*": "/api" and everything under it
	strPrefix                 // "/api*": every path starting with "/api"
)

// Pattern is a compiled route pattern: an exact path, or a prefix when it
// ends in "*". The zero Pattern matches nothing.
type Pattern struct {
	raw   string
	canon string // canonical form of the pattern without its "*"
	kind  kind
}

// CheckPattern reports what is wrong with a route pattern as an operator
// wrote it, or nil. A pattern is an absolute path of ASCII characters
// written decoded, either exact ("/api/login") or a prefix ending in "*"
// ("/api/*" is /api and everything under it; "/api*" is every path
// starting with /api). Requests are normalised before they are compared
// (see the package documentation), so spellings the normalisation removes
// are refused here rather than silently never matching.
func CheckPattern(p string) error {
	if p == "" {
		return errors.New("route path is empty")
	}
	if p[0] != '/' {
		return fmt.Errorf("route path %q must start with /", p)
	}
	base := p
	if i := strings.IndexByte(p, '*'); i >= 0 {
		if i != len(p)-1 {
			return fmt.Errorf("route path %q: * is only allowed at the end (a prefix match)", p)
		}
		base = p[:i]
	}
	for i := 0; i < len(base); i++ {
		switch c := base[i]; {
		case c == '%':
			return fmt.Errorf("route path %q: write it decoded, without %% escapes (requests are decoded before matching)", p)
		case c == ';':
			return fmt.Errorf("route path %q: ; is not allowed (path parameters such as ;jsessionid= are ignored when matching)", p)
		case c == '\\':
			return fmt.Errorf("route path %q: \\ is not allowed (it is read as /)", p)
		case c == '?' || c == '#':
			return fmt.Errorf("route path %q: a route is a path, without a query or fragment", p)
		case c <= ' ' || c == 0x7f:
			return fmt.Errorf("route path %q: spaces and control characters are not allowed", p)
		case c >= 0x80:
			return fmt.Errorf("route path %q: only ASCII characters are allowed", p)
		case c != '/' && c != '.' && !canonByte[c] && !('A' <= c && c <= 'Z'):
			return fmt.Errorf("route path %q: character %q is not allowed", p, c)
		}
	}
	prefix := len(base) < len(p)
	dir := prefix && strings.HasSuffix(base, "/")
	body := base
	if dir || (!prefix && len(base) > 1 && strings.HasSuffix(base, "/")) {
		if !prefix {
			return fmt.Errorf("route path %q: a trailing / is ignored when matching; write %q", p, strings.TrimRight(base, "/"))
		}
		body = base[:len(base)-1]
	}
	if body == "" || p == "/" {
		return nil // "/*", "/"
	}
	segs := strings.Split(body[1:], "/")
	for i, s := range segs {
		switch {
		case s == "":
			return fmt.Errorf("route path %q: empty segment (repeated slashes are merged when matching)", p)
		case s == "." || s == "..":
			return fmt.Errorf("route path %q: . and .. segments are not allowed", p)
		case strings.HasSuffix(s, "."):
			return fmt.Errorf("route path %q: a segment may not end in . (trailing dots are ignored when matching)", p)
		case prefix && !dir && i == len(segs)-1 && strings.Contains(strings.TrimLeft(s, "."), "."):
			return fmt.Errorf("route path %q: the last segment of a prefix may not contain . (an extension is ignored when matching); use a directory prefix such as /dir/*", p)
		}
	}
	return nil
}

// Compile checks a route pattern (CheckPattern) and compiles it.
func Compile(p string) (Pattern, error) {
	if err := CheckPattern(p); err != nil {
		return Pattern{}, err
	}
	pat := Pattern{raw: p, kind: exact}
	base := p
	switch {
	case strings.HasSuffix(p, "/*"):
		pat.kind, base = dirPrefix, p[:len(p)-2]
	case strings.HasSuffix(p, "*"):
		pat.kind, base = strPrefix, p[:len(p)-1]
	}
	if base == "" {
		base = "/"
	}
	pat.canon = Canonical(base)
	return pat, nil
}

// String returns the pattern as written.
func (p Pattern) String() string { return p.raw }

// Match reports whether the canonical path c (a result of Canonical) is
// on the route. It sees only that one form; Matcher.Match also tries the
// other readings of a raw path and should be used on requests.
func (p Pattern) Match(c string) bool { return matchPath(&p, c) }

// matchPath is Pattern.Match on a string or byte slice (no allocation).
func matchPath[S string | []byte](p *Pattern, c S) bool {
	n := len(p.canon)
	switch p.kind {
	case exact:
		return string(c) == p.canon
	case dirPrefix:
		return p.canon == "/" || string(c) == p.canon || len(c) > n && c[n] == '/' && string(c[:n]) == p.canon
	case strPrefix:
		return len(c) >= n && string(c[:n]) == p.canon
	}
	return false
}

// Covers reports whether every path q matches, p matches too (p equal
// to q covers it): compared in canonical form, as requests are.
func (p Pattern) Covers(q Pattern) bool {
	if p.kind == 0 || q.kind == 0 {
		return false
	}
	switch q.kind {
	case exact:
		return p.Match(q.canon)
	case dirPrefix:
		// q.canon and everything under it.
		return p.Match(q.canon) && p.Match(strings.TrimSuffix(q.canon, "/")+"/x")
	default: // strPrefix: every path starting with q.canon
		return p.Match(q.canon) && p.Match(q.canon+"x")
	}
}

// Result values of Matcher.Match besides a pattern's index.
const (
	// NoMatch: no reading of any path is on any route.
	NoMatch = -1
	// Unclear: a path is encoded too deeply (or is too long and not
	// canonical) to be normalised within bounds; no route can be ruled
	// out, so the request should be refused.
	Unclear = -2
)

// maxPatterns is the most patterns one Matcher holds.
const maxPatterns = 64

// Matcher recognises routes on raw request paths.
type Matcher struct {
	pats     []Pattern
	prefixes bool // some pattern is a prefix
	longest  int  // the longest canonical pattern
}

// NewMatcher compiles patterns, in order; an empty pattern is a route that
// is not configured and never matches.
func NewMatcher(patterns ...string) (*Matcher, error) {
	if len(patterns) > maxPatterns {
		return nil, fmt.Errorf("at most %d route patterns", maxPatterns)
	}
	m := &Matcher{pats: make([]Pattern, len(patterns))}
	for i, p := range patterns {
		if p == "" {
			continue
		}
		pat, err := Compile(p)
		if err != nil {
			return nil, err
		}
		m.pats[i] = pat
		m.prefixes = m.prefixes || pat.kind != exact
		m.longest = max(m.longest, len(pat.canon))
	}
	return m, nil
}

// Match returns the index of the first pattern (in NewMatcher's order) that
// any of paths is on, NoMatch, or Unclear. Each path is an escaped path
// (r.URL.EscapedPath()) or a raw request-target; pass the request's
// current path and the original request's, which differ after a rewrite.
//
// A path is on a route when any reading of it is (see the package
// documentation): the canonical form, each pass's result (one level of
// decoding per pass, as a backend that decodes once sees it), a PHP
// PATH_INFO ("/index.php/api/login" is also "/api/login"), and for prefix
// patterns every directory that ".." resolution passes through
// ("/api/..", a path under /api/* to routers that do not resolve dots).
// A path that is already canonical costs one scan and no allocation.
func (m *Matcher) Match(paths ...string) int {
	w := walker{m: m}
	for i, p := range paths {
		if seen(paths[:i], p) {
			continue
		}
		if isCanonical(p) {
			visit(&w, p)
			continue
		}
		var s scratch
		var done [1 << 6]bool
		rel := relevant(p)
		for _, r := range readings {
			if r &= rel; done[r] {
				continue
			}
			done[r] = true
			if _, ok := read(p, r, &w, &s); !ok {
				return Unclear
			}
		}
	}
	if w.hits == 0 {
		return NoMatch
	}
	for i := range m.pats {
		if w.hits&(1<<i) != 0 {
			return i
		}
	}
	return NoMatch
}

func seen(ps []string, p string) bool {
	for _, q := range ps {
		if q == p {
			return true
		}
	}
	return false
}

// walker collects which patterns the readings of a path hit.
type walker struct {
	m    *Matcher
	hits uint64
	info [256]byte // a PATH_INFO with its "/"
}

// visit checks a pass's result (or a canonical path) against every
// pattern, and so for the PATH_INFO after each ".php" in it: Caddy's
// php_fastcgi splits after the first ".php", "/" or not, and frameworks
// trim the "/".
func visit[S string | []byte](w *walker, c S) {
	check(w, c, true)
	for {
		k := indexPHP(c)
		if k < 0 {
			return
		}
		c = c[k+len(".php"):]
		if len(c) > 0 && c[0] == '/' {
			check(w, c, true)
		} else {
			check(w, withSlash(w, c), true)
		}
	}
}

// check records the patterns the reading c is on; an intermediate
// reading (not final) is only compared with prefix patterns.
func check[S string | []byte](w *walker, c S, final bool) {
	for i := range w.m.pats {
		p := &w.m.pats[i]
		if p.kind == 0 || (!final && p.kind == exact) {
			continue
		}
		if matchPath(p, c) {
			w.hits |= 1 << i
		}
	}
}

// indexPHP returns the index of the first ".php" in c, or -1.
func indexPHP[S string | []byte](c S) int {
	for i := 0; i+4 <= len(c); i++ {
		if c[i] == '.' && c[i+1] == 'p' && c[i+2] == 'h' && c[i+3] == 'p' {
			return i
		}
	}
	return -1
}

// visitStack checks the ".." resolution stack d right after a segment of
// n bytes was pushed, against the prefix patterns. Only what this push can
// change is looked at: a stack (or a PATH_INFO in it) that was already
// longer than every pattern before the push was checked when it was
// reached (a pop only returns to a stack that was checked). The keepEmpty
// readings resolve dots, so their stacks are not needed.
func (w *walker) visitStack(d []byte, n int, r reading) {
	if r&keepEmpty != 0 || !w.m.prefixes {
		return
	}
	old := len(d) - n - 1 // length before the push
	long := w.m.longest + 1
	if old <= long {
		check(w, d, false)
	}
	from := max(0, old-long-len(".php"))
	for c := d[from:]; ; {
		k := indexPHP(c)
		if k < 0 {
			return
		}
		c = c[k+len(".php"):]
		if len(c) > 0 && c[0] == '/' {
			check(w, c, false)
		} else {
			check(w, withSlash(w, c), false)
		}
	}
}

// withSlash returns "/" + c, cut after the longest pattern's length plus
// one (which keeps every comparison's answer).
func withSlash[S string | []byte](w *walker, c S) []byte {
	return append(append(w.info[:0], '/'), c[:min(len(c), w.m.longest+1)]...)
}
