package integration

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

// readmeSection returns the README's text from the heading to the next
// heading of the same level.
func readmeSection(t *testing.T, heading string) string {
	t.Helper()
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i := strings.Index(s, "\n"+heading+"\n")
	if i < 0 {
		t.Fatalf("README has no %q section", heading)
	}
	s = s[i+len(heading)+2:]
	if j := strings.Index(s, "\n## "); j >= 0 {
		s = s[:j]
	}
	return s
}

// shBlocks returns the contents of the ```sh blocks of a Markdown text.
func shBlocks(md string) []string {
	var out []string
	for {
		i := strings.Index(md, "\n```sh\n")
		if i < 0 {
			return out
		}
		md = md[i+len("\n```sh\n"):]
		j := strings.Index(md, "\n```\n")
		if j < 0 {
			return out
		}
		out = append(out, md[:j+1])
		md = md[j:]
	}
}

// startListening runs a command that prints "<prefix> <addr>" as its first
// line, and returns the address. The process is killed when the test ends.
func startListening(t *testing.T, prefix string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr syncBuffer
	cmd.Stderr = &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	})
	lines := make(chan string, 1)
	go func() {
		r := bufio.NewReader(out)
		line, _ := r.ReadString('\n')
		lines <- line
		io.Copy(io.Discard, r)
	}()
	select {
	case line := <-lines:
		addr, ok := strings.CutPrefix(strings.TrimSpace(line), prefix+" ")
		if !ok {
			t.Fatalf("%s printed %q, not %q:\n%s", name, line, prefix, stderr.String())
		}
		return addr
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not start:\n%s", name, stderr.String())
	}
	return ""
}

func buildCmd(t *testing.T, pkg string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), filepath.Base(pkg))
	if out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
		t.Fatalf("building %s: %v\n%s", pkg, err, out)
	}
	return bin
}

// The README's "Trying it by hand" session, run as written: the three
// programs are started the way its first block starts them (on free ports
// instead of 8080, 9000, 9090 and 2999), then every sh block between the
// walkthrough markers runs in one bash, and what it printed must tell the
// README's story: the backend (mpecho) saw the user's identity at login and
// the phone number at the phone step, never the ciphertext, no forged
// header on a plain request, and nothing for a rejected code.
func TestReadmeWalkthrough(t *testing.T) {
	for _, tool := range []string{"bash", "curl", "sed"} {
		if _, err := exec.LookPath(tool); err != nil {
			msg := fmt.Sprintf("%s not found (the README's walk-through needs it; make deps installs curl)", tool)
			if os.Getenv("MP_REQUIRE_CURL") == "1" {
				t.Fatalf("%s (MP_REQUIRE_CURL=1)", msg)
			}
			t.Skipf("%s; skipping (set MP_REQUIRE_CURL=1 to fail instead)", msg)
		}
	}
	section := readmeSection(t, "## Trying it by hand")
	const begin, end = "<!-- walkthrough: the sh blocks", "<!-- walkthrough: end -->"
	i, j := strings.Index(section, begin), strings.Index(section, end)
	if i < 0 || j < i {
		t.Fatalf("the README's walk-through markers are missing")
	}
	start := shBlocks(section[:i])
	if len(start) != 1 {
		t.Fatalf("want one sh block (the start) before the walk-through, got %d", len(start))
	}
	// What the start block does is what this test does: keep them together.
	for _, want := range []string{
		"make build",
		"bin/mpsim  -listen 127.0.0.1:9090",
		"bin/mpecho -listen 127.0.0.1:9000",
		"MP_APP_ID=wxdemoapp0000001 MP_APP_SECRET=demo-wechat-secret MP_API_BASE=http://127.0.0.1:9090",
		"bin/caddy run --config examples/Caddyfile",
	} {
		if !strings.Contains(start[0], want) {
			t.Fatalf("the README's start block no longer says %q; update this test to start what it starts:\n%s", want, start[0])
		}
	}
	session := strings.Join(shBlocks(section[i:j]), "\n")
	if session == "" {
		t.Fatal("no sh block in the walk-through")
	}

	sim := startListening(t, "mpsim listening on", buildCmd(t, "../cmd/mpsim"), "-listen", "127.0.0.1:0")
	echo := startListening(t, "mpecho listening on", buildCmd(t, "../cmd/mpecho"), "-listen", "127.0.0.1:0")
	port, admin := freePort(t), freePort(t)
	conf, err := os.ReadFile("../examples/Caddyfile")
	if err != nil {
		t.Fatal(err)
	}
	caddyfile := string(conf)
	for old, repl := range map[string]string{
		"http://:8080 {":               fmt.Sprintf("http://:%d {", port),
		"admin 127.0.0.1:2999":         fmt.Sprintf("admin 127.0.0.1:%d", admin),
		"reverse_proxy 127.0.0.1:9000": "reverse_proxy " + echo,
	} {
		if !strings.Contains(caddyfile, old) {
			t.Fatalf("examples/Caddyfile no longer contains %q", old)
		}
		caddyfile = strings.ReplaceAll(caddyfile, old, repl)
	}
	t.Setenv("MP_APP_ID", wxApp)
	t.Setenv("MP_APP_SECRET", wxSecret)
	t.Setenv("MP_API_BASE", "http://"+sim)
	startCaddyfile(t, admin, caddyfile, port)

	// Both host names of the site are used by the walk-through.
	for _, h := range []string{"localhost:8080", "127.0.0.1:8080"} {
		if !strings.Contains(session, h) {
			t.Fatalf("the walk-through no longer calls %s", h)
		}
	}
	script := strings.NewReplacer(
		"127.0.0.1:9090", sim,
		"localhost:8080", fmt.Sprintf("localhost:%d", port),
		"127.0.0.1:8080", fmt.Sprintf("127.0.0.1:%d", port),
	).Replace(session)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-eu", "-o", "pipefail", "-c", script)
	cmd.Dir = t.TempDir()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("the walk-through failed: %v\nstdout:\n%s\nstderr:\n%s", err, out, stderr.String())
	}

	// Everything it prints is JSON: the simulator's, mpecho's and Caddy's.
	var (
		openid string
		echoes []map[string]any
		errs   []string
	)
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var v map[string]any
		if err := dec.Decode(&v); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("the walk-through printed something that is not a JSON object (%v):\n%s", err, out)
		}
		switch {
		case v["method"] != nil:
			echoes = append(echoes, v)
		case v["error"] != nil:
			errs = append(errs, fmt.Sprint(v["error"]))
		case v["code"] != nil && v["openid"] != nil:
			openid = fmt.Sprint(v["openid"])
		}
	}
	if openid == "" {
		t.Fatalf("no login code from the simulator in:\n%s", out)
	}
	site := fmt.Sprint(port)
	var login, phoneWithID, phoneCode, plain int
	for _, e := range echoes {
		mp, _ := e["mp"].(map[string]any)
		body, _ := e["body"].(map[string]any)
		hdrs, _ := e["headers"].([]any)
		path, host := e["path"], fmt.Sprint(e["host"])
		if !strings.HasSuffix(host, ":"+site) {
			t.Errorf("echo of %v: host %q", path, host)
		}
		switch {
		case path == "/api/login":
			login++
			if mp["X-Mp-Openid"] != openid || body["openid"] != openid {
				t.Errorf("login: the backend got openid %v / %v, want %s", mp["X-Mp-Openid"], body["openid"], openid)
			}
		case path == "/api/phone":
			if mp["X-Mp-Phone"] != "13800138000" || body["phoneNumber"] != "13800138000" {
				t.Errorf("phone: the backend got %v / %v", mp["X-Mp-Phone"], body["phoneNumber"])
			}
			if _, ok := body["encryptedData"]; ok {
				t.Errorf("phone: the backend got the ciphertext: %v", body)
			}
			switch mp["X-Mp-Openid"] {
			case openid:
				phoneWithID++
			case nil:
				phoneCode++
			default:
				t.Errorf("phone: X-Mp-Openid %v, want %s or none", mp["X-Mp-Openid"], openid)
			}
		case path == "/api/orders":
			plain++
			if len(mp) != 0 {
				t.Errorf("plain request: the backend got X-Mp-* headers %v", mp)
			}
			for _, h := range hdrs {
				if strings.HasPrefix(strings.ToLower(fmt.Sprint(h)), "x-mp-") {
					t.Errorf("plain request: the backend got %q", h)
				}
			}
			if !strings.HasPrefix(host, "127.0.0.1:") {
				t.Errorf("plain request: host %q, the walk-through uses 127.0.0.1", host)
			}
		default:
			t.Errorf("an echo of an unexpected path %v", path)
		}
	}
	if login != 1 || phoneWithID != 1 || phoneCode != 1 || plain != 1 {
		t.Errorf("echoes: %d login (the rejected code must not reach the backend), %d phone with openid, %d phone by phone code, %d plain; want 1 each\n%s",
			login, phoneWithID, phoneCode, plain, out)
	}
	if len(errs) != 1 || errs[0] != "invalid_code" {
		t.Errorf("errors answered by Caddy: %q, want [invalid_code]", errs)
	}
}

// The README's repository layout lists every entry of a fresh clone's top
// level and of cmd/, internal/, internal/reqbody/ (its directories),
// examples/ and bench/, and nothing that does not exist. Hidden entries may
// be listed but need not be.
func TestReadmeLayout(t *testing.T) {
	gitOut, err := exec.Command("git", "-C", "..", "ls-files").Output()
	if err != nil {
		t.Skipf("not a git checkout (git ls-files: %v)", err)
	}
	section := readmeSection(t, "## Repository layout")
	listed := map[string]bool{}
	cell := regexp.MustCompile("`([^`]+)`")
	for _, line := range strings.Split(section, "\n") {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		first := strings.SplitN(line, "|", 3)[1]
		for _, m := range cell.FindAllStringSubmatch(first, -1) {
			p := strings.TrimSuffix(m[1], "/")
			listed[p] = true
			if _, err := os.Stat(filepath.Join("..", p)); err != nil {
				t.Errorf("the layout lists %s, which does not exist", m[1])
			}
		}
	}
	expanded := map[string]bool{"cmd": true, "internal": true, "examples": true, "bench": true}
	want := map[string]bool{}
	for _, f := range strings.Split(strings.TrimSpace(string(gitOut)), "\n") {
		parts := strings.Split(f, "/")
		switch {
		case !expanded[parts[0]]:
			want[parts[0]] = true
		case len(parts) >= 2:
			want[parts[0]+"/"+parts[1]] = true
		}
		if len(parts) >= 4 && parts[0] == "internal" && parts[1] == "reqbody" && parts[2] != "testdata" {
			want["internal/reqbody/"+parts[2]] = true
		}
	}
	var missing []string
	for p := range want {
		if !listed[p] && !strings.HasPrefix(filepath.Base(p), ".") {
			missing = append(missing, p)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("the README's repository layout misses %q", missing)
	}
}
