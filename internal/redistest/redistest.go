// Package redistest runs real redis-server processes for tests. Nothing is
// mocked: each Server is its own redis-server on a free 127.0.0.1 port, with
// persistence off and its own temporary directory, killed when the test ends.
//
// When the redis-server binary cannot be found the test is skipped, unless
// the environment says MP_REQUIRE_REDIS=1 (CI installs redis-server), in
// which case it fails. The binary is looked up as $MP_REDIS_SERVER, then
// redis-server on $PATH, then /usr/bin/redis-server and /usr/sbin/redis-server.
package redistest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// startTimeout bounds how long Start and Restart wait for PING.
const startTimeout = 5 * time.Second

// Server is one running redis-server.
type Server struct {
	bin   string
	dir   string
	port  int
	extra []string
	conf  string // config file written by the caller ("" for none)
	certs *Certs // TLS only (StartTLS), nil for plain TCP

	mu     sync.Mutex
	cmd    *exec.Cmd
	done   chan struct{} // closed when cmd has been waited for
	client *redis.Client
	logN   int // how many times the server was started (log file names)
}

// Start runs a redis-server for the test. Extra args are passed to
// redis-server after the defaults (e.g. "--requirepass", "secret"). The
// server is killed and its directory removed at the end of the test.
func Start(t testing.TB, args ...string) *Server {
	t.Helper()
	return start(t, "", args)
}

// start runs a server; conf, when set, is a config file that goes first
// on the command line (sentinels need one).
func start(t testing.TB, conf string, args []string) *Server {
	t.Helper()
	return startWith(t, conf, nil, args)
}

// startWith is start, over TLS when certs is set.
func startWith(t testing.TB, conf string, certs *Certs, args []string) *Server {
	t.Helper()
	bin, err := findBinary()
	if err != nil {
		if os.Getenv("MP_REQUIRE_REDIS") == "1" {
			t.Fatalf("redistest: %v (MP_REQUIRE_REDIS=1)", err)
		}
		t.Skipf("redistest: %v; skipping (set MP_REQUIRE_REDIS=1 to fail instead)", err)
	}
	s := &Server{bin: bin, dir: t.TempDir(), extra: append([]string(nil), args...), conf: conf, certs: certs}
	t.Cleanup(s.cleanup)

	// A free port may be taken between picking it and redis binding it:
	// try a few.
	var lastErr error
	for range 5 {
		port, err := freePort()
		if err != nil {
			t.Fatalf("redistest: free port: %v", err)
		}
		s.port = port
		if lastErr = s.start(); lastErr == nil {
			return s
		}
	}
	t.Fatalf("redistest: %v", lastErr)
	return nil
}

// Addr is the server's host:port.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// URL is redis://addr/0 (rediss:// for a TLS server).
func (s *Server) URL() string {
	if s.certs != nil {
		return "rediss://" + s.Addr() + "/0"
	}
	return "redis://" + s.Addr() + "/0"
}

// Port is the TCP port.
func (s *Server) Port() int { return s.port }

// Kill sends SIGKILL to the server and waits for it to exit. Killing a
// server that is not running does nothing.
func (s *Server) Kill() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd, s.done = nil, nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-done
}

// Freeze stops the server with SIGSTOP: it keeps its port and accepts
// connections (the kernel does) but answers nothing, like a stalled
// network. Thaw resumes it; a frozen server is resumed at cleanup.
// (Linux only; elsewhere Freeze and Thaw do nothing.)
func (s *Server) Freeze() { s.signal(sigStop) }

// Thaw resumes a server stopped by Freeze.
func (s *Server) Thaw() { s.signal(sigCont) }

func (s *Server) signal(sig os.Signal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil && sig != nil {
		_ = s.cmd.Process.Signal(sig)
	}
}

// Restart starts the server again on the same port (after Kill; a running
// server is killed first). Its data is gone: persistence is off.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Kill()
	var err error
	// The port was just released; binding it again can race with the
	// kernel for a moment.
	deadline := time.Now().Add(startTimeout)
	for {
		if err = s.start(); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("redistest: restart: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Client is a go-redis client on the server for assertions, closed when the
// test ends. It reconnects by itself after Restart, though a pool that saw
// the server dead may take up to a second: see WaitReady. It authenticates
// as the default user with the --requirepass of the server's args, and
// speaks TLS (with the client certificate) to a StartTLS server.
func (s *Server) Client() *redis.Client {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.client == nil {
		o := &redis.Options{
			Addr:            s.Addr(),
			Password:        requirePass(s.extra),
			DialTimeout:     time.Second,
			ReadTimeout:     2 * time.Second,
			WriteTimeout:    2 * time.Second,
			MaxRetries:      2,
			DisableIdentity: true,
		}
		if s.certs != nil {
			o.TLSConfig = s.certs.ClientTLS()
		}
		s.client = redis.NewClient(o)
	}
	return s.client
}

// requirePass is the value of the last --requirepass in args ("" if none).
func requirePass(args []string) string {
	pw := ""
	for i := 0; i+1 < len(args); i++ {
		if args[i] == "--requirepass" {
			pw = args[i+1]
		}
	}
	return pw
}

func (s *Server) cleanup() {
	s.mu.Lock()
	c := s.client
	s.client = nil
	s.mu.Unlock()
	if c != nil {
		_ = c.Close()
	}
	s.Kill()
}

// start runs redis-server on s.port and waits until it answers PING.
func (s *Server) start() error {
	s.mu.Lock()
	s.logN++
	logPath := filepath.Join(s.dir, fmt.Sprintf("redis-%d.log", s.logN))
	s.mu.Unlock()

	var args []string
	if s.conf != "" {
		args = append(args, s.conf)
	}
	if s.certs != nil {
		args = append(args,
			"--port", "0",
			"--tls-port", strconv.Itoa(s.port),
			"--tls-cert-file", s.certs.ServerCert,
			"--tls-key-file", s.certs.ServerKey,
			"--tls-ca-cert-file", s.certs.CAFile,
		)
	} else {
		args = append(args, "--port", strconv.Itoa(s.port))
	}
	args = append(args,
		"--bind", "127.0.0.1",
		"--dir", s.dir,
		"--daemonize", "no",
		"--logfile", logPath,
	)
	if s.conf == "" {
		args = append(args, "--save", "", "--appendonly", "no")
	}
	args = append(args, s.extra...)
	cmd := exec.Command(s.bin, args...)
	cmd.Dir = s.dir
	setProcAttr(cmd)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", s.bin, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()

	deadline := time.Now().Add(startTimeout)
	for {
		select {
		case <-done:
			return fmt.Errorf("redis-server on port %d exited at start: %s", s.port, tail(logPath))
		default:
		}
		if s.ping() == nil {
			s.mu.Lock()
			s.cmd, s.done = cmd, done
			s.mu.Unlock()
			return nil
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-done
			return fmt.Errorf("redis-server on port %d did not answer PING within %v: %s", s.port, startTimeout, tail(logPath))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ping is the server's PING, over TLS for a StartTLS server.
func (s *Server) ping() error {
	var tc *tls.Config
	if s.certs != nil {
		tc = s.certs.ClientTLS()
	}
	return pingWith(s.Addr(), s.extra, tc)
}

// ping sends PING over plain TCP (after AUTH when the args set
// --requirepass) and expects +PONG.
func ping(addr string, extra []string) error { return pingWith(addr, extra, nil) }

func pingWith(addr string, extra []string, tc *tls.Config) error {
	conn, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(500 * time.Millisecond))
	if tc != nil {
		tconn := tls.Client(conn, tc)
		if err := tconn.Handshake(); err != nil {
			return err
		}
		conn = tconn
	}
	r := bufio.NewReader(conn)
	if pw := requirePass(extra); pw != "" {
		if _, err := fmt.Fprintf(conn, "*2\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n", len(pw), pw); err != nil {
			return err
		}
		if _, err := r.ReadString('\n'); err != nil {
			return err
		}
	}
	if _, err := conn.Write([]byte("*1\r\n$4\r\nPING\r\n")); err != nil {
		return err
	}
	line, err := r.ReadString('\n')
	if err != nil {
		return err
	}
	if line != "+PONG\r\n" {
		return fmt.Errorf("unexpected PING reply %q", line)
	}
	return nil
}

func findBinary() (string, error) {
	if p := os.Getenv("MP_REDIS_SERVER"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("MP_REDIS_SERVER=%s: %w", p, err)
		}
		return p, nil
	}
	if p, err := exec.LookPath("redis-server"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/bin/redis-server", "/usr/sbin/redis-server", "/usr/local/bin/redis-server"} {
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p, nil
		}
	}
	return "", errors.New("redis-server binary not found")
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// tail is the end of the server's log file, for error messages.
func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(no log)"
	}
	b = bytes.TrimSpace(b)
	if len(b) > 1000 {
		b = b[len(b)-1000:]
	}
	return string(b)
}

// WaitReady polls PING through c until it answers or d passes; for tests
// that restart a server and want their own client to be connected again.
func WaitReady(ctx context.Context, c redis.UniversalClient, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		pctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		err := c.Ping(pctx).Err()
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}
