package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/redistest"
	"go.uber.org/zap/zapcore"
)

// storeACL is the smallest ACL rule the store's Redis user needs (the
// README shows it), for the default key prefix mp:. Every command the
// store sends is here, those its scripts call included; storeClusterACL
// adds what a Cluster client needs.
var (
	storeACL = []string{"resetkeys", "~mp:*", "resetchannels", "-@all",
		"+get", "+set", "+del", "+hmget", "+hset", "+hdel", "+pexpire", "+persist", "+pttl",
		"+eval", "+evalsha", "+ping"}
	storeClusterACL = []string{"+cluster|slots", "+command", "+asking"}
	// sentinelACL is the rule of the store's user on the sentinels.
	sentinelACL = []string{"-@all", "+sentinel|get-master-addr-by-name", "+sentinel|sentinels",
		"+subscribe", "+ping", "resetchannels", "&+switch-master", "&+replica-reconf-done"}
)

// aclUser is a redis-server --user argument list.
func aclUser(name, pass string, rules ...string) []string {
	return append([]string{"--user", name, "on", ">" + pass}, rules...)
}

// exerciseStore sends every command the store has through o (each
// operation, with and without expiry, with and without a KeyCodec),
// failing the test on any error or on a warning from the probe.
func exerciseStore(t *testing.T, o RedisOptions) {
	t.Helper()
	withCodec := o
	withCodec.KeyCodec = &sealCodec{}
	sealed, logs, err := openProbed(t, withCodec)
	if err != nil {
		t.Fatal(err)
	}
	if w := logs.FilterLevelExact(zapcore.WarnLevel).All(); len(w) != 0 {
		t.Fatalf("the probe warned: %s %v", w[0].Message, w[0].ContextMap())
	}
	plain := openRedis(t, o)
	step := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	_, err = sealed.Save(bg, ref("acl1"), Session{OpenID: "oACL", UnionID: "uACL", SessionKey: sessionKey(1)}, time.Hour)
	step("Save with a codec and a TTL", err)
	// Without the codec the key's fingerprint field goes (HDEL); without a
	// TTL the record persists (PERSIST).
	got, err := plain.Save(bg, ref("acl1"), Session{OpenID: "oACL", SessionKey: sessionKey(2)}, 0)
	step("Save without a codec nor a TTL", err)
	if got.SessionKey != sessionKey(2) || got.UnionID != "uACL" {
		t.Fatalf("Save: %+v", got)
	}
	got, err = plain.Lookup(bg, ref("acl1"))
	step("Lookup", err)
	if got.SessionKey != sessionKey(2) {
		t.Fatalf("Lookup: %+v", got)
	}
	step("Bind", plain.Bind(bg, ref("acl2"), "oACL", 0))
	_, err = plain.Lookup(bg, ref("acl2"))
	step("Lookup after Bind", err)
	// Issued sessions: LookupTTL (PTTL), Touch (PEXPIRE, the extend
	// script's PTTL), Unbind (DEL).
	step("Bind with a TTL", plain.Bind(bg, ref("acl3"), "oACL", time.Minute))
	_, _, err = plain.LookupTTL(bg, ref("acl3"))
	step("LookupTTL", err)
	step("Touch", plain.Touch(bg, ref("acl3"), "oACL", time.Hour))
	step("Unbind", plain.Unbind(bg, ref("acl3")))
	for _, ttl := range []time.Duration{0, time.Minute} {
		c := ref(fmt.Sprint("acl-claim", ttl))
		won, _, err := plain.Claim(bg, c, ttl)
		step("Claim", err)
		again, _, err2 := plain.Claim(bg, c, ttl)
		step("Claim again", err2)
		step("Fail", plain.Fail(bg, c, []byte("bad code"), time.Minute))
		_, failure, err3 := plain.Claim(bg, c, ttl)
		step("Claim after Fail", err3)
		if !won || again || string(failure) != "bad code" {
			t.Fatalf("Claim (ttl %v): %v %v %q", ttl, won, again, failure)
		}
		name := fmt.Sprint("acl-value", ttl)
		step("Set", plain.Set(bg, name, []byte("v"), ttl))
		v, err := plain.Get(bg, name)
		step("Get", err)
		if string(v) != "v" {
			t.Fatalf("Get: %q", v)
		}
		unlock, ok, err := plain.Lock(bg, name, ttl)
		step("Lock", err)
		_, ok2, err2 := plain.Lock(bg, name, ttl)
		step("Lock again", err2)
		unlock()
		unlock2, ok3, err3 := plain.Lock(bg, name, ttl)
		step("Lock after unlock", err3)
		unlock2()
		if !ok || ok2 || !ok3 {
			t.Fatalf("Lock (ttl %v): %v %v %v", ttl, ok, ok2, ok3)
		}
	}
}

// noACLDenial fails the test if a server logged an ACL denial of a
// command, key or channel (commands whose errors the store ignores, such
// as the unlock script, included). Failed logins are not counted.
func noACLDenial(t *testing.T, servers ...*redistest.Server) {
	t.Helper()
	for _, s := range servers {
		log, err := s.Client().Do(bg, "ACL", "LOG").Slice()
		if err != nil {
			t.Fatalf("ACL LOG on %s: %v", s.Addr(), err)
		}
		for _, e := range log {
			if m, ok := e.(map[any]any); !ok || m["reason"] != "auth" {
				t.Fatalf("%s denied: %v", s.Addr(), e)
			}
		}
	}
}

// A Redis user with only storeACL (a password, keys under mp:, a listed
// set of commands) runs every store operation; without one of its
// commands, or with other keys, the store fails with NOPERM.
func TestRedisACLUser(t *testing.T) {
	args := append([]string{"--requirepass", "admin-pw"}, aclUser("mp", "mp-pw", storeACL...)...)
	args = append(args, aclUser("mp-noeval", "pw2", append(storeACL, "-eval", "-evalsha")...)...)
	args = append(args, aclUser("mp-other", "pw3", "resetkeys", "~other:*", "+@all")...)
	srv := redistest.Start(t, args...)
	exerciseStore(t, RedisOptions{URL: srv.URL(), Username: "mp", Password: "mp-pw", Prefix: "mp:" + newPrefix(t)})
	noACLDenial(t, srv)
	// The URL form carries the user too.
	exerciseStore(t, RedisOptions{URL: "redis://mp:mp-pw@" + srv.Addr() + "/0", Prefix: "mp:" + newPrefix(t)})
	noACLDenial(t, srv)

	for _, o := range []RedisOptions{
		{URL: srv.URL(), Username: "mp-noeval", Password: "pw2", Prefix: "mp:" + newPrefix(t)},
		{URL: srv.URL(), Username: "mp-other", Password: "pw3", Prefix: "mp:" + newPrefix(t)},
	} {
		r := openRedis(t, o)
		_, err := r.Save(bg, ref("x"), Session{OpenID: "o", SessionKey: sessionKey(1)}, time.Minute)
		if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "NOPERM") {
			t.Fatalf("user %s: %v", o.Username, err)
		}
	}
	// A wrong password: unavailable, and the probe warns without failing.
	r, logs, err := openProbed(t, RedisOptions{URL: srv.URL(), Username: "mp", Password: "wrong", Prefix: "mp:x:"})
	if err != nil {
		t.Fatalf("a wrong password failed the probe: %v", err)
	}
	if w := logs.FilterLevelExact(zapcore.WarnLevel).All(); len(w) != 1 || strings.Contains(fmt.Sprint(w[0].ContextMap()), "wrong") {
		t.Fatalf("warnings %v", w)
	}
	if _, err := r.Lookup(bg, ref("x")); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("wrong password: %v", err)
	}
}

// The same on a Cluster whose nodes have the user, with storeClusterACL.
func TestRedisACLUserCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	args := append([]string{"--requirepass", "admin-pw"}, aclUser("mp", "mp-pw", append(storeACL, storeClusterACL...)...)...)
	c := redistest.StartClusterWith(t, redistest.ClusterOptions{Masters: 3, Args: args})
	exerciseStore(t, RedisOptions{Addrs: c.Addrs(), Username: "mp", Password: "mp-pw", Prefix: "mp:" + newPrefix(t)})
	noACLDenial(t, c.Nodes...)
}

// Sentinel with its own password and ACL user, data nodes with ACL users
// (the store's, with storeACL; Sentinel's monitoring user, with the rule
// Redis documents): the store works through the sentinel with
// SentinelUsername/SentinelPassword and Username/Password, and follows a
// failover; without the sentinel's credentials, or with wrong ones, it is
// unavailable (the probe warns, the load goes on).
func TestRedisSentinelACL(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	data := append([]string{"--requirepass", "admin-pw", "--masterauth", "admin-pw"}, aclUser("mp", "mp-pw", storeACL...)...)
	data = append(data, aclUser("sentinel-mon", "mon-pw", "allchannels", "+multi", "+slaveof", "+ping", "+exec",
		"+subscribe", "+config|rewrite", "+role", "+publish", "+info", "+client|setname", "+client|kill", "+script|kill")...)
	m := redistest.Start(t, data...)
	replica := redistest.StartReplica(t, m, data...)
	sentinelArgs := append([]string{"--requirepass", "sentinel-admin-pw"},
		aclUser("mp-sentinel", "mp-sentinel-pw", sentinelACL...)...)
	ss := redistest.StartSentinels(t, "mymaster", m, 1, redistest.SentinelOptions{
		Quorum: 1, DownAfter: time.Second, FailoverTimeout: 3 * time.Second,
		Conf: []string{"sentinel auth-user mymaster sentinel-mon", "sentinel auth-pass mymaster mon-pw"},
		Args: sentinelArgs,
	})
	o := RedisOptions{Addrs: ss.Addrs(), MasterName: "mymaster", Username: "mp", Password: "mp-pw",
		SentinelUsername: "mp-sentinel", SentinelPassword: "mp-sentinel-pw", Prefix: "mp:" + newPrefix(t)}
	exerciseStore(t, o)
	noACLDenial(t, m)
	noACLDenial(t, ss.Nodes...)

	// Without the sentinel's credentials, or with a wrong password.
	for name, bad := range map[string]RedisOptions{
		"no sentinel credentials": {Addrs: o.Addrs, MasterName: o.MasterName, Username: o.Username, Password: o.Password, Prefix: o.Prefix},
		"wrong sentinel password": {Addrs: o.Addrs, MasterName: o.MasterName, Username: o.Username, Password: o.Password,
			SentinelUsername: o.SentinelUsername, SentinelPassword: "wrong-sentinel-pw", Prefix: o.Prefix},
	} {
		r, logs, err := openProbed(t, bad)
		if err != nil {
			t.Fatalf("%s: the probe failed the load: %v", name, err)
		}
		if w := logs.FilterLevelExact(zapcore.WarnLevel).All(); len(w) != 1 {
			t.Fatalf("%s: warnings %v", name, w)
		}
		_, err = r.Lookup(bg, ref("acl1"))
		if !errors.Is(err, ErrUnavailable) || strings.Contains(err.Error(), "wrong-sentinel-pw") {
			t.Fatalf("%s: %v", name, err)
		}
		t.Logf("%s: %v", name, err)
	}

	// A failover: sessions replicated before the master dies are read
	// through the new master the sentinel names.
	r := openRedis(t, o)
	h := harness{s: r}
	const n = 20
	for i := range n {
		mustSave(t, h, ref(fmt.Sprint("sacl", i)), Session{OpenID: fmt.Sprint("oS", i), SessionKey: sessionKey(i)}, time.Hour)
	}
	deadline := time.Now().Add(5 * time.Second)
	for replica.Client().DBSize(bg).Val() < m.Client().DBSize(bg).Val() {
		if time.Now().After(deadline) {
			t.Fatal("the replica did not catch up")
		}
		time.Sleep(20 * time.Millisecond)
	}
	old := m.Addr()
	m.Kill()
	killed := time.Now()
	if nm := ss.WaitNewMaster(t, old, 20*time.Second); nm != replica.Addr() {
		t.Fatalf("new master %s, want the replica %s", nm, replica.Addr())
	}
	failedOver := time.Since(killed)
	ctx, cancel := context.WithTimeout(bg, 10*time.Second)
	defer cancel()
	for {
		_, err := r.Lookup(ctx, ref("sacl0"))
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("the store does not follow the failover: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("sentinel named the new master %v after the kill; the store read from it %v after the kill",
		failedOver.Round(time.Millisecond), time.Since(killed).Round(time.Millisecond))
	for i := range n {
		if got := mustLookup(t, h, ref(fmt.Sprint("sacl", i))); got.SessionKey != sessionKey(i) {
			t.Fatalf("session %d after the failover: %+v", i, got)
		}
	}
	mustSave(t, h, ref("sacl-after"), Session{OpenID: "oAfter", SessionKey: sessionKey(99)}, time.Hour)
	noACLDenial(t, replica)
	noACLDenial(t, ss.Nodes...)
}
