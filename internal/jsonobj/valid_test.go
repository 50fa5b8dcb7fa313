package jsonobj

import (
	"encoding/json"
	"strings"
	"testing"
)

var validCases = []string{
	``, ` `, `{}`, `[]`, ` {} `, `{`, `}`, `[`, `]`, `{]`, `[}`, `{}}`, `[]]`, `{} {}`, `{},`,
	`{"a":1}`, `{"a":1,}`, `{"a":1,"b":[1,2,{"c":null}]}`, `{"a" : 1 , "b" : 2}`, `{"a"}`, `{"a":}`,
	`{1:2}`, `{"a":1 "b":2}`, `{,"a":1}`, `[1,]`, `[,1]`, `[1 2]`, `[[[]]]`, `[[[]]`, "{\"a\":1}\n",
	"\t\r\n[1]\t\r\n", "\v[1]", "\f[1]", "\u00a0[1]", "\xef\xbb\xbf{}",
	`true`, `false`, `null`, `tru`, `truee`, `nul`, `True`, `[true,false,null]`, `[truefalse]`,
	`0`, `-0`, `01`, `-01`, `1.`, `.1`, `1.5`, `-1.5e10`, `1e`, `1e+`, `1e-3`, `1E+3`, `1.e3`, `-`, `--1`, `+1`,
	`0x1`, `1.0.0`, `123456789012345678901234567890`, `[1e5,2E-5,-0.0]`, `NaN`, `Infinity`,
	`""`, `"a"`, `"a`, `"\""`, `"\\"`, `"\/"`, `"\b\f\n\r\t"`, `"\a"`, `"\u00e9"`, `"\u00G9"`, `"\u00e"`, `"\u"`,
	"\"\x01\"", "\"\x1f\"", "\"\x7f\"", "\"\xff\xfe\"", "\"\xe9\"", `"é"`, "\"a\tb\"", `"\ud800"`,
	`{"a":"\"}`, `{"a\\":1}`, `{"phoneNumber":"13800138000","watermark":{"appid":"wx","timestamp":1}}`,
	strings.Repeat("[", 100) + strings.Repeat("]", 100),
	strings.Repeat("[", 10000) + strings.Repeat("]", 10000),
	strings.Repeat("[", 10001) + strings.Repeat("]", 10001),
	strings.Repeat(`{"a":`, 10000) + "1" + strings.Repeat("}", 10000),
	strings.Repeat(`{"a":`, 10001) + "1" + strings.Repeat("}", 10001),
}

func TestValidMatchesEncodingJSON(t *testing.T) {
	for _, c := range validCases {
		if got, want := Valid([]byte(c)), json.Valid([]byte(c)); got != want {
			t.Errorf("Valid(%.60q) = %v, encoding/json says %v", c, got, want)
		}
	}
}

// FuzzValid: Valid agrees with encoding/json.Valid on any input.
func FuzzValid(f *testing.F) {
	for _, c := range validCases {
		if len(c) < 1000 {
			f.Add([]byte(c))
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if got, want := Valid(data), json.Valid(data); got != want {
			t.Fatalf("Valid(%q) = %v, encoding/json says %v", data, got, want)
		}
	})
}

func BenchmarkValid(b *testing.B) {
	body := []byte(`{"code":"0a3Xk21w3BLqR93mGX0w3eO5ZJ3Xk21c","encryptedData":"xT8p8W6jIVdEWQ+ccHuD2bmG5RSiwg14VWRFw/UGVh6Aj+jDIadafJ4xdCIBQ/uxDiyw/MZWvpFyRn3pP3xxVfNQxFtzghvK+Pj5JQI7x412Zc+UKBdZyt5yiQboroSxabTum1k4MMOlnoCxhJ46cxPDT2EuLbNUf2McwNtGO0/9E+Xj/ZwENw48ucueL3UqNoKpXxFYvqH6eawrR2MXnA==","iv":"r7BXXKkLb8qrSNn05n0qiA=="}`)
	b.Run("jsonobj", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			if !Valid(body) {
				b.Fatal("invalid")
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			if !json.Valid(body) {
				b.Fatal("invalid")
			}
		}
	})
}
