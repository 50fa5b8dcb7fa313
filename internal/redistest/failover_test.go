package redistest

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestSentinelFailover(t *testing.T) {
	m := Start(t)
	r1, r2 := StartReplica(t, m), StartReplica(t, m)
	ss := StartSentinels(t, "mymaster", m, 3, SentinelOptions{Quorum: 2, DownAfter: time.Second, FailoverTimeout: 3 * time.Second})
	ctx := context.Background()
	if err := m.Client().Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := m.Client().Do(ctx, "WAIT", 2, 2000).Int(); err != nil || n != 2 {
		t.Fatalf("WAIT: %d %v", n, err)
	}
	old := m.Addr()
	m.Kill()
	start := time.Now()
	nm := ss.WaitNewMaster(t, old, 20*time.Second)
	t.Logf("new master %s after %v", nm, time.Since(start))
	if nm != r1.Addr() && nm != r2.Addr() {
		t.Fatalf("new master %s is neither replica", nm)
	}
	fc := redis.NewFailoverClient(&redis.FailoverOptions{MasterName: "mymaster", SentinelAddrs: ss.Addrs()})
	defer fc.Close()
	if got := fc.Get(ctx, "k").Val(); got != "v" {
		t.Fatalf("after failover: %q", got)
	}
	if err := fc.Set(ctx, "k2", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
}
