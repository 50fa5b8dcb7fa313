package module

import (
	"fmt"
	"testing"
	"time"
)

// Entries expire after the ttl (or the session's own, shorter, time left),
// del forgets at once, and the size stays bounded.
func TestIdentityCache(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	c := newIdentityCache(time.Second)
	c.now = func() time.Time { return now }
	c.put("r1", "o1", "u1", 0)
	c.put("r2", "o2", "", 300*time.Millisecond)
	if o, u, ok := c.get("r1"); !ok || o != "o1" || u != "u1" {
		t.Fatalf("r1: %q %q %v", o, u, ok)
	}
	now = now.Add(400 * time.Millisecond)
	if _, _, ok := c.get("r2"); ok {
		t.Fatal("r2 outlived the session's own time left")
	}
	if _, _, ok := c.get("r1"); !ok {
		t.Fatal("r1 expired early")
	}
	c.del("r1")
	if _, _, ok := c.get("r1"); ok {
		t.Fatal("r1 after del")
	}
	c.put("r1", "o1", "u1", 0)
	now = now.Add(time.Second)
	if _, _, ok := c.get("r1"); ok {
		t.Fatal("r1 outlived the ttl")
	}
	for i := range identityCacheMax + 100 {
		c.put(fmt.Sprint("k", i), "o", "", 0)
	}
	if n := len(c.m); n > identityCacheMax {
		t.Fatalf("%d entries, bound %d", n, identityCacheMax)
	}
	if _, _, ok := c.get(fmt.Sprint("k", identityCacheMax+99)); !ok {
		t.Fatal("the newest entry is missing")
	}
}
