package redistest

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// StartReplica runs a redis-server that replicates master
// (--replicaof 127.0.0.1 <port>) and waits until its link to the master is
// up and the initial sync is done (bounded, ~10s). Extra args go after the
// defaults. A replica that is Restarted replicates master again.
func StartReplica(t testing.TB, master *Server, args ...string) *Server {
	t.Helper()
	r := Start(t, append([]string{"--replicaof", "127.0.0.1", strconv.Itoa(master.Port())}, args...)...)
	ctx := context.Background()
	deadline := time.Now().Add(10 * time.Second)
	for {
		info, err := r.Client().Info(ctx, "replication").Result()
		if err == nil && strings.Contains(info, "master_link_status:up") &&
			strings.Contains(info, "master_sync_in_progress:0") {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("redistest: replica %s of %s not in sync: %v %q", r.Addr(), master.Addr(), err, info)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// SentinelOptions tunes a sentinel's view of the master it monitors; zero
// fields take StartSentinel's values (quorum 1, down-after 5s, Redis's
// default failover-timeout of 3 minutes).
type SentinelOptions struct {
	Quorum          int
	DownAfter       time.Duration
	FailoverTimeout time.Duration
	// Conf are more sentinel.conf lines, after the monitor line (e.g.
	// "sentinel auth-user mymaster mon", "sentinel auth-pass mymaster pw").
	Conf []string
	// Args go to the sentinel's command line after "--sentinel" (e.g.
	// "--requirepass", "pw", "--user", ...). The helpers authenticate to
	// the sentinel with the --requirepass given here.
	Args []string
}

func (o SentinelOptions) conf(masterName string, master *Server) string {
	if o.Quorum <= 0 {
		o.Quorum = 1
	}
	if o.DownAfter <= 0 {
		o.DownAfter = 5 * time.Second
	}
	var b strings.Builder
	fmt.Fprintf(&b, "sentinel monitor %s 127.0.0.1 %d %d\n", masterName, master.Port(), o.Quorum)
	fmt.Fprintf(&b, "sentinel down-after-milliseconds %s %d\n", masterName, o.DownAfter.Milliseconds())
	if o.FailoverTimeout > 0 {
		fmt.Fprintf(&b, "sentinel failover-timeout %s %d\n", masterName, o.FailoverTimeout.Milliseconds())
	}
	for _, l := range o.Conf {
		b.WriteString(l + "\n")
	}
	return b.String()
}

// StartSentinelWith is StartSentinel with options. The sentinel's config
// file is its own (Sentinel rewrites it).
func StartSentinelWith(t testing.TB, masterName string, master *Server, o SentinelOptions) *Server {
	t.Helper()
	conf := filepath.Join(t.TempDir(), "sentinel.conf")
	if err := os.WriteFile(conf, []byte(o.conf(masterName, master)), 0o600); err != nil {
		t.Fatalf("redistest: %v", err)
	}
	s := start(t, conf, append([]string{"--sentinel"}, o.Args...))
	sc := s.SentinelClient()
	defer sc.Close()
	deadline := time.Now().Add(startTimeout)
	for {
		addr, err := sc.GetMasterAddrByName(context.Background(), masterName).Result()
		if err == nil && len(addr) == 2 && addr[1] == fmt.Sprint(master.Port()) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("redistest: sentinel does not know %s: %v %v", masterName, addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// SentinelClient is a new client on a sentinel; the caller closes it.
func (s *Server) SentinelClient() *redis.SentinelClient {
	return redis.NewSentinelClient(&redis.Options{
		Addr:            s.Addr(),
		Password:        requirePass(s.extra),
		DialTimeout:     time.Second,
		ReadTimeout:     time.Second,
		WriteTimeout:    time.Second,
		MaxRetries:      -1,
		DisableIdentity: true,
	})
}

// Sentinels are sentinels watching one master under one name.
type Sentinels struct {
	MasterName string
	Nodes      []*Server
	dataPass   string // the data nodes' --requirepass, for WaitNewMaster
}

// StartSentinels runs n sentinels on master and waits (bounded, ~15s)
// until every one of them knows the n-1 others and the master's replicas
// (the replicas should be in sync before: StartReplica), so that a
// failover can be agreed on at once.
func StartSentinels(t testing.TB, masterName string, master *Server, n int, o SentinelOptions) *Sentinels {
	t.Helper()
	ss := &Sentinels{MasterName: masterName, dataPass: requirePass(master.extra)}
	for range n {
		ss.Nodes = append(ss.Nodes, StartSentinelWith(t, masterName, master, o))
	}
	ctx := context.Background()
	replicas := 0
	if info, err := master.Client().Info(ctx, "replication").Result(); err == nil {
		for _, l := range strings.Split(info, "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(l), "connected_slaves:"); ok {
				replicas, _ = strconv.Atoi(v)
			}
		}
	}
	// Sentinels find each other through hello messages on the master,
	// sent every 2s.
	deadline := time.Now().Add(15 * time.Second)
	for _, s := range ss.Nodes {
		sc := s.SentinelClient()
		for {
			others, err1 := sc.Sentinels(ctx, masterName).Result()
			reps, err2 := sc.Replicas(ctx, masterName).Result()
			up := 0
			for _, r := range reps {
				if r["flags"] == "slave" {
					up++
				}
			}
			if err1 == nil && err2 == nil && len(others) == n-1 && up == replicas {
				break
			}
			if time.Now().After(deadline) {
				sc.Close()
				t.Fatalf("redistest: sentinel %s knows %d other sentinels (want %d) and %d replicas up (want %d): %v %v",
					s.Addr(), len(others), n-1, up, replicas, err1, err2)
			}
			time.Sleep(100 * time.Millisecond)
		}
		sc.Close()
	}
	return ss
}

// Addrs are the sentinels' addresses.
func (ss *Sentinels) Addrs() []string {
	var a []string
	for _, s := range ss.Nodes {
		a = append(a, s.Addr())
	}
	return a
}

// MasterAddrs asks every sentinel for the master's address; a sentinel
// that does not answer gives "".
func (ss *Sentinels) MasterAddrs(ctx context.Context) []string {
	out := make([]string, len(ss.Nodes))
	for i, s := range ss.Nodes {
		sc := s.SentinelClient()
		if a, err := sc.GetMasterAddrByName(ctx, ss.MasterName).Result(); err == nil && len(a) == 2 {
			out[i] = net.JoinHostPort(a[0], a[1])
		}
		sc.Close()
	}
	return out
}

// WaitNewMaster waits until every sentinel names a master other than old
// (and all the same one), and that server answers as a master; it returns
// its address, or fails the test after d.
func (ss *Sentinels) WaitNewMaster(t testing.TB, old string, d time.Duration) string {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(d)
	var addrs []string
	for {
		addrs = ss.MasterAddrs(ctx)
		if a := addrs[0]; a != "" && a != old && allSame(addrs) && isMaster(ctx, a, ss.dataPass) {
			return a
		}
		if time.Now().After(deadline) {
			t.Fatalf("redistest: no new master for %s within %v: sentinels say %v (old %s)", ss.MasterName, d, addrs, old)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func allSame(a []string) bool {
	for _, x := range a {
		if x != a[0] {
			return false
		}
	}
	return true
}

func isMaster(ctx context.Context, addr, password string) bool {
	c := redis.NewClient(&redis.Options{Addr: addr, Password: password, DialTimeout: time.Second, ReadTimeout: time.Second, MaxRetries: -1, DisableIdentity: true})
	defer c.Close()
	info, err := c.Info(ctx, "replication").Result()
	return err == nil && strings.Contains(info, "role:master")
}
