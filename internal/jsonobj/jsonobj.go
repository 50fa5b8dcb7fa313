// Package jsonobj walks the top-level members of a JSON object without
// decoding it, keeping every key and value as the exact bytes of the input,
// and compares JSON string tokens with Go strings without allocating.
//
// The walker expects input that encoding/json's Valid accepted: it does not
// validate, but it never panics and stops (ok false) on input it cannot walk.
package jsonobj

import (
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// Iter walks the members of a JSON object.
type Iter struct {
	data []byte
	pos  int
}

// Object starts a walk over data, which must be valid JSON. It is false
// when the top-level value is not an object.
func Object(data []byte) (Iter, bool) {
	i := skipWS(data, 0)
	if i >= len(data) || data[i] != '{' {
		return Iter{}, false
	}
	return Iter{data: data, pos: i + 1}, true
}

// Next returns the next member: key is the raw key token, quotes included;
// value is the raw value, without surrounding whitespace. Both alias the
// input. ok is false at the end of the object.
func (it *Iter) Next() (key, value []byte, ok bool) {
	d := it.data
	i := skipWS(d, it.pos)
	if i < len(d) && d[i] == ',' {
		i = skipWS(d, i+1)
	}
	if i >= len(d) || d[i] != '"' {
		it.pos = len(d)
		return nil, nil, false
	}
	ks := i
	if i = skipString(d, i); i < 0 {
		it.pos = len(d)
		return nil, nil, false
	}
	key = d[ks:i]
	i = skipWS(d, i)
	if i >= len(d) || d[i] != ':' {
		it.pos = len(d)
		return nil, nil, false
	}
	i = skipWS(d, i+1)
	vs := i
	if i = skipValue(d, i); i < 0 {
		it.pos = len(d)
		return nil, nil, false
	}
	it.pos = i
	return key, d[vs:i], true
}

func skipWS(d []byte, i int) int {
	for i < len(d) {
		switch d[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// skipString returns the index after the string token starting at d[i]
// (a '"'), or -1.
func skipString(d []byte, i int) int {
	for i++; i < len(d); i++ {
		switch d[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return -1
}

// skipValue returns the index after the value starting at d[i], or -1.
func skipValue(d []byte, i int) int {
	if i >= len(d) {
		return -1
	}
	switch d[i] {
	case '"':
		return skipString(d, i)
	case '{', '[':
		depth := 0
		for i < len(d) {
			switch d[i] {
			case '"':
				if i = skipString(d, i); i < 0 {
					return -1
				}
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return -1
	}
	start := i
	for i < len(d) {
		switch d[i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			if i == start {
				return -1
			}
			return i
		}
		i++
	}
	if i == start {
		return -1
	}
	return i
}

// decoder yields the runes of a JSON string token as encoding/json decodes
// them: escapes resolved, invalid UTF-8 and lone surrogates as U+FFFD.
type decoder struct {
	s []byte // token content, quotes removed
	i int
}

func newDecoder(tok []byte) decoder {
	if len(tok) >= 2 && tok[0] == '"' && tok[len(tok)-1] == '"' {
		tok = tok[1 : len(tok)-1]
	}
	return decoder{s: tok}
}

func (d *decoder) more() bool { return d.i < len(d.s) }

func (d *decoder) next() rune {
	s := d.s
	c := s[d.i]
	if c != '\\' {
		if c < utf8.RuneSelf {
			d.i++
			return rune(c)
		}
		r, n := utf8.DecodeRune(s[d.i:])
		d.i += n
		return r // RuneError for invalid bytes, as encoding/json
	}
	if d.i+1 >= len(s) {
		d.i = len(s)
		return utf8.RuneError
	}
	e := s[d.i+1]
	d.i += 2
	switch e {
	case 'b':
		return '\b'
	case 'f':
		return '\f'
	case 'n':
		return '\n'
	case 'r':
		return '\r'
	case 't':
		return '\t'
	case 'u':
		r := getu4(s, d.i)
		if r < 0 {
			d.i = len(s)
			return utf8.RuneError
		}
		d.i += 4
		if utf16.IsSurrogate(r) {
			if d.i+1 < len(s) && s[d.i] == '\\' && s[d.i+1] == 'u' {
				if r2 := getu4(s, d.i+2); r2 >= 0 {
					if dec := utf16.DecodeRune(r, r2); dec != unicode.ReplacementChar {
						d.i += 6
						return dec
					}
				}
			}
			return unicode.ReplacementChar
		}
		return r
	}
	return rune(e) // '"', '\\', '/'
}

func getu4(s []byte, i int) rune {
	if i+4 > len(s) {
		return -1
	}
	var r rune
	for _, c := range s[i : i+4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return -1
		}
		r = r*16 + rune(c)
	}
	return r
}

// RuneAt decodes the rune at byte i of the content of a JSON string token
// (the bytes between its quotes) as encoding/json does (escapes resolved,
// invalid UTF-8 and lone surrogates as U+FFFD) and returns it with the
// index of the next one. i must be less than len(content).
func RuneAt(content []byte, i int) (r rune, next int) {
	d := decoder{s: content, i: i}
	r = d.next()
	return r, d.i
}

// plainASCII reports whether tok (a string token) has no escapes and only
// ASCII, so that its bytes between the quotes are its value.
func plainASCII(tok []byte) bool {
	if len(tok) < 2 || tok[0] != '"' || tok[len(tok)-1] != '"' {
		return false
	}
	for _, c := range tok[1 : len(tok)-1] {
		if c == '\\' || c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// Equal reports whether the JSON string token tok decodes to s.
func Equal(tok []byte, s string) bool {
	if plainASCII(tok) {
		return string(tok[1:len(tok)-1]) == s
	}
	d := newDecoder(tok)
	for _, r := range s {
		if !d.more() || d.next() != r {
			return false
		}
	}
	return !d.more()
}

// EqualFold reports whether the JSON string token tok decodes to a string
// that a case-insensitive JSON decoder would take for s (see FoldRune).
func EqualFold(tok []byte, s string) bool {
	d := newDecoder(tok)
	for _, r := range s {
		if !d.more() || !FoldRune(d.next(), r) {
			return false
		}
	}
	return !d.more()
}

// EqualFoldString is EqualFold for two Go strings.
func EqualFoldString(a, b string) bool {
	for _, r := range a {
		if b == "" {
			return false
		}
		r2, n := utf8.DecodeRuneInString(b)
		b = b[n:]
		if !FoldRune(r, r2) {
			return false
		}
	}
	return b == ""
}

// FoldRune reports whether a and b are the same letter to some widespread
// case-insensitive key matcher: simple Unicode case folding (Go's
// strings.EqualFold), encoding/json's ToUpper(ToLower(r)) (which also
// equates 'ſ' with 's', 'ı' with 'i' and 'K' (Kelvin) with 'k'), and plain
// ToUpper / ToLower (.NET's and Java's ignore-case). It errs on the side of
// "equal": a false match only removes a client-sent field.
func FoldRune(a, b rune) bool {
	if a == b {
		return true
	}
	if a < utf8.RuneSelf && b < utf8.RuneSelf {
		if 'A' <= a && a <= 'Z' {
			a += 'a' - 'A'
		}
		if 'A' <= b && b <= 'Z' {
			b += 'a' - 'A'
		}
		return a == b
	}
	if unicode.ToUpper(unicode.ToLower(a)) == unicode.ToUpper(unicode.ToLower(b)) ||
		unicode.ToUpper(a) == unicode.ToUpper(b) || unicode.ToLower(a) == unicode.ToLower(b) {
		return true
	}
	for r := unicode.SimpleFold(a); r != a; r = unicode.SimpleFold(r) {
		if r == b {
			return true
		}
	}
	return false
}

// AppendUnquote appends the decoded value of the JSON string token tok.
func AppendUnquote(dst []byte, tok []byte) []byte {
	if plainASCII(tok) {
		return append(dst, tok[1:len(tok)-1]...)
	}
	d := newDecoder(tok)
	for d.more() {
		dst = utf8.AppendRune(dst, d.next())
	}
	return dst
}

// Unquote returns the decoded value of the JSON string token tok.
func Unquote(tok []byte) string {
	if plainASCII(tok) {
		return string(tok[1 : len(tok)-1])
	}
	return string(AppendUnquote(make([]byte, 0, len(tok)), tok))
}

const hex = "0123456789abcdef"

// AppendString appends s as a JSON string token: quotes, backslashes and
// control characters escaped, U+2028 and U+2029 escaped, invalid UTF-8
// replaced by U+FFFD (as encoding/json does). No HTML escaping.
func AppendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += n
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[r&0xf])
			i += n
			start = i
			continue
		}
		i += n
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
