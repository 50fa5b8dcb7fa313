package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// decode reads an answer of mpecho, failing on anything but 200 JSON.
func decode(t testing.TB, status int, contentType string, body []byte) *echo {
	t.Helper()
	if status != http.StatusOK || contentType != "application/json" {
		t.Fatalf("answer %d %q: %q", status, contentType, body)
	}
	var e echo
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		t.Fatalf("answer is not an echo: %v: %q", err, body)
	}
	return &e
}

// startServer runs mpecho (run, as from the command line) on a free
// loopback port until the test ends, and returns its address.
func startServer(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, append([]string{"-listen", "127.0.0.1:0", "-quiet"}, args...), pw, io.Discard)
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	go io.Copy(io.Discard, pr)
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "mpecho listening on ")
	if err != nil || !ok {
		cancel()
		t.Fatalf("mpecho did not start: %q, %v, %v", line, err, <-done)
	}
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("mpecho: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("mpecho did not shut down")
		}
	})
	return addr
}

func TestEchoesWhatItReceived(t *testing.T) {
	addr := startServer(t)
	body := `{"code":"c1", "phoneNumber":"13800138000","n":12345678901234567890}`
	req, _ := http.NewRequest("POST", "http://"+addr+"/api/phone?a=1&a=2&bad=%zz&s=%2Fapi", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Mp-Phone", "13800138000")
	req.Header.Add("X-Mp-Openid", "o1")
	req.Header.Add("X-Mp-Openid", "o2")
	req.Header.Set("X-Other", "x")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	e := decode(t, resp.StatusCode, resp.Header.Get("Content-Type"), raw)

	if e.Method != "POST" || e.Path != "/api/phone" || e.URI != "/api/phone?a=1&a=2&bad=%zz&s=%2Fapi" || e.Host != addr {
		t.Errorf("request line: %q %q %q host %q", e.Method, e.Path, e.URI, e.Host)
	}
	wantQuery := map[string][]string{"a": {"1", "2"}, "bad": {"%zz"}, "s": {"/api"}}
	if !reflect.DeepEqual(e.Query, wantQuery) {
		t.Errorf("query = %v, want %v", e.Query, wantQuery)
	}
	wantMP := map[string]string{"X-Mp-Phone": "13800138000", "X-Mp-Openid": "o1, o2"}
	if !reflect.DeepEqual(e.MP, wantMP) {
		t.Errorf("mp = %v, want %v", e.MP, wantMP)
	}
	wantHeaders := []string{"Accept-Encoding: gzip", "Content-Length: " + fmt.Sprint(len(body)), "Content-Type: application/json",
		"User-Agent: Go-http-client/1.1", "X-Mp-Openid: o1", "X-Mp-Openid: o2", "X-Mp-Phone: 13800138000", "X-Other: x"}
	if !reflect.DeepEqual(e.Headers, wantHeaders) {
		t.Errorf("headers = %q\nwant      %q", e.Headers, wantHeaders)
	}
	// The JSON body comes back as JSON, numbers and key order untouched.
	var compact bytes.Buffer
	if err := json.Compact(&compact, e.Body); err != nil || compact.String() != `{"code":"c1","phoneNumber":"13800138000","n":12345678901234567890}` {
		t.Errorf("body = %s (%v)", e.Body, err)
	}
	if e.BodyBytes != len(body) || e.BodyText != nil || e.BodyBase64 != "" || e.BodyTruncated {
		t.Errorf("body fields: %d %v %q %v", e.BodyBytes, e.BodyText, e.BodyBase64, e.BodyTruncated)
	}
}

func TestBodyKinds(t *testing.T) {
	binary := []byte{0xff, 0x00, 'o', 'p', 'e', 'n', 0xfe}
	for _, tc := range []struct {
		name      string
		body      []byte
		maxBody   int64
		json      string
		text      string
		b64       []byte
		truncated bool
	}{
		{name: "empty", body: nil},
		{name: "form", body: []byte("code=c1&phoneNumber=138"), text: "code=c1&phoneNumber=138"},
		{name: "json scalar", body: []byte(`"x"`), json: `"x"`},
		{name: "json with trailing garbage is text", body: []byte(`{"a":1} x`), text: `{"a":1} x`},
		{name: "binary", body: binary, b64: binary},
		{name: "truncated", body: []byte(`{"a":"0123456789"}`), maxBody: 5, text: `{"a":`, truncated: true},
		{name: "truncated inside a rune", body: []byte("ab\u00e9"), maxBody: 3, b64: []byte("ab\xc3"), truncated: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			max := tc.maxBody
			if max == 0 {
				max = 1 << 20
			}
			req := httptest.NewRequest("POST", "/x", bytes.NewReader(tc.body))
			rec := httptest.NewRecorder()
			handler(max, nil).ServeHTTP(rec, req)
			e := decode(t, rec.Code, rec.Header().Get("Content-Type"), rec.Body.Bytes())
			if string(e.Body) != tc.json {
				t.Errorf("body = %s, want %s", e.Body, tc.json)
			}
			if got := ""; e.BodyText != nil {
				got = *e.BodyText
				if got != tc.text {
					t.Errorf("body_text = %q, want %q", got, tc.text)
				}
			} else if tc.text != "" {
				t.Errorf("no body_text, want %q", tc.text)
			}
			gotB64, err := base64.StdEncoding.DecodeString(e.BodyBase64)
			if err != nil || !bytes.Equal(gotB64, tc.b64) {
				t.Errorf("body_base64 = %q, want %q", gotB64, tc.b64)
			}
			wantLen := len(tc.body)
			if tc.truncated {
				wantLen = int(max)
			}
			if e.BodyTruncated != tc.truncated || e.BodyBytes != wantLen {
				t.Errorf("truncated %v, bytes %d; want %v, %d", e.BodyTruncated, e.BodyBytes, tc.truncated, wantLen)
			}
		})
	}
}

// Odd requests over a real connection: each answered with an echo (or by
// Go's server when it refuses the request itself), and the server keeps
// answering afterwards.
func TestOddRequestsDoNotStopIt(t *testing.T) {
	addr := startServer(t, "-max-body", "64")
	for _, tc := range []struct {
		name, raw string
		status    int // 0: an echo (200) is expected
	}{
		{name: "invalid UTF-8 in path, query and header", raw: "GET /\xff\xfe/a?\xff=%ff HTTP/1.1\r\nHost: h\r\nX-Mp-Phone: \xff\xfe\r\n\r\n"},
		{name: "percent-encoded NUL and slash", raw: "GET /a%00b%2fc?x=%00 HTTP/1.1\r\nHost: h\r\n\r\n"},
		{name: "odd method", raw: "PROPFIND! /x HTTP/1.1\r\nHost: h\r\n\r\n"},
		{name: "method Go refuses", raw: "GE(T /x HTTP/1.1\r\nHost: h\r\n\r\n", status: 400},
		{name: "HTTP/1.0 without Host", raw: "POST /x HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc"},
		{name: "chunked with trailer", raw: "POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTrailer: X-Mp-Openid\r\n\r\n3\r\nabc\r\n0\r\nX-Mp-Openid: t\r\n\r\n"},
		{name: "body over -max-body, chunked", raw: "POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n80\r\n" + strings.Repeat("z", 128) + "\r\n0\r\n\r\n"},
		{name: "body shorter than Content-Length", raw: "POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\nConnection: close\r\n\r\nabc"},
		{name: "absolute URI", raw: "GET http://other.example/api/login?code=1 HTTP/1.1\r\nHost: h\r\n\r\n"},
		{name: "OPTIONS *, answered by Go", raw: "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n", status: 200},
		{name: "asterisk with another method", raw: "GET * HTTP/1.1\r\nHost: h\r\n\r\n"},
		{name: "many headers", raw: "GET /x HTTP/1.1\r\nHost: h\r\n" + strings.Repeat("X-Mp-A: 1\r\n", 2000) + "\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(10 * time.Second))
			if tc.name == "body shorter than Content-Length" {
				io.WriteString(conn, tc.raw)
				conn.(*net.TCPConn).CloseWrite()
			} else if _, err := io.WriteString(conn, tc.raw); err != nil {
				t.Fatal(err)
			}
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatalf("no answer: %v", err)
			}
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if tc.status != 0 {
				if resp.StatusCode != tc.status {
					t.Errorf("status %d, want %d: %q", resp.StatusCode, tc.status, raw)
				}
				return
			}
			decode(t, resp.StatusCode, resp.Header.Get("Content-Type"), raw)
		})
	}
	// Still serving.
	resp, err := http.Get("http://" + addr + "/after")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if e := decode(t, resp.StatusCode, resp.Header.Get("Content-Type"), raw); e.Path != "/after" {
		t.Errorf("path %q", e.Path)
	}
}

func TestListensOnLoopbackOnly(t *testing.T) {
	for _, addr := range []string{":0", "0.0.0.0:0", "[::]:0", "192.0.2.1:0", "example.com:0", "nonsense"} {
		err := run(context.Background(), []string{"-listen", addr}, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), addr) {
			t.Errorf("-listen %s: %v; want a refusal", addr, err)
		}
	}
	for _, addr := range []string{"127.0.0.1:0", "[::1]:0", "localhost:0", "127.0.0.2:0"} {
		if err := checkLoopback(addr); err != nil {
			t.Errorf("-listen %s refused: %v", addr, err)
		}
	}
}

// FuzzEcho: whatever request Go's server would accept, the answer is an echo
// (200, JSON of the expected shape) that gives back the body and headers
// faithfully.
func FuzzEcho(f *testing.F) {
	f.Add("POST", "/api/phone?code=1", "13800138000", []byte(`{"code":"1","encryptedData":"x","iv":"y"}`))
	f.Add("GET", "/%ff?a=%zz;b", "\xff", []byte("\xff\x00"))
	f.Add("PUT", "*", "", []byte("a=1&b"))
	f.Add("DELETE", "http://h/x", "a, b", []byte(`[1,2,{"a":null}]`))
	f.Fuzz(func(t *testing.T, method, target, value string, body []byte) {
		raw := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: h\r\nX-Mp-Test: %s\r\nContent-Length: %d\r\n\r\n", method, target, value, len(body))
		req, err := http.ReadRequest(bufio.NewReader(io.MultiReader(strings.NewReader(raw), bytes.NewReader(body))))
		if err != nil {
			return // Go's server would refuse it before any handler
		}
		if req.ContentLength != int64(len(body)) {
			return // a header line of the fuzzer's value changed the framing
		}
		rec := httptest.NewRecorder()
		handler(1<<20, nil).ServeHTTP(rec, req)
		e := decode(t, rec.Code, rec.Header().Get("Content-Type"), rec.Body.Bytes())

		// The body, whichever form it took.
		var got []byte
		switch {
		case e.Body != nil:
			var a, b bytes.Buffer
			if json.Compact(&a, e.Body) != nil || json.Compact(&b, body) != nil || a.String() != b.String() {
				t.Fatalf("body %s, sent %q", e.Body, body)
			}
			got = body
		case e.BodyText != nil:
			got = []byte(*e.BodyText)
		default:
			if got, err = base64.StdEncoding.DecodeString(e.BodyBase64); err != nil {
				t.Fatal(err)
			}
		}
		if !bytes.Equal(got, body) || e.BodyBytes != len(body) || e.BodyTruncated {
			t.Fatalf("body %q (%d bytes, truncated %v), sent %q", got, e.BodyBytes, e.BodyTruncated, body)
		}
		// The header, when its value is text JSON can carry as is.
		if vals := req.Header.Values("X-Mp-Test"); len(vals) == 1 && utf8.ValidString(vals[0]) {
			found := 0
			for _, h := range e.Headers {
				if h == "X-Mp-Test: "+vals[0] {
					found++
				}
			}
			if found != 1 || e.MP["X-Mp-Test"] != vals[0] {
				t.Fatalf("header %q came back as %q / %q", vals, e.Headers, e.MP["X-Mp-Test"])
			}
		}
		if e.Method != req.Method {
			t.Fatalf("method %q, sent %q", e.Method, req.Method)
		}
	})
}
