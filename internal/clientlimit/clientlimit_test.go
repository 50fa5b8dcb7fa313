package clientlimit

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// clock is a fake clock: it moves only when told.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestBurstThenRefill(t *testing.T) {
	c := newClock()
	l := New(Config{Limit: 3, Window: time.Minute, Now: c.Now})
	for i := range 3 {
		if w := l.Wait("a"); w != 0 {
			t.Fatalf("failure %d: wait %v before the limit", i+1, w)
		}
		if limited := l.Fail("a"); limited != (i == 2) {
			t.Fatalf("failure %d: limited %v", i+1, limited)
		}
	}
	// One failure costs 20s; after three at once the next is allowed in 20s.
	if w := l.Wait("a"); w != 20*time.Second {
		t.Fatalf("wait %v, want 20s", w)
	}
	if w := l.Wait("b"); w != 0 {
		t.Fatalf("another client waits %v", w)
	}
	c.Advance(19 * time.Second)
	if w := l.Wait("a"); w != time.Second {
		t.Fatalf("wait %v, want 1s", w)
	}
	c.Advance(time.Second)
	if w := l.Wait("a"); w != 0 {
		t.Fatalf("wait %v after the refill of one", w)
	}
	// One allowed, then limited again.
	if !l.Fail("a") {
		t.Fatal("the refilled failure did not use the allowance up")
	}
	if w := l.Wait("a"); w != 20*time.Second {
		t.Fatalf("wait %v, want 20s", w)
	}
	// A whole window later everything is forgotten.
	c.Advance(time.Minute)
	if w := l.Wait("a"); w != 0 || l.Len() != 0 {
		t.Fatalf("wait %v, %d tracked after a quiet window", w, l.Len())
	}
}

// Failures recorded while over the bound (requests that were in flight)
// are debt: the client waits longer.
func TestDebt(t *testing.T) {
	c := newClock()
	l := New(Config{Limit: 2, Window: 10 * time.Second, Now: c.Now})
	for range 5 {
		l.Fail("a")
	}
	// 5 × 5s of allowance used, 5s of slack: 20s to wait.
	if w := l.Wait("a"); w != 20*time.Second {
		t.Fatalf("wait %v, want 20s", w)
	}
}

func TestEvictionBoundsTheMap(t *testing.T) {
	c := newClock()
	l := New(Config{Limit: 1, Window: time.Minute, MaxKeys: 4, Now: c.Now})
	for i := range 100 {
		l.Fail(fmt.Sprint("k", i))
		if l.Len() > 4 {
			t.Fatalf("%d tracked, max 4", l.Len())
		}
	}
	// A forgotten entry goes before a live one.
	l = New(Config{Limit: 1, Window: time.Minute, MaxKeys: 2, Now: c.Now})
	l.Fail("old")
	c.Advance(2 * time.Minute)
	l.Fail("live")
	l.Fail("new")
	if l.Wait("live") == 0 || l.Wait("new") == 0 || l.Len() != 2 {
		t.Fatalf("live %v new %v len %d", l.Wait("live"), l.Wait("new"), l.Len())
	}
}

func TestConcurrent(t *testing.T) {
	c := newClock()
	l := New(Config{Limit: 1000, Window: time.Hour, Now: c.Now})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 100 {
				l.Fail(fmt.Sprint("k", (g*100+i)%50))
				l.Wait("k0")
			}
		})
	}
	wg.Wait()
	if l.Len() != 50 {
		t.Fatalf("%d tracked, want 50", l.Len())
	}
}

func TestKey(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"203.0.113.7", "203.0.113.7"},
		{"::ffff:203.0.113.7", "203.0.113.7"},
		{"2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"},
		{"2001:db8:1:2:ffff::1", "2001:db8:1:2::/64"},
		{"fe80::1%eth0", "fe80::/64"},
		{"::1", "::/64"},
		{"@", "@"},
		{"", ""},
	} {
		if got := Key(c.in); got != c.want {
			t.Errorf("Key(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestParseRate(t *testing.T) {
	for _, c := range []struct {
		in     string
		limit  int
		window time.Duration
		ok     bool
	}{
		{"30/1m", 30, time.Minute, true},
		{"1/1s", 1, time.Second, true},
		{"100/1h30m", 100, 90 * time.Minute, true},
		{"1000000/24h", 1000000, 24 * time.Hour, true},
		{"30", 0, 0, false},
		{"30/", 0, 0, false},
		{"/1m", 0, 0, false},
		{"0/1m", 0, 0, false},
		{"-1/1m", 0, 0, false},
		{"1000001/1m", 0, 0, false},
		{"30/m", 0, 0, false},
		{"30/500ms", 0, 0, false},
		{"30/25h", 0, 0, false},
		{"30/-1m", 0, 0, false},
		{"x/1m", 0, 0, false},
		{"off", 0, 0, false},
	} {
		limit, window, err := ParseRate(c.in)
		if (err == nil) != c.ok || limit != c.limit || window != c.window {
			t.Errorf("ParseRate(%q) = %d, %v, %v", c.in, limit, window, err)
		}
	}
}

func TestNewPanicsOnBadConfig(t *testing.T) {
	for _, c := range []Config{{}, {Limit: 1}, {Window: time.Second}, {Limit: 10, Window: 5}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("New(%+v) did not panic", c)
				}
			}()
			New(c)
		}()
	}
}
