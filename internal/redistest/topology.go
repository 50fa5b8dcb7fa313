package redistest

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Cluster is a Redis Cluster of real redis-server processes, the 16384
// slots split evenly between its masters.
type Cluster struct {
	// Nodes are every node: the masters first, then the replicas.
	Nodes []*Server
	// Masters hold the slots; Replicas[i] replicate Masters[i].
	Masters  []*Server
	Replicas [][]*Server
}

// ClusterOptions shape a cluster; zero fields take StartCluster's values.
type ClusterOptions struct {
	Masters           int           // default 3
	ReplicasPerMaster int           // default 0
	NodeTimeout       time.Duration // cluster-node-timeout, default 2s
	// Args go to every node after the cluster's (e.g. "--requirepass",
	// "pw", "--masterauth", "pw", "--user", ...).
	Args []string
}

// StartCluster runs a cluster of n masters (n ≥ 1) and waits until every
// node reports cluster_state:ok (bounded, ~10s).
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	if n < 1 {
		t.Fatalf("redistest: a cluster needs a node")
	}
	return StartClusterWith(t, ClusterOptions{Masters: n})
}

// StartClusterWith runs a cluster with replicas: slots are assigned to the
// masters (CLUSTER ADDSLOTSRANGE), the nodes meet, and each replica
// replicates its master (CLUSTER REPLICATE). It waits (bounded, ~20s)
// until every node reports cluster_state:ok and knows every other node,
// every replica is in sync, and every node sees every replica as one.
func StartClusterWith(t testing.TB, o ClusterOptions) *Cluster {
	t.Helper()
	if o.Masters <= 0 {
		o.Masters = 3
	}
	if o.NodeTimeout <= 0 {
		o.NodeTimeout = 2 * time.Second
	}
	args := []string{
		"--cluster-enabled", "yes",
		"--cluster-config-file", "nodes.conf",
		"--cluster-node-timeout", fmt.Sprint(o.NodeTimeout.Milliseconds()),
	}
	args = append(args, o.Args...)
	c := &Cluster{}
	for range o.Masters {
		c.Masters = append(c.Masters, Start(t, args...))
	}
	c.Nodes = append(c.Nodes, c.Masters...)
	for range c.Masters {
		var rs []*Server
		for range o.ReplicasPerMaster {
			r := Start(t, args...)
			rs = append(rs, r)
			c.Nodes = append(c.Nodes, r)
		}
		c.Replicas = append(c.Replicas, rs)
	}
	ctx := context.Background()
	n := o.Masters
	const slots = 16384
	for i, s := range c.Masters {
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
	deadline := time.Now().Add(20 * time.Second)
	// A replica can replicate a master it knows of.
	for i, m := range c.Masters {
		id, err := m.Client().Do(ctx, "CLUSTER", "MYID").Text()
		if err != nil {
			t.Fatalf("redistest: cluster myid on %s: %v", m.Addr(), err)
		}
		for _, r := range c.Replicas[i] {
			for {
				err := r.Client().Do(ctx, "CLUSTER", "REPLICATE", id).Err()
				if err == nil {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("redistest: cluster replicate %s to %s: %v", r.Addr(), m.Addr(), err)
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
	}
	replicas := o.Masters * o.ReplicasPerMaster
	for _, s := range c.Nodes {
		for {
			info, err := s.Client().ClusterInfo(ctx).Result()
			nodes, err2 := s.Client().ClusterNodes(ctx).Result()
			if err == nil && err2 == nil && strings.Contains(info, "cluster_state:ok") &&
				strings.Contains(info, fmt.Sprintf("cluster_known_nodes:%d\r", len(c.Nodes))) &&
				strings.Count(nodes, "slave ") == replicas {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("redistest: cluster on %s not ready: %v %v %q %q", s.Addr(), err, err2, info, nodes)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	for _, rs := range c.Replicas {
		for _, r := range rs {
			for {
				info, err := r.Client().Info(ctx, "replication").Result()
				if err == nil && strings.Contains(info, "master_link_status:up") &&
					strings.Contains(info, "master_sync_in_progress:0") {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("redistest: cluster replica %s not in sync: %v %q", r.Addr(), err, info)
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
	}
	return c
}

// WaitReplicated waits until every replica has processed everything its
// master had written when it was called (their replication offsets), or
// fails the test after d. What was written before is then on the replicas.
func (c *Cluster) WaitReplicated(t testing.TB, d time.Duration) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(d)
	for i, m := range c.Masters {
		want, err := replOffset(ctx, m)
		if err != nil {
			t.Fatalf("redistest: master %s offset: %v", m.Addr(), err)
		}
		for _, r := range c.Replicas[i] {
			for {
				got, err := replOffset(ctx, r)
				if err == nil && got >= want {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("redistest: replica %s at offset %d, master %s at %d: %v", r.Addr(), got, m.Addr(), want, err)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
	}
}

// replOffset is a server's master_repl_offset: on a master what it has
// written to its replication stream, on a replica what it has processed.
func replOffset(ctx context.Context, s *Server) (int64, error) {
	info, err := s.Client().Info(ctx, "replication").Result()
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "master_repl_offset:"); ok {
			return strconv.ParseInt(v, 10, 64)
		}
	}
	return 0, fmt.Errorf("no master_repl_offset in %q", info)
}

// WaitPromoted waits until one of the replicas of Masters[i] (killed, say)
// reports role:master and every live node reports cluster_state:ok; it
// returns the new master, or fails the test after d.
func (c *Cluster) WaitPromoted(t testing.TB, i int, d time.Duration) *Server {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(d)
	for {
		for _, r := range c.Replicas[i] {
			info, err := r.Client().Info(ctx, "replication").Result()
			if err == nil && strings.Contains(info, "role:master") && c.allOK(ctx, c.Masters[i]) {
				return r
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("redistest: no replica of %s promoted within %v", c.Masters[i].Addr(), d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// allOK: every node but skip answers cluster_state:ok.
func (c *Cluster) allOK(ctx context.Context, skip *Server) bool {
	for _, s := range c.Nodes {
		if s == skip {
			continue
		}
		info, err := s.Client().ClusterInfo(ctx).Result()
		if err != nil || !strings.Contains(info, "cluster_state:ok") {
			return false
		}
	}
	return true
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
