// Package reqbody reads a request body once, lets the handler read and
// rewrite its top-level fields, and writes it back into the request.
//
// JSON bodies are handled as a list of top-level members kept as the exact
// bytes of the input: a rewrite re-emits untouched keys and values byte for
// byte (only the whitespace between members is lost) and never re-marshals
// the object. Form bodies (application/x-www-form-urlencoded) are re-encoded
// with url.Values semantics, names in the order of their first appearance.
// An unchanged body is given back byte for byte.
//
// Field names are matched the way lenient JSON decoders match them: Set and
// Del remove every top-level key equal to the name ignoring case (see
// jsonobj.FoldRune), after decoding escapes ("open\u0069d" is "openid"), so
// that no client-sent duplicate survives next to an injected field.
package reqbody

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/mperr"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/reqbody/jsonobj"
)

// DefaultLimit is the body size limit used when Read is given limit <= 0.
const DefaultLimit = 64 << 10

// maxLimit caps any limit (bodies are held in memory).
const maxLimit = 1 << 30

// Kind is what a body holds.
type Kind int

const (
	None  Kind = iota // empty body
	JSON              // a JSON object
	Form              // application/x-www-form-urlencoded
	Other             // a non-empty body of another type; never rewritten
)

func (k Kind) String() string {
	switch k {
	case None:
		return "none"
	case JSON:
		return "json"
	case Form:
		return "form"
	case Other:
		return "other"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Fixed error messages (they never quote the body).
const (
	msgNotJSONObject = "the request body is not a JSON object"
	msgBadForm       = "the request body is not a valid form"
	msgReadFailed    = "the request body could not be read"
)

// member is a top-level JSON member: key is the raw key token, value the raw
// value; both alias the input or a buffer of their own.
type member struct {
	key, value []byte
}

// formField is a form name with its values (first, then more).
type formField struct {
	name  string
	first string
	more  []string
}

// Body is a request body read by Read.
type Body struct {
	kind    Kind
	raw     []byte
	changed bool
	out     []byte // encoding of a changed body, nil until needed

	members []member // JSON
	inline  [8]member

	form       []formField // Form
	formInline [4]formField

	// arena holds the bytes of members added by Set and SetRaw; it is only
	// appended to within its capacity, so earlier members stay valid.
	arena    []byte
	arenaBuf [256]byte

	reader bodyReader // r.Body set by Read and Apply
}

// Read reads r.Body, at most limit bytes (DefaultLimit when limit <= 0),
// and parses it according to its Content-Type:
//
//   - application/json, application/*+json (any parameters): the body must
//     be a JSON object, otherwise mperr.BadRequest;
//   - application/x-www-form-urlencoded: it must parse (url.ParseQuery
//     rules), otherwise mperr.BadRequest;
//   - no Content-Type: a body starting with '{' (after whitespace) is read
//     as JSON (and must be an object); else as a form if it parses as one,
//     else Other;
//   - anything else: Other.
//
// An empty body is None whatever the type. A Content-Length over limit is
// rejected before reading, a longer body while reading: mperr.BodyTooLarge.
// On success r.Body is replaced with a reader of the same bytes, so the
// request can still be forwarded unchanged without Apply.
func Read(r *http.Request, limit int64) (*Body, error) {
	if limit <= 0 {
		limit = DefaultLimit
	}
	limit = min(limit, maxLimit)
	b := &Body{}
	if r.Body == nil || r.Body == http.NoBody {
		b.kind = None
		return b, nil
	}
	if r.ContentLength > limit {
		return nil, tooLarge(limit)
	}
	raw, err := readBody(r.Body, r.ContentLength, limit)
	_ = r.Body.Close()
	if err != nil {
		return nil, err
	}
	b.raw = raw
	// Leave the request readable as it came, should Apply not be called.
	b.reader.Reset(raw)
	r.Body = &b.reader
	if len(raw) == 0 {
		b.kind = None
		return b, nil
	}
	switch mediaType(r.Header.Get("Content-Type")) {
	case typeJSON:
		if !b.parseJSON() {
			return nil, mperr.New(mperr.BadRequest, msgNotJSONObject)
		}
	case typeForm:
		if !b.parseForm() {
			return nil, mperr.New(mperr.BadRequest, msgBadForm)
		}
	case typeNone:
		switch {
		case startsWithBrace(raw):
			if !b.parseJSON() {
				return nil, mperr.New(mperr.BadRequest, msgNotJSONObject)
			}
		case b.parseForm():
		default:
			b.form = nil
			b.kind = Other
		}
	default:
		b.kind = Other
	}
	return b, nil
}

func tooLarge(limit int64) error {
	return mperr.Newf(mperr.BodyTooLarge, "the request body is larger than %d bytes", limit)
}

// readBody reads all of body, failing once it exceeds limit.
func readBody(body io.Reader, length, limit int64) ([]byte, error) {
	var buf []byte
	if length >= 0 {
		buf = make([]byte, 0, length+1) // +1: room to see EOF without growing
	} else {
		buf = make([]byte, 0, min(512, limit+1))
	}
	for {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, min(cap(buf), int(limit+1)-len(buf)))
		}
		end := min(cap(buf), int(limit+1))
		n, err := body.Read(buf[len(buf):end])
		buf = buf[:len(buf)+n]
		if int64(len(buf)) > limit {
			return nil, tooLarge(limit)
		}
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return nil, tooLarge(mbe.Limit)
			}
			return nil, mperr.Wrap(mperr.BadRequest, msgReadFailed, err)
		}
	}
}

type mtype int

const (
	typeNone mtype = iota
	typeJSON
	typeForm
	typeOther
)

// mediaType classifies a Content-Type header without allocating.
func mediaType(ct string) mtype {
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	ct = strings.TrimSpace(ct)
	const app, suffix = "application/", "+json"
	switch {
	case ct == "":
		return typeNone
	case strings.EqualFold(ct, "application/json"):
		return typeJSON
	case strings.EqualFold(ct, "application/x-www-form-urlencoded"):
		return typeForm
	case len(ct) > len(app)+len(suffix) && strings.EqualFold(ct[:len(app)], app) &&
		strings.EqualFold(ct[len(ct)-len(suffix):], suffix):
		return typeJSON
	}
	return typeOther
}

func startsWithBrace(b []byte) bool {
	for _, c := range b {
		switch c {
		case ' ', '\t', '\n', '\r':
			continue
		}
		return c == '{'
	}
	return false
}

func (b *Body) parseJSON() bool {
	if !jsonobj.Valid(b.raw) {
		return false
	}
	it, ok := jsonobj.Object(b.raw)
	if !ok {
		return false
	}
	b.members = b.inline[:0]
	for k, v, ok := it.Next(); ok; k, v, ok = it.Next() {
		b.members = append(b.members, member{key: k, value: v})
	}
	b.kind = JSON
	return true
}

// parseForm parses b.raw with url.ParseQuery's rules (pairs split on '&',
// a ';' is an error, empty pairs skipped, '+' and %XX unescaped), grouping
// values by name in the order of first appearance.
func (b *Body) parseForm() bool {
	s := string(b.raw)
	var index map[string]int // built once there are many names
	for s != "" {
		var pair string
		pair, s, _ = strings.Cut(s, "&")
		if strings.IndexByte(pair, ';') >= 0 {
			return false
		}
		if pair == "" {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		k, err := url.QueryUnescape(k)
		if err != nil {
			return false
		}
		v, err = url.QueryUnescape(v)
		if err != nil {
			return false
		}
		i := -1
		if index != nil {
			if j, ok := index[k]; ok {
				i = j
			}
		} else {
			for j := range b.form {
				if b.form[j].name == k {
					i = j
					break
				}
			}
		}
		if i >= 0 {
			b.form[i].more = append(b.form[i].more, v)
			continue
		}
		if b.form == nil {
			b.form = b.formInline[:0]
		}
		b.form = append(b.form, formField{name: k, first: v})
		if index == nil && len(b.form) > 16 {
			index = make(map[string]int, 2*len(b.form))
			for j, f := range b.form {
				index[f.name] = j
			}
		} else if index != nil {
			index[k] = len(b.form) - 1
		}
	}
	b.kind = Form
	return true
}

// Kind tells what the body holds.
func (b *Body) Kind() Kind { return b.kind }

// String returns a top-level field. For JSON, the last key equal to name
// ignoring case wins (as with encoding/json); a string is returned decoded,
// a number as its text, any other value gives "", false. For a form, the
// first value of the field named exactly name.
func (b *Body) String(name string) (string, bool) {
	switch b.kind {
	case JSON:
		for i := len(b.members) - 1; i >= 0; i-- {
			m := b.members[i]
			if !jsonobj.EqualFold(m.key, name) {
				continue
			}
			switch c := m.value[0]; {
			case c == '"':
				return jsonobj.Unquote(m.value), true
			case c == '-' || '0' <= c && c <= '9':
				return string(m.value), true
			}
			return "", false
		}
	case Form:
		for _, f := range b.form {
			if f.name == name {
				return f.first, true
			}
		}
	}
	return "", false
}

// Has reports whether a top-level field name is present (for JSON, ignoring
// case; for a form, exactly), whatever its value.
func (b *Body) Has(name string) bool {
	switch b.kind {
	case JSON:
		for _, m := range b.members {
			if jsonobj.EqualFold(m.key, name) {
				return true
			}
		}
	case Form:
		for _, f := range b.form {
			if f.name == name {
				return true
			}
		}
	}
	return false
}

// Set sets a string field: every top-level key equal to name ignoring case
// is removed, then name is appended with value. No-op for None and Other.
func (b *Body) Set(name, value string) {
	switch b.kind {
	case JSON:
		b.del(name)
		buf := b.space(len(name) + len(value) + 8)
		buf = jsonobj.AppendString(buf, name)
		n := len(buf)
		buf = jsonobj.AppendString(buf, value)
		b.add(buf, n)
	case Form:
		b.del(name)
		if b.form == nil {
			b.form = b.formInline[:0]
		}
		b.form = append(b.form, formField{name: name, first: value})
		b.changed, b.out = true, nil
	}
}

// space returns an empty slice of the arena with room for about n bytes.
func (b *Body) space(n int) []byte {
	if b.arena == nil {
		b.arena = b.arenaBuf[:0]
	}
	if cap(b.arena)-len(b.arena) < n {
		b.arena = make([]byte, 0, max(n, 2*cap(b.arena)))
	}
	return b.arena[len(b.arena):]
}

// add appends the member encoded in buf (key buf[:n], value buf[n:]), buf
// having been built by appending to b.space.
func (b *Body) add(buf []byte, n int) {
	// Unless an append outgrew the arena and moved buf elsewhere, claim it.
	if start := len(b.arena); cap(b.arena) > start && &b.arena[:start+1][start] == &buf[0] {
		b.arena = b.arena[:start+len(buf)]
	}
	b.members = append(b.members, member{key: buf[:n:n], value: buf[n:len(buf):len(buf)]})
	b.changed, b.out = true, nil
}

// SetRaw is Set with a JSON value, kept as given (surrounding whitespace
// trimmed). A raw value that is not valid JSON is set as a JSON string of
// its text instead, so that the body stays valid. For a form, the raw text
// becomes the value.
func (b *Body) SetRaw(name string, raw json.RawMessage) {
	switch b.kind {
	case JSON:
		raw = bytes.TrimSpace(raw)
		if !jsonobj.Valid(raw) {
			b.Set(name, string(raw))
			return
		}
		b.del(name)
		buf := b.space(len(name) + len(raw) + 4)
		buf = jsonobj.AppendString(buf, name)
		n := len(buf)
		buf = append(buf, raw...)
		b.add(buf, n)
	case Form:
		b.Set(name, string(raw))
	}
}

// Del removes every top-level field whose name equals one of names ignoring
// case. No-op for None and Other.
func (b *Body) Del(names ...string) {
	for _, name := range names {
		b.del(name)
	}
}

func (b *Body) del(name string) {
	switch b.kind {
	case JSON:
		n := len(b.members)
		b.members = slices.DeleteFunc(b.members, func(m member) bool { return jsonobj.EqualFold(m.key, name) })
		if len(b.members) != n {
			b.changed, b.out = true, nil
		}
	case Form:
		n := len(b.form)
		b.form = slices.DeleteFunc(b.form, func(f formField) bool { return jsonobj.EqualFoldString(f.name, name) })
		if len(b.form) != n {
			b.changed, b.out = true, nil
		}
	}
}

// Bytes returns the body as Apply would write it: the original bytes when
// nothing changed, else the re-encoded body. The caller must not modify it.
func (b *Body) Bytes() []byte {
	if !b.changed {
		return b.raw
	}
	if b.out == nil {
		switch b.kind {
		case JSON:
			b.out = b.encodeJSON()
		case Form:
			b.out = b.encodeForm()
		}
	}
	return b.out
}

func (b *Body) encodeJSON() []byte {
	n := 2
	for _, m := range b.members {
		n += len(m.key) + len(m.value) + 2
	}
	out := make([]byte, 0, n)
	out = append(out, '{')
	for i, m := range b.members {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, m.key...)
		out = append(out, ':')
		out = append(out, m.value...)
	}
	return append(out, '}')
}

func (b *Body) encodeForm() []byte {
	n := 0
	for _, f := range b.form {
		n += len(f.name) + len(f.first) + 2
		for _, v := range f.more {
			n += len(f.name) + len(v) + 2
		}
	}
	out := make([]byte, 0, n+n/4)
	for _, f := range b.form {
		out = appendPair(out, f.name, f.first)
		for _, v := range f.more {
			out = appendPair(out, f.name, v)
		}
	}
	return out
}

func appendPair(out []byte, name, value string) []byte {
	if len(out) > 0 {
		out = append(out, '&')
	}
	out = appendQueryEscape(out, name)
	out = append(out, '=')
	return appendQueryEscape(out, value)
}

// appendQueryEscape appends url.QueryEscape(s) without allocating.
func appendQueryEscape(dst []byte, s string) []byte {
	const upperhex = "0123456789ABCDEF"
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_', c == '.', c == '~':
			dst = append(dst, c)
		case c == ' ':
			dst = append(dst, '+')
		default:
			dst = append(dst, '%', upperhex[c>>4], upperhex[c&15])
		}
	}
	return dst
}

// Apply writes the body into r: r.Body, r.GetBody, r.ContentLength and the
// Content-Length header (removed for an empty body), and clears
// r.TransferEncoding and the Transfer-Encoding header. An unchanged body is
// written back byte for byte.
func (b *Body) Apply(r *http.Request) {
	data := b.Bytes()
	if len(data) == 0 {
		r.Body = http.NoBody
	} else {
		b.reader.Reset(data)
		r.Body = &b.reader
	}
	r.GetBody = getBody(data)
	r.ContentLength = int64(len(data))
	r.TransferEncoding = nil
	if r.Header == nil {
		r.Header = make(http.Header)
	}
	r.Header.Del("Transfer-Encoding")
	if len(data) == 0 {
		r.Header.Del("Content-Length")
		return
	}
	n := strconv.Itoa(len(data))
	if vs := r.Header["Content-Length"]; len(vs) == 1 {
		vs[0] = n // reuse the header's own slice
	} else {
		r.Header.Set("Content-Length", n)
	}
}

func getBody(data []byte) func() (io.ReadCloser, error) {
	if len(data) == 0 {
		return noBody
	}
	return func() (io.ReadCloser, error) { return newReader(data), nil }
}

func noBody() (io.ReadCloser, error) { return http.NoBody, nil }

type bodyReader struct{ bytes.Reader }

func (*bodyReader) Close() error { return nil }

func newReader(data []byte) io.ReadCloser {
	br := new(bodyReader)
	br.Reset(data)
	return br
}
