// Package phone is the plugin's one phone-number type and its one rule of
// what a phone number may contain, whichever way it was obtained (a
// decrypted payload, a platform's phone-code answer, the retry cache).
package phone

import (
	"strings"
	"unicode/utf8"
)

// Number is a user's phone number as the platforms give it. Its JSON form
// (the platforms' own field names) is the retry cache's record.
type Number struct {
	PhoneNumber     string `json:"phoneNumber"`     // with the country prefix outside mainland China
	PurePhoneNumber string `json:"purePhoneNumber"` // without it
	CountryCode     string `json:"countryCode"`     // always text, whatever JSON type the platform used
	WatermarkAppID  string `json:"watermarkAppId,omitempty"`
}

// Length bounds (real values are far shorter).
const (
	MaxLen        = 32 // phoneNumber, purePhoneNumber
	MaxCountryLen = 8  // countryCode
)

// Valid reports whether n may be forwarded: phoneNumber is present, and
// every value is made of phone characters only, since the values become
// request headers and (masked) log lines: digits, '+', '-', ' ', '(' and
// ')'; countryCode digits with an optional leading '+'.
func (n Number) Valid() bool {
	return n.PhoneNumber != "" && chars(n.PhoneNumber) && chars(n.PurePhoneNumber) && countryChars(n.CountryCode)
}

func chars(s string) bool {
	if len(s) > MaxLen {
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
	if len(s) > MaxCountryLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c == '+' && i == 0) {
			return false
		}
	}
	return true
}

// Mask masks a phone number for log lines: the first 3 and last 4
// characters are kept and the rest replaced by '*' ("13800138000" →
// "138****8000"). Inputs shorter than 11 characters are masked entirely.
func Mask(s string) string {
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
