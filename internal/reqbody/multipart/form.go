package multipart

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"slices"
	"strings"
)

func newForm() *Form {
	var b [24]byte
	_, _ = rand.Read(b[:]) // never fails
	return &Form{boundary: hex.EncodeToString(b[:])}
}

// Value returns the content of the first non-file part named exactly name.
func (f *Form) Value(name string) (string, bool) {
	for i := range f.parts {
		if p := &f.parts[i]; !p.File && p.Name == name {
			return string(p.data), true
		}
	}
	return "", false
}

// Names returns the names of all parts, file parts included, in order,
// with repeats.
func (f *Form) Names() []string {
	names := make([]string, len(f.parts))
	for i := range f.parts {
		names[i] = f.parts[i].Name
	}
	return names
}

// Parts describes all parts in order.
func (f *Form) Parts() []Part {
	ps := make([]Part, len(f.parts))
	for i := range f.parts {
		ps[i] = f.parts[i].Part
	}
	return ps
}

// Del drops every part, file parts included, whose name match accepts, and
// tells whether it dropped any.
func (f *Form) Del(match func(name string) bool) bool {
	n := len(f.parts)
	f.parts = slices.DeleteFunc(f.parts, func(p part) bool { return match(p.Name) })
	return len(f.parts) != n
}

// errName is what Set returns for a name ValidName refuses.
var errName = errors.New("multipart: invalid part name")

// Set drops every part whose name equals name ignoring case, then appends
// a non-file part name=value without Content-Type. name must satisfy
// ValidName.
func (f *Form) Set(name, value string) error {
	if !ValidName(name) {
		return errName
	}
	f.Del(func(n string) bool { return strings.EqualFold(n, name) })
	f.parts = append(f.parts, part{
		Part: Part{Name: name, Size: int64(len(value))},
		data: []byte(value),
	})
	return nil
}

// Body returns the form re-serialised: its Content-Type (multipart/form-data
// with a boundary of 192 random bits, the same on every call), a reader of
// the body and the body's exact length. Each call returns a new reader from
// the start (for http.Request.GetBody); closing it does nothing, the
// temporary file lives until Close. After Close, reading spooled content
// fails.
func (f *Form) Body() (contentType string, body io.ReadCloser, length int64) {
	var readers []io.Reader
	buf := make([]byte, 0, f.headLen())
	for i := range f.parts {
		p := &f.parts[i]
		buf = f.appendPartHead(buf, p)
		if p.spooled {
			readers = append(readers, bytes.NewReader(buf), io.NewSectionReader(f.spool, p.off, p.Size))
			length += int64(len(buf)) + p.Size
			buf = buf[len(buf):]
		} else {
			buf = append(buf, p.data...)
		}
		buf = append(buf, "\r\n"...)
	}
	buf = append(buf, "--"...)
	buf = append(buf, f.boundary...)
	buf = append(buf, "--\r\n"...)
	length += int64(len(buf))
	if readers == nil {
		return f.contentType(), &bytesBody{Reader: bytes.NewReader(buf)}, length
	}
	readers = append(readers, bytes.NewReader(buf))
	return f.contentType(), readCloser{io.MultiReader(readers...)}, length
}

func (f *Form) contentType() string { return "multipart/form-data; boundary=" + f.boundary }

// headLen is the length of the serialised form without spooled content.
func (f *Form) headLen() int {
	n := len(f.boundary) + 6
	for i := range f.parts {
		p := &f.parts[i]
		n += len(f.boundary) + 2 + 2 + len(`Content-Disposition: form-data; name=""`) + 2 +
			len(p.Name) + 2 + 2
		if p.File {
			n += len(`; filename=""`) + 3*len(p.FileName)
		}
		if p.ContentType != "" {
			n += len("Content-Type: ") + len(p.ContentType) + 2
		}
		if !p.spooled {
			n += len(p.data)
		}
	}
	return n
}

// appendPartHead appends the boundary line and the header of p.
func (f *Form) appendPartHead(buf []byte, p *part) []byte {
	buf = append(buf, "--"...)
	buf = append(buf, f.boundary...)
	buf = append(buf, "\r\nContent-Disposition: form-data; name=\""...)
	buf = append(buf, p.Name...)
	buf = append(buf, '"')
	if p.File {
		buf = append(buf, `; filename="`...)
		buf = appendFileName(buf, p.FileName)
		buf = append(buf, '"')
	}
	buf = append(buf, "\r\n"...)
	if p.ContentType != "" {
		buf = append(buf, "Content-Type: "...)
		buf = append(buf, p.ContentType...)
		buf = append(buf, "\r\n"...)
	}
	return append(buf, "\r\n"...)
}

// appendFileName appends a filename for a quoted string, with '"', '\', ';'
// and '=' percent-encoded. Browsers encode '"' so; the others so that no
// parser can read another parameter out of a filename, whether it unescapes
// backslashes or not, splits on ';' before unquoting, or scans for the last
// "name=" ignoring quotes. Read refused control characters.
func appendFileName(buf []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '"':
			buf = append(buf, "%22"...)
		case '\\':
			buf = append(buf, "%5C"...)
		case ';':
			buf = append(buf, "%3B"...)
		case '=':
			buf = append(buf, "%3D"...)
		default:
			buf = append(buf, c)
		}
	}
	return buf
}

type bytesBody struct{ *bytes.Reader }

func (*bytesBody) Close() error { return nil }

type readCloser struct{ io.Reader }

func (readCloser) Close() error { return nil }

// Close removes the temporary file, if any. It is safe to call twice.
func (f *Form) Close() error {
	if f.closed {
		return nil
	}
	f.closed = true
	if f.spool == nil {
		return nil
	}
	name := f.spool.Name()
	err := f.spool.Close()
	if rerr := os.Remove(name); err == nil {
		err = rerr
	}
	f.spool = nil
	return err
}
