package routepath

import (
	"bytes"
	"unicode"
	"unicode/utf8"
)

// maxPasses bounds the passes of one reading. Each pass decodes one level
// of percent-encoding, so a path still changing after maxPasses passes is
// encoded more deeply than any chain of real routers decodes it; the
// Matcher reports it as Unclear.
const maxPasses = 10

// maxSlowLen bounds the length of a path that is not already canonical.
// Longer ones are Unclear (canonical paths of any length are matched).
const maxSlowLen = 8 << 10

// reading is one way of turning a raw path into segments. Backends
// disagree on ";" and empty segments before "..", on NUL and on Windows'
// dot-and-space names, so the Matcher reads a path every way (a route
// matches when any reading gives it); Canonical is one of them.
type reading uint8

const (
	// stripParams drops ";..." up to the next "/" in every segment before
	// decoding (Tomcat, Jetty, Spring).
	stripParams reading = 1 << iota
	// cutAtNUL ends the path at the first decoded NUL (C backends
	// truncate there).
	cutAtNUL
	// reparse ends the path at the first decoded "?" or "#" (a front
	// controller that decodes the request URI before parsing it).
	reparse
	// keepEmpty lets ".." remove an empty segment, as RFC 3986 section
	// 5.2.4 and the WHATWG URL parser do ("/a/b//.." is "/a/b/"); empty
	// segments are merged afterwards.
	keepEmpty
	// windowsDots reads a segment of dots and spaces the way Windows does:
	// ".. " is "..", "..." and ". " are ".".
	windowsDots
	// backslash reads "\" as "/" (Windows, WHATWG, Node's url.parse,
	// Tomcat when allowed); elsewhere it is an ordinary character.
	backslash
)

// relevant returns the reading flags that can make a difference for p:
// a reading with other flags set gives the same results as one without.
func relevant(p string) reading {
	var pct, semi, nul, space, empty, dots3, bs bool
	for i := 0; i < len(p); i++ {
		switch c := p[i]; c {
		case '%':
			pct = true
		case ';':
			semi = true
		case 0:
			nul = true
		case 0xc0, 0xc1:
			// An overlong UTF-8 encoding decodes to any ASCII byte ("?",
			// "%", ";", "/", NUL), as an escape does (see emit).
			pct = true
		case ' ':
			space = true
		case '\\':
			bs = true
		case '/':
			empty = empty || i+1 < len(p) && p[i+1] == '/'
		case '.':
			dots3 = dots3 || i+2 < len(p) && p[i+1] == '.' && p[i+2] == '.'
		}
	}
	r := reading(0)
	if pct || semi {
		r |= stripParams
	}
	if pct || nul {
		r |= cutAtNUL
	}
	if pct {
		r |= reparse
	}
	if pct || semi || empty || bs {
		r |= keepEmpty
	}
	if pct || bs {
		r |= backslash
	}
	if pct || dots3 || space {
		r |= windowsDots
	}
	return r
}

// canonicalReading is the reading Canonical returns.
const canonicalReading = stripParams | cutAtNUL | reparse | backslash

// readings are all the readings the Matcher tries, canonicalReading first.
var readings = [...]reading{
	canonicalReading,
	stripParams | backslash,             // Tomcat, Spring
	0,                                   // nginx, Go, Werkzeug, PHP
	backslash,                           // Node's url.parse
	cutAtNUL,                            // C
	keepEmpty,                           // RFC 3986
	keepEmpty | backslash,               // WHATWG
	keepEmpty | stripParams | backslash, // WHATWG in front of Tomcat
	windowsDots | backslash,             // IIS
}

// Canonical returns the canonical form of a request path, the form routes
// are compared in (see the package documentation for the rules). p is the
// escaped path (r.URL.EscapedPath()) or a raw request-target; a query or
// fragment and an absolute-form "scheme://authority" are ignored.
//
// A path that is already canonical is returned as is, without allocating.
// For a path encoded more deeply than the passes allow (or longer than 8
// KiB and not canonical) the result is not a fixed point; the Matcher
// reports such paths as Unclear.
func Canonical(p string) string {
	if isCanonical(p) {
		return p
	}
	var s scratch
	out, _ := read(p, canonicalReading, nil, &s)
	return string(out)
}

// canonicalOK is Canonical that also reports whether the passes reached a
// fixed point.
func canonicalOK(p string) (string, bool) {
	if isCanonical(p) {
		return p, true
	}
	var s scratch
	out, ok := read(p, canonicalReading, nil, &s)
	return string(out), ok
}

// canonByte marks the bytes that may appear in a canonical path as they
// are (besides "/" and "."; "." has rules of its own).
var canonByte = func() (t [256]bool) {
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for _, c := range "-_~!$&'()*+,=:@" {
		t[c] = true
	}
	return t
}()

// isCanonical is the fast check: a path made of lower-case unreserved
// bytes, no empty segment, no segment ending in "." and no "." in the last
// segment (past its leading dots) is its own canonical form in every
// reading.
func isCanonical[S string | []byte](p S) bool {
	if len(p) == 0 || p[0] != '/' {
		return false
	}
	if len(p) == 1 {
		return true
	}
	seg := 1
	for i := 1; i < len(p); i++ {
		switch c := p[i]; {
		case c == '/':
			if i == seg || p[i-1] == '.' {
				return false
			}
			seg = i + 1
		case c == '.':
		case !canonByte[c]:
			return false
		}
	}
	if seg == len(p) || p[len(p)-1] == '.' {
		return false
	}
	for seg < len(p) && p[seg] == '.' {
		seg++
	}
	for ; seg < len(p); seg++ {
		if p[seg] == '.' {
			return false
		}
	}
	return true
}

// scratch holds the buffers of one read; kept on the caller's stack, a
// path of up to 256 bytes needs no allocation.
type scratch struct{ a, b, c [256]byte }

// read applies passes of reading r to p until nothing changes (at most
// maxPasses) and returns the result and whether it is a fixed point. The
// result may live in s. Each pass's result and each ".." resolution stack
// are reported to sink, if any.
func read(p string, r reading, sink *walker, s *scratch) ([]byte, bool) {
	if len(p) > maxSlowLen {
		return []byte(p), false
	}
	cur, tmp := pass(s.a[:0], s.b[:0], p, r, true, sink)
	spare := s.c[:0]
	for range maxPasses - 1 {
		if isCanonical(cur) {
			return cur, true // a fixed point of every reading
		}
		var next []byte
		next, tmp = pass(spare[:0], tmp, cur, r, false, sink)
		if bytes.Equal(next, cur) {
			return cur, true
		}
		cur, spare = next, cur
	}
	return cur, false
}

// pass is one pass of reading r over src: strip ";params", decode one
// level, "\" to "/", resolve dot segments, merge slashes, fold case, trim
// trailing dots and spaces, drop the last segment's extension. It writes
// the decoded text into tmp and the result into dst, and returns both.
// first marks the raw input (query, fragment and absolute-form are cut).
func pass[S string | []byte](dst, tmp []byte, src S, r reading, first bool, sink *walker) (out, scratch []byte) {
	start, end := 0, len(src)
	if first {
		if end > 0 && src[0] != '/' {
			start = skipAuthority(src)
		}
		for i := start; i < end; i++ {
			if src[i] == '?' || src[i] == '#' {
				end = i
				break
			}
		}
	}
	// Decode one level into tmp, stripping ";params" first.
	t := tmp[:0]
	for i := start; i < end; {
		c := src[i]
		if c == ';' && r&stripParams != 0 {
			for i < end && src[i] != '/' {
				i++
			}
			continue
		}
		if c == '%' {
			if n, w := unescape(src[i:end]); w > 0 {
				i += w
				if n < utf8.RuneSelf || w == 3 {
					t = emit(t, byte(n))
				} else {
					t = utf8.AppendRune(t, n)
				}
				if cutByte(t, r) {
					t = t[:len(t)-1]
					break
				}
				continue
			}
		}
		t = emit(t, c)
		i++
		if cutByte(t, r) {
			t = t[:len(t)-1]
			break
		}
	}
	// Segments.
	d := dst[:0]
	for i := 0; i <= len(t); {
		j := i
		for j < len(t) && t[j] != '/' && (t[j] != '\\' || r&backslash == 0) {
			j++
		}
		seg := t[i:j]
		i = j + 1
		switch {
		case len(seg) == 0:
			if r&keepEmpty != 0 && j < len(t) && i > 1 {
				d = append(d, '/')
			}
			continue
		case isDots(seg, r):
			if isParent(seg, r) {
				if k := bytes.LastIndexByte(d, '/'); k >= 0 {
					d = d[:k]
				}
			}
			continue
		}
		n := len(d)
		d = append(d, '/')
		if hasEscape(seg) {
			// Not decoded to the end yet: a trailing dot may be half of
			// a ".." the next decoding completes ("%2e." is ".." to a
			// second decoder, nginx then Tomcat); trim once decoded.
			d = appendFolded(d, seg)
		} else {
			d = appendFolded(d, trimSeg(seg))
		}
		if sink != nil {
			sink.visitStack(d, len(d)-n-1, r)
		}
	}
	if r&keepEmpty != 0 {
		d = compact(d)
	}
	d = stripExt(d)
	if len(d) == 0 {
		d = append(d, '/')
	}
	if sink != nil {
		visit(sink, d)
	}
	return d, t
}

// skipAuthority returns where the path of an absolute-form target starts
// ("http://host/p" gives the index of "/p"); for anything else, 0.
func skipAuthority[S string | []byte](s S) int {
	for i := 0; i+2 < len(s); i++ {
		c := s[i]
		if c == ':' && i > 0 && s[i+1] == '/' && s[i+2] == '/' {
			for j := i + 3; j < len(s); j++ {
				if s[j] == '/' {
					return j
				}
			}
			return len(s)
		}
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || i > 0 && ('0' <= c && c <= '9' || c == '+' || c == '-' || c == '.')) {
			return 0
		}
	}
	return 0
}

// cutByte reports whether the last byte of t ends the path in reading r.
func cutByte(t []byte, r reading) bool {
	switch t[len(t)-1] {
	case 0:
		return r&cutAtNUL != 0
	case '?', '#':
		return r&reparse != 0
	}
	return false
}

// emit appends c, folding an overlong two-byte UTF-8 encoding of an ASCII
// byte ("\xc0\xae" is ".", as old Tomcat and IIS decoders had it).
func emit(t []byte, c byte) []byte {
	if c&0xc0 == 0x80 && len(t) > 0 && t[len(t)-1]&0xfe == 0xc0 {
		t[len(t)-1] = (t[len(t)-1]&1)<<6 | c&0x3f
		return t
	}
	return append(t, c)
}

// unescape decodes "%XX" (width 3, a byte) or IIS's "%uXXXX" (width 6, a
// rune, surrogates excluded) at the start of s; width 0 means s does not
// start with a valid escape and its "%" is literal.
func unescape[S string | []byte](s S) (rune, int) {
	if len(s) >= 3 {
		if h, ok1 := unhex(s[1]); ok1 {
			if l, ok2 := unhex(s[2]); ok2 {
				return rune(h<<4 | l), 3
			}
		}
	}
	if len(s) >= 6 && (s[1] == 'u' || s[1] == 'U') {
		var r rune
		for k := 2; k < 6; k++ {
			v, ok := unhex(s[k])
			if !ok {
				return 0, 0
			}
			r = r<<4 | rune(v)
		}
		if r >= 0xd800 && r < 0xe000 {
			return 0, 0
		}
		return r, 6
	}
	return 0, 0
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// isDots reports whether seg is a dot segment in reading r: "." or ".."
// everywhere; with windowsDots, any segment made of dots and spaces.
func isDots(seg []byte, r reading) bool {
	if r&windowsDots != 0 {
		for _, c := range seg {
			if c != '.' && c != ' ' {
				return false
			}
		}
		return true
	}
	return len(seg) == 1 && seg[0] == '.' || len(seg) == 2 && seg[0] == '.' && seg[1] == '.'
}

// isParent reports whether the dot segment seg means the parent.
func isParent(seg []byte, r reading) bool {
	if r&windowsDots != 0 {
		for len(seg) > 0 && seg[len(seg)-1] == ' ' {
			seg = seg[:len(seg)-1]
		}
	}
	return len(seg) == 2 && seg[0] == '.' && seg[1] == '.'
}

// hasEscape reports whether seg holds a valid percent escape (one more
// decoding pass would change it).
func hasEscape(seg []byte) bool {
	for k := bytes.IndexByte(seg, '%'); k >= 0; {
		if _, w := unescape(seg[k:]); w > 0 {
			return true
		}
		n := bytes.IndexByte(seg[k+1:], '%')
		if n < 0 {
			return false
		}
		k += 1 + n
	}
	return false
}

// trimSeg drops trailing dots and spaces (Windows ignores them) from a
// segment that has some other byte; a segment of dots and spaces only is
// a name of its own outside windowsDots and is kept as is.
func trimSeg(seg []byte) []byte {
	n := trimDotsSpaces(seg)
	if n == 0 {
		return seg
	}
	return seg[:n]
}

// trimDotsSpaces returns the length of b without its trailing dots and
// spaces.
func trimDotsSpaces(b []byte) int {
	n := len(b)
	for n > 0 && (b[n-1] == '.' || b[n-1] == ' ') {
		n--
	}
	return n
}

// compact removes empty segments (and a trailing "/") left by keepEmpty.
func compact(d []byte) []byte {
	w := 0
	for i := 0; i < len(d); i++ {
		if d[i] == '/' && (i+1 == len(d) || d[i+1] == '/') {
			continue
		}
		d[w] = d[i]
		w++
	}
	return d[:w]
}

// stripExt drops the extension of the last segment, from its first "."
// past any leading dots (Spring's suffix pattern match, ThinkPHP's
// url_html_suffix: "/login.json" and "/login.html" are "/login"), unless
// what would be left is only dots and spaces.
func stripExt(d []byte) []byte {
	s := bytes.LastIndexByte(d, '/') + 1
	last := d[s:]
	lead := 0
	for lead < len(last) && last[lead] == '.' {
		lead++
	}
	k := bytes.IndexByte(last[lead:], '.')
	if k < 0 {
		return d
	}
	keep := last[:trimDotsSpaces(last[:lead+k])]
	for _, c := range keep {
		if c != '.' && c != ' ' {
			return d[:s+len(keep)]
		}
	}
	return d
}

// appendFolded appends seg with every rune replaced by the representative
// of its case class (foldRune); bytes that are not UTF-8 are kept.
func appendFolded(d, seg []byte) []byte {
	for i := 0; i < len(seg); {
		c := seg[i]
		if c < utf8.RuneSelf {
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			d = append(d, c)
			i++
			continue
		}
		r, w := utf8.DecodeRune(seg[i:])
		if r == utf8.RuneError && w == 1 {
			d = append(d, c)
			i++
			continue
		}
		d = utf8.AppendRune(d, foldRune(r))
		i += w
	}
	return d
}

// foldRune maps r to one representative of every rune some case-insensitive
// router equates with it: the smallest rune among the simple case folding
// orbits (Go's EqualFold) of r, ToLower(r) and ToUpper(r) (Java's and .NET's
// ignore-case, which also equate 'ı' and 'İ' with 'i'), lower-cased if it is
// ASCII. So 'K' (Kelvin sign) is "k" and 'ſ' (long s) is "s". The smallest
// rune never has a longer UTF-8 encoding than r.
func foldRune(r rune) rune {
	m := r
	for _, s := range [3]rune{r, unicode.ToLower(r), unicode.ToUpper(r)} {
		if s < m {
			m = s
		}
		for f := unicode.SimpleFold(s); f != s; f = unicode.SimpleFold(f) {
			if f < m {
				m = f
			}
		}
	}
	if 'A' <= m && m <= 'Z' {
		m += 'a' - 'A'
	}
	return m
}
