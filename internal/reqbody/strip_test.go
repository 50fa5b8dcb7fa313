package reqbody

import (
	"bytes"
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"unicode"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/mperr"
)

// Models of how lenient backends read names, written independently of the
// package's own matching. The fuzz property: after Del or StripQuery of the
// protected names, no model reads any of them.

// keyViews are the names some binder could take a decoded field name for,
// each compared to a protected name by the function returned.
func bindsTo(name, p string) bool {
	views := []func(string) string{
		func(s string) string { return s },                                   // exact (PHP, Werkzeug, Tomcat)
		func(s string) string { return goFold(s) },                           // encoding/json (Gin)
		func(s string) string { return strings.ToLower(strings.ToUpper(s)) }, // Java equalsIgnoreCase-ish
		func(s string) string { return goFold(strings.TrimSpace(cutNUL(s))) },
		func(s string) string {
			return goFold(strings.Trim(cutNUL(s), "\x00\x01\x02\x03\x04\x05\x06\x07\x08\t\n\v\f\r\x0e\x0f\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f "))
		}, // Java trim
		func(s string) string { // fastjson smart match
			return strings.ToLower(strings.Map(func(r rune) rune {
				if r == '_' || r == '-' {
					return -1
				}
				return r
			}, s))
		},
		func(s string) string { // Spring field markers, then fold
			return goFold(strings.TrimLeft(s, "_!"))
		},
	}
	for _, v := range views {
		if v(name) == v(p) {
			return true
		}
	}
	return false
}

func cutNUL(s string) string {
	s, _, _ = strings.Cut(s, "\x00")
	return s
}

// phpDecode is PHP's urldecode: '+' is a space, %XX a byte, any other '%'
// itself.
func phpDecode(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '+':
			b.WriteByte(' ')
		case c == '%' && i+2 < len(s) && ishexModel(s[i+1]) && ishexModel(s[i+2]):
			v := strings.IndexByte("0123456789abcdef", lowerModel(s[i+1]))<<4 | strings.IndexByte("0123456789abcdef", lowerModel(s[i+2]))
			b.WriteByte(byte(v))
			i += 2
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func ishexModel(c byte) bool { return strings.IndexByte("0123456789abcdefABCDEF", c) >= 0 }
func lowerModel(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 32
	}
	return c
}

// phpNames models php_register_variable_ex: the top-level names PHP files
// the pairs of a query string or form under ($_GET, $_POST).
func phpNames(raw string) []string {
	var out []string
	for pair := range strings.SplitSeq(raw, "&") {
		k, _, _ := strings.Cut(pair, "=")
		name := cutNUL(phpDecode(k))
		name = strings.TrimLeft(name, " ")
		p := []byte(name)
		i := 0
		for ; i < len(p); i++ {
			if p[i] == ' ' || p[i] == '.' {
				p[i] = '_'
			} else if p[i] == '[' {
				break
			}
		}
		if i < len(p) && strings.IndexByte(string(p[i:]), ']') < 0 {
			// Not an index: '[' and what follows become '_'.
			for j := i; j < len(p); j++ {
				if p[j] == ' ' || p[j] == '.' || p[j] == '[' {
					p[j] = '_'
				}
			}
			i = len(p)
		}
		if i > 0 {
			out = append(out, string(p[:i]))
		}
	}
	return out
}

// qsNames models the qs package (Express 4's default query parser): the
// top-level key of each pair.
func qsNames(raw string) []string {
	var out []string
	for pair := range strings.SplitSeq(raw, "&") {
		k, _, _ := strings.Cut(pair, "=")
		k = strings.ReplaceAll(k, "+", " ")
		if d, err := url.PathUnescape(k); err == nil {
			k = d
		}
		if k == "" {
			continue
		}
		open := strings.IndexByte(k, '[')
		switch {
		case open > 0:
			out = append(out, k[:open])
		case open == 0:
			if end := strings.IndexByte(k, ']'); end > 0 && !strings.Contains(k[1:end], "[") {
				out = append(out, k[1:end])
			} else {
				out = append(out, k)
			}
		default:
			out = append(out, k)
		}
	}
	return out
}

// semicolonNames models parsers splitting on ';' as well as '&'.
func semicolonNames(raw string) []string {
	var out []string
	for pair := range strings.FieldsFuncSeq(raw, func(r rune) bool { return r == '&' || r == ';' }) {
		k, _, _ := strings.Cut(pair, "=")
		out = append(out, phpDecode(k))
	}
	return out
}

// checkNames fails when a model reads a protected name in the names of the
// query or form raw.
func checkNames(t *testing.T, raw string, in []byte) {
	t.Helper()
	q, _ := url.ParseQuery(raw) // pairs with errors are skipped, the rest kept
	for _, p := range protected {
		for k := range q {
			if bindsTo(k, p) {
				t.Fatalf("url.ParseQuery reads %q (%q) in %q from %q", k, p, raw, in)
			}
		}
		for _, k := range semicolonNames(raw) {
			if bindsTo(k, p) {
				t.Fatalf("a ';' parser reads %q (%q) in %q from %q", k, p, raw, in)
			}
		}
		for _, k := range phpNames(raw) {
			if k == p {
				t.Fatalf("PHP reads %q in %q from %q", p, raw, in)
			}
		}
		for _, k := range qsNames(raw) {
			if k == p {
				t.Fatalf("qs reads %q in %q from %q", p, raw, in)
			}
		}
	}
}

func FuzzStrip(f *testing.F) {
	for _, s := range []string{
		`{"openid":"x"," openid":1,"open_id":2,"Open-Id":3,"open\u0069d":4,"openid\u0000":5,"keep":[1]}`,
		`{"union_id":"x","phoneNumber":{"a":1},"unıonid":2}`,
		"a=1&+openid=x&open%5Fid=y&openid%00=z&openid[]=1&openid[x]=2&open.id=3&%20openid=4",
		"a=1;openid=x&b=2&Open-Id&[openid]=1&open[id=2&x.openid=3",
		"open%u0069d=1&phone_number=2&PURE-PHONE-NUMBER=3&openid%A0=4",
	} {
		for sel := range 3 {
			f.Add([]byte(s), uint8(sel))
		}
	}
	f.Fuzz(func(t *testing.T, data []byte, sel uint8) {
		if sel%3 == 2 {
			raw := string(data)
			out, changed := StripQuery(raw, protected...)
			if changed != (out != raw) {
				t.Fatalf("changed %v for %q -> %q", changed, raw, out)
			}
			checkNames(t, out, data)
			// What is kept is kept whole, in order.
			var kept []string
			for seg := range strings.SplitSeq(raw, "&") {
				if !segmentMatches(seg, protected) {
					kept = append(kept, seg)
				}
			}
			if want := strings.Join(kept, "&"); out != want {
				t.Fatalf("StripQuery(%q) = %q, want %q", raw, out, want)
			}
			for _, p := range protected {
				if _, n := QueryValue(out, p); n != 0 {
					t.Fatalf("QueryValue(%q, %q) counts %d", out, p, n)
				}
			}
			return
		}
		ct := ctJSON
		if sel%3 == 1 {
			ct = ctForm
		}
		r := newReq(ct, string(data))
		b, err := Read(r, 1<<16)
		if err != nil {
			if e, ok := mperr.As(err); !ok || e.Code != mperr.BadRequest && e.Code != mperr.UnsupportedMediaType && e.Code != mperr.BodyTooLarge {
				t.Fatalf("error %v", err)
			}
			return
		}
		b.Del(protected...)
		for _, p := range protected {
			if n := b.Count(p); n != 0 {
				t.Fatalf("Count(%q) = %d after Del", p, n)
			}
		}
		out := applied(t, b, r)
		switch b.Kind() {
		case JSON:
			// One object, nothing after it.
			dec := json.NewDecoder(strings.NewReader(out))
			var obj map[string]json.RawMessage
			if err := dec.Decode(&obj); err != nil {
				t.Fatalf("output %q: %v", out, err)
			}
			if _, err := dec.Token(); err == nil || !json.Valid([]byte(out)) {
				t.Fatalf("output %q has more than one value", out)
			}
			for _, m := range topLevel(t, []byte(out)) {
				for _, p := range protected {
					if bindsTo(m.key, p) {
						t.Fatalf("key %q (%q) in %q from %q", m.key, p, out, data)
					}
				}
			}
		case Form:
			checkNames(t, out, data)
			if bytes.HasPrefix(bytes.TrimLeftFunc([]byte(out), unicode.IsSpace), []byte("{")) {
				t.Fatalf("form output %q starts like JSON", out)
			}
		}
	})
}

// TestModels: the models do read what they should, so that the fuzz
// property can fail.
func TestModels(t *testing.T) {
	php := map[string]string{
		"+openid=1": "openid", "open.id=1": "open_id", "openid%00x=1": "openid", "openid[]=1": "openid",
		"open[id=1": "open_id", "a.b[c.d]=1": "a_b", "%20%20x y=1": "x_y",
	}
	for raw, want := range php {
		if got := phpNames(raw); len(got) != 1 || got[0] != want {
			t.Errorf("phpNames(%q) = %q, want %q", raw, got, want)
		}
	}
	qs := map[string]string{"[openid]=1": "openid", "openid[x]=1": "openid", "a+b=1": "a b", "%5Bopenid%5D=1": "openid"}
	for raw, want := range qs {
		if got := qsNames(raw); len(got) != 1 || got[0] != want {
			t.Errorf("qsNames(%q) = %q, want %q", raw, got, want)
		}
	}
	for _, n := range []string{"OpenID", " openid\t", "open_id", "_openid", "!openid", "openid\x00x", "ſ\u212a"} {
		p := "openid"
		if n == "ſ\u212a" {
			p = "sk"
		}
		if !bindsTo(n, p) {
			t.Errorf("bindsTo(%q, %q) = false", n, p)
		}
	}
	if bindsTo("openids", "openid") {
		t.Error("openids")
	}
}
