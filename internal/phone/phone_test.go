package phone

import "testing"

func TestMask(t *testing.T) {
	tests := map[string]string{
		"13800138000":    "138****8000",
		"+8613800138000": "+86*******8000",
		"":               "",
		"1":              "*",
		"1380013800":     "**********",
		"电话号码一二三四五六七":    "电话号****四五六七",
	}
	for in, want := range tests {
		if got := Mask(in); got != want {
			t.Errorf("Mask(%q) = %q, want %q", in, got, want)
		}
	}
}

// What may become a header: phone characters only, bounded, phoneNumber
// required (whatever path the number came by).
func TestValid(t *testing.T) {
	for _, c := range []struct {
		n  Number
		ok bool
	}{
		{Number{PhoneNumber: "13800138000", PurePhoneNumber: "13800138000", CountryCode: "86"}, true},
		{Number{PhoneNumber: "+1 (202) 555-0123", PurePhoneNumber: "2025550123", CountryCode: "+1"}, true},
		{Number{PhoneNumber: "13800138000"}, true},
		{Number{}, false},
		{Number{PurePhoneNumber: "13800138000"}, false},
		{Number{PhoneNumber: "138\r\nX-Mp-Openid: x"}, false},
		{Number{PhoneNumber: "13800138000", PurePhoneNumber: "1380013800a"}, false},
		{Number{PhoneNumber: "13800138000", CountryCode: "8+6"}, false},
		{Number{PhoneNumber: "13800138000", CountryCode: "123456789"}, false},
		{Number{PhoneNumber: "123456789012345678901234567890123"}, false},
		{Number{PhoneNumber: "１３８００１３８０００"}, false},
	} {
		if got := c.n.Valid(); got != c.ok {
			t.Errorf("%+v: Valid %v, want %v", c.n, got, c.ok)
		}
	}
}
