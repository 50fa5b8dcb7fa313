package reqbody

import (
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/jsonobj"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/ascii"
)

// Field names are compared by their skeleton, so that a protected name is
// removed under every spelling some lenient binder equates with it. See the
// package documentation for the exact rules.

// Skeleton returns the canonical form of the top-level name a PHP-like or
// qs-like parser files a field named name under: name cut at its first NUL,
// leading '[' and ']' and ignorable runes skipped, cut at the next '[' or
// ']', ignorable runes dropped, every rune folded (see the package
// documentation). Skeleton("Open_Id[]") is "openid".
//
// SameName compares more readings than this one; Skeleton is for logs,
// tables and tests.
func Skeleton(name string) string {
	s := plainName(name)
	end := nulEnd(s)
	i := 0
	for i < end { // leading brackets and ignorables
		r, n := s.at(i)
		if r != '[' && r != ']' && !ignorable(r) {
			break
		}
		i = n
	}
	stop := i
	for stop < end {
		r, n := s.at(stop)
		if r == '[' || r == ']' {
			break
		}
		stop = n
	}
	out := make([]rune, 0, stop-i)
	for {
		r, next, ok := nextSkel(s, i, stop, true)
		if !ok {
			break
		}
		out = append(out, r)
		i = next
	}
	return string(out)
}

// SameName reports whether a lenient binder could take a field sent under
// the name sent for the field name. It is not symmetric: the readings of
// the package documentation apply to sent, name is read whole (cut at NUL,
// ignorable runes and brackets dropped, folded). A name whose skeleton is
// empty is the same as no name. It does not allocate.
func SameName(sent, name string) bool {
	if simple, eq := asciiSame(sent, name); simple {
		return eq
	}
	if sameName(plainName(sent), name) {
		return true
	}
	if utf8.ValidString(sent) && utf8.ValidString(name) {
		return false
	}
	return sameAs(replacedName(sent), replacedName(name))
}

// source is a field name as some parser decodes it.
type source interface {
	// at decodes the rune starting at byte i (< size) and returns the
	// index after it.
	at(i int) (r rune, next int)
	size() int
}

// plainName is a decoded name. Bytes that are not UTF-8 are read as
// Latin-1 (as a servlet container reading the request as ISO-8859-1 would).
type plainName string

func (s plainName) size() int { return len(s) }

func (s plainName) at(i int) (rune, int) {
	c := s[i]
	if c < utf8.RuneSelf {
		return rune(c), i + 1
	}
	r, n := utf8.DecodeRuneInString(string(s[i:]))
	if r == utf8.RuneError && n <= 1 {
		return rune(c), i + 1
	}
	return r, i + n
}

// replacedName is a decoded name whose bytes that are not UTF-8 are read as
// U+FFFD (as a decoder replacing errors would).
type replacedName string

func (s replacedName) size() int { return len(s) }

func (s replacedName) at(i int) (rune, int) {
	r, n := utf8.DecodeRuneInString(string(s[i:]))
	return r, i + n
}

// jsonKey is the content of a JSON string token (quotes removed), decoded
// as encoding/json does.
type jsonKey []byte

func (s jsonKey) size() int            { return len(s) }
func (s jsonKey) at(i int) (rune, int) { return jsonobj.RuneAt(s, i) }

// keyOf returns the content of a key token.
func keyOf(tok []byte) jsonKey {
	if len(tok) >= 2 {
		return jsonKey(tok[1 : len(tok)-1])
	}
	return jsonKey(tok)
}

// queryName is a raw (percent-encoded) name of a query string or form,
// decoded leniently: '+' is a space, %XX a byte, %uXXXX a rune (legacy
// ASP.NET), and a '%' that starts neither stays a '%' (PHP's urldecode).
// Bytes that do not make UTF-8 are read as Latin-1.
type queryName string

func (s queryName) size() int { return len(s) }

// replacedQueryName is a queryName whose bytes that do not make UTF-8 are
// read as U+FFFD.
type replacedQueryName string

func (s replacedQueryName) size() int { return len(s) }

func (s replacedQueryName) at(i int) (rune, int) {
	r, next := queryName(s).at(i)
	if r >= 0x80 && r <= 0xFF && next == i+3 && s[i] == '%' || r >= 0x80 && r <= 0xFF && next == i+1 {
		// One byte that did not make UTF-8 (a Latin-1 rune from one
		// %XX or one raw byte; a UTF-8 rune spans more).
		return utf8.RuneError, next
	}
	return r, next
}

// queryNameMatches is SameName for a raw query or form name.
func queryNameMatches(sent, name string) bool {
	if simple, eq := asciiSame(sent, name); simple {
		return eq
	}
	if sameName(queryName(sent), name) {
		return true
	}
	for i := 0; i < len(sent); i++ {
		if c := sent[i]; c == '%' || c >= utf8.RuneSelf {
			return sameAs(replacedQueryName(sent), replacedName(name))
		}
	}
	return false
}

// unit decodes one byte (or, for %uXXXX, one rune: wide) at i.
func (s queryName) unit(i int) (v rune, next int, wide bool) {
	switch c := s[i]; c {
	case '+':
		return ' ', i + 1, false
	case '%':
		if i+2 < len(s) && ascii.IsHex(s[i+1]) && ascii.IsHex(s[i+2]) {
			return rune(ascii.Unhex(s[i+1])<<4 | ascii.Unhex(s[i+2])), i + 3, false
		}
		if i+5 < len(s) && (s[i+1] == 'u' || s[i+1] == 'U') &&
			ascii.IsHex(s[i+2]) && ascii.IsHex(s[i+3]) && ascii.IsHex(s[i+4]) && ascii.IsHex(s[i+5]) {
			r := rune(ascii.Unhex(s[i+2]))<<12 | rune(ascii.Unhex(s[i+3]))<<8 | rune(ascii.Unhex(s[i+4]))<<4 | rune(ascii.Unhex(s[i+5]))
			return r, i + 6, true
		}
		return '%', i + 1, false
	default:
		return rune(c), i + 1, false
	}
}

func (s queryName) at(i int) (rune, int) {
	v, next, wide := s.unit(i)
	if wide || v < utf8.RuneSelf {
		return v, next
	}
	var buf [utf8.UTFMax]byte
	buf[0] = byte(v)
	need := 1
	switch {
	case v >= 0xF0 && v <= 0xF4:
		need = 4
	case v >= 0xE0:
		need = 3
	case v >= 0xC2:
		need = 2
	}
	n, k := 1, next
	for n < need && k < len(s) {
		c, k2, w := s.unit(k)
		if w || c < 0x80 || c > 0xBF {
			break
		}
		buf[n] = byte(c)
		n, k = n+1, k2
	}
	if r, size := utf8.DecodeRune(buf[:n]); size == n && n > 1 {
		return r, k
	}
	return v, next // Latin-1
}

// ignorable reports whether r is dropped from skeletons: '_', '-', '.',
// '!', every control character and space below U+0021 and U+007F, Unicode
// white space (unicode.IsSpace: U+0085, U+00A0, U+1680, U+2000–U+200A,
// U+2028, U+2029, U+202F, U+205F, U+3000), the soft hyphen U+00AD and the
// invisible U+180E, U+200B–U+200D, U+2060 and U+FEFF. NUL is not here: it
// ends a name.
func ignorable(r rune) bool {
	if r <= ' ' {
		return true
	}
	if r < utf8.RuneSelf {
		return r == '_' || r == '-' || r == '.' || r == '!' || r == 0x7f
	}
	switch r {
	case 0xAD, 0x180E, 0x200B, 0x200C, 0x200D, 0x2060, 0xFEFF:
		return true
	}
	return unicode.IsSpace(r)
}

// nulEnd returns the index of the first NUL of s, or its size.
func nulEnd[S source](s S) int {
	for i := 0; i < s.size(); {
		r, n := s.at(i)
		if r == 0 {
			return i
		}
		i = n
	}
	return s.size()
}

// nextSkel returns the first rune of the skeleton of s[i:end]: ignorable
// runes (and brackets when brackets is true) are skipped, the rune found is
// folded. ok is false when there is none.
func nextSkel[S source](s S, i, end int, brackets bool) (r rune, next int, ok bool) {
	for i < end {
		r, next = s.at(i)
		if ignorable(r) || brackets && (r == '[' || r == ']') {
			i = next
			continue
		}
		return fold(r), next, true
	}
	return 0, i, false
}

// skelEqual reports whether the skeleton of s[a:b] is that of name[:nend]
// (brackets dropped from name).
func skelEqual[S, N source](s S, a, b int, brackets bool, name N, nend int) bool {
	i, j := a, 0
	for {
		r1, i2, ok1 := nextSkel(s, i, b, brackets)
		r2, j2, ok2 := nextSkel(name, j, nend, true)
		if !ok1 || !ok2 {
			return ok1 == ok2
		}
		if r1 != r2 {
			return false
		}
		i, j = i2, j2
	}
}

// sameName is SameName for any source. The readings of sent (cut at its
// first NUL) are: the whole name with '[' and ']' dropped; each piece
// between brackets; each piece between brackets and dots.
func sameName[S source](sent S, name string) bool {
	return sameAs(sent, plainName(name))
}

// sameAs is sameName with the name read as nm.
func sameAs[S, N source](sent S, nm N) bool {
	nend := nulEnd(nm)
	if _, _, ok := nextSkel(nm, 0, nend, true); !ok {
		return false
	}
	end := nulEnd(sent)
	if skelEqual(sent, 0, end, true, nm, nend) {
		return true
	}
	piece, dot, split := 0, 0, false
	for i := 0; i < end; {
		r, next := sent.at(i)
		switch r {
		case '[', ']':
			if skelEqual(sent, piece, i, false, nm, nend) ||
				dot != piece && skelEqual(sent, dot, i, false, nm, nend) {
				return true
			}
			piece, dot, split = next, next, true
		case '.':
			if skelEqual(sent, dot, i, false, nm, nend) {
				return true
			}
			dot, split = next, true
		}
		i = next
	}
	if split {
		return skelEqual(sent, piece, end, false, nm, nend) ||
			dot != piece && skelEqual(sent, dot, end, false, nm, nend)
	}
	return false
}

// asciiSame is the fast path of sameName: when the raw bytes of sent are
// all ASCII letters and digits (so no escape, '%' or '+' either) and name's
// too, the skeletons are the names folded; simple is false otherwise.
func asciiSame[T ~string | ~[]byte](sent T, name string) (simple, eq bool) {
	if len(sent) == 0 {
		return false, false
	}
	for i := 0; i < len(name); i++ {
		if !alnum(name[i]) {
			return false, false
		}
	}
	eq = len(sent) == len(name)
	for i := 0; i < len(sent); i++ {
		c := sent[i]
		if !alnum(c) {
			return false, false
		}
		if eq && lower(c) != lower(name[i]) {
			eq = false
		}
	}
	return true, eq
}

func alnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// fold maps r to the representative of its case class: the class joins r
// with its unicode.ToUpper, unicode.ToLower, ToUpper(ToLower) and
// unicode.SimpleFold images, transitively, so that jsonobj.FoldRune(a, b)
// implies fold(a) == fold(b). A class holding an ASCII letter is
// represented by the lower-case letter ('K' (Kelvin), 'ſ', 'ı', 'İ' fold to
// 'k', 's', 'i', 'i'), any other by its smallest rune.
func fold(r rune) rune {
	if r < utf8.RuneSelf {
		return rune(lower(byte(r)))
	}
	if c, ok := foldTable()[r]; ok {
		return c
	}
	return r
}

var foldTable = sync.OnceValue(func() map[rune]rune {
	parent := make(map[rune]rune, 4096)
	var find func(rune) rune
	find = func(r rune) rune {
		p, ok := parent[r]
		if !ok || p == r {
			return r
		}
		root := find(p)
		parent[r] = root
		return root
	}
	union := func(a, b rune) {
		ra, rb := find(a), find(b)
		if ra == rb {
			return
		}
		// Keep the preferred representative as root: an ASCII letter,
		// else the smaller rune.
		if better(rb, ra) {
			ra, rb = rb, ra
		}
		parent[ra] = ra
		parent[rb] = ra
	}
	for _, cr := range unicode.CaseRanges {
		for r := rune(cr.Lo); r <= rune(cr.Hi); r++ {
			union(r, unicode.ToUpper(r))
			union(r, unicode.ToLower(r))
			union(r, unicode.ToUpper(unicode.ToLower(r)))
			for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
				union(r, f)
			}
		}
	}
	table := make(map[rune]rune, len(parent))
	for r := range parent {
		if r < utf8.RuneSelf {
			continue
		}
		c := find(r)
		if c < utf8.RuneSelf {
			c = rune(lower(byte(c)))
		}
		if c != r {
			table[r] = c
		}
	}
	return table
})

// better reports whether a is a better class representative than b.
func better(a, b rune) bool {
	aa, ba := a < utf8.RuneSelf, b < utf8.RuneSelf
	if aa != ba {
		return aa
	}
	return a < b
}
