package store

import (
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/redistest"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap/zaptest"
)

var prefixN atomic.Int64

// newPrefix gives each store under test its own namespace on a shared
// server.
func newPrefix(t *testing.T) string {
	return fmt.Sprintf("mp:test%d:wx%d:", prefixN.Add(1), time.Now().UnixNano()%1000)
}

func openRedis(t *testing.T, o RedisOptions) *Redis {
	t.Helper()
	r, err := OpenRedis(o, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func TestRedisConformance(t *testing.T) {
	srv := redistest.Start(t)
	runConformance(t, func(t *testing.T) harness {
		r := openRedis(t, RedisOptions{URL: srv.URL(), Prefix: newPrefix(t)})
		return harness{s: r, ttl: 1500 * time.Millisecond, pass: time.Sleep}
	})
}

// TestRedisClusterConformance runs the suite on a real 3-master Cluster:
// the single-key scripts and cross-slot pipelines must work there.
func TestRedisClusterConformance(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	c := redistest.StartCluster(t, 3)
	runConformance(t, func(t *testing.T) harness {
		r := openRedis(t, RedisOptions{Addrs: c.Addrs(), Prefix: newPrefix(t), KeyCodec: &sealCodec{}})
		return harness{s: r, ttl: 1500 * time.Millisecond, pass: time.Sleep}
	})
	// The keys did spread over the nodes.
	for _, n := range c.Nodes {
		if n.Client().DBSize(bg).Val() == 0 {
			t.Errorf("node %s holds no key", n.Addr())
		}
	}
}

// TestRedisSentinel runs the suite through a real sentinel.
func TestRedisSentinel(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	m := redistest.Start(t, "--requirepass", "pw")
	s := redistest.StartSentinel(t, "mymaster", m)
	runConformance(t, func(t *testing.T) harness {
		r := openRedis(t, RedisOptions{Addrs: []string{s.Addr()}, MasterName: "mymaster", Password: "pw", DB: 2, Prefix: newPrefix(t)})
		return harness{s: r, ttl: 1500 * time.Millisecond, pass: time.Sleep}
	})
	c := redis.NewClient(&redis.Options{Addr: m.Addr(), Password: "pw", DB: 2})
	defer c.Close()
	if c.DBSize(bg).Val() == 0 {
		t.Fatal("the master's db 2 holds no key")
	}
}

// sealCodec is a randomized KeyCodec: like real encryption, sealing the
// same key twice gives different text.
type sealCodec struct{ n atomic.Int64 }

func (c *sealCodec) Seal(plain string) (string, error) {
	return fmt.Sprintf("sealed.%d.%s", c.n.Add(1), base64.StdEncoding.EncodeToString([]byte(plain))), nil
}

func (c *sealCodec) Open(stored string) (string, error) {
	parts := strings.SplitN(stored, ".", 3)
	if len(parts) != 3 || parts[0] != "sealed" {
		return "", errors.New("not sealed")
	}
	b, err := base64.StdEncoding.DecodeString(parts[2])
	return string(b), err
}

func TestRedisConformanceWithKeyCodec(t *testing.T) {
	srv := redistest.Start(t)
	runConformance(t, func(t *testing.T) harness {
		r := openRedis(t, RedisOptions{URL: srv.URL(), Prefix: newPrefix(t), KeyCodec: &sealCodec{}})
		return harness{s: r, ttl: 1500 * time.Millisecond, pass: time.Sleep}
	})
}

func TestRedisKeyCodecAtRest(t *testing.T) {
	srv := redistest.Start(t)
	prefix := newPrefix(t)
	r := openRedis(t, RedisOptions{URL: srv.URL(), Prefix: prefix, KeyCodec: &sealCodec{}})
	mustSave(t, harness{s: r}, ref("c1"), Session{OpenID: "oK", SessionKey: sessionKey(1)}, time.Hour)
	mustSave(t, harness{s: r}, ref("c2"), Session{OpenID: "oK", SessionKey: sessionKey(2)}, time.Hour)
	h := srv.Client().HGetAll(bg, prefix+"u:oK").Val()
	for f, v := range h {
		if strings.Contains(v, sessionKey(1)) || strings.Contains(v, sessionKey(2)) {
			t.Fatalf("field %s holds a plain session key: %q", f, v)
		}
	}
	if !strings.HasPrefix(h["sk"], "sealed.") || !strings.HasPrefix(h["psk"], "sealed.") {
		t.Fatalf("keys not sealed: %v", h)
	}
	// A store without the codec cannot open them: the session is lost,
	// not garbage.
	plain := openRedis(t, RedisOptions{URL: srv.URL(), Prefix: prefix})
	if got := mustLookup(t, harness{s: plain}, ref("c1")); got.SessionKey != h["sk"] {
		t.Fatalf("identity codec: %+v", got)
	}
	if err := srv.Client().HSet(bg, prefix+"u:oK", "sk", "garbage").Err(); err != nil {
		t.Fatal(err)
	}
	_, err := r.Lookup(bg, ref("c1"))
	wantNotFound(t, err, "Lookup of a key that does not open")
}

// TestRedisKeyLayout checks the documented layout and that no key name
// holds a session key or a raw code.
func TestRedisKeyLayout(t *testing.T) {
	srv := redistest.Start(t)
	prefix := "mp:wechat:wx123:"
	r := openRedis(t, RedisOptions{URL: srv.URL(), Prefix: prefix})
	const code = "061AbCdEfGhIjKlMn"
	sk := sessionKey(42)
	h := harness{s: r}
	mustSave(t, h, ref(code), Session{OpenID: "oLayout", UnionID: "uLayout", SessionKey: sk}, time.Hour)
	if err := r.Bind(bg, ref("upstream-token"), "oLayout", time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.Claim(bg, ref(code), time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := r.Set(bg, "access_token", []byte("AT"), time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := r.Lock(bg, "access_token", time.Minute); err != nil || !ok {
		t.Fatal(ok, err)
	}
	c := srv.Client()
	keys, err := c.Keys(bg, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		prefix + "u:oLayout":                  "hash",
		prefix + "r:" + ref(code):             "string",
		prefix + "r:" + ref("upstream-token"): "string",
		prefix + "c:" + ref(code):             "string",
		prefix + "v:access_token":             "string",
		prefix + "l:access_token":             "string",
	}
	if len(keys) != len(want) {
		t.Fatalf("keys %v, want %d", keys, len(want))
	}
	for _, k := range keys {
		typ, ok := want[k]
		if !ok {
			t.Fatalf("unexpected key %q", k)
		}
		if got := c.Type(bg, k).Val(); got != typ {
			t.Fatalf("%s is a %s, want %s", k, got, typ)
		}
		for _, secret := range []string{sk, code, "upstream-token", "AT"} {
			if strings.Contains(k, secret) && !strings.HasSuffix(k, "access_token") {
				t.Fatalf("key %q holds a secret", k)
			}
		}
		if ttl := c.PTTL(bg, k).Val(); ttl <= 0 {
			t.Fatalf("%s has no TTL (%v)", k, ttl)
		}
	}
	if got := c.HGetAll(bg, prefix+"u:oLayout").Val(); got["sk"] != sk || got["psk"] != "" || got["uid"] != "uLayout" || len(got) != 4 {
		t.Fatalf("user hash = %v", got)
	}
	if got := c.Get(bg, prefix+"r:"+ref(code)).Val(); got != "oLayout" {
		t.Fatalf("ref value = %q", got)
	}
}

// TestRedisPrefixesIsolate: two apps on one server and one client do not
// see each other's sessions.
func TestRedisPrefixesIsolate(t *testing.T) {
	srv := redistest.Start(t)
	a := openRedis(t, RedisOptions{URL: srv.URL(), Prefix: "mp:wechat:wxA:"})
	b := openRedis(t, RedisOptions{URL: srv.URL(), Prefix: "mp:wechat:wxB:"})
	mustSave(t, harness{s: a}, ref("c"), Session{OpenID: "o", SessionKey: sessionKey(1)}, time.Hour)
	_, err := b.Lookup(bg, ref("c"))
	wantNotFound(t, err, "Lookup under another prefix")
}

func TestRedisUnavailableAndBack(t *testing.T) {
	srv := redistest.Start(t)
	r := openRedis(t, RedisOptions{URL: srv.URL(), Prefix: newPrefix(t)})
	h := harness{s: r}
	sk := sessionKey(9)
	mustSave(t, h, ref("c"), Session{OpenID: "oDown", SessionKey: sk}, time.Hour)

	srv.Kill()
	secrets := []string{ref("c"), "oDown", sk, "named-value", "lock-name", "secret-bytes"}
	ops := map[string]func() error{
		"Save": func() error {
			_, err := r.Save(bg, ref("c"), Session{OpenID: "oDown", SessionKey: sk}, time.Hour)
			return err
		},
		"Lookup": func() error { _, err := r.Lookup(bg, ref("c")); return err },
		"Bind":   func() error { return r.Bind(bg, ref("c"), "oDown", time.Hour) },
		"Claim":  func() error { _, _, err := r.Claim(bg, ref("c"), time.Minute); return err },
		"Fail":   func() error { return r.Fail(bg, ref("c"), []byte("secret-bytes"), time.Minute) },
		"Get":    func() error { _, err := r.Get(bg, "named-value"); return err },
		"Set":    func() error { return r.Set(bg, "named-value", []byte("secret-bytes"), time.Minute) },
		"Lock": func() error {
			unlock, ok, err := r.Lock(bg, "lock-name", time.Minute)
			if ok {
				t.Error("Lock succeeded on a dead server")
			}
			unlock()
			return err
		},
	}
	for round := range 2 { // the second round meets a pool that already failed
		for name, op := range ops {
			start := time.Now()
			err := op()
			elapsed := time.Since(start)
			if !errors.Is(err, ErrUnavailable) {
				t.Fatalf("round %d: %s on a dead server: %v, want ErrUnavailable", round, name, err)
			}
			if elapsed > 3*time.Second {
				t.Fatalf("%s took %v on a dead server", name, elapsed)
			}
			for _, s := range secrets {
				if strings.Contains(err.Error(), s) {
					t.Fatalf("%s's error %q contains %q", name, err, s)
				}
			}
			if round == 0 {
				t.Logf("%s: %v after %v", name, err, elapsed.Round(time.Millisecond))
			}
		}
	}

	srv.Restart(t)
	// The same Store value works again once the client reconnects
	// (within about a second: go-redis probes a failed pool each second).
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := r.Save(bg, ref("c2"), Session{OpenID: "oDown", SessionKey: sk}, time.Hour)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Save after restart: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Data was lost with the restart (no persistence): the old ref is
	// gone, the new one works, and so does the rest.
	_, err := r.Lookup(bg, ref("c"))
	wantNotFound(t, err, "Lookup of a ref saved before the restart")
	if got := mustLookup(t, h, ref("c2")); got.SessionKey != sk || got.PrevSessionKey != "" {
		t.Fatalf("after restart: %+v", got)
	}
	if won, _, err := r.Claim(bg, ref("c"), time.Minute); err != nil || !won {
		t.Fatalf("Claim after restart: %v %v", won, err)
	}
	unlock, ok, err := r.Lock(bg, "l", time.Minute)
	if err != nil || !ok {
		t.Fatalf("Lock after restart: %v %v", ok, err)
	}
	unlock()
}

// TestRedisStalledServer: a server that accepts connections but never
// answers (SIGSTOP) costs about Timeout per operation, and the store
// recovers when it answers again.
func TestRedisStalledServer(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("Freeze needs Linux")
	}
	srv := redistest.Start(t)
	r := openRedis(t, RedisOptions{URL: srv.URL(), Prefix: newPrefix(t), Timeout: 300 * time.Millisecond})
	mustSave(t, harness{s: r}, ref("c"), Session{OpenID: "o", SessionKey: sessionKey(1)}, time.Hour)
	srv.Freeze()
	thawed := false
	defer func() {
		if !thawed {
			srv.Thaw()
		}
	}()
	for _, op := range []string{"lookup", "save", "claim"} {
		start := time.Now()
		var err error
		switch op {
		case "lookup":
			_, err = r.Lookup(bg, ref("c"))
		case "save":
			_, err = r.Save(bg, ref("c"), Session{OpenID: "o", SessionKey: sessionKey(2)}, time.Hour)
		case "claim":
			_, _, err = r.Claim(bg, ref("c"), time.Minute)
		}
		elapsed := time.Since(start)
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("%s on a stalled server: %v", op, err)
		}
		if elapsed > time.Second {
			t.Fatalf("%s on a stalled server took %v, timeout 300ms", op, elapsed)
		}
		t.Logf("stalled server: %v after %v", err, elapsed.Round(time.Millisecond))
	}
	srv.Thaw()
	thawed = true
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, err := r.Lookup(bg, ref("c"))
		if err == nil {
			if got.OpenID != "o" {
				t.Fatalf("after thaw: %+v", got)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Lookup after thaw: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestRedisPoolSharing(t *testing.T) {
	srv := redistest.Start(t, "--requirepass", "s3cret")
	url := "redis://:s3cret@" + srv.Addr() + "/0"
	a, err := OpenRedis(RedisOptions{URL: url, Prefix: "mp:a:"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := OpenRedis(RedisOptions{URL: url, Prefix: "mp:b:"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if a.Client() != b.Client() {
		t.Fatal("same connection options, two clients")
	}
	if n, _ := redisPool.References(a.poolKey); n != 2 {
		t.Fatalf("references = %d, want 2", n)
	}
	if strings.Contains(a.poolKey, "s3cret") {
		t.Fatal("the pool key shows the password")
	}
	other, err := OpenRedis(RedisOptions{URL: "redis://:other@" + srv.Addr() + "/0"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if other.Client() == a.Client() {
		t.Fatal("a different password shares the client")
	}
	// A wrong password is unavailable, not found.
	if _, err := other.Lookup(bg, ref("x")); !errors.Is(err, ErrUnavailable) || strings.Contains(err.Error(), "other") {
		t.Fatalf("wrong password: %v", err)
	}
	other.Close()

	mustSave(t, harness{s: a}, ref("c"), Session{OpenID: "o", SessionKey: sessionKey(1)}, time.Hour)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil { // twice: b keeps its reference
		t.Fatal(err)
	}
	if n, ok := redisPool.References(b.poolKey); !ok || n != 1 {
		t.Fatalf("references after one Close = %d, %v", n, ok)
	}
	if err := b.Set(bg, "k", []byte("v"), time.Minute); err != nil {
		t.Fatalf("the other store stopped working: %v", err)
	}
	if got, err := b.Get(bg, "k"); err != nil || string(got) != "v" {
		t.Fatalf("Get = %q, %v", got, err)
	}
	client := b.Client()
	b.Close()
	if _, ok := redisPool.References(b.poolKey); ok {
		t.Fatal("the client is still pooled after the last Close")
	}
	if err := client.Ping(bg).Err(); !errors.Is(err, redis.ErrClosed) {
		t.Fatalf("the last Close left the client open: %v", err)
	}
}

func TestRedisDBAndPassword(t *testing.T) {
	srv := redistest.Start(t, "--requirepass", "pw")
	r := openRedis(t, RedisOptions{URL: "redis://" + srv.Addr() + "/3", Password: "pw", Prefix: "p:"})
	if err := r.Set(bg, "k", []byte("v"), time.Minute); err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(&redis.Options{Addr: srv.Addr(), Password: "pw", DB: 3})
	defer c.Close()
	if got := c.Get(bg, "p:v:k").Val(); got != "v" {
		t.Fatalf("db 3 holds %q", got)
	}
	// Addrs form.
	r2 := openRedis(t, RedisOptions{Addrs: []string{srv.Addr()}, Password: "pw", DB: 3, Prefix: "p:"})
	if got, err := r2.Get(bg, "k"); err != nil || string(got) != "v" {
		t.Fatalf("Addrs form: %q, %v", got, err)
	}
}

func TestRedisOptions(t *testing.T) {
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		o      RedisOptions
		kind   string // "" when an error is expected
		errNot string // the error must not contain this
		tls    bool
		db     int
		user   string
		pass   string
		nAddrs int
		errHas string
	}{
		{name: "url", o: RedisOptions{URL: "redis://u:p@h:6380/2"}, kind: "single", db: 2, user: "u", pass: "p", nAddrs: 1},
		{name: "rediss", o: RedisOptions{URL: "rediss://h/0"}, kind: "single", tls: true, nAddrs: 1},
		{name: "fields override", o: RedisOptions{URL: "redis://u:p@h/2", Username: "u2", Password: "p2", DB: 5}, kind: "single", db: 5, user: "u2", pass: "p2", nAddrs: 1},
		{name: "cluster", o: RedisOptions{Addrs: []string{"a:1", "b:2", "c:3"}}, kind: "cluster", nAddrs: 3},
		{name: "sentinel", o: RedisOptions{Addrs: []string{"a:26379", "b:26379"}, MasterName: "mymaster", TLS: true}, kind: "sentinel", tls: true, nAddrs: 2},
		{name: "cluster has no db", o: RedisOptions{Addrs: []string{"a:1", "b:2"}, DB: 3}, errHas: "only db 0"},
		{name: "both", o: RedisOptions{URL: "redis://h", Addrs: []string{"a:1"}}, errHas: "cannot be combined with a url"},
		{name: "none", o: RedisOptions{}, errHas: "needs a url"},
		{name: "scheme", o: RedisOptions{URL: "http://h"}, errHas: "scheme"},
		{name: "unparsable keeps the password out", o: RedisOptions{URL: "redis://user:hunter2@h:port/0"}, errNot: "hunter2", errHas: "parse"},
		{name: "bad db keeps the password out", o: RedisOptions{URL: "redis://user:hunter2@h/notanumber"}, errNot: "hunter2", errHas: "redis URL"},
		{name: "missing CA", o: RedisOptions{URL: "rediss://h", CAFile: "/nonexistent/ca.pem"}, errHas: "CA file"},
		{name: "bad CA", o: RedisOptions{URL: "rediss://h", CAFile: ca}, errHas: "no PEM"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			uo, desc, err := universalOptions(tc.o)
			if tc.kind == "" {
				if err == nil {
					t.Fatal("no error")
				}
				if !strings.Contains(err.Error(), tc.errHas) || (tc.errNot != "" && strings.Contains(err.Error(), tc.errNot)) {
					t.Fatalf("error %q", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(desc, tc.kind+" ") || (uo.TLSConfig != nil) != tc.tls || uo.DB != tc.db ||
				uo.Username != tc.user || uo.Password != tc.pass || len(uo.Addrs) != tc.nAddrs {
				t.Fatalf("%s: %+v", desc, uo)
			}
			if tc.pass != "" && strings.Contains(desc, tc.pass) {
				t.Fatalf("description shows the password: %s", desc)
			}
			if uo.MaxRetries != 1 || uo.DialTimeout != time.Second || uo.PoolTimeout != time.Second || !uo.ContextTimeoutEnabled {
				t.Fatalf("bounds not set: %+v", uo)
			}
		})
	}
	a := RedisOptions{URL: "redis://:one@h/0", Prefix: "x"}
	b := RedisOptions{URL: "redis://:one@h/0", Prefix: "y", KeyCodec: &sealCodec{}}
	c := RedisOptions{URL: "redis://:two@h/0"}
	if a.fingerprint() != b.fingerprint() || a.fingerprint() == c.fingerprint() {
		t.Fatal("fingerprint: prefix/codec must not matter, password must")
	}
}

func BenchmarkRedisLookup(b *testing.B) {
	srv := redistest.Start(b)
	r, err := OpenRedis(RedisOptions{URL: srv.URL(), Prefix: "bench:"}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	refs := make([]string, 1000)
	for i := range refs {
		refs[i] = ref(fmt.Sprint("c", i))
		if _, err := r.Save(bg, refs[i], Session{OpenID: fmt.Sprint("o", i), UnionID: "u", SessionKey: sessionKey(i)}, time.Hour); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		if _, err := r.Lookup(bg, refs[i%len(refs)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// TestRedisInstancesShareSessions: two instances (two clients, one prefix)
// see one user: login on one, phone on the other, and the claim is single.
func TestRedisInstancesShareSessions(t *testing.T) {
	srv := redistest.Start(t)
	a := openRedis(t, RedisOptions{URL: srv.URL(), Prefix: "mp:shared:"})
	b := openRedis(t, RedisOptions{URL: srv.URL(), Prefix: "mp:shared:", Timeout: 400 * time.Millisecond})
	if a.Client() == b.Client() {
		t.Fatal("want two clients, as two Caddy instances have")
	}
	if won, _, err := a.Claim(bg, ref("code"), time.Minute); err != nil || !won {
		t.Fatalf("claim on a: %v %v", won, err)
	}
	if won, _, err := b.Claim(bg, ref("code"), time.Minute); err != nil || won {
		t.Fatalf("claim on b: %v %v", won, err)
	}
	mustSave(t, harness{s: a}, ref("code"), Session{OpenID: "oS", SessionKey: sessionKey(1)}, time.Hour)
	if got := mustLookup(t, harness{s: b}, ref("code")); got.SessionKey != sessionKey(1) {
		t.Fatalf("b sees %+v", got)
	}
	got := mustSave(t, harness{s: b}, ref("code2"), Session{OpenID: "oS", SessionKey: sessionKey(2)}, time.Hour)
	if got.PrevSessionKey != sessionKey(1) {
		t.Fatalf("rotation across instances: %+v", got)
	}
}

// Which Redis options go together: the store's rules (the handler's
// configuration validation reports them by option name).
func TestRedisOptionsCheck(t *testing.T) {
	for _, c := range []struct {
		o      RedisOptions
		option string // "" for valid
	}{
		{RedisOptions{URL: "redis://h:1/0"}, ""},
		{RedisOptions{Addrs: []string{"a:1", "b:2"}, MasterName: "m", DB: 3, SentinelPassword: "p"}, ""},
		{RedisOptions{}, "url"},
		{RedisOptions{MasterName: "m"}, "master_name"},
		{RedisOptions{URL: "redis://h:1", Addrs: []string{"a:1"}}, "addrs"},
		{RedisOptions{URL: "redis://h:1", MasterName: "m"}, "master_name"},
		{RedisOptions{Addrs: []string{"a:1"}, SentinelUsername: "u"}, "sentinel_password"},
		{RedisOptions{URL: "rediss://h:1", CertFile: "c"}, "cert_file"},
		{RedisOptions{URL: "redis://h:1", TLS: true}, "tls"},
		{RedisOptions{Addrs: []string{"a:1"}, DB: -1}, "db"},
		{RedisOptions{Addrs: []string{"a:1", "b:2"}, DB: 2}, "db"},
	} {
		err := c.o.Check()
		var oe *OptionError
		switch {
		case c.option == "" && err != nil:
			t.Errorf("%+v: %v", c.o, err)
		case c.option != "" && (!errors.As(err, &oe) || oe.Option != c.option):
			t.Errorf("%+v: %v, want an error on %s", c.o, err, c.option)
		}
		// The constructor applies the same rules.
		if _, _, uerr := universalOptions(c.o); c.option != "" && uerr == nil {
			t.Errorf("%+v: universalOptions accepted it", c.o)
		}
	}
}
