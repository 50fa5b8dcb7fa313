package reqbody

import (
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/ascii"

	"strings"
)

// Query strings are split the way lenient parsers split them: on '&'
// always, and on ';' as well (old Python cgi and parse_qs, some servlet
// containers), so a pair "a=1;openid=x" holds, to some parser, a field
// openid. Names are decoded leniently (see queryName).

// StripQuery removes from the raw query string raw every pair that some
// lenient parser could file under one of names (SameName). The unit
// removed is a whole '&'-separated pair: if the pair, or any of its
// ';'-separated parts, has a matching name, the whole pair goes
// ("a=1;openid=x" is removed, a too). Every other pair, empty ones
// included, is kept byte for byte and in order, joined by '&'. changed
// tells whether anything was removed; when nothing is, out is raw and
// nothing is allocated.
func StripQuery(raw string, names ...string) (out string, changed bool) {
	if raw == "" || len(names) == 0 {
		return raw, false
	}
	var b strings.Builder
	removed, first := false, true
	for i, rest := 0, raw; ; {
		seg, after, more := strings.Cut(rest, "&")
		drop := segmentMatches(seg, names)
		switch {
		case drop && !removed:
			// First removal: copy what was kept so far.
			removed = true
			b.Grow(len(raw))
			if i > 0 {
				b.WriteString(raw[:i-1]) // without the '&' before seg
				first = false
			}
		case !drop && removed:
			if !first {
				b.WriteByte('&')
			}
			b.WriteString(seg)
			first = false
		}
		if !more {
			break
		}
		i += len(seg) + 1
		rest = after
	}
	if !removed {
		return raw, false
	}
	return b.String(), true
}

// segmentMatches reports whether an '&'-separated pair has, as a whole or
// in one of its ';'-separated parts, a name matching one of names.
func segmentMatches(seg string, names []string) bool {
	if seg == "" {
		return false
	}
	if pairNameMatches(seg, names) {
		return true
	}
	if strings.IndexByte(seg, ';') < 0 {
		return false
	}
	for part := range strings.SplitSeq(seg, ";") {
		if pairNameMatches(part, names) {
			return true
		}
	}
	return false
}

func pairNameMatches(pair string, names []string) bool {
	name, _, _ := strings.Cut(pair, "=")
	if name == "" {
		return false
	}
	for _, n := range names {
		if queryNameMatches(name, n) {
			return true
		}
	}
	return false
}

// QueryValue reads the field name from the raw query string raw: value is
// the value of the first pair whose name decodes to exactly name (pairs
// split on '&' and ';', names and values decoded leniently: '+' is a space,
// %XX a byte, any other '%' itself), "" when there is none; count is the
// number of pairs whose name some lenient parser could take for name
// (SameName), so that a caller can refuse a field sent twice, or under two
// spellings. value is a substring of raw unless it needed decoding.
func QueryValue(raw, name string) (value string, count int) {
	found := false
	for seg := range strings.SplitSeq(raw, "&") {
		for part := range strings.SplitSeq(seg, ";") {
			k, v, _ := strings.Cut(part, "=")
			if k == "" {
				continue
			}
			if queryNameMatches(k, name) {
				count++
			}
			if !found && decodedIs(k, name) {
				value, found = unescape(v), true
			}
		}
	}
	return value, count
}

// decodedIs reports whether the lenient decoding of k is exactly name.
func decodedIs(k, name string) bool {
	if strings.IndexByte(k, '%') < 0 && strings.IndexByte(k, '+') < 0 {
		return k == name
	}
	q := queryName(k)
	j := 0
	for i := 0; i < len(q); {
		v, next, wide := q.unit(i)
		if wide || j >= len(name) || name[j] != byte(v) {
			return false
		}
		i, j = next, j+1
	}
	return j == len(name)
}

// unescape decodes a query value leniently: '+' is a space, %XX a byte, any
// other '%' itself.
func unescape(v string) string {
	if strings.IndexByte(v, '%') < 0 && strings.IndexByte(v, '+') < 0 {
		return v
	}
	b := make([]byte, 0, len(v))
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c == '+':
			b = append(b, ' ')
		case c == '%' && i+2 < len(v) && ascii.IsHex(v[i+1]) && ascii.IsHex(v[i+2]):
			b = append(b, ascii.Unhex(v[i+1])<<4|ascii.Unhex(v[i+2]))
			i += 2
		default:
			b = append(b, c)
		}
	}
	return string(b)
}
