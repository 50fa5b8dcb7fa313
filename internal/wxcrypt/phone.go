package wxcrypt

import (
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/jsonobj"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/mperr"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/phone"
)

// ParsePhone extracts phoneNumber, purePhoneNumber and countryCode from a
// decrypted phone payload. Each may be a JSON string or a JSON number (as
// the platforms' docs disagree on countryCode's type); phoneNumber is
// required. The values end up in headers and log lines, so only phone
// characters are accepted (phone.Number.Valid). Errors are mperr.BadRequest with a fixed message.
//
// Keys are matched exactly and the last of duplicates wins. The object is
// walked once, and the three values share one allocation.
func ParsePhone(plaintext []byte) (phone.Number, error) {
	if !jsonobj.IsObject(plaintext) {
		return phone.Number{}, errNotPhone()
	}
	it, ok := jsonobj.Object(plaintext)
	if !ok {
		return phone.Number{}, errNotPhone()
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
	var buf [2*phone.MaxLen + phone.MaxCountryLen]byte
	text := buf[:0]
	var ends [3]int
	for i, r := range raw {
		if text, ok = appendScalar(text, r); !ok {
			return phone.Number{}, errNotPhone()
		}
		ends[i] = len(text)
	}
	all := string(text)
	p := phone.Number{PhoneNumber: all[:ends[0]], PurePhoneNumber: all[ends[0]:ends[1]], CountryCode: all[ends[1]:ends[2]]}
	if !p.Valid() {
		return phone.Number{}, errNotPhone()
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
