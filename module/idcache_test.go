package module

import (
	"fmt"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/store"
	"testing"
	"time"
)

// Entries expire after the ttl (or the session's own, shorter, time left),
// del forgets at once, and the size stays bounded.
func TestIdentityCache(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	c := newIdentityCache(time.Second)
	c.now = func() time.Time { return now }
	c.put("r1", store.Session{OpenID: "o1", UnionID: "u1", SessionKey: "secret", Fields: map[string]string{"tenant_key": "t1"}}, 0)
	c.put("r2", store.Session{OpenID: "o2"}, 300*time.Millisecond)
	if id, ok := c.get("r1"); !ok || id.OpenID != "o1" || id.UnionID != "u1" || id.Fields["tenant_key"] != "t1" || id.SessionKey != "" {
		t.Fatalf("r1: %+v %v (want the identity, never the session key)", id, ok)
	}
	now = now.Add(400 * time.Millisecond)
	if _, ok := c.get("r2"); ok {
		t.Fatal("r2 outlived the session's own time left")
	}
	if _, ok := c.get("r1"); !ok {
		t.Fatal("r1 expired early")
	}
	c.del("r1")
	if _, ok := c.get("r1"); ok {
		t.Fatal("r1 after del")
	}
	c.put("r1", store.Session{OpenID: "o1", UnionID: "u1", SessionKey: "secret", Fields: map[string]string{"tenant_key": "t1"}}, 0)
	now = now.Add(time.Second)
	if _, ok := c.get("r1"); ok {
		t.Fatal("r1 outlived the ttl")
	}
	for i := range identityCacheMax + 100 {
		c.put(fmt.Sprint("k", i), store.Session{OpenID: "o"}, 0)
	}
	if n := len(c.m); n > identityCacheMax {
		t.Fatalf("%d entries, bound %d", n, identityCacheMax)
	}
	if _, ok := c.get(fmt.Sprint("k", identityCacheMax+99)); !ok {
		t.Fatal("the newest entry is missing")
	}
}
