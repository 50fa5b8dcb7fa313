package redistest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestStartKillRestart(t *testing.T) {
	s := Start(t)
	ctx := context.Background()
	c := s.Client()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if got := c.Get(ctx, "k").Val(); got != "v" {
		t.Fatalf("get: %q", got)
	}
	addr := s.Addr()
	s.Kill()
	if err := ping(addr, nil); err == nil {
		t.Fatal("ping answered after Kill")
	}
	s.Kill() // twice is fine
	s.Restart(t)
	if s.Addr() != addr {
		t.Fatalf("restart moved: %s -> %s", addr, s.Addr())
	}
	if err := WaitReady(ctx, c, 3*time.Second); err != nil {
		t.Fatal(err)
	}
	if n := c.Exists(ctx, "k").Val(); n != 0 {
		t.Fatalf("data survived restart: exists=%d", n)
	}
	if s.URL() != "redis://"+addr+"/0" {
		t.Fatalf("url %s", s.URL())
	}
}

func TestStartWithArgs(t *testing.T) {
	s := Start(t, "--requirepass", "pw")
	c := redis.NewClient(&redis.Options{Addr: s.Addr(), MaxRetries: -1, DisableIdentity: true})
	defer c.Close()
	if err := c.Ping(context.Background()).Err(); err == nil {
		t.Fatal("ping without password succeeded")
	}
	// The helper's own client authenticates with --requirepass.
	if err := s.Client().Ping(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
}

func TestTwoServers(t *testing.T) {
	a, b := Start(t), Start(t)
	if a.Addr() == b.Addr() {
		t.Fatal("same address")
	}
}

func TestCluster(t *testing.T) {
	c := StartCluster(t, 3)
	ctx := context.Background()
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs()})
	defer cc.Close()
	for i := range 50 {
		k := fmt.Sprint("key", i)
		if err := cc.Set(ctx, k, i, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range c.Nodes {
		if n := s.Client().DBSize(ctx).Val(); n == 0 {
			t.Fatalf("node %s holds no key", s.Addr())
		}
	}
}

func TestSentinel(t *testing.T) {
	m := Start(t)
	s := StartSentinel(t, "mymaster", m)
	fc := redis.NewFailoverClient(&redis.FailoverOptions{MasterName: "mymaster", SentinelAddrs: []string{s.Addr()}})
	defer fc.Close()
	ctx := context.Background()
	if err := fc.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if got := m.Client().Get(ctx, "k").Val(); got != "v" {
		t.Fatalf("master holds %q", got)
	}
}

func TestMissingBinarySkips(t *testing.T) {
	t.Setenv("MP_REDIS_SERVER", "/nonexistent/redis-server")
	t.Setenv("MP_REQUIRE_REDIS", "")
	var sub *testing.T
	t.Run("start", func(t *testing.T) {
		sub = t
		Start(t)
		t.Error("Start returned without a binary")
	})
	if !sub.Skipped() {
		t.Fatal("Start did not skip without a binary")
	}
}

// TestMissingBinaryFailsWhenRequired runs itself in a child process with
// MP_REQUIRE_REDIS=1 and expects that child to fail.
func TestMissingBinaryFailsWhenRequired(t *testing.T) {
	if os.Getenv("REDISTEST_CHILD") == "1" {
		Start(t)
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestMissingBinaryFailsWhenRequired$", "-test.count=1")
	cmd.Env = append(os.Environ(), "REDISTEST_CHILD=1", "MP_REQUIRE_REDIS=1", "MP_REDIS_SERVER=/nonexistent/redis-server")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "MP_REQUIRE_REDIS=1") {
		t.Fatalf("child: err=%v\n%s", err, out)
	}
}

// A TLS server answers over TLS with the client certificate, and refuses a
// client without one and a plain-TCP client.
func TestStartTLS(t *testing.T) {
	certs := NewCerts(t)
	s := StartTLS(t, certs)
	ctx := context.Background()
	if err := s.Client().Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(s.URL(), "rediss://") {
		t.Fatalf("url %s", s.URL())
	}
	noCert := certs.ClientTLS()
	noCert.Certificates = nil
	for name, o := range map[string]*redis.Options{
		"no client certificate": {Addr: s.Addr(), TLSConfig: noCert},
		"plain TCP":             {Addr: s.Addr()},
	} {
		o.MaxRetries, o.DisableIdentity = -1, true
		c := redis.NewClient(o)
		err := c.Ping(ctx).Err()
		c.Close()
		if err == nil {
			t.Fatalf("%s: PING answered", name)
		}
		t.Logf("%s: %v", name, err)
	}
	s.Kill()
	s.Restart(t)
	if err := WaitReady(ctx, s.Client(), 3*time.Second); err != nil {
		t.Fatal(err)
	}
}
