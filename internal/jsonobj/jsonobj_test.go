package jsonobj

import (
	"bytes"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"unicode/utf8"
)

type pair struct {
	key   string
	value string
}

// members walks data with Iter.
func members(t testing.TB, data []byte) ([]pair, bool) {
	it, ok := Object(data)
	if !ok {
		return nil, false
	}
	var out []pair
	for k, v, ok := it.Next(); ok; k, v, ok = it.Next() {
		out = append(out, pair{Unquote(k), string(v)})
	}
	return out, true
}

// reference walks data with encoding/json's Decoder (the raw values a
// Decoder gives are the input bytes verbatim).
func reference(t testing.TB, data []byte) ([]pair, bool) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber() // numbers beyond float64 are valid JSON
	tok, err := dec.Token()
	if err != nil {
		t.Fatalf("reference: %v", err)
	}
	if tok != json.Delim('{') {
		return nil, false
	}
	var out []pair
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			t.Fatalf("reference key: %v", err)
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			t.Fatalf("reference value: %v", err)
		}
		out = append(out, pair{k.(string), string(raw)})
	}
	return out, true
}

func TestObject(t *testing.T) {
	tests := []string{
		`{}`,
		` { } `,
		`{"a":1}`,
		"\t{\n\"a\" :\r\n 1 , \"b\":\"x,}]\\\"{\" ,\"c\" : [1, {\"d\": [\"]\"]}], \"e\":null,\"f\":true,\"g\":-1.5e+3}\n",
		`{"open\u0069d":"x","\ud83d\ude00":"\u00e9","\ud800x":1}`,
		`{"a":{"b":{"c":{}}},"a":[[[]]],"":""}`,
		`{"名字":"张三","k":"\"}"}`,
	}
	for _, in := range tests {
		got, ok := members(t, []byte(in))
		want, wok := reference(t, []byte(in))
		if !ok || !wok || len(got) != len(want) {
			t.Fatalf("%q: got %v %v, want %v", in, got, ok, want)
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("%q member %d: got %q, want %q", in, i, got[i], want[i])
			}
		}
	}
	for _, in := range []string{`[]`, `"{"`, `1`, `null`, ``, `  `} {
		if _, ok := Object([]byte(in)); ok {
			t.Errorf("Object(%q) ok", in)
		}
	}
	// Invalid input never panics.
	for _, in := range []string{`{`, `{"a`, `{"a"`, `{"a":`, `{"a":"`, `{"a":[`, `{"a":1,`, `{1:2}`, `{"a" 1}`} {
		it, _ := Object([]byte(in))
		for i := 0; i < 5; i++ {
			it.Next()
		}
	}
}

func TestEqualAndFold(t *testing.T) {
	tests := []struct {
		tok, s      string
		equal, fold bool
	}{
		{`"openid"`, "openid", true, true},
		{`"open\u0069d"`, "openid", true, true},
		{`"open\u0049d"`, "openid", false, true},
		{`"OpenID"`, "openid", false, true},
		{`"openid "`, "openid", false, false},
		{`"openi"`, "openid", false, false},
		{`"openidd"`, "openid", false, false},
		{`"unıonid"`, "unionid", false, true},         // dotless i: encoding/json folds it to I
		{`"phoneNumber"`, "phoneNumber", true, true},  // control
		{`"countryCode"`, "countryCode", true, true},  // control
		{`"\u017fession"`, "session", false, true},    // long s
		{`"\u212aey"`, "key", false, true},            // Kelvin sign
		{`"é"`, "É", false, true},                     // Latin-1
		{`"\u00e9"`, "é", true, true},                 // escaped
		{`"\ud83d\ude00"`, "😀", true, true},           // surrogate pair
		{`"\ud83d"`, "\ufffd", true, true},            // lone surrogate → U+FFFD
		{"\"a\xffb\"", "a\ufffdb", true, true},        // invalid UTF-8 → U+FFFD
		{`"a\"b\\c\/d\n"`, "a\"b\\c/d\n", true, true}, // simple escapes
		{`"a"`, "b", false, false},
		{`""`, "", true, true},
	}
	for _, tt := range tests {
		if got := Equal([]byte(tt.tok), tt.s); got != tt.equal {
			t.Errorf("Equal(%s, %q) = %v", tt.tok, tt.s, got)
		}
		if got := EqualFold([]byte(tt.tok), tt.s); got != tt.fold {
			t.Errorf("EqualFold(%s, %q) = %v", tt.tok, tt.s, got)
		}
		// Equal agrees with encoding/json's decoding of the token.
		var dec string
		if err := json.Unmarshal([]byte(tt.tok), &dec); err == nil {
			if got := Unquote([]byte(tt.tok)); got != dec {
				t.Errorf("Unquote(%s) = %q, encoding/json %q", tt.tok, got, dec)
			}
		}
	}
	if !EqualFoldString("OpenID", "openid") || EqualFoldString("openid", "openi") || !EqualFoldString("ſ", "S") || EqualFoldString("", "a") {
		t.Error("EqualFoldString")
	}
}

// goFold is encoding/json's key folding (fold.go, appendFoldedName).
func goFold(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r < utf8.RuneSelf {
			if 'a' <= r && r <= 'z' {
				r -= 'a' - 'A'
			}
		} else {
			r = []rune(strings.ToUpper(strings.ToLower(string(r))))[0]
		}
		b.WriteRune(r)
	}
	return b.String()
}

func TestFoldCoversEncodingJSON(t *testing.T) {
	// Every rune that encoding/json matches with an ASCII letter is matched.
	for r := rune(0x80); r < 0x3000; r++ {
		for c := 'a'; c <= 'z'; c++ {
			if goFold(string(r)) == goFold(string(c)) && !FoldRune(r, c) {
				t.Errorf("FoldRune(%U, %q) = false, encoding/json matches them", r, c)
			}
			if strings.EqualFold(string(r), string(c)) && !FoldRune(r, c) {
				t.Errorf("FoldRune(%U, %q) = false, strings.EqualFold matches them", r, c)
			}
		}
	}
	// And it is not "everything matches".
	if FoldRune('a', 'b') || FoldRune('é', 'e') || FoldRune('1', '!') {
		t.Error("FoldRune too lenient")
	}
}

// replaceInvalid replaces each invalid UTF-8 byte by U+FFFD, as
// encoding/json does.
func replaceInvalid(s string) string {
	var b strings.Builder
	for _, r := range s {
		b.WriteRune(r) // range yields U+FFFD for each invalid byte
	}
	return b.String()
}

func TestAppendString(t *testing.T) {
	for _, s := range []string{"", "plain", `q"b\`, "ctl\x00\x01\x1f\n\r\t", "中文😀", "bad\xff\xfeutf8", "\u2028\u2029", "</script>&"} {
		tok := AppendString(nil, s)
		var got string
		if err := json.Unmarshal(tok, &got); err != nil {
			t.Fatalf("AppendString(%q) = %s: %v", s, tok, err)
		}
		if want := replaceInvalid(s); got != want {
			t.Fatalf("round trip %q -> %s -> %q, want %q", s, tok, got, want)
		}
		if !Equal(tok, got) {
			t.Fatalf("Equal(%s, %q)", tok, got)
		}
	}
	if got := string(AppendString([]byte("x"), "a\"b")); got != `x"a\"b"` {
		t.Fatalf("append: %s", got)
	}
}

func FuzzObject(f *testing.F) {
	f.Add([]byte(`{"a":1,"b":[1,"]"],"c":{"d":"}"},"open\u0069d":"x"}`))
	f.Add([]byte(` {"\ud83d\ude00" : "\"" , "e":null}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		it, _ := Object(data) // never panics, valid or not
		for i := 0; i < 1000; i++ {
			if _, _, more := it.Next(); !more {
				break
			}
		}
		if !json.Valid(data) {
			return
		}
		got, ok := members(t, data)
		want, wok := reference(t, data)
		if ok != wok || len(got) != len(want) {
			t.Fatalf("got %v %v, want %v %v", got, ok, want, wok)
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("member %d: got %q, want %q", i, got[i], want[i])
			}
		}
		// Every string token unquotes as encoding/json does.
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		for {
			tok, err := dec.Token()
			if err == io.EOF || err != nil {
				break
			}
			if s, ok := tok.(string); ok {
				q := AppendString(nil, s)
				if !Equal(q, s) || Unquote(q) != s || !EqualFold(q, s) {
					t.Fatalf("string %q token %s", s, q)
				}
			}
		}
	})
}
