package reqbody

import (
	"net/url"
	"strings"
	"testing"
	"unicode"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/jsonobj"
)

// spellings of openid that some lenient binder equates with it.
var openidSpellings = []string{
	"openid", "OPENID", "OpenId", " openid", "openid ", "\topenid\r\n", "\u00a0openid\u3000",
	"\ufeffopenid", "open\u200bid", "open_id", "Open-Id", "open.id", "open id", "_openid", "!openid",
	"openid\x00", "openid\x00junk", "openid[]", "openid[x]", "openid[][y]", "[openid]", "]openid",
	"open[id", "x.openid", "a[openid]", "a[b].openid", "openıd", "OPENİD", "open\u00adid",
	"openid\xa0", "\x85openid", "__open__id__", "o.p.e.n.i.d",
}

// names that are not openid to any binder we know.
var notOpenid = []string{
	"", "open", "openids", "openid2", "xopenid", "open/id", "open;id", "open%69d", "opeNid1",
	"open\x00id", "\x00openid", "openid\ufffd", "openid\x97", "o", "openidopenid", "id.open[x]",
}

func TestSameName(t *testing.T) {
	for _, s := range openidSpellings {
		if !SameName(s, "openid") {
			t.Errorf("SameName(%q, openid) = false", s)
		}
		if !SameName(s, "OpenID") {
			t.Errorf("SameName(%q, OpenID) = false", s)
		}
	}
	for _, s := range notOpenid {
		if SameName(s, "openid") {
			t.Errorf("SameName(%q, openid) = true", s)
		}
	}
	more := []struct {
		sent, name string
		want       bool
	}{
		{"union_id", "unionid", true},
		{"UnionID", "unionid", true},
		{"anonymousOpenid", "anonymous_openid", true},
		{"anonymous-openid", "anonymous_openid", true},
		{"phone_number", "phoneNumber", true},
		{"PHONE-NUMBER", "phoneNumber", true},
		{"pure_phone_number", "purePhoneNumber", true},
		{"country code", "countryCode", true},
		{"decrypted.data", "decryptedData", true},
		{"phone", "phoneNumber", false},
		{"ſession", "session", true},
		{"\u212aey", "key", true},
		{"名字", "名字", true},
		{"名 字", "名字", true},
		{"名", "名字", false},
		// A name without skeleton matches nothing.
		{"_", "_", false},
		{"", "", false},
		{"a", "", false},
	}
	for _, tt := range more {
		if got := SameName(tt.sent, tt.name); got != tt.want {
			t.Errorf("SameName(%q, %q) = %v", tt.sent, tt.name, got)
		}
	}
}

func TestSkeleton(t *testing.T) {
	for in, want := range map[string]string{
		"openid": "openid", " Open_Id[] ": "openid", "[openid][x]": "openid", "open.id[x]": "openid",
		"openid\x00x": "openid", "PHONE-number": "phonenumber", "ſ\u212a": "sk", "": "", "_[": "",
		"名 字": "名字", "x.openid": "xopenid",
	} {
		if got := Skeleton(in); got != want {
			t.Errorf("Skeleton(%q) = %q, want %q", in, got, want)
		}
	}
	if Skeleton("ΣΑΣ") != Skeleton("σας") {
		t.Error("sigma")
	}
	// Equal skeletons mean SameName.
	for _, s := range openidSpellings {
		if sk := Skeleton(s); sk == "openid" && !SameName(s, "openid") {
			t.Errorf("Skeleton(%q) is openid but not SameName", s)
		}
	}
}

// TestFoldClasses checks fold against jsonobj.FoldRune over every rune and
// its case images: runes FoldRune equates fold to the same rune.
func TestFoldClasses(t *testing.T) {
	for r := rune(0); r <= unicode.MaxRune; r++ {
		images := []rune{unicode.ToUpper(r), unicode.ToLower(r), unicode.ToUpper(unicode.ToLower(r)), unicode.ToTitle(r), unicode.SimpleFold(r)}
		for _, o := range images {
			if jsonobj.FoldRune(r, o) && fold(r) != fold(o) {
				t.Fatalf("FoldRune(%U, %U) but fold %U != %U", r, o, fold(r), fold(o))
			}
		}
		if r < 0x80 && fold(r) != unicode.ToLower(r) {
			t.Fatalf("fold(%q) = %q", r, fold(r))
		}
	}
	for _, c := range "ſ\u212aıİ" {
		if f := fold(c); f >= 0x80 {
			t.Errorf("fold(%q) = %q, want an ASCII letter", c, f)
		}
	}
}

// TestNameSources: the same spelling as a JSON key and as a raw query name.
func TestNameSources(t *testing.T) {
	json := []struct {
		key  string // JSON token content
		want bool
	}{
		{`open\u0069d`, true},
		{`\u006FPENID`, true},
		{`openid\u0000`, true},
		{`open\u005fid`, true},
		{`\u0020openid`, true},
		{`open\"id`, false},
		{`openid\ud800`, false},
		{`open\/id`, false},
	}
	for _, tt := range json {
		if got := keyMatches([]byte(`"`+tt.key+`"`), "openid", true); got != tt.want {
			t.Errorf("JSON key %s: %v", tt.key, got)
		}
	}
	query := []struct {
		raw  string
		want bool
	}{
		{"openid", true},
		{"+openid", true},
		{"openid+", true},
		{"open%69d", true},
		{"%6Fpenid", true},
		{"openid%00", true},
		{"openid%00x", true},
		{"openid%5B%5D", true},
		{"openid[]", true},
		{"open%5Fid", true},
		{"open%u0069d", true},
		{"open%2eid", true},
		{"openid%A0", true},
		{"openid%C2%A0", true},
		{"open%C4%B1d", true}, // ı
		{"%E2%84%AAey", false},
		{"open%zzid", false},
		{"open%", false},
		{"openid%2", false},
		{"%", false},
	}
	for _, tt := range query {
		if got := queryNameMatches(tt.raw, "openid"); got != tt.want {
			t.Errorf("query name %s: %v", tt.raw, got)
		}
	}
	if !queryNameMatches("%E2%84%AAey", "key") {
		t.Error("Kelvin sign in a query name")
	}
	// Every spelling, query-escaped, matches as a query name.
	for _, s := range openidSpellings {
		if !queryNameMatches(url.QueryEscape(s), "openid") {
			t.Errorf("escaped %q", s)
		}
		if !queryNameMatches(strings.ReplaceAll(url.PathEscape(s), "%20", "+"), "openid") {
			t.Errorf("path-escaped %q", s)
		}
	}
}

func TestSameNameAllocs(t *testing.T) {
	key := []byte(`"open\u0069d"`)
	n := testing.AllocsPerRun(100, func() {
		for _, s := range openidSpellings {
			SameName(s, "openid")
			queryNameMatches(s, "anonymous_openid")
			keyMatches(key, "openid", true)
		}
	})
	if n != 0 {
		t.Fatalf("%v allocations", n)
	}
}
