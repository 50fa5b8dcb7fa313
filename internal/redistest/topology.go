package redistest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// Cluster is a Redis Cluster of real redis-server processes, masters only,
// the 16384 slots split evenly between them.
type Cluster struct {
	Nodes []*Server
}

// StartCluster runs a cluster of n masters (n ≥ 1) and waits until every
// node reports cluster_state:ok (bounded, ~10s).
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	if n < 1 {
		t.Fatalf("redistest: a cluster needs a node")
	}
	c := &Cluster{}
	for range n {
		c.Nodes = append(c.Nodes, Start(t,
			"--cluster-enabled", "yes",
			"--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", "2000",
		))
	}
	ctx := context.Background()
	const slots = 16384
	for i, s := range c.Nodes {
		lo, hi := i*slots/n, (i+1)*slots/n-1
		if err := s.Client().Do(ctx, "CLUSTER", "ADDSLOTSRANGE", lo, hi).Err(); err != nil {
			t.Fatalf("redistest: cluster addslotsrange on %s: %v", s.Addr(), err)
		}
	}
	for _, s := range c.Nodes[1:] {
		if err := c.Nodes[0].Client().Do(ctx, "CLUSTER", "MEET", "127.0.0.1", s.Port()).Err(); err != nil {
			t.Fatalf("redistest: cluster meet: %v", err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, s := range c.Nodes {
		for {
			info, err := s.Client().ClusterInfo(ctx).Result()
			if err == nil && strings.Contains(info, "cluster_state:ok") &&
				strings.Contains(info, fmt.Sprintf("cluster_known_nodes:%d\r", n)) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("redistest: cluster on %s not ready: %v %q", s.Addr(), err, info)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return c
}

// Addrs are the nodes' addresses.
func (c *Cluster) Addrs() []string {
	var a []string
	for _, s := range c.Nodes {
		a = append(a, s.Addr())
	}
	return a
}

// StartSentinel runs a redis-server in sentinel mode that monitors master
// under masterName (quorum 1, down-after 5s), and waits until it names the
// master's address. StartSentinelWith and StartSentinels tune it.
func StartSentinel(t testing.TB, masterName string, master *Server) *Server {
	t.Helper()
	return StartSentinelWith(t, masterName, master, SentinelOptions{})
}
