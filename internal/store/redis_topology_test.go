package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/redistest"
	"github.com/redis/go-redis/v9"
)

// A Cluster of 3 masters and 3 replicas (cluster-node-timeout 1.5s); 300
// sessions are saved and replicated (each replica's replication offset has
// reached its master's), then one master is killed (SIGKILL) while a
// bounded load of Save and Lookup runs. Every error during the failover is
// ErrUnavailable; a session saved before the kill is never "not found" nor
// wrong; the store works again within 30s of the kill; afterwards every
// session saved before the kill is there, through the promoted replica.
// The errors, the promotion and the recovery times are logged.
func TestRedisClusterMasterKilledUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	c := redistest.StartClusterWith(t, redistest.ClusterOptions{Masters: 3, ReplicasPerMaster: 1, NodeTimeout: 1500 * time.Millisecond})
	prefix := newPrefix(t)
	r := openRedis(t, RedisOptions{Addrs: c.Addrs(), Prefix: prefix})
	cc, ok := r.Client().(*redis.ClusterClient)
	if !ok {
		t.Fatalf("client %T, want a cluster client", r.Client())
	}
	h := harness{s: r}

	type saved struct {
		ref string
		s   Session
	}
	const nPre = 300
	pre := make([]saved, nPre)
	for i := range pre {
		pre[i] = saved{ref(fmt.Sprint("pre", i)), Session{OpenID: fmt.Sprint("oPre", i), SessionKey: sessionKey(i)}}
		mustSave(t, h, pre[i].ref, pre[i].s, time.Hour)
	}
	c.WaitReplicated(t, 5*time.Second)
	victim := c.Masters[0]
	// The sessions whose ref lives on the victim: their lookups go there.
	var onVictim []saved
	for _, p := range pre {
		m, err := cc.MasterForKey(bg, r.refKey(p.ref))
		if err != nil {
			t.Fatal(err)
		}
		if m.Options().Addr == victim.Addr() {
			onVictim = append(onVictim, p)
		}
	}
	if len(onVictim) == 0 {
		t.Fatal("no session lives on the victim")
	}

	// The load: 4 workers, at most 40000 operations and 30s, stopped a
	// second after the store is seen working again.
	const (
		workers = 4
		maxOps  = 40000
		bound   = 30 * time.Second
	)
	var (
		mu                sync.Mutex
		opsN, errN        atomic.Int64
		firstErr, lastErr time.Time
		errKinds          = map[string]int{}
		bad               []string // wrong answers for sessions saved before the kill
		acked             []saved  // saves acknowledged during the load
	)
	stop := make(chan struct{})
	start := time.Now()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				i := opsN.Add(1)
				if i > maxOps || time.Since(start) > bound {
					return
				}
				var err error
				if i%2 == 0 {
					p := saved{ref(fmt.Sprint("load", w, "-", i)), Session{OpenID: fmt.Sprint("oLoad", i), SessionKey: sessionKey(int(i))}}
					if _, err = r.Save(bg, p.ref, p.s, time.Hour); err == nil {
						mu.Lock()
						acked = append(acked, p)
						mu.Unlock()
					}
				} else {
					p := onVictim[int(i/2)%len(onVictim)]
					if i%4 == 3 {
						p = pre[int(i/4)%len(pre)]
					}
					var got Session
					got, err = r.Lookup(bg, p.ref)
					if err == nil && (got.OpenID != p.s.OpenID || got.SessionKey != p.s.SessionKey) {
						mu.Lock()
						bad = append(bad, fmt.Sprintf("lookup of a session saved before the kill gave %q", got.OpenID))
						mu.Unlock()
					}
					if errors.Is(err, ErrNotFound) {
						mu.Lock()
						bad = append(bad, "a session saved before the kill was not found: "+err.Error())
						mu.Unlock()
					}
				}
				if err != nil {
					now := time.Now()
					errN.Add(1)
					mu.Lock()
					if firstErr.IsZero() {
						firstErr = now
					}
					lastErr = now
					kind := err.Error()
					if len(kind) > 90 {
						kind = kind[:90]
					}
					errKinds[kind]++
					if !errors.Is(err, ErrUnavailable) && !errors.Is(err, ErrNotFound) {
						bad = append(bad, "an error that is not ErrUnavailable: "+err.Error())
					}
					mu.Unlock()
				}
			}
		}()
	}
	stopLoad := sync.OnceFunc(func() {
		close(stop)
		wg.Wait()
	})
	defer stopLoad()

	time.Sleep(300 * time.Millisecond)
	opsAtKill := opsN.Load()
	victim.Kill()
	killedAt := time.Now()
	promoted := c.WaitPromoted(t, 0, bound)
	promotedAfter := time.Since(killedAt)

	// Recovered: a session on the victim's slots reads back and is saved
	// again through the store.
	probe := onVictim[0]
	var recoveredAfter time.Duration
	for {
		_, err := r.Save(bg, probe.ref, probe.s, time.Hour)
		if err == nil {
			var got Session
			got, err = r.Lookup(bg, probe.ref)
			if err == nil && got.SessionKey == probe.s.SessionKey {
				recoveredAfter = time.Since(killedAt)
				break
			}
		}
		if time.Since(killedAt) > bound {
			t.Fatalf("the store still fails %v after the kill: %v", bound, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(time.Second) // load on the recovered cluster
	stopLoad()
	ops := min(opsN.Load(), maxOps)

	mu.Lock()
	defer mu.Unlock()
	for i, b := range bad {
		if i == 10 {
			t.Errorf("... %d more", len(bad)-10)
			break
		}
		t.Error(b)
	}
	t.Logf("killed master %s after %d operations; replica %s promoted %v after the kill; the store worked again %v after the kill",
		victim.Addr(), opsAtKill, promoted.Addr(), promotedAfter.Round(time.Millisecond), recoveredAfter.Round(time.Millisecond))
	if errN.Load() > 0 {
		t.Logf("%d of %d operations failed, from %v to %v after the kill:", errN.Load(), ops,
			firstErr.Sub(killedAt).Round(time.Millisecond), lastErr.Sub(killedAt).Round(time.Millisecond))
		for k, n := range errKinds {
			t.Logf("  %5d × %s", n, k)
		}
	} else {
		t.Logf("none of %d operations failed", ops)
	}

	// Every session saved before the kill is there.
	for _, p := range pre {
		got, err := r.Lookup(bg, p.ref)
		if err != nil || got.SessionKey != p.s.SessionKey || got.OpenID != p.s.OpenID {
			t.Fatalf("session %s saved before the kill: %+v %v", p.s.OpenID, got.OpenID, err)
		}
	}
	// Acknowledged saves of the load may be lost if the master died before
	// its replica got them (replication is asynchronous): counted, not
	// asserted.
	lost := 0
	for _, p := range acked {
		if _, err := r.Lookup(bg, p.ref); err != nil {
			if !errors.Is(err, ErrNotFound) {
				t.Fatalf("lookup after recovery: %v", err)
			}
			lost++
		}
	}
	t.Logf("%d saves acknowledged during the load, %d of them lost with the killed master (asynchronous replication)", len(acked), lost)
	// New sessions work on every slot, the promoted master's included.
	for i := range 30 {
		mustSave(t, h, ref(fmt.Sprint("after", i)), Session{OpenID: fmt.Sprint("oAfter", i), SessionKey: sessionKey(i)}, time.Hour)
		mustLookup(t, h, ref(fmt.Sprint("after", i)))
	}
	if n := promoted.Client().DBSize(context.Background()).Val(); n == 0 {
		t.Fatal("the promoted replica holds no key")
	}
}
