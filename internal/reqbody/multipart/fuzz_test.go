package multipart

import (
	"bytes"
	"io"
	"mime/multipart"
	"strings"
	"testing"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/mperr"
)

// FuzzRead: whatever Read accepts, Body re-serialises to exactly the parts
// kept (mime/multipart parses it back part for part, and every lenient
// model reads the same names), before and after Del and Set; mime/multipart
// reads the same names and contents from the input; whatever Read refuses,
// it refuses with 400, 413 or 415. Either way no temporary file is left.
// Seeds: testdata/fuzz/FuzzRead.
func FuzzRead(f *testing.F) {
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, contentType string, body []byte) {
		lim := Limits{MaxFields: 4 << 10, MaxFile: 8 << 10, MaxParts: 16, MaxMemory: 16, TempDir: dir}
		form, err := Read(bytes.NewReader(body), contentType, lim)
		if err != nil {
			e, ok := mperr.As(err)
			if !ok {
				t.Fatalf("error %v is not an mperr.Error", err)
			}
			switch e.Code {
			case mperr.BadRequest, mperr.BodyTooLarge, mperr.UnsupportedMediaType:
			default:
				t.Fatalf("error code %s", e.Code)
			}
			if es := dirEntries(t, dir); len(es) != 0 {
				t.Fatalf("refused, but %d temporary files left", len(es))
			}
			return
		}
		defer func() {
			form.Close()
			if es := dirEntries(t, dir); len(es) != 0 {
				t.Fatalf("%d temporary files left after Close", len(es))
			}
		}()
		checkRoundTrip(t, form)
		checkGoReadsSame(t, form, contentType, body)

		// Drop some parts, including file parts, and inject.
		form.Del(func(n string) bool { return len(n)%2 == 0 || strings.EqualFold(n, "openid") })
		if err := form.Set("openid", "o-injected\r\n--"); err != nil {
			t.Fatal(err)
		}
		checkRoundTrip(t, form)
		boundary, out := serialised(t, form)
		n := 0
		for _, p := range parseOut(t, boundary, out) {
			if strings.EqualFold(p.name, "openid") {
				n++
				if p.content != "o-injected\r\n--" {
					t.Fatalf("openid = %q", p.content)
				}
			}
		}
		if n != 1 {
			t.Fatalf("%d openid parts after Set", n)
		}
	})
}

// checkGoReadsSame reads the input with mime/multipart's ordinary NextPart
// and FormName and checks it sees the names and contents form holds.
func checkGoReadsSame(t *testing.T, form *Form, contentType string, body []byte) {
	t.Helper()
	boundary, _ := Boundary(contentType)
	mr := multipart.NewReader(bytes.NewReader(body), boundary)
	want := expected(t, form)
	i := 0
	for ; ; i++ {
		p, err := mr.NextPart()
		if err != nil {
			break // io.EOF, or the truncations Read refused are not here
		}
		data, err := io.ReadAll(p)
		if err != nil {
			t.Fatalf("mime/multipart fails reading part %d of an accepted body: %v", i, err)
		}
		if i >= len(want) {
			t.Fatalf("mime/multipart reads more parts (%d) than Read", i+1)
		}
		if p.FormName() != want[i].name || string(data) != want[i].content {
			t.Fatalf("part %d: mime/multipart reads %q=%q, Read %q=%q", i, p.FormName(), data, want[i].name, want[i].content)
		}
	}
	if i != len(want) {
		t.Fatalf("mime/multipart reads %d parts, Read %d", i, len(want))
	}
}
