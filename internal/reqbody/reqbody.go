// Package reqbody reads a request body once, lets the handler read and
// rewrite its top-level fields, and writes it back into the request; it
// also reads and strips fields of a raw query string.
//
// # Rewriting
//
// JSON bodies are handled as a list of top-level members kept as the exact
// bytes of the input: a rewrite re-emits untouched keys and values byte for
// byte (only the whitespace between members is lost) and never re-marshals
// the object; what is emitted is exactly one object with nothing after it.
// Form bodies (application/x-www-form-urlencoded) are re-encoded with
// url.Values semantics, names in the order of their first appearance. An
// unchanged body is given back byte for byte.
//
// # Framing
//
// Read refuses (415, mperr.UnsupportedMediaType) what a backend could read
// otherwise than this package does: two Content-Type values (Werkzeug reads
// the last, Go the first) or one with a ',' outside quotes; a non-empty
// body with a Content-Encoding other than identity; a non-empty body that
// is neither JSON nor a form (PHP and Gin's ShouldBindJSON read a
// text/plain or */* body as well); a form body that starts like JSON, which
// a JSON decoder reading only the first value would take for JSON, ignoring
// the fields appended after it; a JSON or form type naming a charset other
// than UTF-8 (a UTF-16 or UTF-7 reader sees other names). The JSON types
// are application/json, application/*+json and the legacy
// application/x-json, text/json and text/x-json: they are read and
// rewritten as JSON (a backend that reads them reads JSON). The type is
// classified strictly: it must be one token/token pair after cutting at
// ';' and trimming spaces and tabs, so "application/json text/plain" (PHP
// reads application/json) is refused rather than guessed. multipart/form-data
// is refused too, until the multipart package handles it.
//
// # Names
//
// Set, Del and Count, and StripQuery and QueryValue's count, compare field
// names the way the most lenient binders do, so that no client-sent
// spelling of a protected name survives next to an injected field. A name
// sent is first decoded: JSON escapes ("open\u0069d"), or for query
// strings '+' as space, %XX, %uXXXX, and '%' otherwise kept (PHP); bytes
// that are not UTF-8 count as Latin-1, and again as U+FFFD. It is then cut at its first NUL
// (C strings: "openid\x00x" is openid to PHP). Its readings are:
//
//   - the whole name with '[' and ']' dropped ("open[id" is PHP's open_id);
//   - each piece between '[' and ']' ("openid[]", "openid[x]" are PHP and qs
//     arrays named openid; "[openid]" is openid to qs);
//   - each piece between '[', ']' and '.' ("x.openid" binds to openid in
//     ASP.NET Core's and Spring's prefix fallbacks).
//
// The sent name matches name when the skeleton of one reading equals the
// skeleton of name. A skeleton drops the ignorable runes '_', '-', '.' and
// '!' (fastjson's smart match, PHP's ' ' and '.' to '_', Spring's "_" and
// "!" field markers), every rune up to U+0020 and U+007F (Java's trim),
// Unicode white space (Python's and Go's strip: U+0085, U+00A0, U+1680,
// U+2000-U+200A, U+2028, U+2029, U+202F, U+205F, U+3000), U+00AD, U+180E,
// U+200B-U+200D, U+2060 and U+FEFF; and folds case by simple Unicode case
// classes (jsonobj.FoldRune, made transitive: 'K' (Kelvin), 'ſ', 'ı' and
// 'İ' are k, s, i, i). So " openid", "openid ", "open_id", "Open-Id",
// "OPENID", "open.id", "openid\x00", "openid[]", "openid[x]", "[openid]",
// "!openid", "x.openid", "open\u0069d" (JSON), "+openid" and "openid%00"
// (query and form) all match openid. Over-matching only removes a
// client-sent field. A name whose skeleton is empty ("", "_") matches by
// case folding only.
//
// Reading is exact: String and Has find a JSON key ignoring case (as
// encoding/json does) and a form name exactly; Count tells how many fields
// could stand for a name, so that a field sent twice can be refused.
//
// # Query strings
//
// StripQuery removes protected pairs from a raw query string, keeping the
// rest byte for byte. Pairs are split on '&' and, for removal, on ';' too
// (old Python cgi and parse_qs, some servlet containers): a pair
// "a=1;openid=x" is removed whole. QueryValue reads a field and counts the
// pairs that could stand for it.
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
	"unicode/utf8"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/jsonobj"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/mperr"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/reqbody/multipart"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/ascii"
)

// DefaultLimit is the body size limit used when Read is given limit <= 0.
const DefaultLimit = 64 << 10

// maxLimit caps any limit (bodies are held in memory).
const maxLimit = 1 << 30

// Kind is what a body holds.
type Kind int

const (
	None Kind = iota // empty body
	JSON             // a JSON object
	Form             // application/x-www-form-urlencoded
	// Multipart is multipart/form-data, read and re-written whole by
	// internal/reqbody/multipart (file parts spooled, never in memory
	// beyond a small threshold); a Body of this kind must be Closed once
	// the request has been forwarded.
	Multipart
)

func (k Kind) String() string {
	switch k {
	case None:
		return "none"
	case JSON:
		return "json"
	case Form:
		return "form"
	case Multipart:
		return "multipart"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Fixed error messages (they never quote the body).
const (
	msgNotJSONObject = "the request body is not a JSON object"
	msgBadForm       = "the request body is not a valid form"
	msgReadFailed    = "the request body could not be read"
	msgTwoTypes      = "the request has more than one Content-Type"
	msgEncoded       = "the request body has a Content-Encoding; send it unencoded"
	msgMediaType     = "unsupported content type; send application/json or application/x-www-form-urlencoded"
	msgMultipartJSON = "a multipart field typed as JSON is not accepted here; send it as a plain field"
	msgFormLikeJSON  = "the form body starts like JSON; send JSON as application/json"
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

	mp *multipart.Form // Multipart
}

// Limits bound what ReadLimits reads.
type Limits struct {
	// Body bounds a JSON or form body, and a multipart body's fields
	// (DefaultLimit when <= 0).
	Body int64
	// Upload bounds the file parts of a multipart body, all together
	// (multipart.DefaultMaxFile when <= 0).
	Upload int64
}

// Read reads r.Body, at most limit bytes (DefaultLimit when limit <= 0),
// and parses it according to its Content-Type (see the package
// documentation for what is refused and why):
//
//   - more than one Content-Type, or one naming two types (a ',' outside
//     quotes): mperr.UnsupportedMediaType, whatever the body;
//   - an empty body is None whatever its type;
//   - a non-empty body with a Content-Encoding other than identity:
//     mperr.UnsupportedMediaType;
//   - JSON types (application/json, application/*+json, application/x-json,
//     text/json, text/x-json): the body must be one JSON object, otherwise
//     mperr.BadRequest;
//   - application/x-www-form-urlencoded: a body starting like JSON ('{' or
//     '[' after white space) is mperr.UnsupportedMediaType; otherwise it
//     must parse (url.ParseQuery rules), else mperr.BadRequest;
//   - no Content-Type: a body starting with '{' is read as JSON (and must
//     be an object), one starting with '[' is refused, anything else must
//     parse as a form; otherwise mperr.UnsupportedMediaType;
//   - multipart/form-data, and anything else (including a JSON or form type
//     with a charset other than UTF-8 or US-ASCII, or a malformed type):
//     mperr.UnsupportedMediaType.
//
// A Content-Length over limit is rejected before reading, a longer body
// while reading: mperr.BodyTooLarge. On success r.Body is replaced with a
// reader of the same bytes, so the request can still be forwarded
// unchanged without Apply.
func Read(r *http.Request, limit int64) (*Body, error) {
	return ReadLimits(r, Limits{Body: limit})
}

// ReadLimits is Read with a bound for multipart uploads too: a
// multipart/form-data body is read whole by internal/reqbody/multipart
// (fields bounded by lim.Body, files by lim.Upload and spooled to a
// temporary file past a small threshold) and is always re-written by
// Apply, with a fresh boundary and canonical part headers.
func ReadLimits(r *http.Request, lim Limits) (*Body, error) {
	limit := lim.Body
	if limit <= 0 {
		limit = DefaultLimit
	}
	limit = min(limit, maxLimit)
	mt, err := contentType(r.Header)
	if err != nil {
		return nil, err
	}
	b := &Body{}
	if r.Body == nil || r.Body == http.NoBody {
		b.kind = None
		return b, nil
	}
	if r.ContentLength > limit {
		return nil, tooLarge(limit)
	}
	if mt == typeMultipart && r.ContentLength != 0 {
		return readMultipart(r, limit, lim.Upload)
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
	if encoded(r.Header) {
		return nil, mperr.New(mperr.UnsupportedMediaType, msgEncoded)
	}
	switch mt {
	case typeJSON:
		if !b.parseJSON() {
			return nil, mperr.New(mperr.BadRequest, msgNotJSONObject)
		}
	case typeForm:
		if startsLikeJSON(raw) {
			return nil, mperr.New(mperr.UnsupportedMediaType, msgFormLikeJSON)
		}
		if !b.parseForm() {
			return nil, mperr.New(mperr.BadRequest, msgBadForm)
		}
	case typeNone:
		switch {
		case startsWithBrace(raw):
			if !b.parseJSON() {
				return nil, mperr.New(mperr.BadRequest, msgNotJSONObject)
			}
		case startsLikeJSON(raw):
			return nil, mperr.New(mperr.UnsupportedMediaType, msgMediaType)
		case b.parseForm():
		default:
			return nil, mperr.New(mperr.UnsupportedMediaType, msgMediaType)
		}
	default:
		return nil, mperr.New(mperr.UnsupportedMediaType, msgMediaType)
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
	typeMultipart
	typeOther
)

// contentType classifies the Content-Type of h, refusing more than one.
func contentType(h http.Header) (mtype, error) {
	vs := h["Content-Type"]
	switch len(vs) {
	case 0:
		return typeNone, nil
	case 1:
	default:
		return 0, mperr.New(mperr.UnsupportedMediaType, msgTwoTypes)
	}
	if unquotedComma(vs[0]) {
		return 0, mperr.New(mperr.UnsupportedMediaType, msgTwoTypes)
	}
	return mediaType(vs[0]), nil
}

// unquotedComma reports whether ct has a ',' outside a quoted string: a
// list of two types to some reader.
func unquotedComma(ct string) bool {
	quoted := false
	for i := 0; i < len(ct); i++ {
		switch ct[i] {
		case '"':
			quoted = !quoted
		case '\\':
			if quoted {
				i++
			}
		case ',':
			if !quoted {
				return true
			}
		}
	}
	return false
}

// mediaType classifies a Content-Type header value without allocating. The
// type must be one token/token pair (PHP cuts a type at ';', ',' or a
// space: anything it could read differently is typeOther), and a JSON or
// form type may only name the charsets utf-8 and us-ascii.
func mediaType(ct string) mtype {
	typ, params, hasParams := strings.Cut(ct, ";")
	typ = ascii.TrimOWS(typ)
	if typ == "" {
		if hasParams {
			return typeOther
		}
		return typeNone
	}
	slash := strings.IndexByte(typ, '/')
	if slash <= 0 || !isToken(typ[:slash]) || !isToken(typ[slash+1:]) {
		return typeOther
	}
	var t mtype
	const app, suffix = "application/", "+json"
	switch {
	case strings.EqualFold(typ, "application/json"), strings.EqualFold(typ, "application/x-json"),
		strings.EqualFold(typ, "text/json"), strings.EqualFold(typ, "text/x-json"):
		t = typeJSON
	case strings.EqualFold(typ, "application/x-www-form-urlencoded"):
		t = typeForm
	case strings.EqualFold(typ, "multipart/form-data"):
		return typeMultipart // its parameters are its own business
	case len(typ) > len(app)+len(suffix) && strings.EqualFold(typ[:len(app)], app) &&
		strings.EqualFold(typ[len(typ)-len(suffix):], suffix):
		t = typeJSON
	default:
		return typeOther
	}
	for params != "" {
		var p string
		p, params, _ = strings.Cut(params, ";")
		if p = ascii.TrimOWS(p); p == "" {
			continue
		}
		name, value, ok := strings.Cut(p, "=")
		if !ok || !isToken(name) {
			return typeOther
		}
		if n := len(value); n >= 2 && value[0] == '"' && value[n-1] == '"' {
			value = value[1 : n-1] // a quoted token; other quoted strings fail below
		}
		if !isToken(value) {
			return typeOther
		}
		if strings.EqualFold(name, "charset") && !strings.EqualFold(value, "utf-8") &&
			!strings.EqualFold(value, "utf8") && !strings.EqualFold(value, "us-ascii") {
			return typeOther
		}
	}
	return t
}

// isToken reports whether s is an RFC 9110 token.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if alnum(c) {
			continue
		}
		switch c {
		case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
			continue
		}
		return false
	}
	return true
}

// encoded reports whether h has a Content-Encoding other than identity.
func encoded(h http.Header) bool {
	for _, v := range h["Content-Encoding"] {
		for v != "" {
			var c string
			c, v, _ = strings.Cut(v, ",")
			if c = ascii.TrimOWS(c); c != "" && !strings.EqualFold(c, "identity") {
				return true
			}
		}
	}
	return false
}

// startsWithBrace reports whether b starts with '{' after JSON white space.
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

// startsLikeJSON reports whether b starts with '{' or '[' after any control
// characters, spaces and byte order marks: a JSON decoder that reads the
// first value and ignores the rest (Go's json.Decoder, behind Gin's
// ShouldBindJSON) would read it as JSON, whatever its type.
func startsLikeJSON(b []byte) bool {
	for len(b) > 0 {
		switch c := b[0]; {
		case c <= ' ':
			b = b[1:]
		case c == 0xEF && len(b) >= 3 && b[1] == 0xBB && b[2] == 0xBF:
			b = b[3:]
		default:
			return c == '{' || c == '['
		}
	}
	return false
}

func (b *Body) parseJSON() bool {
	// JSON is UTF-8 (RFC 8259); invalid bytes would be dropped or replaced
	// by some readers (PHP's JSON_INVALID_UTF8_IGNORE turns "open\xffid"
	// into "openid").
	if !utf8.Valid(b.raw) || !jsonobj.Valid(b.raw) {
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
	case Multipart:
		return b.mp.Value(name)
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
	case Multipart:
		return slices.Contains(b.mp.Names(), name)
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

// Set sets a string field: every top-level field Del(name) removes is
// removed, then name is appended with value. No-op for None.
func (b *Body) Set(name, value string) {
	switch b.kind {
	case Multipart:
		b.del(name)
		if err := b.mp.Set(name, value); err != nil {
			panic("reqbody: a handler's own field name is not a valid multipart name: " + name)
		}
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

// Del removes every top-level field that a lenient binder could take for
// one of names (SameName: JSON keys after decoding escapes, form names
// after decoding). No-op for None.
func (b *Body) Del(names ...string) {
	for _, name := range names {
		b.del(name)
	}
}

// Count returns how many top-level fields a lenient binder could take for
// name (SameName), whatever their values: for a form, every value counts.
// A caller reading a field with String can refuse the request when Count
// is over 1 (a field sent twice, or under two spellings).
func (b *Body) Count(name string) int {
	n := 0
	switch b.kind {
	case Multipart:
		skel := hasSkeleton(name)
		for _, sent := range b.mp.Names() {
			if formNameMatches(sent, name, skel) {
				n++
			}
		}
	case JSON:
		skel := hasSkeleton(name)
		for _, m := range b.members {
			if keyMatches(m.key, name, skel) {
				n++
			}
		}
	case Form:
		skel := hasSkeleton(name)
		for _, f := range b.form {
			if formNameMatches(f.name, name, skel) {
				n += 1 + len(f.more)
			}
		}
	}
	return n
}

func (b *Body) del(name string) {
	switch b.kind {
	case Multipart:
		skel := hasSkeleton(name)
		b.mp.Del(func(sent string) bool { return formNameMatches(sent, name, skel) })
	case JSON:
		skel := hasSkeleton(name)
		n := len(b.members)
		b.members = slices.DeleteFunc(b.members, func(m member) bool { return keyMatches(m.key, name, skel) })
		if len(b.members) != n {
			b.changed, b.out = true, nil
		}
	case Form:
		skel := hasSkeleton(name)
		n := len(b.form)
		b.form = slices.DeleteFunc(b.form, func(f formField) bool { return formNameMatches(f.name, name, skel) })
		if len(b.form) != n {
			b.changed, b.out = true, nil
		}
	}
}

// hasSkeleton reports whether name has a non-empty skeleton. Names without
// one ("", "_") match by case folding only.
func hasSkeleton(name string) bool {
	nm := plainName(name)
	_, _, ok := nextSkel(nm, 0, nulEnd(nm), true)
	return ok
}

// keyMatches reports whether Set, Del and Count take the JSON key token
// tok for name.
func keyMatches(tok []byte, name string, skel bool) bool {
	if !skel {
		return jsonobj.EqualFold(tok, name)
	}
	key := keyOf(tok)
	if simple, eq := asciiSame(key, name); simple {
		return eq
	}
	return sameName(key, name)
}

// formNameMatches is keyMatches for a decoded form name.
func formNameMatches(sent, name string, skel bool) bool {
	if !skel {
		return jsonobj.EqualFoldString(sent, name)
	}
	return SameName(sent, name)
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
	if b.kind == Multipart {
		b.applyMultipart(r)
		return
	}
	if len(r.Header["Content-Type"]) == 0 {
		// Read took a body without a Content-Type for what it held; say
		// so (php_fastcgi would tell PHP that a JSON body is a form).
		switch b.kind {
		case JSON:
			r.Header["Content-Type"] = []string{"application/json"}
		case Form:
			r.Header["Content-Type"] = []string{"application/x-www-form-urlencoded"}
		}
	}
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
