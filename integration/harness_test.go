// Package integration runs the plugin for real: a caddy binary built from
// ./cmd/caddy, started with a Caddyfile, the platform simulator as the
// platform, a recording upstream behind it, and real redis-server processes.
package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/mpsim"
)

var caddyBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "mp-integration-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	caddyBin = filepath.Join(dir, "caddy")
	build := exec.Command("go", "build", "-race", "-o", caddyBin, "../cmd/caddy")
	if os.Getenv("MP_CADDY_NORACE") != "" {
		build = exec.Command("go", "build", "-o", caddyBin, "../cmd/caddy")
	}
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building caddy:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// freePort returns a loopback port nobody listens on right now.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Recorded is one request the upstream received.
type Recorded struct {
	Method string
	Path   string
	Query  url.Values
	Header http.Header
	Body   []byte
}

// JSON decodes the recorded body as a JSON object.
func (r Recorded) JSON(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("upstream body is not JSON: %v: %q", err, r.Body)
	}
	return m
}

// Form decodes the recorded body as a form.
func (r Recorded) Form(t testing.TB) url.Values {
	t.Helper()
	v, err := url.ParseQuery(string(r.Body))
	if err != nil {
		t.Fatalf("upstream body is not a form: %v: %q", err, r.Body)
	}
	return v
}

// Upstream is the legacy backend: it records what reaches it.
type Upstream struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []Recorded
	// Respond, when set, writes the answer (default: 200 {"ok":true}).
	Respond func(w http.ResponseWriter, r *http.Request, body []byte)
}

func newUpstream(t testing.TB) *Upstream {
	u := &Upstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		if r.ContentLength >= 0 && int64(len(body)) != r.ContentLength {
			// A half-written request is a defect: make it visible.
			http.Error(w, "content-length mismatch", 599)
			return
		}
		u.mu.Lock()
		u.reqs = append(u.reqs, Recorded{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(), Header: r.Header.Clone(), Body: body})
		respond := u.Respond
		u.mu.Unlock()
		if respond != nil {
			respond(w, r, body)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"ok":true}`)
	}))
	t.Cleanup(u.Close)
	return u
}

// Requests returns what the upstream has received.
func (u *Upstream) Requests() []Recorded {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]Recorded(nil), u.reqs...)
}

// Last returns the last request received; it fails the test if none.
func (u *Upstream) Last(t testing.TB) Recorded {
	t.Helper()
	r := u.Requests()
	if len(r) == 0 {
		t.Fatal("the upstream received no request")
	}
	return r[len(r)-1]
}

// Count is how many requests reached the upstream.
func (u *Upstream) Count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.reqs)
}

// Sim is the platform simulator on loopback.
type Sim struct {
	*mpsim.Sim
	URL string
}

func newSim(t testing.TB) *Sim {
	s := mpsim.New(mpsim.Options{})
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return &Sim{Sim: s, URL: srv.URL}
}

// Demo apps of the simulator.
const (
	wxApp    = "wxdemoapp0000001"
	wxSecret = "demo-wechat-secret"
	ttApp    = "ttdemoapp0000001"
	ttSecret = "demo-douyin-secret"
)

// Caddy is one caddy process.
type Caddy struct {
	t      testing.TB
	cmd    *exec.Cmd
	URL    string // http://127.0.0.1:port
	port   int
	admin  int
	dir    string
	logBuf *syncBuffer
	done   chan struct{}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// site renders a Caddyfile: global options (admin on its own port, no
// automatic HTTPS, debug logs so that they are checked for secrets too),
// then one site on the given port, listening on loopback only (the site
// address alone would listen on every interface), with body as its
// content.
func site(admin, port int, body string) string {
	return siteWith(admin, port, "", body)
}

// siteWith is site with more global options.
func siteWith(admin, port int, global, body string) string {
	return fmt.Sprintf(`{
	admin 127.0.0.1:%d
	auto_https off
	debug
	persist_config off
%s
}

http://127.0.0.1:%d {
	bind 127.0.0.1
	log {
		output stderr
	}
%s
}
`, admin, global, port, body)
}

// startCaddy starts caddy with the site body (directives inside the site
// block) and waits until it answers.
func startCaddy(t testing.TB, body string) *Caddy {
	t.Helper()
	return startCaddyWith(t, "", body)
}

// startCaddyWith is startCaddy with more global options.
func startCaddyWith(t testing.TB, global, body string) *Caddy {
	t.Helper()
	port, admin := freePort(t), freePort(t)
	return startCaddyfile(t, admin, siteWith(admin, port, global, body), port)
}

// startCaddyfile starts caddy with a whole Caddyfile and waits until its
// admin endpoint and every port answer. The Caddy's URL is the first port's.
func startCaddyfile(t testing.TB, admin int, caddyfile string, ports ...int) *Caddy {
	t.Helper()
	c := &Caddy{t: t, port: ports[0], admin: admin, dir: t.TempDir(), logBuf: &syncBuffer{}, done: make(chan struct{})}
	c.URL = fmt.Sprintf("http://127.0.0.1:%d", c.port)
	cf := filepath.Join(c.dir, "Caddyfile")
	if err := os.WriteFile(cf, []byte(caddyfile), 0o600); err != nil {
		t.Fatal(err)
	}
	c.cmd = exec.Command(caddyBin, "run", "--config", cf, "--adapter", "caddyfile")
	c.cmd.Env = append(os.Environ(), "HOME="+c.dir, "XDG_DATA_HOME="+c.dir, "XDG_CONFIG_HOME="+c.dir)
	c.cmd.Stdout, c.cmd.Stderr = c.logBuf, c.logBuf
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { c.cmd.Wait(); close(c.done) }()
	t.Cleanup(c.Stop)
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-c.done:
			t.Fatalf("caddy exited at start:\n%s", c.logBuf.String())
		default:
		}
		if c.answers(ports) {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("caddy did not start in time:\n%s", c.logBuf.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// caddyFailsToStart runs caddy with a whole Caddyfile, expects it to exit
// with an error within a minute, and returns what it printed.
func caddyFailsToStart(t testing.TB, caddyfile string) string {
	t.Helper()
	dir := t.TempDir()
	cf := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(cf, []byte(caddyfile), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, caddyBin, "run", "--config", cf, "--adapter", "caddyfile")
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("caddy did not exit within a minute:\n%s", out)
	}
	if err == nil {
		t.Fatalf("caddy exited without an error:\n%s", out)
	}
	return string(out)
}

// answers reports whether the admin endpoint and every port accept.
func (c *Caddy) answers(ports []int) bool {
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/config/", c.admin))
	if err != nil {
		return false
	}
	resp.Body.Close()
	for _, p := range ports {
		conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", p), time.Second)
		if err != nil {
			return false
		}
		conn.Close()
	}
	return true
}

// Stop stops caddy (gracefully, then by force) and checks its logs for
// secrets registered with noSecrets.
func (c *Caddy) Stop() {
	if c.cmd.Process == nil {
		return
	}
	select {
	case <-c.done:
		return
	default:
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
		<-c.done
	}
}

// Logs returns what caddy printed so far.
func (c *Caddy) Logs() string { return c.logBuf.String() }

// Reload loads a new site body through the admin API (caddy reload).
func (c *Caddy) Reload(t testing.TB, body string) {
	t.Helper()
	cf := filepath.Join(c.dir, "Caddyfile")
	if err := os.WriteFile(cf, []byte(site(c.admin, c.port, body)), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(caddyBin, "reload", "--config", cf, "--adapter", "caddyfile", "--address", fmt.Sprintf("127.0.0.1:%d", c.admin)).CombinedOutput()
	if err != nil {
		t.Fatalf("caddy reload: %v\n%s", err, out)
	}
}

// Response is a response read whole.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body as an object.
func (r Response) JSON(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("response body is not JSON: %v: %q", err, r.Body)
	}
	return m
}

var httpClient = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 256}}

// do sends a request and reads the whole answer.
func do(t testing.TB, method, u, contentType string, body []byte, hdr ...string) Response {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, u, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return Response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// postJSON posts v as JSON.
func postJSON(t testing.TB, u string, v any, hdr ...string) Response {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return do(t, http.MethodPost, u, "application/json", b, hdr...)
}

// postForm posts a form.
func postForm(t testing.TB, u string, v url.Values, hdr ...string) Response {
	t.Helper()
	return do(t, http.MethodPost, u, "application/x-www-form-urlencoded", []byte(v.Encode()), hdr...)
}

// wantError checks the README's error answer.
func wantError(t testing.TB, r Response, status int, code string) map[string]any {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status %d, want %d; body %s", r.Status, status, r.Body)
	}
	m := r.JSON(t)
	if m["error"] != code {
		t.Fatalf("error %v, want %s; body %s", m["error"], code, r.Body)
	}
	if msg, _ := m["message"].(string); msg == "" {
		t.Fatalf("error without message: %s", r.Body)
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("error content type %q", ct)
	}
	return m
}

// wantOK checks that the request went through to the upstream.
func wantOK(t testing.TB, r Response) {
	t.Helper()
	if r.Status != http.StatusOK {
		t.Fatalf("status %d, want 200; body %s", r.Status, r.Body)
	}
}

// noSecrets fails the test if any of the secrets appears in the logs.
func noSecrets(t testing.TB, logs string, secrets ...string) {
	t.Helper()
	var kept []string
	for _, l := range strings.Split(logs, "\n") {
		// Caddy's reverse_proxy logs, at DEBUG only, the headers it sends
		// upstream, injected ones included (see the README's security
		// section); every other line, access logs included, is checked.
		if strings.Contains(l, `"logger":"http.handlers.reverse_proxy"`) && strings.Contains(l, `"level":"debug"`) {
			continue
		}
		kept = append(kept, l)
	}
	logs = strings.Join(kept, "\n")
	if !strings.Contains(logs, `"logger":"http.log.access`) {
		t.Errorf("no access log line to check")
	}
	for _, s := range secrets {
		if s == "" {
			continue
		}
		if strings.Contains(logs, s) {
			t.Errorf("a secret (%d chars, starts %q) appears in the logs", len(s), s[:min(3, len(s))])
		}
	}
}

// mpBlock renders a miniprogram block.
func mpBlock(platform, appID, secret, apiBase string, extra ...string) string {
	return mpBlockLines(platform, appID, secret, apiBase, append([]string{"login /api/login", "phone /api/phone", "decrypt /api/decrypt"}, extra...)...)
}

// mpBlockLines is a miniprogram block with the platform's credentials and
// these lines only.
func mpBlockLines(platform, appID, secret, apiBase string, lines ...string) string {
	return fmt.Sprintf(`	miniprogram {
		platform %s
		app_id %s
		app_secret %s
		api_base %s
%s
	}`, platform, appID, secret, apiBase, "\t\t"+strings.Join(lines, "\n\t\t"))
}
