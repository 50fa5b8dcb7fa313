package swancrypt

import (
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/jsonobj"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/mperr"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/phone"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/wxcrypt"
)

// ParsePhone reads a decrypted Baidu phone payload. The shape is not
// confirmed by Baidu's documentation: SDKs read a "mobile" member (a
// string, or digits). It becomes phoneNumber and purePhoneNumber; the
// country code stays empty (Baidu gives none). A payload without "mobile"
// is read as the WeChat family's (phoneNumber, purePhoneNumber,
// countryCode). The last of duplicate keys wins.
func ParsePhone(data []byte) (phone.Number, error) {
	if !jsonobj.IsObject(data) {
		return phone.Number{}, errNotPhone()
	}
	it, ok := jsonobj.Object(data)
	if !ok {
		return phone.Number{}, errNotPhone()
	}
	var mobile []byte
	for k, v, ok := it.Next(); ok; k, v, ok = it.Next() {
		if jsonobj.Equal(k, "mobile") {
			mobile = v
		}
	}
	if mobile == nil {
		return wxcrypt.ParsePhone(data)
	}
	var m string
	switch c := mobile[0]; {
	case c == '"':
		m = jsonobj.Unquote(mobile)
	case c >= '0' && c <= '9':
		for _, d := range mobile {
			if d < '0' || d > '9' {
				return phone.Number{}, errNotPhone()
			}
		}
		m = string(mobile)
	default:
		return phone.Number{}, errNotPhone()
	}
	p := phone.Number{PhoneNumber: m, PurePhoneNumber: m}
	if !p.Valid() {
		return phone.Number{}, errNotPhone()
	}
	return p, nil
}

func errNotPhone() error { return mperr.New(mperr.BadRequest, wxcrypt.MsgNotPhone) }
