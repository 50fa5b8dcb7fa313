package integration

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// spoofMark is the marker every client-chosen value of a protected name
// carries (spoofQZ, spoofQZ1, ...). It is long and odd enough never to
// appear by chance in a code, a base64 payload or an openid, so finding it
// anywhere the backend reads is proof that a client-chosen value got
// through.
const spoofMark = "spoofQZ"

// bRec is one request the boundary upstream received, trailers included.
type bRec struct {
	Method  string
	URI     string // the request-target as received
	Header  http.Header
	Trailer http.Header // r.Trailer after the body was read to EOF
	Body    []byte      // decompressed when Content-Encoding is gzip
	Problem string      // a framing defect seen by the upstream
}

// bUpstream is a recording backend like Upstream, but it also records
// request trailers (only known after the body is read) and decodes gzip
// bodies the way a lenient backend would.
type bUpstream struct {
	*httptest.Server
	mu   sync.Mutex
	recs []bRec
}

// newBoundaryUpstream starts the recording backend; it answers 200
// {"ok":true} to everything.
func newBoundaryUpstream(t testing.TB) *bUpstream {
	u := &bUpstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := bRec{Method: r.Method, URI: r.RequestURI, Header: r.Header.Clone()}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			rec.Problem = "reading body: " + err.Error()
		}
		if r.ContentLength >= 0 && int64(len(body)) != r.ContentLength {
			rec.Problem = fmt.Sprintf("content-length %d, body %d bytes", r.ContentLength, len(body))
		}
		rec.Trailer = r.Trailer.Clone()
		if strings.EqualFold(strings.TrimSpace(r.Header.Get("Content-Encoding")), "gzip") {
			if zr, err := gzip.NewReader(bytes.NewReader(body)); err == nil {
				if dec, err := io.ReadAll(io.LimitReader(zr, 1<<20)); err == nil {
					body = dec
				}
			}
		}
		rec.Body = body
		u.mu.Lock()
		u.recs = append(u.recs, rec)
		u.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"ok":true}`)
	}))
	t.Cleanup(u.Close)
	return u
}

// since returns the requests received after the first n.
func (u *bUpstream) since(n int) []bRec {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]bRec(nil), u.recs[min(n, len(u.recs)):]...)
}

// count is how many requests the upstream received.
func (u *bUpstream) count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.recs)
}

// rawRequest is an HTTP/1.1 request written byte for byte as given: the
// request-target is not cleaned, header names keep their spelling and may
// repeat.
type rawRequest struct {
	method   string
	target   string
	headers  [][2]string
	body     []byte // nil: no body and no Content-Length
	chunked  bool   // send body as two chunks, then trailers
	trailers [][2]string
}

// sendRaw writes q on a new connection to addr (host:port) and reads one
// response.
func sendRaw(addr string, q rawRequest) (Response, error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return Response{}, err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(20 * time.Second)); err != nil {
		return Response{}, err
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\n", q.method, q.target, addr)
	hasLen := false
	for _, h := range q.headers {
		fmt.Fprintf(&b, "%s: %s\r\n", h[0], h[1])
		hasLen = hasLen || strings.EqualFold(h[0], "Content-Length")
	}
	switch {
	case q.chunked:
		b.WriteString("Transfer-Encoding: chunked\r\n\r\n")
		half := len(q.body) / 2
		for _, part := range [][]byte{q.body[:half], q.body[half:]} {
			if len(part) > 0 {
				fmt.Fprintf(&b, "%x\r\n%s\r\n", len(part), part)
			}
		}
		b.WriteString("0\r\n")
		for _, h := range q.trailers {
			fmt.Fprintf(&b, "%s: %s\r\n", h[0], h[1])
		}
		b.WriteString("\r\n")
	case q.body != nil:
		if !hasLen {
			fmt.Fprintf(&b, "Content-Length: %d\r\n", len(q.body))
		}
		b.WriteString("\r\n")
		b.Write(q.body)
	default:
		b.WriteString("\r\n")
	}
	if _, err := conn.Write(b.Bytes()); err != nil {
		return Response{}, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: q.method})
	if err != nil {
		return Response{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return Response{}, err
	}
	return Response{Status: resp.StatusCode, Header: resp.Header, Body: body}, nil
}

// h2cClient speaks HTTP/2 without TLS (prior knowledge), standard library
// only (net/http's Protocols, Go 1.24+).
var h2cClient = func() *http.Client {
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	return &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{Protocols: &p}}
}()

// sendH2C sends q over h2c to base (http://host:port). The body has no
// declared length, so trailers follow the DATA frames.
func sendH2C(base string, q rawRequest) (Response, error) {
	var body io.Reader
	if q.body != nil {
		body = io.MultiReader(bytes.NewReader(q.body)) // hides the length
	}
	req, err := http.NewRequest(q.method, base+q.target, body)
	if err != nil {
		return Response{}, err
	}
	for _, h := range q.headers {
		req.Header.Add(h[0], h[1])
	}
	if len(q.trailers) > 0 {
		req.Trailer = http.Header{}
		for _, h := range q.trailers {
			req.Trailer.Add(h[0], h[1])
		}
	}
	resp, err := h2cClient.Do(req)
	if err != nil {
		return Response{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return Response{}, err
	}
	if resp.ProtoMajor != 2 {
		return Response{}, fmt.Errorf("answered over %s, not h2c", resp.Proto)
	}
	return Response{Status: resp.StatusCode, Header: resp.Header, Body: b}, nil
}

// gzipped compresses b.
func gzipBytes(b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

// isMpName reports whether a header or trailer name is one of the
// plugin's (X-Mp-*, any case, '_' for '-').
func isMpName(name string) bool {
	n := strings.ToLower(strings.ReplaceAll(strings.TrimSpace(name), "_", "-"))
	return strings.HasPrefix(n, "x-mp-") || strings.HasPrefix(n, "x-wx-")
}

// spoofFoundIn lists where the spoof marker appears in what a backend
// could read of rec: the request-target (raw and decoded), every header
// and trailer, the body. With body false, only headers and trailers are
// searched (the body and query of a pass-through request are not ours).
func spoofFoundIn(rec bRec, body bool) []string {
	has := func(s string) bool { return strings.Contains(strings.ToLower(s), strings.ToLower(spoofMark)) }
	var where []string
	if body {
		dec, _ := url.PathUnescape(rec.URI)
		if has(rec.URI) || has(dec) {
			where = append(where, "request-target")
		}
		if has(string(rec.Body)) {
			where = append(where, "body")
		}
	}
	for _, part := range []struct {
		what string
		h    http.Header
	}{{"header", rec.Header}, {"trailer", rec.Trailer}} {
		for k, vs := range part.h {
			for _, v := range vs {
				if has(k) || has(v) {
					where = append(where, part.what+" "+k)
				}
			}
		}
	}
	return where
}

// mpNames lists the X-Mp-* names in h, sorted.
func mpNames(h http.Header) []string {
	var out []string
	for k := range h {
		if isMpName(k) {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// fields decodes the body of rec into name → values by its Content-Type:
// a JSON object (values as JSON text unless strings), a form, or multipart
// (file parts included). ok is false for another or an empty body.
func bodyFields(rec bRec) (map[string][]string, bool) {
	if len(rec.Body) == 0 {
		return nil, false
	}
	mt, params, err := mime.ParseMediaType(rec.Header.Get("Content-Type"))
	if err != nil {
		return nil, false
	}
	out := map[string][]string{}
	switch {
	case mt == "application/json":
		var m map[string]json.RawMessage
		if json.Unmarshal(rec.Body, &m) != nil {
			return nil, false
		}
		for k, raw := range m {
			var s string
			if json.Unmarshal(raw, &s) == nil {
				out[k] = append(out[k], s)
			} else {
				out[k] = append(out[k], string(raw))
			}
		}
	case mt == "application/x-www-form-urlencoded":
		v, err := url.ParseQuery(string(rec.Body))
		if err != nil {
			return nil, false
		}
		out = v
	case mt == "multipart/form-data":
		mr := multipart.NewReader(bytes.NewReader(rec.Body), params["boundary"])
		for i := 0; i < 100; i++ {
			p, err := mr.NextPart()
			if err == io.EOF {
				break
			}
			if err != nil {
				return nil, false
			}
			b, err := io.ReadAll(p)
			if err != nil {
				return nil, false
			}
			out[p.FormName()] = append(out[p.FormName()], string(b))
		}
	default:
		return nil, false
	}
	return out, true
}

// describe renders what the upstream saw, secrets replaced by their names.
func describeRecs(recs []bRec, redact *strings.Replacer) string {
	if len(recs) == 0 {
		return "upstream not called"
	}
	var parts []string
	for _, r := range recs {
		mp := map[string][]string{}
		for _, k := range mpNames(r.Header) {
			mp[k] = r.Header[k]
		}
		s := fmt.Sprintf("upstream saw %s %s; X-Mp headers %v", r.Method, r.URI, mp)
		if len(r.Trailer) > 0 {
			s += fmt.Sprintf("; trailers %v", map[string][]string(r.Trailer))
		}
		if ct := r.Header.Get("Content-Type"); ct != "" {
			s += "; content-type " + strconv.Quote(ct)
		}
		body := string(r.Body)
		if len(body) > 240 {
			body = body[:240] + "…"
		}
		s += "; body " + strconv.Quote(body)
		if r.Problem != "" {
			s += "; " + r.Problem
		}
		parts = append(parts, redact.Replace(s))
	}
	return strings.Join(parts, " | ")
}
