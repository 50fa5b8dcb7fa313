package multipart

import (
	"bytes"
	"crypto/sha256"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/mperr"
)

const ctB = "multipart/form-data; boundary=b"

// raw joins lines with CRLF.
func raw(lines ...string) []byte { return []byte(strings.Join(lines, "\r\n")) }

func TestRoundTrip(t *testing.T) {
	tests := []struct {
		name  string
		parts []tpart
	}{
		{"none", nil},
		{"fields", []tpart{{name: "code", content: "0a1b"}, {name: "nickName", content: "小明"}, {name: "empty"}}},
		{"file first", []tpart{
			{name: "avatar", file: true, filename: "tmp_1.jpg", ctype: "image/jpeg", content: "\xff\xd8\xff\r\n--b\r\n"},
			{name: "code", content: "c0de"},
		}},
		{"json field", []tpart{{name: "meta", ctype: "application/json", content: `{"a":1}`}}},
		{"empty filename is a file", []tpart{{name: "f", file: true, content: "x"}}},
		{"repeated names", []tpart{{name: "a", content: "1"}, {name: "a", content: "2"}, {name: "a", file: true, filename: "a", content: "3"}}},
		{"hostile filename", []tpart{{name: "f", file: true, filename: `a; name=openid; b=\\x`, content: "z"}}},
		{"binary", []tpart{{name: "bin", content: "\x00\r\n\r\n--\xff"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ct, body := build(t, "", tt.parts...)
			f := mustRead(t, ct, body, Limits{})
			if len(f.parts) != len(tt.parts) {
				t.Fatalf("%d parts, want %d", len(f.parts), len(tt.parts))
			}
			for i, p := range f.Parts() {
				w := tt.parts[i]
				if p.Name != w.name || p.File != w.file || p.ContentType != w.ctype || p.Size != int64(len(w.content)) {
					t.Fatalf("part %d = %+v, want %+v", i, p, w)
				}
			}
			checkRoundTrip(t, f)
		})
	}
}

func TestValueNamesDelSet(t *testing.T) {
	ct, body := build(t, "",
		tpart{name: "openid", file: true, filename: "x", content: "evil-file"},
		tpart{name: "code", content: "c1"},
		tpart{name: "OpenId", content: "evil"},
		tpart{name: "code", content: "c2"},
	)
	f := mustRead(t, ct, body, Limits{})
	if v, ok := f.Value("code"); !ok || v != "c1" {
		t.Fatalf("Value(code) = %q %v", v, ok)
	}
	if _, ok := f.Value("openid"); ok {
		t.Fatal("Value gives a file part")
	}
	if got := strings.Join(f.Names(), ","); got != "openid,code,OpenId,code" {
		t.Fatalf("Names = %s", got)
	}
	if f.Del(func(n string) bool { return n == "nothing" }) {
		t.Fatal("Del reports a drop")
	}
	if !f.Del(func(n string) bool { return strings.EqualFold(n, "openid") }) {
		t.Fatal("Del dropped nothing")
	}
	if err := f.Set("openid", "o-real"); err != nil {
		t.Fatal(err)
	}
	if err := f.Set("CODE", "c3"); err != nil { // drops both codes
		t.Fatal(err)
	}
	if got := strings.Join(f.Names(), ","); got != "openid,CODE" {
		t.Fatalf("Names = %s", got)
	}
	for _, bad := range []string{"", "a\"b", "a\\b", "a;b", "a\x00", "a\r\nb", "\xff"} {
		if err := f.Set(bad, "v"); err == nil {
			t.Fatalf("Set(%q) accepted", bad)
		}
	}
	checkRoundTrip(t, f)
	b, out := serialised(t, f)
	got := parseOut(t, b, out)
	if got[0].content != "o-real" || got[1].content != "c3" {
		t.Fatalf("serialised %+v", got)
	}
}

// A 5 MiB file after the fields it needs is spooled to one temporary file,
// streamed back out intact, and removed by Close; memory holds only the
// threshold.
func TestSpool(t *testing.T) {
	dir := t.TempDir()
	big := bytes.Repeat([]byte("0123456789abcdef\r\n--b"), 5<<20/21+1)
	ct, body := build(t, "", tpart{name: "avatar", file: true, filename: "a.jpg", content: string(big)},
		tpart{name: "small", file: true, filename: "s.txt", content: "tiny"},
		tpart{name: "code", content: "c"})
	f, err := Read(bytes.NewReader(body), ct, Limits{MaxMemory: 1 << 10, TempDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	es := dirEntries(t, dir)
	if len(es) != 1 {
		t.Fatalf("%d files in TempDir during, want 1", len(es))
	}
	if info, _ := es[0].Info(); info.Size() < int64(len(big)) {
		t.Fatalf("spool holds %d bytes", info.Size())
	}
	if !f.parts[0].spooled || f.parts[1].spooled || len(f.parts[0].data) != 0 {
		t.Fatal("want the big file spooled, the small one in memory")
	}
	if v, _ := f.Value("code"); v != "c" {
		t.Fatal("code after the file not read")
	}
	_, r, _ := f.Body()
	out, _ := io.ReadAll(r)
	if !bytes.Contains(out, big) {
		t.Fatal("file content not streamed back intact")
	}
	checkRoundTrip(t, f)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if es := dirEntries(t, dir); len(es) != 0 {
		t.Fatalf("%d files in TempDir after Close", len(es))
	}
	if err := f.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
}

// A Read that fails after spooling began leaves no file behind.
func TestSpoolRemovedOnError(t *testing.T) {
	for _, tt := range []struct {
		name string
		body []byte
		code mperr.Code
	}{
		{"file over MaxFile", nil, mperr.BodyTooLarge},
		{"no closing boundary", nil, mperr.BadRequest},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			ct, body := build(t, "", tpart{name: "f1", file: true, filename: "1", content: strings.Repeat("x", 3000)},
				tpart{name: "f2", file: true, filename: "2", content: strings.Repeat("y", 3000)})
			lim := Limits{MaxMemory: 100, TempDir: dir}
			if tt.code == mperr.BodyTooLarge {
				lim.MaxFile = 5000
			} else {
				body = body[:len(body)-10]
			}
			_, err := Read(bytes.NewReader(body), ct, lim)
			wantCode(t, err, tt.code)
			if es := dirEntries(t, dir); len(es) != 0 {
				t.Fatalf("%d files left in TempDir", len(es))
			}
		})
	}
}

func TestLimits(t *testing.T) {
	many := make([]tpart, 11)
	for i := range many {
		many[i] = tpart{name: "p", content: "v"}
	}
	tests := []struct {
		name  string
		lim   Limits
		parts []tpart
		ok    bool
	}{
		{"fields at limit", Limits{MaxFields: 10}, []tpart{{name: "ab", content: "cdefghij"}}, true},
		{"fields over limit", Limits{MaxFields: 10}, []tpart{{name: "ab", content: "cdefghijk"}}, false},
		{"names count", Limits{MaxFields: 10}, []tpart{{name: "abcdef", content: "1"}, {name: "ghij", content: ""}}, false},
		{"file name and type count", Limits{MaxFields: 10}, []tpart{{name: "f", file: true, filename: "abcdefghij", content: "1"}}, false},
		{"file not a field", Limits{MaxFields: 10}, []tpart{{name: "f", file: true, filename: "x", content: strings.Repeat("z", 100)}}, true},
		{"file at limit", Limits{MaxFile: 100}, []tpart{{name: "f", file: true, filename: "x", content: strings.Repeat("z", 60)}, {name: "g", file: true, filename: "y", content: strings.Repeat("z", 40)}}, true},
		{"files over limit", Limits{MaxFile: 100}, []tpart{{name: "f", file: true, filename: "x", content: strings.Repeat("z", 60)}, {name: "g", file: true, filename: "y", content: strings.Repeat("z", 41)}}, false},
		{"files over limit, spooled", Limits{MaxFile: 100, MaxMemory: -1}, []tpart{{name: "f", file: true, filename: "x", content: strings.Repeat("z", 101)}}, false},
		{"parts at limit", Limits{MaxParts: 11}, many, true},
		{"parts over limit", Limits{MaxParts: 10}, many, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.lim.TempDir = t.TempDir()
			ct, body := build(t, "", tt.parts...)
			f, err := Read(bytes.NewReader(body), ct, tt.lim)
			if tt.ok {
				if err != nil {
					t.Fatal(err)
				}
				checkRoundTrip(t, f)
				f.Close()
				return
			}
			wantCode(t, err, mperr.BodyTooLarge)
		})
	}
}

func TestHeaderTooLarge(t *testing.T) {
	body := raw("--b", "Content-Disposition: form-data; name=\"a\"", "X-Pad: "+strings.Repeat("p", 40<<10), "", "v", "--b--")
	_, err := Read(bytes.NewReader(body), ctB, Limits{})
	wantCode(t, err, mperr.BodyTooLarge)
	// A long header line that Go's reader cannot buffer is refused, too.
	body = raw("--b"+strings.Repeat(" ", 10<<10), "Content-Disposition: form-data; name=\"a\"", "", "v", "--b--")
	if _, err := Read(bytes.NewReader(body), ctB, Limits{}); err == nil {
		t.Fatal("accepted")
	}
}

func TestMaxBytesReader(t *testing.T) {
	ct, body := build(t, "", tpart{name: "f", file: true, filename: "x", content: strings.Repeat("z", 1000)})
	rec := httptest.NewRecorder()
	r := http.MaxBytesReader(rec, io.NopCloser(bytes.NewReader(body)), 500)
	_, err := Read(r, ct, Limits{})
	wantCode(t, err, mperr.BodyTooLarge)
	_, err = Read(iotest.ErrReader(io.ErrClosedPipe), ct, Limits{})
	wantCode(t, err, mperr.BadRequest)
	_, err = Read(iotest.TimeoutReader(bytes.NewReader(body)), ct, Limits{})
	wantCode(t, err, mperr.BadRequest)
}

func TestBoundary(t *testing.T) {
	long := strings.Repeat("x", 70)
	tests := []struct {
		ct, want string // want "" = refused
	}{
		{"multipart/form-data; boundary=abc", "abc"},
		{"Multipart/Form-Data; BOUNDARY=abc", "abc"},
		{"multipart/form-data; Boundary=abc", "abc"},
		{`multipart/form-data; boundary="a b:c?"`, "a b:c?"},
		{`multipart/form-data; boundary="ab\c"`, "abc"},
		{"multipart/form-data ;  boundary=abc ; charset=utf-8 ", "abc"},
		{"multipart/form-data;boundary=abc;", "abc"},
		{"\tmultipart/form-data;\tboundary=----WebKitFormBoundary7MA4YWxkTrZu0gW", "----WebKitFormBoundary7MA4YWxkTrZu0gW"},
		{"multipart/form-data; boundary=" + long, long},
		{"multipart/form-data; boundary=" + long + "x", ""},
		{"multipart/form-data", ""},
		{"multipart/form-data; boundary=", ""},
		{`multipart/form-data; boundary=""`, ""},
		{"multipart/form-data; boundary=a; boundary=a", ""},
		{"multipart/form-data; boundary=a; Boundary=b", ""},
		{"multipart/form-data; boundary*=utf-8''abc", ""},
		{"multipart/form-data; boundary*0=ab; boundary*1=c", ""},
		{"multipart/form-data; boundary=a; boundary*=utf-8''b", ""},
		{"multipart/form-data; boundary = abc", ""},
		{"multipart/form-data; boundary= abc", ""},
		{"multipart/form-data; boundary=a b", ""},
		{"multipart/form-data; boundary=a,b", ""},
		{`multipart/form-data; boundary="abc `, ""},
		{`multipart/form-data; boundary="abc "`, ""},
		{`multipart/form-data; boundary="a@b"`, ""},
		{"multipart/form-data; boundary=\"a\x00b\"", ""},
		{"multipart/form-data, multipart/form-data; boundary=abc", ""},
		{"multipart/mixed; boundary=abc", ""},
		{"application/x-www-form-urlencoded; boundary=abc", ""},
		{"multipart/form-data boundary=abc", ""},
		{"", ""},
	}
	for _, tt := range tests {
		got, err := Boundary(tt.ct)
		if tt.want == "" {
			if err == nil {
				t.Errorf("Boundary(%q) = %q, want refusal", tt.ct, got)
				continue
			}
			wantCode(t, err, mperr.UnsupportedMediaType)
			if _, err := Read(strings.NewReader("--abc--"), tt.ct, Limits{}); err == nil {
				t.Errorf("Read accepts %q", tt.ct)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("Boundary(%q) = %q, %v; want %q", tt.ct, got, err, tt.want)
		}
	}
}

// Bodies Read accepts, as raw bytes, with the parts it must see.
func TestAccepts(t *testing.T) {
	tests := []struct {
		name string
		body []byte
		want []Part // Size omitted
	}{
		{"empty body", nil, nil},
		{"only the closing boundary", []byte("--b--"), nil},
		{"empty preamble", []byte("\r\n--b\r\nContent-Disposition: form-data; name=a\r\n\r\n1\r\n--b--"), []Part{{Name: "a"}}},
		{"closing boundary then CRLF", []byte("--b--\r\n"), nil},
		{"small epilogue", raw("--b", `Content-Disposition: form-data; name="a"`, "", "1", "--b--", "bye", ""), []Part{{Name: "a"}}},
		{"transport padding", raw("--b \t", `Content-Disposition: form-data; name="a"`, "", "1", "--b--"), []Part{{Name: "a"}}},
		{"LF line ends", []byte("--b\nContent-Disposition: form-data; name=\"a\"\n\n1\n--b--\n"), []Part{{Name: "a"}}},
		{"header names in any case", raw("--b", `content-DISPOSITION: FORM-DATA; NAME=a; FileName="f.txt"`, "CONTENT-TYPE: Text/Plain; Charset=UTF-8; x=y", "", "1", "--b--"),
			[]Part{{Name: "a", File: true, FileName: "f.txt", ContentType: "text/plain; charset=UTF-8"}}},
		{"unknown headers and parameters dropped", raw("--b", `Content-Disposition: form-data; name="a"; size=3; creation-date="x"`, "Content-ID: <1>", "Content-Length: 1", "", "1", "--b--"),
			[]Part{{Name: "a"}}},
		{"identity transfer encodings", raw("--b", `Content-Disposition: form-data; name="a"`, "Content-Transfer-Encoding: BINARY", "", "1",
			"--b", `Content-Disposition: form-data; name="b"`, "Content-Transfer-Encoding: 8bit", "", "2",
			"--b", `Content-Disposition: form-data; name="c"`, "Content-Transfer-Encoding: 7bit", "", "3", "--b--"),
			[]Part{{Name: "a"}, {Name: "b"}, {Name: "c"}}},
		{"_charset_ utf-8", raw("--b", `Content-Disposition: form-data; name="_charset_"`, "", "UTF-8", "--b--"), []Part{{Name: "_charset_"}}},
		{"json field", raw("--b", `Content-Disposition: form-data; name="user"`, "Content-Type: application/json", "", `{"openid":"x"}`, "--b--"),
			[]Part{{Name: "user", ContentType: "application/json"}}},
		{"quoted-pair in filename", raw("--b", `Content-Disposition: form-data; name="f"; filename="C:\\dir\\a\"b.jpg"`, "", "1", "--b--"),
			[]Part{{Name: "f", File: true, FileName: `C:\dir\a"b.jpg`}}},
		{"UTF-8 name", raw("--b", `Content-Disposition: form-data; name="昵称"`, "", "1", "--b--"), []Part{{Name: "昵称"}}},
		{"folded header", raw("--b", `Content-Disposition: form-data;`, ` name="a"`, "", "1", "--b--"), []Part{{Name: "a"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := mustRead(t, ctB, tt.body, Limits{})
			got := f.Parts()
			if len(got) != len(tt.want) {
				t.Fatalf("parts %+v, want %+v", got, tt.want)
			}
			for i := range got {
				got[i].Size = 0
				if got[i] != tt.want[i] {
					t.Fatalf("part %d = %+v, want %+v", i, got[i], tt.want[i])
				}
			}
			checkRoundTrip(t, f)
		})
	}
}

// Bodies Read refuses with 400, whatever another parser would make of them.
func TestRefuses(t *testing.T) {
	part := func(headers ...string) []byte {
		return raw(append(append([]string{"--b"}, headers...), "", "SECRET", "--b--")...)
	}
	cd := `Content-Disposition: form-data; name="a"`
	tests := []struct {
		name string
		body []byte
	}{
		{"preamble", append([]byte("junk\r\n"), part(cd)...)},
		{"two-line preamble", append([]byte("\r\n\r\n"), part(cd)...)},
		{"longer boundary first", raw("--bb", cd, "", "1", "--b", cd, "", "2", "--b--")},
		{"no closing boundary", raw("--b", cd, "", "SECRET")},
		{"no closing boundary after a part", raw("--b", cd, "", "SECRET", "--b", "")},
		{"truncated headers", raw("--b", cd)},
		{"epilogue too large", append(part(cd), bytes.Repeat([]byte("e"), 64<<10)...)},
		{"no disposition", part("Content-Type: text/plain")},
		{"two dispositions", part(cd, `content-disposition: form-data; name="openid"`)},
		{"not form-data", part(`Content-Disposition: attachment; name="a"`)},
		{"no name", part(`Content-Disposition: form-data; filename="a"`)},
		{"empty name", part(`Content-Disposition: form-data; name=""`)},
		{"two names", part(`Content-Disposition: form-data; name="a"; name="openid"`)},
		{"names in two cases", part(`Content-Disposition: form-data; name="a"; NAME="openid"`)},
		{"two filenames", part(`Content-Disposition: form-data; name="a"; filename="x"; filename="y"`)},
		{"name*", part(`Content-Disposition: form-data; name*=UTF-8''openid`)},
		{"name and name*", part(`Content-Disposition: form-data; name="a"; name*=UTF-8''openid`)},
		{"filename*", part(`Content-Disposition: form-data; name="a"; filename*=UTF-8''x.jpg`)},
		{"continuation", part(`Content-Disposition: form-data; name*0="open"; name*1="id"`)},
		{"name with NUL", part("Content-Disposition: form-data; name=\"openid\x00x\"")},
		{"name with quoted-pair", part(`Content-Disposition: form-data; name="open\id"`)},
		{"name with escaped quote", part(`Content-Disposition: form-data; name="a\"; name=\"openid"`)},
		{"name with semicolon", part(`Content-Disposition: form-data; name="a; name=openid"`)},
		{"name not UTF-8", part("Content-Disposition: form-data; name=\"\xffopenid\"")},
		{"filename with control", part("Content-Disposition: form-data; name=\"a\"; filename=\"x\x01\"")},
		{"unterminated quote", part(`Content-Disposition: form-data; name="a`)},
		{"empty parameter", part(`Content-Disposition: form-data;; name="a"`)},
		{"space around =", part(`Content-Disposition: form-data; name = "a"`)},
		{"junk after value", part(`Content-Disposition: form-data; name="a"x`)},
		{"single-quoted name", part(`Content-Disposition: form-data; name='a b'`)},
		{"base64", part(cd, "Content-Transfer-Encoding: base64")},
		{"quoted-printable", part(cd, "Content-Transfer-Encoding: quoted-printable")},
		{"two transfer encodings", part(cd, "Content-Transfer-Encoding: binary", "content-transfer-encoding: binary")},
		{"nested multipart", part(cd, "Content-Type: multipart/mixed; boundary=c")},
		{"two content types", part(cd, "Content-Type: text/plain", "Content-Type: application/json")},
		{"bad content type", part(cd, "Content-Type: text")},
		{"content type with charset*", part(cd, "Content-Type: text/plain; charset*=utf-8''x")},
		{"bad header line", part("Content-Disposition : form-data; name=\"a\"")},
		{"_charset_ utf-16", raw("--b", `Content-Disposition: form-data; name="_charset_"`, "", "UTF-16", "--b--")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Read(bytes.NewReader(tt.body), ctB, Limits{})
			if err == nil {
				t.Fatalf("accepted as %+v", f.Parts())
			}
			wantCode(t, err, mperr.BadRequest)
			if strings.Contains(err.Error(), "SECRET") || strings.Contains(err.Error(), "openid") {
				t.Fatalf("error quotes the body: %v", err)
			}
		})
	}
}

func TestBodyAfterClose(t *testing.T) {
	dir := t.TempDir()
	ct, body := build(t, "", tpart{name: "f", file: true, filename: "x", content: "abc"})
	f := mustRead(t, ct, body, Limits{MaxMemory: -1, TempDir: dir})
	f.Close()
	_, r, _ := f.Body()
	if _, err := io.ReadAll(r); err == nil {
		t.Fatal("spooled content readable after Close")
	}
	if _, err := os.Stat(filepath.Join(dir, "x")); !os.IsNotExist(err) {
		t.Fatal(err)
	}
}

// Readers from Body can be read concurrently (GetBody while a retry runs).
func TestConcurrentBodies(t *testing.T) {
	ct, body := build(t, "", tpart{name: "f", file: true, filename: "x", content: strings.Repeat("q", 100<<10)}, tpart{name: "a", content: "1"})
	f := mustRead(t, ct, body, Limits{MaxMemory: -1, TempDir: t.TempDir()})
	sums := make(chan [32]byte, 4)
	for range 4 {
		go func() {
			_, r, _ := f.Body()
			b, _ := io.ReadAll(r)
			sums <- sha256.Sum256(b)
		}()
	}
	first := <-sums
	for range 3 {
		if <-sums != first {
			t.Fatal("concurrent readers disagree")
		}
	}
}
