// Command mpecho is a stand-in backend for trying caddy-miniprogram by hand:
// it answers every request with a JSON echo of what it received, so that
// what Caddy forwarded (the X-Mp-* headers the plugin injected, the body it
// rewrote) can be seen with curl.
//
//	mpecho [-listen 127.0.0.1:9000] [-max-body 1048576] [-quiet]
//
// The answer is always 200 with a JSON object:
//
//	method, uri    the request line as received (uri with its query)
//	host           the Host header
//	path, query    the decoded path and query parameters
//	mp             the X-Mp-* headers (several values joined with ", ")
//	body           the body when it is JSON (as JSON), else
//	body_text      the body when it is other UTF-8 text, else
//	body_base64    the body's bytes
//	body_bytes     the body's length, body_truncated when over -max-body
//	headers        every header as "Name: value", one line per value,
//	               sorted by name (the Host header is host, above)
//
// It listens on loopback only: it hands back everything it is sent,
// cookies and Authorization included. It logs one line per request (method,
// path and the names of the X-Mp-* headers; never a value, query or body)
// and shuts down gracefully on SIGINT or SIGTERM. Standard library only.
package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"
)

// echo is the answer. Field order is the order a reader wants: the request
// line, what the plugin injected, the body, then every header.
type echo struct {
	Method        string              `json:"method"`
	URI           string              `json:"uri"`
	Host          string              `json:"host"`
	Path          string              `json:"path"`
	Query         map[string][]string `json:"query"`
	MP            map[string]string   `json:"mp"`
	Body          json.RawMessage     `json:"body,omitempty"`
	BodyText      *string             `json:"body_text,omitempty"`
	BodyBase64    string              `json:"body_base64,omitempty"`
	BodyBytes     int                 `json:"body_bytes"`
	BodyTruncated bool                `json:"body_truncated,omitempty"`
	Headers       []string            `json:"headers"`
}

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "mpecho:", err)
		os.Exit(1)
	}
}

// run parses the flags, listens and serves until ctx is done or a signal
// arrives.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("mpecho", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:9000", "loopback address to listen on (port 0 picks one, printed at start)")
	maxBody := fs.Int64("max-body", 1<<20, "bytes of a body echoed; the rest is not read")
	quiet := fs.Bool("quiet", false, "do not log requests")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *maxBody < 0 {
		return fmt.Errorf("-max-body %d is negative", *maxBody)
	}
	if err := checkLoopback(*listen); err != nil {
		return err
	}

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "mpecho listening on %s\n", ln.Addr())

	logger := log.New(stderr, "mpecho: ", log.LstdFlags)
	var reqLog *log.Logger
	if !*quiet {
		reqLog = logger
	}
	srv := &http.Server{
		Handler:           handler(*maxBody, reqLog),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          logger,
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return err
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// checkLoopback accepts host:port where host is localhost or a loopback IP.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("-listen %q: %v", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("-listen %q: mpecho hands back every header and body it receives, so it listens on loopback only (127.0.0.1, ::1 or localhost)", addr)
}

// handler answers every request with its echo. logger may be nil.
func handler(maxBody int64, logger *log.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e := describe(r, maxBody)
		if logger != nil {
			names := make([]string, 0, len(e.MP))
			for k := range e.MP {
				names = append(names, k)
			}
			sort.Strings(names)
			logger.Printf("%q %q X-Mp-*: %s", r.Method, r.URL.Path, strings.Join(names, " "))
		}
		var out bytes.Buffer
		enc := json.NewEncoder(&out)
		enc.SetEscapeHTML(false) // a form's '&' stays '&'
		enc.SetIndent("", "  ")
		if err := enc.Encode(e); err != nil { // cannot happen: every field is marshalable
			http.Error(w, `{"error":"mpecho: cannot encode the echo"}`, http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.Write(out.Bytes())
	})
}

// describe reads the request (at most maxBody bytes of its body) into an
// echo.
func describe(r *http.Request, maxBody int64) *echo {
	e := &echo{
		Method:  r.Method,
		URI:     r.RequestURI,
		Host:    r.Host,
		Query:   map[string][]string{},
		MP:      map[string]string{},
		Headers: []string{},
	}
	if r.URL != nil {
		e.Path = r.URL.Path
		if e.URI == "" {
			e.URI = r.URL.RequestURI()
		}
		q, _ := parseQuery(r.URL.RawQuery)
		e.Query = q
	}
	names := make([]string, 0, len(r.Header))
	for k := range r.Header {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		for _, v := range r.Header[k] {
			e.Headers = append(e.Headers, k+": "+v)
		}
		if len(k) >= 5 && strings.EqualFold(k[:5], "x-mp-") {
			e.MP[k] = strings.Join(r.Header[k], ", ")
		}
	}
	if r.Body == nil {
		return e
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if int64(len(body)) > maxBody {
		body, e.BodyTruncated = body[:maxBody], true
	}
	if err != nil {
		e.BodyTruncated = true // what arrived before the error is echoed
	}
	e.BodyBytes = len(body)
	switch {
	case len(body) == 0:
	case json.Valid(body):
		e.Body = body
	case utf8.Valid(body):
		s := string(body)
		e.BodyText = &s
	default:
		e.BodyBase64 = base64.StdEncoding.EncodeToString(body)
	}
	return e
}

// parseQuery is url.ParseQuery, except that a pair it cannot unescape is
// kept as sent instead of dropped (and ';' is no separator).
func parseQuery(raw string) (map[string][]string, error) {
	q := map[string][]string{}
	var firstErr error
	for raw != "" {
		var kv string
		kv, raw, _ = strings.Cut(raw, "&")
		if kv == "" {
			continue
		}
		k, v, _ := strings.Cut(kv, "=")
		k1, err1 := url.QueryUnescape(k)
		v1, err2 := url.QueryUnescape(v)
		if err := errors.Join(err1, err2); err != nil {
			if firstErr == nil {
				firstErr = err
			}
			k1, v1 = k, v // shown as sent
		}
		q[k1] = append(q[k1], v1)
	}
	return q, firstErr
}
