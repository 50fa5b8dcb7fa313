package store

import (
	"net/url"
)

// A session's identity fields beyond openid and unionid (Session.Fields:
// whatever the platform declares, e.g. Douyin's anonymous_openid or
// Feishu's tenant_key) are stored as one string, in URL query encoding
// with the names sorted: "anonymous_openid=...&tenant_key=...". The store
// knows no field names.

// EncodeFields packs fields; "" when there are none.
func EncodeFields(fields map[string]string) string {
	if len(fields) == 0 {
		return ""
	}
	v := make(url.Values, len(fields))
	for k, f := range fields {
		if f != "" {
			v.Set(k, f)
		}
	}
	return v.Encode()
}

// DecodeFields unpacks EncodeFields' string; nil for "" (or for a string
// that does not decode, which only a foreign writer could have stored).
func DecodeFields(s string) map[string]string {
	if s == "" {
		return nil
	}
	v, err := url.ParseQuery(s)
	if err != nil || len(v) == 0 {
		return nil
	}
	m := make(map[string]string, len(v))
	for k, vs := range v {
		if len(vs) > 0 && vs[0] != "" {
			m[k] = vs[0]
		}
	}
	return m
}
