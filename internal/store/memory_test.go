package store

import (
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"sync"
	"testing"
	"time"
)

func memoryFactory(t *testing.T) harness {
	clock := newFakeClock()
	m := NewMemory(MemoryOptions{Now: clock.Now})
	t.Cleanup(func() { m.Close() })
	return harness{s: m, ttl: time.Minute, pass: clock.Advance}
}

func TestMemoryConformance(t *testing.T) { runConformance(t, memoryFactory) }

func (c *memCore) counts() (users, refs, claims, values, locks int) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.users.len(), c.refs.len(), c.claims.len(), c.values.len(), c.locks.len()
}

func TestMemoryEvictsLeastRecentlySaved(t *testing.T) {
	m := NewMemory(MemoryOptions{MaxSessions: 3})
	save := func(openid, code string) {
		t.Helper()
		if _, err := m.Save(bg, ref(code), Session{OpenID: openid, SessionKey: sessionKey(1)}, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	save("o1", "c1")
	save("o2", "c2")
	save("o3", "c3")
	save("o1", "c1b") // o1 is now the most recently saved
	// Lookups do not count as saves.
	mustLookup(t, harness{s: m}, ref("c2"))
	save("o4", "c4") // evicts o2
	for _, c := range []string{"c1", "c1b", "c3", "c4"} {
		mustLookup(t, harness{s: m}, ref(c))
	}
	_, err := m.Lookup(bg, ref("c2"))
	wantNotFound(t, err, "Lookup of the evicted user")
	save("o5", "c5") // evicts o3
	_, err = m.Lookup(bg, ref("c3"))
	wantNotFound(t, err, "Lookup of the next evicted user")
	if got := m.c.users.keys(); fmt.Sprint(got) != "[o1 o4 o5]" {
		t.Fatalf("users oldest first: %v", got)
	}
}

func TestMemoryRefsBounded(t *testing.T) {
	m := NewMemory(MemoryOptions{MaxSessions: 2}) // refs: 8
	if _, err := m.Save(bg, ref("login"), Session{OpenID: "o", SessionKey: sessionKey(1)}, time.Hour); err != nil {
		t.Fatal(err)
	}
	for i := range 8 {
		if err := m.Bind(bg, ref(fmt.Sprint("tok", i)), "o", time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	// 9 refs written, 8 kept: the oldest (the login's) went.
	_, err := m.Lookup(bg, ref("login"))
	wantNotFound(t, err, "Lookup of the oldest ref")
	for i := range 8 {
		mustLookup(t, harness{s: m}, ref(fmt.Sprint("tok", i)))
	}
	// Rewriting a ref makes it the newest.
	if err := m.Bind(bg, ref("tok0"), "o", time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := m.Bind(bg, ref("tok8"), "o", time.Hour); err != nil {
		t.Fatal(err)
	}
	mustLookup(t, harness{s: m}, ref("tok0"))
	_, err = m.Lookup(bg, ref("tok1"))
	wantNotFound(t, err, "Lookup of the oldest ref after a rewrite")
}

func TestMemoryBounds(t *testing.T) {
	for _, max := range []int{1000, 20000} {
		t.Run(fmt.Sprint(max), func(t *testing.T) {
			m := NewMemory(MemoryOptions{MaxSessions: max})
			n := 3 * max
			for i := range n {
				r := ref(fmt.Sprint("c", i))
				if _, err := m.Save(bg, r, Session{OpenID: fmt.Sprint("o", i), SessionKey: sessionKey(i)}, time.Hour); err != nil {
					t.Fatal(err)
				}
				if err := m.Bind(bg, ref(fmt.Sprint("t", i)), fmt.Sprint("o", i), time.Hour); err != nil {
					t.Fatal(err)
				}
				if _, _, err := m.Claim(bg, r, time.Hour); err != nil {
					t.Fatal(err)
				}
				if err := m.Set(bg, fmt.Sprint("v", i), []byte("x"), time.Hour); err != nil {
					t.Fatal(err)
				}
			}
			users, refs, claims, values, _ := m.c.counts()
			t.Logf("after %d sessions: users %d, refs %d, claims %d, values %d", n, users, refs, claims, values)
			if users > max || refs > 4*max || claims > 4*max || values > max {
				t.Fatalf("bounds exceeded: users %d refs %d claims %d values %d, max %d", users, refs, claims, values, max)
			}
			if users != max || refs != 4*max {
				t.Fatalf("kept %d users and %d refs, want the bounds %d and %d", users, refs, max, 4*max)
			}
			// The most recent sessions are all there.
			for i := n - max/20; i < n; i++ {
				if _, err := m.Lookup(bg, ref(fmt.Sprint("t", i))); err != nil {
					t.Fatalf("recent session %d: %v", i, err)
				}
			}
		})
	}
}

func TestMemorySweepsExpired(t *testing.T) {
	clock := newFakeClock()
	m := NewMemory(MemoryOptions{MaxSessions: 1000, Now: clock.Now})
	for i := range 100 {
		if _, err := m.Save(bg, ref(fmt.Sprint("c", i)), Session{OpenID: fmt.Sprint("o", i), SessionKey: sessionKey(i)}, time.Minute); err != nil {
			t.Fatal(err)
		}
		if _, _, err := m.Claim(bg, ref(fmt.Sprint("c", i)), time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	clock.Advance(2 * time.Minute)
	// Writes sweep expired entries off the front, a few at a time.
	for i := range 20 {
		if _, err := m.Save(bg, ref(fmt.Sprint("n", i)), Session{OpenID: fmt.Sprint("n", i), SessionKey: sessionKey(i)}, time.Minute); err != nil {
			t.Fatal(err)
		}
		if _, _, err := m.Claim(bg, ref(fmt.Sprint("n", i)), time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	users, refs, claims, _, _ := m.c.counts()
	if users != 20 || refs != 20 || claims != 20 {
		t.Fatalf("after sweeping: users %d refs %d claims %d, want 20 each", users, refs, claims)
	}
}

// TestMemoryBytesPerSession measures the heap one session (one user record
// with unionid, one ref) costs in a store of 100,000, and bounds it.
func TestMemoryBytesPerSession(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	const n = 100000
	for _, rotated := range []bool{false, true} {
		t.Run(fmt.Sprintf("rotated=%v", rotated), func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			m := NewMemory(MemoryOptions{MaxSessions: n})
			for i := range n {
				s := Session{
					OpenID:     fmt.Sprintf("oWx%025d", i),      // 28 chars, like a WeChat openid
					UnionID:    fmt.Sprintf("uWx%025d", i),      // 28 chars
					SessionKey: fmt.Sprintf("%022dA==", i)[:24], // base64 of 16 bytes
				}
				r := ref(fmt.Sprint("code", i))
				if rotated {
					// A second login with a new key on the same ref:
					// the record holds two keys.
					k := s.SessionKey
					s.SessionKey = fmt.Sprintf("%022dB==", i)[:24]
					if _, err := m.Save(bg, r, s, time.Hour); err != nil {
						t.Fatal(err)
					}
					s.SessionKey = k
				}
				if _, err := m.Save(bg, r, s, time.Hour); err != nil {
					t.Fatal(err)
				}
			}
			runtime.GC()
			runtime.ReadMemStats(&after)
			users, refs, _, _, _ := m.c.counts()
			if users != n || refs != n {
				t.Fatalf("users %d refs %d, want %d", users, refs, n)
			}
			per := float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / n
			t.Logf("%.0f bytes/session over %d sessions (user with unionid, one 64-char ref, rotated=%v)", per, n, rotated)
			runtime.KeepAlive(m)
			if per > 512 {
				t.Fatalf("%.0f bytes/session, want ≤ 512", per)
			}
		})
	}
}

func TestMemoryPoolSharing(t *testing.T) {
	key := t.Name()
	a, err := OpenMemory(key, MemoryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := OpenMemory(key, MemoryOptions{MaxSessions: 5}) // opts ignored: shared
	if err != nil {
		t.Fatal(err)
	}
	if a.c != b.c {
		t.Fatal("two opens of one key did not share the instance")
	}
	if refs, _ := memoryPool.References(key); refs != 2 {
		t.Fatalf("references = %d, want 2", refs)
	}
	if _, err := a.Save(bg, ref("c"), Session{OpenID: "o", SessionKey: sessionKey(1)}, time.Hour); err != nil {
		t.Fatal(err)
	}
	// A reload: the old config's handle closes after the new one opened.
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil { // twice: no effect on b's reference
		t.Fatal(err)
	}
	if refs, ok := memoryPool.References(key); !ok || refs != 1 {
		t.Fatalf("references after one Close = %d, %v; want 1", refs, ok)
	}
	if got := mustLookup(t, harness{s: b}, ref("c")); got.OpenID != "o" {
		t.Fatalf("the session did not survive: %+v", got)
	}
	other, err := OpenMemory(key+"-other", MemoryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = other.Lookup(bg, ref("c"))
	wantNotFound(t, err, "Lookup in another key's instance")
	other.Close()

	b.Close()
	if _, ok := memoryPool.References(key); ok {
		t.Fatal("the instance is still pooled after the last Close")
	}
	c, err := OpenMemory(key, MemoryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.Lookup(bg, ref("c"))
	wantNotFound(t, err, "Lookup in a fresh instance")
}

func TestMemoryLookupCopiesNothingMutable(t *testing.T) {
	// Session strings are immutable; Save must not keep a caller's
	// larger buffer alive through them, nor be confused by reuse.
	m := NewMemory(MemoryOptions{})
	buf := []byte("oBUF" + sessionKey(7))
	s := Session{OpenID: string(buf[:4]), SessionKey: string(buf[4:])}
	if _, err := m.Save(bg, ref("b"), s, time.Hour); err != nil {
		t.Fatal(err)
	}
	got := mustLookup(t, harness{s: m}, ref("b"))
	if got.OpenID != "oBUF" || got.SessionKey != sessionKey(7) {
		t.Fatalf("%+v", got)
	}
}

func TestEncodeUser(t *testing.T) {
	long := string(make([]byte, 300))
	for _, s := range []Session{
		{},
		{OpenID: "o"},
		{OpenID: "o", UnionID: "u", Fields: map[string]string{"a": "1", "b c": "=&%"}, SessionKey: "k", PrevSessionKey: "p"},
		{OpenID: long, UnionID: long + "x", Fields: map[string]string{"x": long}, SessionKey: long, PrevSessionKey: long + "yy"},
	} {
		if got := decodeUser(encodeUser(s)); !reflect.DeepEqual(got, s) {
			t.Fatalf("round trip of %+v gave %+v", s, got)
		}
	}
}

func TestMemoryErrorsAreSentinels(t *testing.T) {
	m := NewMemory(MemoryOptions{})
	_, err := m.Get(bg, "x")
	if !errors.Is(err, ErrNotFound) || errors.Is(err, ErrUnavailable) {
		t.Fatalf("Get: %v", err)
	}
}

// BenchmarkMemoryLookup measures one Lookup in a store of 100,000 sessions.
func BenchmarkMemoryLookup(b *testing.B) {
	m, refs := benchMemory(b)
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		if _, err := m.Lookup(bg, refs[i%len(refs)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkMemoryParallel: parallel lookups with 1 save in 16 operations
// (-cpu to vary the parallelism).
func BenchmarkMemoryParallel(b *testing.B) {
	m, refs := benchMemory(b)
	var mu sync.Mutex
	seed := 0
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		mu.Lock()
		i := seed * 7919
		seed++
		mu.Unlock()
		for pb.Next() {
			r := refs[i%len(refs)]
			if i%16 == 0 {
				s := Session{OpenID: fmt.Sprint("o", i%len(refs)), SessionKey: sessionKey(i)}
				if _, err := m.Save(bg, r, s, time.Hour); err != nil {
					b.Fatal(err)
				}
			} else if _, err := m.Lookup(bg, r); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}

func benchMemory(b *testing.B) (*Memory, []string) {
	const n = 100000
	m := NewMemory(MemoryOptions{MaxSessions: n})
	refs := make([]string, n)
	for i := range refs {
		refs[i] = ref(fmt.Sprint("c", i))
		if _, err := m.Save(bg, refs[i], Session{OpenID: fmt.Sprint("o", i), UnionID: "u", SessionKey: sessionKey(i)}, time.Hour); err != nil {
			b.Fatal(err)
		}
	}
	return m, refs
}
