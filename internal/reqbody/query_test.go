package reqbody

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/jsonobj"
)

var protected = []string{"openid", "unionid", "anonymous_openid", "phoneNumber", "purePhoneNumber", "countryCode", "decryptedData"}

func TestStripQuery(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"", ""},
		{"code=abc", "code=abc"},
		{"code=abc&openid=evil", "code=abc"},
		{"openid=evil&code=abc", "code=abc"},
		{"a=1&openid=evil&b=2", "a=1&b=2"},
		{"openid=x", ""},
		{"openid=x&openid=y", ""},
		{"a=%zz&OPENID=x&b=%E5%BC%A0+%20&&c", "a=%zz&b=%E5%BC%A0+%20&&c"},
		{"&openid=x&a", "&a"},
		{"a&&openid=x&b", "a&&b"},
		{"a&openid=x&", "a&"},
		{"openid", ""},
		{"openid&a=1", "a=1"},
		// Spellings.
		{"+openid=1&Open_Id=2&open.id=3&open%69d=4&openid%00=5&openid[]=6&openid[x]=7&%20openid=8&k=v", "k=v"},
		{"union_id=1&phone_number=2&PURE-PHONE-NUMBER=3&country.code=4&decrypted_data=5&anonymousOpenid=6", ""},
		{"user[openid]=1&x.openid=2&[openid]=3&open%5Bid=4&openid%u0000=5", ""},
		// ';' separates pairs to some parsers: the whole pair goes.
		{"a=1;openid=evil&b=2", "b=2"},
		{"openid=evil;a=1&b=2", "b=2"},
		{"a=1&b=2;c=3", "a=1&b=2;c=3"},
		{"x=1&amp;openid=2&y", "x=1&y"},
		// Values and near misses are kept.
		{"a=openid&openids=1&open=2&b=openid%3Dx", "a=openid&openids=1&open=2&b=openid%3Dx"},
		{"code=1&code=2", "code=1&code=2"},
	}
	for _, tt := range tests {
		got, changed := StripQuery(tt.in, protected...)
		if got != tt.want || changed != (tt.in != tt.want) {
			t.Errorf("StripQuery(%q) = %q, %v; want %q", tt.in, got, changed, tt.want)
		}
	}
	if got, changed := StripQuery("openid=x", nil...); got != "openid=x" || changed {
		t.Error("no names")
	}
}

func TestQueryValue(t *testing.T) {
	tests := []struct {
		raw, name, value string
		count            int
	}{
		{"code=abc", "code", "abc", 1},
		{"a=1&code=a%2Bb+c%zz", "code", "a+b c%zz", 1},
		{"code=1&code=2", "code", "1", 2},
		{"Code=1&code=2", "code", "2", 2},
		{"Code=1", "code", "", 1},
		{"co_de=1&code=2", "code", "2", 2},
		{"code=1;code=2", "code", "1", 2},
		{"x=1;code=2", "code", "2", 1},
		{"c%6Fde=3", "code", "3", 1},
		{"code[]=3", "code", "", 1},
		{"codes=1", "code", "", 0},
		{"", "code", "", 0},
		{"code", "code", "", 1},
		{"code=", "code", "", 1},
		{"%63ode=%E5%BC%A0", "code", "张", 1},
	}
	for _, tt := range tests {
		v, n := QueryValue(tt.raw, tt.name)
		if v != tt.value || n != tt.count {
			t.Errorf("QueryValue(%q, %q) = %q, %d; want %q, %d", tt.raw, tt.name, v, n, tt.value, tt.count)
		}
	}
}

func TestQueryAllocs(t *testing.T) {
	raw := "code=0716AVll20uHk94SLDml27etM946AVlq&scene=1001&from=share&a=%E5%BC%A0&b=1;c=2&x[y]=z"
	n := testing.AllocsPerRun(100, func() {
		if _, changed := StripQuery(raw, protected...); changed {
			t.Fatal("changed")
		}
		if v, n := QueryValue(raw, "code"); n != 1 || v == "" {
			t.Fatal("code")
		}
	})
	if n != 0 {
		t.Fatalf("%v allocations", n)
	}
	// Removing allocates the result only.
	raw += "&openid=x"
	n = testing.AllocsPerRun(100, func() { StripQuery(raw, protected...) })
	if n > 1 {
		t.Fatalf("%v allocations", n)
	}
}

func BenchmarkStripQuery(b *testing.B) {
	raw := "code=0716AVll20uHk94SLDml27etM946AVlq&scene=1001&from=share&nick=%E5%BC%A0%E4%B8%89"
	b.ReportAllocs()
	for b.Loop() {
		StripQuery(raw, protected...)
		QueryValue(raw, "code")
	}
}

// TestBodySpellings: every spelling of a protected name, as a JSON key and
// as a form name, is removed by Del and counted by Count.
func TestBodySpellings(t *testing.T) {
	for _, s := range openidSpellings {
		key := string(jsonString(s))
		bodies := []string{
			`{` + key + `:"evil","keep":1}`,
			`{"keep":1,` + key + `:{"a":"evil"}}`,
		}
		if !utf8.ValidString(s) {
			bodies = nil // JSON has no Latin-1 reading
		}
		for _, body := range bodies {
			b, r, err := rewrite(ctJSON, body)
			if err != nil {
				t.Fatalf("%s: %v", body, err)
			}
			if n := b.Count("openid"); n != 1 {
				t.Errorf("%s: Count %d", body, n)
			}
			b.Del(protected...)
			if got := applied(t, b, r); got != `{"keep":1}` {
				t.Errorf("%s: Del gave %s", body, got)
			}
		}
		form := "keep=1&" + strings.ReplaceAll(formEscape(s), "%20", "+") + "=evil"
		b, r, err := rewrite(ctForm, form)
		if err != nil {
			t.Fatalf("%q: %v", form, err)
		}
		if n := b.Count("openid"); n != 1 {
			t.Errorf("%q: Count %d", form, n)
		}
		b.Set("openid", "real")
		if got := applied(t, b, r); got != "keep=1&openid=real" {
			t.Errorf("%q: Set gave %s", form, got)
		}
	}
	// Escaped JSON keys.
	for _, key := range []string{`"open\u0069d"`, `"\u004FPENID"`, `"openid\u0000"`, `"open\u005fid"`, `" openid\t"`} {
		b, r, err := rewrite(ctJSON, `{`+key+`:1,"keep":2}`)
		if err != nil {
			t.Fatal(err)
		}
		b.Del("openid")
		if got := applied(t, b, r); got != `{"keep":2}` {
			t.Errorf("%s: %s", key, got)
		}
	}
	// Count counts every value, over spellings.
	b, _, _ := rewrite(ctForm, "code=1&Code=2&code=3&co_de=4&codes=5")
	if n := b.Count("code"); n != 4 {
		t.Errorf("form Count %d", n)
	}
	b, _, _ = rewrite(ctJSON, `{"code":1,"CODE":"2","co-de":null,"codes":4}`)
	if n := b.Count("code"); n != 3 {
		t.Errorf("JSON Count %d", n)
	}
	if n := b.Count("missing"); n != 0 {
		t.Errorf("Count missing %d", n)
	}
}

func jsonString(s string) []byte { return jsonobj.AppendString(nil, s) }

// formEscape escapes s for a form name, keeping '[' and ']' readable.
func formEscape(s string) string {
	var b []byte
	b = appendQueryEscape(b, s)
	r := strings.NewReplacer("%5B", "[", "%5D", "]")
	return r.Replace(string(b))
}

func TestCountFold(t *testing.T) {
	for _, c := range []struct {
		raw  string
		want int
	}{
		{"code=1", 1},
		{"code=1&Code=2", 2},
		{"country.code=86&code=1", 1},
		{"a=1;code=2&%63ode=3", 2},
		{"js_code=1", 0},
	} {
		if got := QueryCountFold(c.raw, "code"); got != c.want {
			t.Errorf("QueryCountFold(%q) = %d, want %d", c.raw, got, c.want)
		}
	}
	r := newReq(ctJSON, `{"code":"a","CODE":"b","country_code":"86","open_id":"x"}`)
	b, err := Read(r, 0)
	if err != nil {
		t.Fatal(err)
	}
	if n := b.CountFold("code"); n != 2 {
		t.Errorf("JSON CountFold(code) = %d, want 2", n)
	}
	r = newReq(ctForm, `code=a&code=b&country.code=86`)
	if b, err = Read(r, 0); err != nil {
		t.Fatal(err)
	}
	if n := b.CountFold("code"); n != 2 {
		t.Errorf("form CountFold(code) = %d, want 2", n)
	}
}
