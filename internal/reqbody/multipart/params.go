package multipart

import (
	"strings"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/ascii"
)

// param is one parameter of a header value, its key lowercased.
type param struct {
	key, value string
	escaped    bool // the value was a quoted-string with a quoted-pair
}

// parseHeaderValue parses a Content-Type or Content-Disposition value
// strictly:
//
//	value = token [ "/" token ] *( OWS ";" OWS token "=" ( token / quoted-string ) ) [ OWS ";" ] OWS
//
// It is the only parser of these headers in the package, so what it
// accepts is what the re-serialised body says. It refuses (ok false):
// whitespace around "=", a parameter key ending in or containing "*"
// (RFC 2231/5987 forms such as name*=, filename*=, boundary*0=, which
// parsers decode differently or not at all), the same key twice in any
// case, control characters other than HTAB in a quoted string, and
// anything left over. A quoted-pair ("\x") stands for x, as RFC 9110 says.
// typ is returned lowercased. A trailing ";" is allowed, an empty
// parameter elsewhere (";;") is not, as with mime.ParseMediaType.
func parseHeaderValue(s string, slash bool) (typ string, params []param, ok bool) {
	s = ascii.TrimOWS(s)
	typ, s = cutToken(s)
	if typ == "" {
		return "", nil, false
	}
	if slash {
		if s == "" || s[0] != '/' {
			return "", nil, false
		}
		var sub string
		sub, s = cutToken(s[1:])
		if sub == "" {
			return "", nil, false
		}
		typ += "/" + sub
	}
	typ = strings.ToLower(typ)
	for {
		s = ascii.TrimOWS(s)
		if s == "" {
			return typ, params, true
		}
		if s[0] != ';' {
			return "", nil, false
		}
		s = ascii.TrimOWS(s[1:])
		if s == "" {
			return typ, params, true // a trailing ";"
		}
		var key, value string
		var escaped bool
		key, s = cutToken(s)
		if key == "" || strings.IndexByte(key, '*') >= 0 || s == "" || s[0] != '=' {
			return "", nil, false
		}
		s = s[1:]
		if s != "" && s[0] == '"' {
			value, escaped, s, ok = cutQuoted(s)
			if !ok {
				return "", nil, false
			}
		} else {
			value, s = cutToken(s)
			if value == "" {
				return "", nil, false
			}
		}
		key = strings.ToLower(key)
		for _, p := range params {
			if p.key == key {
				return "", nil, false
			}
		}
		params = append(params, param{key, value, escaped})
	}
}

// cutToken splits s after its leading run of RFC 9110 tchar.
func cutToken(s string) (token, rest string) {
	i := 0
	for i < len(s) && isTchar(s[i]) {
		i++
	}
	return s[:i], s[i:]
}

func isTchar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// cutQuoted reads the quoted-string at the start of s (s[0] == '"').
func cutQuoted(s string) (value string, escaped bool, rest string, ok bool) {
	var b []byte // only when there is a quoted-pair
	for i := 1; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"':
			if b != nil {
				return string(b), true, s[i+1:], true
			}
			return s[1:i], false, s[i+1:], true
		case c == '\\':
			if i+1 == len(s) || isCTL(s[i+1]) {
				return "", false, "", false
			}
			if b == nil {
				b = append(make([]byte, 0, len(s)), s[1:i]...)
			}
			i++
			b = append(b, s[i])
		case isCTL(c):
			return "", false, "", false
		default:
			if b != nil {
				b = append(b, c)
			}
		}
	}
	return "", false, "", false // no closing quote
}

// isCTL: controls other than HTAB, and DEL.
func isCTL(c byte) bool { return c < 0x20 && c != '\t' || c == 0x7f }

// validBoundary: RFC 2046's boundary, 1 to 70 bchars not ending in a space.
func validBoundary(b string) bool {
	if len(b) == 0 || len(b) > 70 || b[len(b)-1] == ' ' {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("'()+_,-./:=? ", c) >= 0:
		default:
			return false
		}
	}
	return true
}
