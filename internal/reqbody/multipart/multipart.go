// Package multipart reads a multipart/form-data request body, lets the
// handler read, drop and add its parts, and writes it back out re-serialised.
//
// The body is parsed once, by this package, and the upstream is given a new
// body built from what was parsed: a fresh random boundary, one canonical
// Content-Disposition (form-data; name="…"[; filename="…"]) and at most a
// Content-Type per part, nothing else. Whatever lenient reading a backend's
// parser would give the client's bytes (a preamble, header case, a second
// name parameter, name*=, quoted-printable parts), it never sees those
// bytes: it sees only the parts Read accepted, so the names the handler
// checked are the names the backend reads.
//
// Read refuses what it cannot read unambiguously instead of guessing (see
// Read). Non-file parts are held in memory within Limits.MaxFields; file
// parts (those with a filename parameter) are held in memory only up to
// Limits.MaxMemory in all, then spooled to one temporary file that Close
// removes. The whole body is read before Read returns, so the handler knows
// every field (a code after the file, an openid after the file) before
// anything is forwarded, whatever the part order.
package multipart

import (
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/ascii"

	"bufio"
	"bytes"
	"io"
	"mime/multipart"
	"net/textproto"
	"os"
	"strings"
	"unicode/utf8"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/mperr"
)

// Defaults for zero Limits fields.
const (
	DefaultMaxFields = 64 << 10
	DefaultMaxFile   = 32 << 20
	DefaultMaxParts  = 256
	DefaultMaxMemory = 32 << 10
)

// maxHeaderBytes bounds one part's header block (and the first boundary
// line): no client needs more, and it bounds what a header can make us hold.
const maxHeaderBytes = 16 << 10

// maxEpilogue bounds the bytes read and dropped after the closing boundary.
const maxEpilogue = 4 << 10

// readAhead is what the two buffered readers in front of the body may read
// beyond the bytes they have handed out.
const readAhead = 2*4096 + 256

// Limits bounds what Read accepts and holds.
type Limits struct {
	// MaxFields bounds, in bytes, what is held in memory for the form: the
	// values of non-file parts plus every part's name, filename and
	// Content-Type. Over it: mperr.BodyTooLarge. <= 0: DefaultMaxFields.
	MaxFields int64
	// MaxFile bounds the total bytes of file parts' contents. Over it:
	// mperr.BodyTooLarge. <= 0: DefaultMaxFile.
	MaxFile int64
	// MaxParts bounds the number of parts. Over it: mperr.BodyTooLarge.
	// <= 0: DefaultMaxParts.
	MaxParts int
	// MaxMemory is how many file bytes, over all file parts, are kept in
	// memory before file contents go to a temporary file. 0:
	// DefaultMaxMemory; < 0: every file part is spooled.
	MaxMemory int64
	// TempDir is where the temporary file is created ("" for os.TempDir).
	TempDir string
}

func (l Limits) withDefaults() Limits {
	if l.MaxFields <= 0 {
		l.MaxFields = DefaultMaxFields
	}
	if l.MaxFile <= 0 {
		l.MaxFile = DefaultMaxFile
	}
	if l.MaxParts <= 0 {
		l.MaxParts = DefaultMaxParts
	}
	if l.MaxMemory == 0 {
		l.MaxMemory = DefaultMaxMemory
	}
	l.MaxMemory = max(l.MaxMemory, 0)
	return l
}

// Fixed error messages: they never quote the body.
const (
	msgBadType     = "the multipart Content-Type has no single valid boundary"
	msgPreamble    = "the multipart body does not start with its boundary"
	msgMalformed   = "the multipart body is malformed or has no closing boundary"
	msgEpilogue    = "the multipart body has too much data after its closing boundary"
	msgDisposition = "a multipart part has no single unambiguous form-data name"
	msgPartHeader  = "a multipart part has an unsupported header"
	msgEncoding    = "a multipart part has a Content-Transfer-Encoding other than binary"
	msgNested      = "a multipart part is itself multipart"
	msgCharset     = "the multipart _charset_ field names a charset other than UTF-8"
	msgReadFailed  = "the request body could not be read"
	msgSpool       = "an uploaded file could not be buffered"
	msgTooManyPart = "the multipart body has too many parts"
	msgHeaderLarge = "a multipart part header is too large"
)

// Part describes one part of a Form.
type Part struct {
	Name string
	// File tells that the part has a filename parameter (perhaps empty):
	// most backends then read it as an upload, not as a field.
	File     bool
	FileName string
	// ContentType is the part's canonical Content-Type, "" when it has none.
	ContentType string
	// Size is the length of the content in bytes.
	Size int64
}

type part struct {
	Part
	data    []byte // content held in memory (fields, small files)
	spooled bool   // content is at off in the spool file
	off     int64
}

// Form is a parsed multipart/form-data body. It is not safe for concurrent
// use, except that readers returned by Body may be read concurrently with
// each other. Close it when the request is done.
type Form struct {
	parts    []part
	spool    *os.File
	boundary string
	closed   bool
}

// Boundary returns the boundary of a multipart/form-data Content-Type, or a
// mperr.UnsupportedMediaType error: when the media type is another one, and
// when there is not exactly one boundary parameter of 1 to 70 RFC 2046
// characters (the parameter name is matched in any case, the value may be
// quoted; boundary*= and other RFC 2231 forms are refused, as is a
// parameter given twice). Other parameters are ignored: the re-serialised
// body's Content-Type carries only its own boundary.
func Boundary(contentType string) (string, error) {
	typ, params, ok := parseHeaderValue(contentType, true)
	if !ok || typ != "multipart/form-data" {
		return "", mperr.New(mperr.UnsupportedMediaType, msgBadType)
	}
	boundary, n := "", 0
	for _, p := range params {
		if p.key == "boundary" {
			boundary, n = p.value, n+1
		}
	}
	if n != 1 || !validBoundary(boundary) {
		return "", mperr.New(mperr.UnsupportedMediaType, msgBadType)
	}
	return boundary, nil
}

// Read reads a whole multipart/form-data body. Errors are *mperr.Error:
//
//   - UnsupportedMediaType: contentType has no single valid boundary (see
//     Boundary);
//   - BodyTooLarge: over a limit of lim, or body is an http.MaxBytesReader
//     that hit its limit;
//   - BadRequest: the body does not start with the first boundary line (no
//     preamble), has no closing boundary, has more than a few KiB after it,
//     or a part that cannot be read unambiguously: not exactly one
//     Content-Disposition of type form-data with exactly one name (non-empty
//     UTF-8 without control characters, '"', '\' or ';') and at most one
//     filename, a name*= or filename*= parameter, two Content-Types or a
//     multipart one, a Content-Transfer-Encoding other than 7bit, 8bit or
//     binary, a _charset_ field other than UTF-8 or US-ASCII;
//   - Internal: the temporary file could not be written.
//
// Other part headers are dropped, as are Content-Disposition parameters
// other than name and filename, and Content-Type parameters other than
// charset. An empty body is a form with no parts. Read does not close body.
func Read(body io.Reader, contentType string, lim Limits) (*Form, error) {
	boundary, err := Boundary(contentType)
	if err != nil {
		return nil, err
	}
	lim = lim.withDefaults()
	lr := &limitReader{r: body}
	lr.budget(maxHeaderBytes + readAhead)
	cw := &closeWatch{r: lr, pat: "--" + boundary + "--"}
	br := bufio.NewReaderSize(cw, 256) // for Peek; mime/multipart buffers the rest
	f := newForm()
	ok := false
	defer func() {
		if !ok {
			f.Close()
		}
	}()

	// No preamble: the first line is the first boundary (or the last one),
	// after at most an empty line (RFC 2046's empty preamble, which
	// mime/multipart's writer sends for a form without parts).
	dash := "--" + boundary
	head, err := br.Peek(2 + len(dash) + 64)
	switch {
	case len(head) == 0 && err == io.EOF:
		ok = true
		return f, nil
	case len(head) == 0 && err != nil:
		return nil, lr.fail(err)
	}
	if !firstLineOK(head, dash) {
		return nil, mperr.New(mperr.BadRequest, msgPreamble)
	}

	mr := multipart.NewReader(br, boundary)
	var fieldBytes, fileBytes, memBytes int64
	for {
		lr.budget(maxHeaderBytes + readAhead)
		p, err := mr.NextRawPart()
		if err == io.EOF && cw.saw {
			break
		}
		if err == io.EOF { // mime/multipart's answer to a body cut in a header
			return nil, mperr.New(mperr.BadRequest, msgMalformed)
		}
		if err != nil {
			if lr.hit {
				return nil, mperr.New(mperr.BodyTooLarge, msgHeaderLarge)
			}
			return nil, lr.fail(err)
		}
		if len(f.parts) == lim.MaxParts {
			return nil, mperr.New(mperr.BodyTooLarge, msgTooManyPart)
		}
		pt, err := partHeader(p.Header)
		if err != nil {
			return nil, err
		}
		fieldBytes += int64(len(pt.Name) + len(pt.FileName) + len(pt.ContentType))
		if fieldBytes > lim.MaxFields {
			return nil, fieldsTooLarge(lim.MaxFields)
		}
		lr.budget(-1)
		if !pt.File {
			data, more, err := readUpTo(p, lim.MaxFields-fieldBytes)
			if err != nil {
				return nil, lr.fail(err)
			}
			if more {
				return nil, fieldsTooLarge(lim.MaxFields)
			}
			if strings.EqualFold(pt.Name, "_charset_") && !utf8Charset(string(data)) {
				return nil, mperr.New(mperr.BadRequest, msgCharset)
			}
			pt.data, pt.Size = data, int64(len(data))
			fieldBytes += pt.Size
		} else {
			if err := f.readFile(&pt, p, lim.MaxMemory-memBytes, lim.MaxFile-fileBytes, lim); err != nil {
				return nil, lr.fail(err)
			}
			fileBytes += pt.Size
			if !pt.spooled {
				memBytes += pt.Size
			}
		}
		f.parts = append(f.parts, pt)
	}
	// Read (and drop) a short epilogue, so the client's body is consumed.
	lr.budget(maxEpilogue)
	if _, err := io.Copy(io.Discard, br); err != nil {
		if lr.hit {
			return nil, mperr.New(mperr.BadRequest, msgEpilogue)
		}
		return nil, lr.fail(err)
	}
	ok = true
	return f, nil
}

// firstLineOK tells that head, after an optional line end, starts with dash then optional spaces or tabs
// then a line end or "--" (the closing boundary of an empty form).
func firstLineOK(head []byte, dash string) bool {
	if bytes.HasPrefix(head, []byte("\r\n")) {
		head = head[2:]
	} else if bytes.HasPrefix(head, []byte("\n")) {
		head = head[1:]
	}
	if !bytes.HasPrefix(head, []byte(dash)) {
		return false
	}
	rest := bytes.TrimLeft(head[len(dash):], " \t")
	return bytes.HasPrefix(rest, []byte("\r\n")) || bytes.HasPrefix(rest, []byte("\n")) ||
		bytes.HasPrefix(rest, []byte("--"))
}

func fieldsTooLarge(limit int64) error {
	return mperr.Newf(mperr.BodyTooLarge, "the multipart fields are larger than %d bytes", limit)
}

func filesTooLarge(limit int64) error {
	return mperr.Newf(mperr.BodyTooLarge, "the multipart files are larger than %d bytes", limit)
}

func utf8Charset(s string) bool {
	s = strings.TrimSpace(s)
	return strings.EqualFold(s, "utf-8") || strings.EqualFold(s, "utf8") || strings.EqualFold(s, "us-ascii")
}

// partHeader checks a part's header and returns its canonical description.
func partHeader(h textproto.MIMEHeader) (part, error) {
	var pt part
	cd := h["Content-Disposition"]
	if len(cd) != 1 {
		return pt, mperr.New(mperr.BadRequest, msgDisposition)
	}
	typ, params, ok := parseHeaderValue(cd[0], false)
	if !ok || typ != "form-data" {
		return pt, mperr.New(mperr.BadRequest, msgDisposition)
	}
	hasName := false
	for _, p := range params {
		switch p.key {
		case "name":
			if p.escaped { // "open\id": openid to some parsers, open\id to others
				return pt, mperr.New(mperr.BadRequest, msgDisposition)
			}
			pt.Name, hasName = p.value, true
		case "filename":
			pt.FileName, pt.File = p.value, true
		}
	}
	if !hasName || !ValidName(pt.Name) {
		return pt, mperr.New(mperr.BadRequest, msgDisposition)
	}
	switch ct := h["Content-Type"]; len(ct) {
	case 0:
	case 1:
		typ, params, ok := parseHeaderValue(ct[0], true)
		if !ok {
			return pt, mperr.New(mperr.BadRequest, msgPartHeader)
		}
		if strings.HasPrefix(typ, "multipart/") {
			return pt, mperr.New(mperr.BadRequest, msgNested)
		}
		pt.ContentType = typ
		for _, p := range params {
			if p.key != "charset" {
				continue
			}
			if tok, rest := cutToken(p.value); tok == "" || rest != "" {
				return pt, mperr.New(mperr.BadRequest, msgPartHeader)
			}
			pt.ContentType += "; charset=" + p.value
		}
	default:
		return pt, mperr.New(mperr.BadRequest, msgPartHeader)
	}
	switch cte := h["Content-Transfer-Encoding"]; len(cte) {
	case 0:
	case 1:
		switch strings.ToLower(ascii.TrimOWS(cte[0])) {
		case "binary", "8bit", "7bit":
		default:
			return pt, mperr.New(mperr.BadRequest, msgEncoding)
		}
	default:
		return pt, mperr.New(mperr.BadRequest, msgEncoding)
	}
	return pt, nil
}

// ValidName reports whether name can be a part name: non-empty UTF-8
// without control characters, '"', '\' or ';', the characters that parsers
// quote, escape or split differently.
func ValidName(name string) bool {
	if name == "" || !utf8.ValidString(name) {
		return false
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c < 0x20 || c == 0x7f || c == '"' || c == '\\' || c == ';' {
			return false
		}
	}
	return true
}

// readUpTo reads r to its end if that is at most n bytes. Otherwise more
// is true and data holds the n+1 bytes read so far.
func readUpTo(r io.Reader, n int64) (data []byte, more bool, err error) {
	var buf []byte
	for {
		if len(buf) == cap(buf) {
			if int64(len(buf)) > n {
				return buf, true, nil
			}
			buf = append(buf, 0)[:len(buf)]
			if int64(cap(buf)) > n+1 {
				buf = buf[: len(buf) : n+1]
			}
		}
		m, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+m]
		if err == io.EOF {
			return buf, int64(len(buf)) > n, nil
		}
		if err != nil {
			return nil, false, err
		}
	}
}

// readFile reads a file part's content: in memory while it fits in mem
// bytes, else into the spool file; total bounds it.
func (f *Form) readFile(pt *part, r io.Reader, mem, total int64, lim Limits) error {
	data, more, err := readUpTo(r, min(mem, total))
	if err != nil {
		return err
	}
	if !more {
		pt.data, pt.Size = data, int64(len(data))
		return nil
	}
	if mem >= total {
		return filesTooLarge(lim.MaxFile)
	}
	if f.spool == nil {
		sp, err := os.CreateTemp(lim.TempDir, "caddy-mp-upload-*")
		if err != nil {
			return mperr.Wrap(mperr.Internal, msgSpool, err)
		}
		f.spool = sp
	}
	off, err := f.spool.Seek(0, io.SeekEnd)
	if err != nil {
		return mperr.Wrap(mperr.Internal, msgSpool, err)
	}
	if _, err := f.spool.Write(data); err != nil {
		return mperr.Wrap(mperr.Internal, msgSpool, err)
	}
	n, err := copyUpTo(f.spool, r, total-int64(len(data)))
	if err != nil {
		return err
	}
	if n < 0 {
		return filesTooLarge(lim.MaxFile)
	}
	n += int64(len(data))
	pt.spooled, pt.off, pt.Size = true, off, n
	return nil
}

// copyUpTo copies r to the spool file w while that is at most n bytes; n
// is -1 when r has more. Errors writing are Internal ones.
func copyUpTo(w io.Writer, r io.Reader, n int64) (int64, error) {
	var buf [32 << 10]byte
	var done int64
	for {
		want := int64(len(buf))
		if left := n + 1 - done; left < want {
			want = left
		}
		m, err := r.Read(buf[:want])
		if m > 0 {
			done += int64(m)
			if done > n {
				return -1, nil
			}
			if _, werr := w.Write(buf[:m]); werr != nil {
				return 0, mperr.Wrap(mperr.Internal, msgSpool, werr)
			}
		}
		if err == io.EOF {
			return done, nil
		}
		if err != nil {
			return 0, err
		}
	}
}
