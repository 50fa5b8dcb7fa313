package reqbody

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/jsonobj"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/mperr"
)

const (
	ctJSON = "application/json"
	ctForm = "application/x-www-form-urlencoded"
)

func newReq(ct, body string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/api/phone", strings.NewReader(body))
	if ct != "" {
		r.Header.Set("Content-Type", ct)
	}
	return r
}

func mustRead(t testing.TB, r *http.Request) *Body {
	t.Helper()
	b, err := Read(r, 0)
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	return b
}

func wantCode(t testing.TB, err error, code mperr.Code) {
	t.Helper()
	e, ok := mperr.As(err)
	if !ok || e.Code != code {
		t.Fatalf("err = %v, want %s", err, code)
	}
}

// applied applies b to r and returns what the request now carries, checking
// that Body, GetBody, ContentLength and the headers agree.
func applied(t testing.TB, b *Body, r *http.Request) string {
	t.Helper()
	r.TransferEncoding = []string{"chunked"}
	r.Header.Set("Transfer-Encoding", "chunked")
	b.Apply(r)
	return carried(t, r)
}

// carried checks the framing Apply sets and returns the body.
func carried(t testing.TB, r *http.Request) string {
	t.Helper()
	if r.GetBody == nil {
		t.Fatal("GetBody not set")
	}
	got := readBack(t, r)
	if r.ContentLength != int64(len(got)) {
		t.Fatalf("ContentLength %d, body %d bytes", r.ContentLength, len(got))
	}
	if len(got) > 0 && r.Header.Get("Content-Length") != strconv.Itoa(len(got)) {
		t.Fatalf("Content-Length header %q, body %d bytes", r.Header.Get("Content-Length"), len(got))
	}
	if len(got) == 0 && r.Header.Get("Content-Length") != "" {
		t.Fatalf("Content-Length header %q on an empty body", r.Header.Get("Content-Length"))
	}
	if r.TransferEncoding != nil || r.Header.Get("Transfer-Encoding") != "" {
		t.Fatalf("transfer encoding left: %v %q", r.TransferEncoding, r.Header.Get("Transfer-Encoding"))
	}
	return got
}

// readBack reads r.Body and checks that GetBody, when set, gives the same
// bytes, twice.
func readBack(t testing.TB, r *http.Request) string {
	t.Helper()
	got, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2 && r.GetBody != nil; i++ {
		rc, err := r.GetBody()
		if err != nil {
			t.Fatal(err)
		}
		again, _ := io.ReadAll(rc)
		if !bytes.Equal(again, got) {
			t.Fatalf("GetBody gives %q, Body gave %q", again, got)
		}
	}
	return string(got)
}

type op func(*Body)

func set(name, value string) op  { return func(b *Body) { b.Set(name, value) } }
func setRaw(name, raw string) op { return func(b *Body) { b.SetRaw(name, json.RawMessage(raw)) } }
func del(names ...string) op     { return func(b *Body) { b.Del(names...) } }
func rewrite(ct, body string, ops ...op) (*Body, *http.Request, error) {
	r := newReq(ct, body)
	b, err := Read(r, 0)
	if err != nil {
		return nil, r, err
	}
	for _, o := range ops {
		o(b)
	}
	return b, r, nil
}

func TestRewriteJSON(t *testing.T) {
	tests := []struct {
		name string
		in   string
		ops  []op
		want string
	}{
		{"unchanged keeps every byte", " {\n \"a\" : 1 ,\"b\":[ 1, 2 ]}\n", nil, " {\n \"a\" : 1 ,\"b\":[ 1, 2 ]}\n"},
		{"del of absent field keeps every byte", "{ \"a\" : 1 }", []op{del("b", "c")}, "{ \"a\" : 1 }"},
		{"set appends", `{"code":"abc"}`, []op{set("openid", "o1")}, `{"code":"abc","openid":"o1"}`},
		{"nested values verbatim",
			`{"code":"abc", "nested": {"a" : [1, 2,{"b":"c"}], "s":"\u00e9\n"}, "n": 1.50e3 , "t":true,"z":null}`,
			[]op{set("openid", "o1")},
			`{"code":"abc","nested":{"a" : [1, 2,{"b":"c"}], "s":"\u00e9\n"},"n":1.50e3,"t":true,"z":null,"openid":"o1"}`},
		{"duplicates and case variants removed",
			`{"openid":"x","OpenID":"y","a":1,"OPENID":{"z":1},"openid":"w"}`,
			[]op{set("openid", "o1")}, `{"a":1,"openid":"o1"}`},
		{"escaped key removed", `{"open\u0069d":"x","a":1,"\u006FpenID":2}`, []op{set("openid", "o1")}, `{"a":1,"openid":"o1"}`},
		{"unicode look-alikes removed", `{"unıonid":"x","a":1,"\u017fession":1}`, []op{set("unionid", "u"), set("session", "s")}, `{"a":1,"unionid":"u","session":"s"}`},
		{"near-spellings removed, near misses kept", `{"openid ":1,"openids":2,"open_id":3," Open-Id":4,"open\u0069d\u0000":5,"openid[]":6,"x":{"open_id":7},"open":8}`,
			[]op{set("openid", "o")}, `{"openids":2,"x":{"open_id":7},"open":8,"openid":"o"}`},
		{"phone route", `{"code":"c1","encryptedData":"AAAA","iv":"BBBB","phoneNumber":"spoof","x":[{"phoneNumber":"nested kept"}]}`,
			[]op{del("encryptedData", "iv"), set("phoneNumber", "13800138000"), set("purePhoneNumber", "13800138000"), set("countryCode", "86")},
			`{"code":"c1","x":[{"phoneNumber":"nested kept"}],"phoneNumber":"13800138000","purePhoneNumber":"13800138000","countryCode":"86"}`},
		{"set twice", `{}`, []op{set("a", "1"), set("A", "2")}, `{"A":"2"}`},
		{"empty object", ` { } `, []op{set("a", "1")}, `{"a":"1"}`},
		{"del all", `{"a":1,"A":2}`, []op{del("a")}, `{}`},
		{"value escaping", `{}`, []op{set("k", "q\"b\\n\n\x01</>")}, `{"k":"q\"b\\n\n\u0001</>"}`},
		{"unicode kept", `{"名字":"张三","city":"广州"}`, []op{set("countryCode", "中国")}, `{"名字":"张三","city":"广州","countryCode":"中国"}`},
		{"set raw object", `{"decryptedData":"spoof","a":1}`, []op{setRaw("decryptedData", ` {"openId":"o","watermark":{"appid":"wx"}} `)},
			`{"a":1,"decryptedData":{"openId":"o","watermark":{"appid":"wx"}}}`},
		{"set raw invalid becomes a string", `{}`, []op{setRaw("d", `{"a":`)}, `{"d":"{\"a\":"}`},
		{"set raw number", `{}`, []op{setRaw("n", `42`)}, `{"n":42}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, r, err := rewrite(ctJSON, tt.in, tt.ops...)
			if err != nil {
				t.Fatal(err)
			}
			if b.Kind() != JSON {
				t.Fatalf("kind %v", b.Kind())
			}
			got := applied(t, b, r)
			if got != tt.want {
				t.Fatalf("\n got %s\nwant %s", got, tt.want)
			}
			if !json.Valid([]byte(got)) {
				t.Fatalf("invalid JSON %s", got)
			}
			if string(b.Bytes()) != got {
				t.Fatalf("Bytes() = %s", b.Bytes())
			}
		})
	}
}

func TestStringJSON(t *testing.T) {
	b, _, err := rewrite(ctJSON, `{"code":"abc","esc":"a\u0062\"c","n":-1.5e3,"t":true,"z":null,"o":{"x":1},"dup":"first","DUP":"last","名":"值"}`)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, want string
		ok         bool
	}{
		{"code", "abc", true},
		{"CODE", "abc", true},
		{"esc", `ab"c`, true},
		{"n", "-1.5e3", true},
		{"t", "", false},
		{"z", "", false},
		{"o", "", false},
		{"missing", "", false},
		{"dup", "last", true},
		{"名", "值", true},
	}
	for _, tt := range tests {
		if got, ok := b.String(tt.name); got != tt.want || ok != tt.ok {
			t.Errorf("String(%q) = %q, %v; want %q, %v", tt.name, got, ok, tt.want, tt.ok)
		}
	}
	if !b.Has("Z") || b.Has("missing") {
		t.Error("Has")
	}
	b.Set("code", "new")
	if got, _ := b.String("code"); got != "new" {
		t.Errorf("after Set: %q", got)
	}
	b.Del("code")
	if _, ok := b.String("code"); ok {
		t.Error("after Del")
	}
}

func TestRewriteForm(t *testing.T) {
	tests := []struct {
		name string
		in   string
		ops  []op
		want string
	}{
		{"unchanged keeps every byte", "b=%41&&a=1+2&b=x", nil, "b=%41&&a=1+2&b=x"},
		{"del of absent keeps every byte", "b=%41&a=1", []op{del("c")}, "b=%41&a=1"},
		{"phone route", "code=c1&encryptedData=a+b%2Fc%3D%3D&iv=xyz&code=c2&Z=1",
			[]op{del("encryptedData", "iv"), set("phoneNumber", "+86 138"), set("countryCode", "86")},
			"code=c1&code=c2&Z=1&phoneNumber=%2B86+138&countryCode=86"},
		{"case variants removed", "OpenID=x&openid=y&a=1&OPENID=z", []op{set("openid", "o")}, "a=1&openid=o"},
		{"order of first appearance", "b=1&a=2&b=3", []op{set("c", "4")}, "b=1&b=3&a=2&c=4"},
		{"unicode", "name=%E5%BC%A0%E4%B8%89", []op{set("city", "广州")}, "name=%E5%BC%A0%E4%B8%89&city=%E5%B9%BF%E5%B7%9E"},
		{"set raw", "a=1", []op{setRaw("decryptedData", `{"x":1}`)}, "a=1&decryptedData=%7B%22x%22%3A1%7D"},
		{"key without value", "flag&a=1", []op{set("b", "2")}, "flag=&a=1&b=2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, r, err := rewrite(ctForm, tt.in, tt.ops...)
			if err != nil {
				t.Fatal(err)
			}
			if b.Kind() != Form {
				t.Fatalf("kind %v", b.Kind())
			}
			if got := applied(t, b, r); got != tt.want {
				t.Fatalf("\n got %s\nwant %s", got, tt.want)
			}
			if _, err := url.ParseQuery(tt.want); err != nil {
				t.Fatal(err)
			}
		})
	}
	// String: first value, exact name, unescaped.
	b, _, _ := rewrite(ctForm, "code=c1&encryptedData=a+b%2Fc&code=c2&Code=C")
	for name, want := range map[string]string{"code": "c1", "Code": "C", "encryptedData": "a b/c"} {
		if got, ok := b.String(name); !ok || got != want {
			t.Errorf("String(%q) = %q, %v", name, got, ok)
		}
	}
	if _, ok := b.String("CODE"); ok {
		t.Error("form names are exact")
	}
}

func TestManyFormFields(t *testing.T) {
	var sb strings.Builder
	for i := 0; i < 200; i++ {
		sb.WriteString("k" + strconv.Itoa(i%50) + "=" + strconv.Itoa(i) + "&")
	}
	b, r, err := rewrite(ctForm, sb.String(), set("x", "y"))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := url.ParseQuery(applied(t, b, r))
	if len(got) != 51 || len(got["k7"]) != 4 || got["k7"][1] != "57" || got.Get("x") != "y" {
		t.Fatalf("got %v", got)
	}
	if v, _ := b.String("k49"); v != "49" {
		t.Fatalf("k49 = %q", v)
	}
}

func TestContentTypes(t *testing.T) {
	const unsupported = mperr.UnsupportedMediaType
	tests := []struct {
		ct, body string
		kind     Kind
		code     mperr.Code
	}{
		{"application/json; charset=utf-8", `{"a":1}`, JSON, ""},
		{"application/json;charset=UTF-8", `{"a":1}`, JSON, ""},
		{`application/json; charset="utf-8"`, `{"a":1}`, JSON, ""},
		{"application/json; charset=utf8; foo=bar;", `{"a":1}`, JSON, ""},
		{"Application/JSON", `{"a":1}`, JSON, ""},
		{" application/json\t", `{"a":1}`, JSON, ""},
		{"application/vnd.api+json", `{"a":1}`, JSON, ""},
		{"application/merge-patch+json ; charset=utf-8", `{"a":1}`, JSON, ""},
		{"text/json", `{"a":1}`, JSON, ""},
		{"application/x-json", `{"a":1}`, JSON, ""},
		{"TEXT/X-JSON", `{"a":1}`, JSON, ""},
		{ctForm + "; charset=UTF-8", `a=1`, Form, ""},
		{ctForm + " ;x=y", `a=1`, Form, ""},
		{ctForm + "; charset=us-ascii", `a=1`, Form, ""},
		{"", ` {"a":1}`, JSON, ""},
		{"", `a=1&b=2`, Form, ""},
		{"", `x`, Form, ""},
		// Neither JSON nor a form.
		{"", `%zz`, 0, unsupported},
		{"", `a=1;b=2`, 0, unsupported},
		{"", `[{"a":1}]`, 0, unsupported},
		{"", "\v[1]", 0, unsupported},
		{"text/plain", `{"a":1}`, 0, unsupported},
		{"text/plain", `a=1`, 0, unsupported},
		{"*/*", `{"a":1}`, 0, unsupported},
		{"application/octet-stream", "\x00\x01", 0, unsupported},
		{"application/jsonx", `{"a":1}`, 0, unsupported},
		{"application/+json", `{"a":1}`, 0, unsupported},
		{"json", `{"a":1}`, 0, unsupported},
		{"; charset=utf-8", `{"a":1}`, 0, unsupported},
		{"multipart/form-data; boundary=x", "--x\r\n", 0, mperr.BadRequest}, // read, and malformed
		{"multipart/mixed; boundary=x", "--x\r\n", 0, unsupported},
		// Types a lenient reader could classify otherwise.
		{"application/json text/plain", `{"a":1}`, 0, unsupported},
		{ctForm + " text/plain", `a=1`, 0, unsupported},
		{"application/json, text/plain", `{"a":1}`, 0, unsupported},
		{"text/plain, " + ctForm, `a=1`, 0, unsupported},
		{ctJSON + "; x=\"a,b\"", `{"a":1}`, 0, unsupported},
		{ctForm + "; charset", `a=1`, 0, unsupported},
		{ctForm + "; =x", `a=1`, 0, unsupported},
		{ctForm + "; charset=\"utf-8;x\"", `a=1`, 0, unsupported},
		// Charsets other than UTF-8.
		{ctForm + "; charset=utf-16", "a\x00=\x001\x00", 0, unsupported},
		{ctForm + "; charset=utf-7", `+AG8-penid=x`, 0, unsupported},
		{ctForm + "; Charset=GBK", `a=1`, 0, unsupported},
		{ctJSON + "; charset=utf-16le", `{"a":1}`, 0, unsupported},
		{ctJSON + "; charset=utf-8; charset=utf-7", `{"a":1}`, 0, unsupported},
		// A form that a JSON decoder reading one value would take for JSON.
		{ctForm, `{"openid":"x"}`, 0, unsupported},
		{ctForm, ` [1]`, 0, unsupported},
		{ctForm, "\r\n\t\f{", 0, unsupported},
		{ctForm, "\xef\xbb\xbf{}", 0, unsupported},
		// JSON that is not an object, or not JSON.
		{ctJSON, `[{"a":1}]`, 0, mperr.BadRequest},
		{ctJSON, `"s"`, 0, mperr.BadRequest},
		{ctJSON, `null`, 0, mperr.BadRequest},
		{ctJSON, `1`, 0, mperr.BadRequest},
		{ctJSON, `{"a":}`, 0, mperr.BadRequest},
		{ctJSON, `{"a":1`, 0, mperr.BadRequest},
		{ctJSON, `{"a":1} {}`, 0, mperr.BadRequest},
		{ctJSON, `{"a":1}&openid=x`, 0, mperr.BadRequest},
		{ctJSON, `{'a':1}`, 0, mperr.BadRequest},
		{ctJSON, "\xef\xbb\xbf{}", 0, mperr.BadRequest},
		{ctJSON, `a=1`, 0, mperr.BadRequest},
		{ctJSON, ` `, 0, mperr.BadRequest},
		{"text/json", `[]`, 0, mperr.BadRequest},
		{"", `{"a":`, 0, mperr.BadRequest},
		{ctForm, `a=%zz`, 0, mperr.BadRequest},
		{ctForm, `a=1;b=2`, 0, mperr.BadRequest},
		{ctForm, `%=1`, 0, mperr.BadRequest},
	}
	for _, tt := range tests {
		r := newReq(tt.ct, tt.body)
		b, err := Read(r, 0)
		if tt.code != "" {
			if e, ok := mperr.As(err); !ok || e.Code != tt.code {
				t.Errorf("%q %q: err = %v, want %s", tt.ct, tt.body, err, tt.code)
				continue
			}
			if strings.Contains(err.Error(), tt.body) && len(tt.body) > 3 {
				t.Errorf("error quotes the body: %v", err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q %q: %v", tt.ct, tt.body, err)
			continue
		}
		if b.Kind() != tt.kind {
			t.Errorf("%q %q: kind %v, want %v", tt.ct, tt.body, b.Kind(), tt.kind)
		}
	}
}

// TestFraming: header framing a backend could read otherwise is refused;
// an empty body is None whatever its type, except with two types.
func TestFraming(t *testing.T) {
	tests := []struct {
		name   string
		header http.Header
		body   string
		kind   Kind
		code   mperr.Code
	}{
		{"two types", http.Header{"Content-Type": {ctJSON, ctForm}}, `{"a":1}`, 0, mperr.UnsupportedMediaType},
		{"two equal types", http.Header{"Content-Type": {ctJSON, ctJSON}}, `{"a":1}`, 0, mperr.UnsupportedMediaType},
		{"two types, empty body", http.Header{"Content-Type": {ctJSON, ctForm}}, ``, 0, mperr.UnsupportedMediaType},
		{"a list of types, empty body", http.Header{"Content-Type": {ctJSON + "," + ctForm}}, ``, 0, mperr.UnsupportedMediaType},
		{"gzip", http.Header{"Content-Type": {ctForm}, "Content-Encoding": {"gzip"}}, `a=1`, 0, mperr.UnsupportedMediaType},
		{"identity then gzip", http.Header{"Content-Type": {ctJSON}, "Content-Encoding": {"identity, gzip"}}, `{}`, 0, mperr.UnsupportedMediaType},
		{"second encoding header", http.Header{"Content-Type": {ctJSON}, "Content-Encoding": {"identity", "br"}}, `{}`, 0, mperr.UnsupportedMediaType},
		{"identity", http.Header{"Content-Type": {ctJSON}, "Content-Encoding": {" Identity "}}, `{}`, JSON, ""},
		{"gzip, empty body", http.Header{"Content-Type": {ctJSON}, "Content-Encoding": {"gzip"}}, ``, None, ""},
		{"other type, empty body", http.Header{"Content-Type": {"text/plain"}}, ``, None, ""},
		{"multipart, empty body", http.Header{"Content-Type": {"multipart/form-data; boundary=x"}}, ``, None, ""},
		{"bad type, empty body", http.Header{"Content-Type": {"a b c"}}, ``, None, ""},
		{"quoted comma", http.Header{"Content-Type": {"multipart/form-data; boundary=\"a,b\""}}, ``, None, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newReq("", tt.body)
			for k, v := range tt.header {
				r.Header[k] = v
			}
			b, err := Read(r, 0)
			if tt.code != "" {
				wantCode(t, err, tt.code)
				return
			}
			if err != nil || b.Kind() != tt.kind {
				t.Fatalf("%v %v", b, err)
			}
		})
	}
	// A multipart body is read whole and re-written: protected parts go,
	// whatever their spelling, the injected ones are appended.
	body := "--x\r\nContent-Disposition: form-data; name=\"code\"\r\n\r\nc1\r\n" +
		"--x\r\nContent-Disposition: form-data; name=\"open_id\"\r\n\r\nevil\r\n" +
		"--x\r\nContent-Disposition: form-data; name=\"avatar\"; filename=\"a.png\"\r\nContent-Type: image/png\r\n\r\nPNG\r\n--x--\r\n"
	r := newReq("multipart/form-data; boundary=x", body)
	b, err := Read(r, 0)
	if err != nil || b.Kind() != Multipart {
		t.Fatalf("multipart: %v %v", b, err)
	}
	defer b.Close()
	if v, _ := b.String("code"); v != "c1" || b.Count("openid") != 1 {
		t.Fatalf("code %q, openid count %d", v, b.Count("openid"))
	}
	b.Set("openid", "true-id")
	b.Apply(r)
	mr, err := r.MultipartReader()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for {
		p, err := mr.NextPart()
		if err != nil {
			break
		}
		v, _ := io.ReadAll(p)
		got[p.FormName()] = string(v)
	}
	if len(got) != 3 || got["openid"] != "true-id" || got["code"] != "c1" || got["avatar"] != "PNG" {
		t.Fatalf("forwarded parts %v", got)
	}
	// A field typed as JSON is refused.
	r = newReq("multipart/form-data; boundary=x", "--x\r\nContent-Disposition: form-data; name=\"user\"\r\nContent-Type: application/json\r\n\r\n{\"openid\":\"evil\"}\r\n--x--\r\n")
	_, err = Read(r, 0)
	wantCode(t, err, mperr.UnsupportedMediaType)
}

func TestEmpty(t *testing.T) {
	reqs := map[string]*http.Request{
		"nil body": {Method: http.MethodGet, Header: http.Header{}},
		"NoBody":   {Method: http.MethodPost, Header: http.Header{"Content-Length": {"0"}}, Body: http.NoBody},
		"empty reader with json type": func() *http.Request {
			r := newReq(ctJSON, "")
			r.Body = io.NopCloser(strings.NewReader(""))
			r.ContentLength = -1
			return r
		}(),
		"empty form": newReq(ctForm, ""),
	}
	for name, r := range reqs {
		b, err := Read(r, 0)
		if err != nil || b.Kind() != None {
			t.Fatalf("%s: %v %v", name, err, b)
		}
		b.Set("a", "b")
		b.SetRaw("c", json.RawMessage(`1`))
		if _, ok := b.String("a"); ok || len(b.Bytes()) != 0 {
			t.Fatalf("%s: None rewritten", name)
		}
		if got := applied(t, b, r); got != "" || r.Body != http.NoBody {
			t.Fatalf("%s: body %q %T", name, got, r.Body)
		}
	}
}

// countingReader records whether it was read.
type countingReader struct {
	r    io.Reader
	read int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.read += n
	return n, err
}
func (c *countingReader) Close() error { return nil }

func TestTooLarge(t *testing.T) {
	const limit = 100
	body := strings.Repeat("a", limit)

	// Declared too large: rejected before reading.
	cr := &countingReader{r: strings.NewReader(body + "a")}
	r := newReq(ctForm, "")
	r.Body, r.ContentLength = cr, limit+1
	_, err := Read(r, limit)
	wantCode(t, err, mperr.BodyTooLarge)
	if cr.read != 0 {
		t.Fatalf("read %d bytes of an oversize body", cr.read)
	}

	// Chunked, no length: rejected while reading, and reading stops.
	cr = &countingReader{r: io.MultiReader(strings.NewReader(body), strings.NewReader(strings.Repeat("b", 1<<20)))}
	r = newReq(ctForm, "")
	r.Body, r.ContentLength = cr, -1
	r.TransferEncoding = []string{"chunked"}
	_, err = Read(r, limit)
	wantCode(t, err, mperr.BodyTooLarge)
	if cr.read > 4*limit+512 {
		t.Fatalf("read %d bytes past the limit", cr.read)
	}

	// Exactly the limit is fine, one more is not; with and without length.
	for _, length := range []int64{-1, 0} {
		for _, n := range []int{limit, limit + 1} {
			r := newReq(ctForm, "")
			r.Body = io.NopCloser(strings.NewReader(strings.Repeat("a", n)))
			r.ContentLength = length
			if length == 0 {
				r.ContentLength = int64(n)
			}
			b, err := Read(r, limit)
			if n <= limit {
				if err != nil || b.Kind() != Form || len(readBack(t, r)) != n {
					t.Fatalf("length %d n %d: %v", length, n, err)
				}
			} else {
				wantCode(t, err, mperr.BodyTooLarge)
			}
		}
	}

	// A MaxBytesReader installed upstream (e.g. request_body) also gives 413.
	r = newReq(ctJSON, "")
	r.Body = http.MaxBytesReader(httptest.NewRecorder(), io.NopCloser(strings.NewReader(`{"a":"`+body+`"}`)), 10)
	r.ContentLength = -1
	_, err = Read(r, limit*10)
	wantCode(t, err, mperr.BodyTooLarge)

	// Default limit: 64 KiB.
	r = newReq(ctJSON, `{"a":"`+strings.Repeat("x", DefaultLimit)+`"}`)
	_, err = Read(r, 0)
	wantCode(t, err, mperr.BodyTooLarge)
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("connection reset") }
func (failingReader) Close() error             { return nil }

func TestReadError(t *testing.T) {
	r := newReq(ctJSON, "")
	r.Body, r.ContentLength = failingReader{}, -1
	_, err := Read(r, 0)
	wantCode(t, err, mperr.BadRequest)
	// Short body: fewer bytes than declared.
	r = newReq(ctJSON, "")
	r.Body, r.ContentLength = io.NopCloser(strings.NewReader(`{}`)), 10
	if b, err := Read(r, 0); err != nil || b.Kind() != JSON {
		// The server enforces Content-Length; here the 2 bytes are the body.
		t.Fatalf("short body: %v", err)
	}
}

func TestReadRestoresBody(t *testing.T) {
	in := "{\n  \"code\": \"abc\"\n}"
	r := newReq(ctJSON, in)
	b := mustRead(t, r)
	if got := readBack(t, r); got != in {
		t.Fatalf("after Read the request carries %q", got)
	}
	// Apply of an unchanged body gives it back byte for byte.
	if got := applied(t, b, r); got != in {
		t.Fatalf("after Apply %q", got)
	}
}

// TestWire writes the rewritten request as an HTTP/1.1 client would and reads
// it back: the framing matches the new body, even for a chunked original.
func TestWire(t *testing.T) {
	r := newReq(ctJSON, "")
	r.Body = io.NopCloser(strings.NewReader(`{"phoneNumber":"x","a":"é"}`))
	r.ContentLength = -1
	r.TransferEncoding = []string{"chunked"}
	b := mustRead(t, r)
	b.Set("phoneNumber", "13800138000")
	b.Apply(r)
	r.RequestURI = ""
	var buf bytes.Buffer
	if err := r.Write(&buf); err != nil {
		t.Fatal(err)
	}
	got, err := http.ReadRequest(bufio.NewReader(&buf))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(got.Body)
	want := `{"a":"é","phoneNumber":"13800138000"}`
	if string(body) != want || got.ContentLength != int64(len(want)) || len(got.TransferEncoding) != 0 {
		t.Fatalf("wire: %q len %d te %v", body, got.ContentLength, got.TransferEncoding)
	}
}

// goFold is encoding/json's key folding (fold.go).
func goFold(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r < 0x80 {
			if 'a' <= r && r <= 'z' {
				r -= 'a' - 'A'
			}
			b.WriteRune(r)
			continue
		}
		b.WriteString(strings.ToUpper(strings.ToLower(string(r))))
	}
	return b.String()
}

type kv struct {
	key string
	raw string
}

func topLevel(t testing.TB, data []byte) []kv {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("not an object: %q %v", data, err)
	}
	var out []kv
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			t.Fatal(err)
		}
		out = append(out, kv{k.(string), string(raw)})
	}
	return out
}

func matches(key, name string) bool {
	return key == name || strings.EqualFold(key, name) || goFold(key) == goFold(name) || jsonobj.EqualFoldString(key, name)
}

func FuzzReadSetApply(f *testing.F) {
	f.Add([]byte(`{"openid":"x","OpenID":"y","a":{"b":[1,2]},"open\u0069d":3}`), uint8(0), "openid", "o1")
	f.Add([]byte(`{"phoneNumber":"1","名":"值"}`), uint8(1), "phoneNumber", "13800138000")
	f.Add([]byte(`code=a&code=b&Code=c&iv=x+y`), uint8(2), "code", "z")
	f.Add([]byte(` {"a":1}`), uint8(3), "A", "\xff\"")
	f.Add([]byte(`{}`), uint8(0), "", "")
	f.Fuzz(func(t *testing.T, body []byte, sel uint8, name, value string) {
		cts := []string{ctJSON, "application/vnd.x+json; charset=utf-8", ctForm, "", "text/plain"}
		ct := cts[int(sel)%len(cts)]
		r := newReq(ct, string(body))
		b, err := Read(r, 1<<16)
		if err != nil {
			e, ok := mperr.As(err)
			if !ok || (e.Code != mperr.BadRequest && e.Code != mperr.BodyTooLarge && e.Code != mperr.UnsupportedMediaType) {
				t.Fatalf("error %v", err)
			}
			if e.Code != mperr.BodyTooLarge && (ct == ctJSON || ct == cts[1]) && json.Valid(body) && utf8.Valid(body) && bytes.HasPrefix(bytes.TrimLeft(body, " \t\r\n"), []byte("{")) {
				t.Fatalf("rejected a JSON object: %v", err)
			}
			return
		}
		switch b.Kind() {
		case JSON:
			if !json.Valid(body) {
				t.Fatalf("accepted invalid JSON")
			}
			before := topLevel(t, body)
			b.Set(name, value)
			out := applied(t, b, r)
			if !json.Valid([]byte(out)) {
				t.Fatalf("output is not valid JSON: %q", out)
			}
			after := topLevel(t, []byte(out))
			n := 0
			for _, m := range after {
				if matches(m.key, name) {
					n++
				}
			}
			if n != 1 {
				t.Fatalf("set %q: %d matching keys in %q", name, n, out)
			}
			if utf8Valid(name) && after[len(after)-1].key != name {
				t.Fatalf("set %q: last key is %q", name, after[len(after)-1].key)
			}
			if got, ok := b.String(name); !ok || (utf8Valid(value) && got != value) {
				t.Fatalf("String(%q) = %q, %v; want %q", name, got, ok, value)
			}
			// The other members survive verbatim and in order.
			var kept []kv
			for _, m := range before {
				if !SameName(m.key, name) && (hasSkeleton(name) || !jsonobj.EqualFoldString(m.key, name)) {
					kept = append(kept, m)
				}
			}
			if len(kept) != len(after)-1 {
				t.Fatalf("kept %d of %d, output has %d", len(kept), len(before), len(after))
			}
			for i := range kept {
				if kept[i] != after[i] {
					t.Fatalf("member %d: %q became %q", i, kept[i], after[i])
				}
			}
		case Form:
			b.Set(name, value)
			out := applied(t, b, r)
			q, err := url.ParseQuery(out)
			if err != nil {
				t.Fatalf("output %q: %v", out, err)
			}
			n := 0
			for k := range q {
				if matches(k, name) {
					n++
				}
			}
			if n != 1 || len(q[name]) != 1 || q[name][0] != value {
				t.Fatalf("set %q=%q: %q", name, value, out)
			}
		default:
			// Only an empty body is None, whatever its type (a non-empty
			// text/plain body is refused above).
			if len(body) != 0 {
				t.Fatalf("kind %v for %q %q", b.Kind(), ct, body)
			}
		}
	})
}

func utf8Valid(s string) bool { return strings.ToValidUTF8(s, "\x00") == s }

// A typical phone-route body (legacy encryptedData flow).
const phoneBody = `{"code":"0716AVll20uHk94SLDml27etM946AVlq","encryptedData":"xT8p8W6jIVdEWQ+ccHuD2bmG5RSiwg14VWRFw/UGVh6Aj+jDIadafJ4xdCIBQ/uxDiyw/MZWvpFyRn3pP3xxVfNQxFtzghvK+Pj5JQI7x412Zc+UKBdZyt5yiQboroSxabTum1k4MMOlnoCxhJ46cxPDT2EuLbNUf2McwNtGO0/9E+Xj/ZwENw48ucueL3UqNoKpXxFYvqH6eawrR2MXnA==","iv":"r7BXXKkLb8qrSNn05n0qiA==","scene":"checkout","cart":{"items":[{"sku":"A1","n":2}],"total":3990}}`

type reusableBody struct{ bytes.Reader }

func (*reusableBody) Close() error { return nil }

func benchRoute(b *testing.B, ct, body string) {
	r := httptest.NewRequest(http.MethodPost, "/api/phone", nil)
	r.Header.Set("Content-Type", ct)
	rb := new(reusableBody)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		rb.Reset([]byte(body))
		r.Body, r.ContentLength = rb, int64(len(body))
		bd, err := Read(r, 0)
		if err != nil {
			b.Fatal(err)
		}
		bd.Del("encryptedData", "iv")
		bd.Set("phoneNumber", "13580006666")
		bd.Set("purePhoneNumber", "13580006666")
		bd.Set("countryCode", "86")
		bd.Apply(r)
	}
}

func BenchmarkPhoneRouteJSON(b *testing.B) { benchRoute(b, ctJSON, phoneBody) }

func BenchmarkPhoneRouteForm(b *testing.B) {
	benchRoute(b, ctForm, "code=0716AVll20uHk94SLDml27etM946AVlq&encryptedData="+url.QueryEscape("xT8p8W6jIVdEWQ+ccHuD2bmG5RSiwg14VWRFw/UGVh6Aj+jDIadafJ4xdCIBQ/uxDiyw/MZWvpFyRn3pP3xxVfNQxFtzghvK+Pj5JQI7x412Zc+UKBdZyt5yiQboroSxabTum1k4MMOlnoCxhJ46cxPDT2EuLbNUf2McwNtGO0/9E+Xj/ZwENw48ucueL3UqNoKpXxFYvqH6eawrR2MXnA==")+"&iv=r7BXXKkLb8qrSNn05n0qiA%3D%3D&scene=checkout")
}

// TestManySets exercises the arena: values that fit, values whose escaping
// outgrows the room reserved for them, and members added after both.
func TestManySets(t *testing.T) {
	b, r, err := rewrite(ctJSON, `{"keep":[1,2,3]}`)
	if err != nil {
		t.Fatal(err)
	}
	want := []kv{{"keep", "[1,2,3]"}}
	for i := 0; i < 60; i++ {
		name := "k" + strconv.Itoa(i)
		var value string
		switch i % 3 {
		case 0:
			value = strings.Repeat("v", i*7)
		case 1:
			value = strings.Repeat("\x01", i*3) // escapes to 6 bytes each
		case 2:
			value = "é" + strconv.Itoa(i)
		}
		if i%5 == 4 {
			b.SetRaw(name, json.RawMessage(`{"n":`+strconv.Itoa(i)+`}`))
			want = append(want, kv{name, `{"n":` + strconv.Itoa(i) + `}`})
			continue
		}
		b.Set(name, value)
		raw, _ := json.Marshal(value)
		want = append(want, kv{name, string(raw)})
	}
	got := topLevel(t, []byte(applied(t, b, r)))
	if len(got) != len(want) {
		t.Fatalf("%d members, want %d", len(got), len(want))
	}
	for i := range want {
		var g, w any
		_ = json.Unmarshal([]byte(got[i].raw), &g)
		_ = json.Unmarshal([]byte(want[i].raw), &w)
		if got[i].key != want[i].key || !equalJSON(g, w) {
			t.Fatalf("member %d: got %v, want %v", i, got[i], want[i])
		}
	}
}

func equalJSON(a, b any) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return bytes.Equal(ja, jb)
}
