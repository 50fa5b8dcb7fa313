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

// maxPhoneLen bounds the length of each field (real numbers are far shorter).
const maxPhoneLen = 32

// ParsePhone extracts phoneNumber, purePhoneNumber and countryCode from a
// decrypted phone payload. Each may be a JSON string or a JSON number (as
// the platforms' docs disagree on countryCode's type); phoneNumber is
// required. The values end up in headers and log lines, so only phone
// characters are accepted: digits, '+', '-', ' ', '(' and ')' (countryCode:
// digits and a leading '+'). Errors are mperr.BadRequest with a fixed message.
func ParsePhone(plaintext []byte) (Phone, error) {
	if !isObject(plaintext) {
		return Phone{}, errNotPhone()
	}
	var p Phone
	var ok bool
	if p.PhoneNumber, ok = scalarText(member(plaintext, "phoneNumber")); !ok || p.PhoneNumber == "" || !phoneChars(p.PhoneNumber) {
		return Phone{}, errNotPhone()
	}
	if p.PurePhoneNumber, ok = scalarText(member(plaintext, "purePhoneNumber")); !ok || !phoneChars(p.PurePhoneNumber) {
		return Phone{}, errNotPhone()
	}
	if p.CountryCode, ok = scalarText(member(plaintext, "countryCode")); !ok || !countryChars(p.CountryCode) {
		return Phone{}, errNotPhone()
	}
	return p, nil
}

func errNotPhone() error { return mperr.New(mperr.BadRequest, MsgNotPhone) }

// scalarText turns a raw JSON string or number into text; absent or null
// is "".
func scalarText(raw []byte) (string, bool) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", true
	}
	switch c := raw[0]; {
	case c == '"':
		return jsonobj.Unquote(raw), true
	case c >= '0' && c <= '9':
		for _, d := range raw {
			if d < '0' || d > '9' { // no fractions or exponents in a phone number
				return "", false
			}
		}
		return string(raw), true
	}
	return "", false
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
	if len(s) > 8 {
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
