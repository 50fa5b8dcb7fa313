package redistest

import (
	"context"
	"fmt"
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

func TestClusterReplicaPromoted(t *testing.T) {
	c := StartClusterWith(t, ClusterOptions{Masters: 3, ReplicasPerMaster: 1, NodeTimeout: time.Second})
	if len(c.Nodes) != 6 || len(c.Replicas[0]) != 1 {
		t.Fatalf("%d nodes, replicas %v", len(c.Nodes), c.Replicas)
	}
	ctx := context.Background()
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs()})
	defer cc.Close()
	for i := range 30 {
		if err := cc.Set(ctx, fmt.Sprint("key", i), i, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	c.WaitReplicated(t, 5*time.Second)
	for _, rs := range c.Replicas {
		if n := rs[0].Client().DBSize(ctx).Val(); n == 0 {
			t.Fatalf("replica %s holds no key", rs[0].Addr())
		}
	}
	c.Masters[0].Kill()
	start := time.Now()
	nm := c.WaitPromoted(t, 0, 20*time.Second)
	t.Logf("replica %s promoted after %v", nm.Addr(), time.Since(start))
	if nm != c.Replicas[0][0] {
		t.Fatalf("promoted %s", nm.Addr())
	}
	// A new client reads the new slot map (an old one keeps its map until
	// it reloads it).
	cc2 := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs()})
	defer cc2.Close()
	for i := range 30 {
		if got, err := cc2.Get(ctx, fmt.Sprint("key", i)).Int(); err != nil || got != i {
			t.Fatalf("key%d after failover: %d %v", i, got, err)
		}
	}
}
