package multipart

import (
	"bytes"
	"io"
	"mime"
	"mime/multipart"
	"os"
	"strings"
	"testing"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/mperr"
)

// tpart is a part as a test sees it.
type tpart struct {
	name, filename string
	file           bool
	ctype          string
	content        string
}

// build writes parts with mime/multipart's own writer.
func build(t testing.TB, boundary string, parts ...tpart) (ct string, body []byte) {
	t.Helper()
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	if boundary != "" {
		if err := w.SetBoundary(boundary); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range parts {
		h := make(map[string][]string)
		cd := `form-data; name="` + p.name + `"`
		if p.file {
			cd += `; filename="` + p.filename + `"`
		}
		h["Content-Disposition"] = []string{cd}
		if p.ctype != "" {
			h["Content-Type"] = []string{p.ctype}
		}
		pw, err := w.CreatePart(h)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(pw, p.content)
	}
	w.Close()
	return w.FormDataContentType(), buf.Bytes()
}

func mustRead(t testing.TB, ct string, body []byte, lim Limits) *Form {
	t.Helper()
	f, err := Read(bytes.NewReader(body), ct, lim)
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func wantCode(t testing.TB, err error, code mperr.Code) {
	t.Helper()
	e, ok := mperr.As(err)
	if !ok || e.Code != code {
		t.Fatalf("err = %v, want %s", err, code)
	}
}

// serialised returns f.Body's bytes after checking its framing: the length
// is exact and a second reader gives the same bytes.
func serialised(t testing.TB, f *Form) (boundary string, body []byte) {
	t.Helper()
	ct, r, n := f.Body()
	body, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("reading Body: %v", err)
	}
	r.Close()
	if int64(len(body)) != n {
		t.Fatalf("Body length %d, read %d bytes", n, len(body))
	}
	ct2, r2, _ := f.Body()
	again, _ := io.ReadAll(r2)
	if ct2 != ct || !bytes.Equal(again, body) {
		t.Fatal("a second Body call gives another body")
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || mt != "multipart/form-data" || len(params) != 1 {
		t.Fatalf("Body Content-Type %q", ct)
	}
	return params["boundary"], body
}

// parseOut parses a serialised body with mime/multipart, checking that every
// part has only canonical headers.
func parseOut(t testing.TB, boundary string, body []byte) []tpart {
	t.Helper()
	mr := multipart.NewReader(bytes.NewReader(body), boundary)
	var got []tpart
	for {
		p, err := mr.NextRawPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("re-parse: %v", err)
		}
		for k := range p.Header {
			if k != "Content-Disposition" && k != "Content-Type" {
				t.Fatalf("output part header %q", k)
			}
		}
		_, params, err := mime.ParseMediaType(p.Header.Get("Content-Disposition"))
		if err != nil {
			t.Fatalf("output Content-Disposition %q: %v", p.Header.Get("Content-Disposition"), err)
		}
		fn, file := params["filename"]
		data, err := io.ReadAll(p)
		if err != nil {
			t.Fatalf("re-parse: %v", err)
		}
		got = append(got, tpart{name: params["name"], filename: fn, file: file,
			ctype: p.Header.Get("Content-Type"), content: string(data)})
	}
	return got
}

// expected describes f's parts with their contents as Body gives them.
func expected(t testing.TB, f *Form) []tpart {
	t.Helper()
	var want []tpart
	for _, p := range f.parts {
		var content []byte
		if p.spooled {
			content = make([]byte, p.Size)
			if _, err := f.spool.ReadAt(content, p.off); err != nil {
				t.Fatal(err)
			}
		} else {
			content = p.data
		}
		fn := p.FileName
		if p.File {
			fn = string(appendFileName(nil, fn))
		}
		want = append(want, tpart{name: p.Name, filename: fn, file: p.File, ctype: p.ContentType, content: string(content)})
	}
	return want
}

// checkRoundTrip checks that f's serialisation parses back to exactly f's
// parts, under mime/multipart and under the lenient models.
func checkRoundTrip(t testing.TB, f *Form) {
	t.Helper()
	boundary, body := serialised(t, f)
	got, want := parseOut(t, boundary, body), expected(t, f)
	if len(got) != len(want) {
		t.Fatalf("re-parsed %d parts, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("part %d re-parsed as %+v, want %+v", i, got[i], want[i])
		}
	}
	names := f.Names()
	for _, m := range lenientModels {
		ln := m.names(t, boundary, body)
		if strings.Join(ln, "\x00") != strings.Join(names, "\x00") {
			t.Fatalf("lenient model %s reads names %q, Names() = %q", m.label, ln, names)
		}
	}
}

func dirEntries(t testing.TB, dir string) []os.DirEntry {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return es
}
