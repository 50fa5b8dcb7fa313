package wxcrypt

import (
	"strings"
	"unicode/utf8"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/mperr"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/reqbody/jsonobj"
)

// Phone is the phone number of a decrypted getPhoneNumber payload.
type Phone struct {
	PhoneNumber     string // with the country prefix for numbers outside mainland China
	PurePhoneNumber string // without it
	CountryCode     string // always text, whether the platform sent a string or a number
}

// maxPhoneLen bounds the length of phoneNumber and purePhoneNumber, and
// maxCountryLen that of countryCode (real ones are far shorter).
const (
	maxPhoneLen   = 32
	maxCountryLen = 8
)

// ParsePhone extracts phoneNumber, purePhoneNumber and countryCode from a
// decrypted phone payload. Each may be a JSON string or a JSON number (as
// the platforms' docs disagree on countryCode's type); phoneNumber is
// required. The values end up in headers and log lines, so only phone
// characters are accepted: digits, '+', '-', ' ', '(' and ')' (countryCode:
// digits and a leading '+'). Errors are mperr.BadRequest with a fixed message.
//
// Keys are matched exactly and the last of duplicates wins. The object is
// walked once, and the three values share one allocation.
func ParsePhone(plaintext []byte) (Phone, error) {
	if !isObject(plaintext) {
		return Phone{}, errNotPhone()
	}
	it, ok := jsonobj.Object(plaintext)
	if !ok {
		return Phone{}, errNotPhone()
	}
	var raw [3][]byte // phoneNumber, purePhoneNumber, countryCode
	for k, v, ok := it.Next(); ok; k, v, ok = it.Next() {
		switch {
		case jsonobj.Equal(k, "phoneNumber"):
			raw[0] = v
		case jsonobj.Equal(k, "purePhoneNumber"):
			raw[1] = v
		case jsonobj.Equal(k, "countryCode"):
			raw[2] = v
		}
	}
	var buf [2*maxPhoneLen + maxCountryLen]byte
	text := buf[:0]
	var ends [3]int
	for i, r := range raw {
		if text, ok = appendScalar(text, r); !ok {
			return Phone{}, errNotPhone()
		}
		ends[i] = len(text)
	}
	all := string(text)
	p := Phone{PhoneNumber: all[:ends[0]], PurePhoneNumber: all[ends[0]:ends[1]], CountryCode: all[ends[1]:ends[2]]}
	if p.PhoneNumber == "" || !phoneChars(p.PhoneNumber) || !phoneChars(p.PurePhoneNumber) || !countryChars(p.CountryCode) {
		return Phone{}, errNotPhone()
	}
	return p, nil
}

func errNotPhone() error { return mperr.New(mperr.BadRequest, MsgNotPhone) }

// appendScalar appends the text of a raw JSON string or number (digits
// only); absent or null appends nothing.
func appendScalar(dst, raw []byte) ([]byte, bool) {
	if len(raw) == 0 || string(raw) == "null" {
		return dst, true
	}
	switch c := raw[0]; {
	case c == '"':
		return jsonobj.AppendUnquote(dst, raw), true
	case c >= '0' && c <= '9':
		for _, d := range raw {
			if d < '0' || d > '9' { // no fractions or exponents in a phone number
				return dst, false
			}
		}
		return append(dst, raw...), true
	}
	return dst, false
}

func phoneChars(s string) bool {
	if len(s) > maxPhoneLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9', c == '+', c == '-', c == ' ', c == '(', c == ')':
		default:
			return false
		}
	}
	return true
}

func countryChars(s string) bool {
	if len(s) > maxCountryLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c == '+' && i == 0) {
			return false
		}
	}
	return true
}

// MaskPhone masks a phone number for log lines: the first 3 and last 4
// characters are kept and the rest replaced by '*' ("13800138000" →
// "138****8000"). Inputs shorter than 11 characters are masked entirely.
func MaskPhone(s string) string {
	n := utf8.RuneCountInString(s)
	if n < 11 {
		return strings.Repeat("*", n)
	}
	var b strings.Builder
	b.Grow(len(s))
	i := 0
	for _, r := range s {
		if i < 3 || i >= n-4 {
			b.WriteRune(r)
		} else {
			b.WriteByte('*')
		}
		i++
	}
	return b.String()
}
