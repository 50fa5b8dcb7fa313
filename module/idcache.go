package module

import (
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/store"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
)

// identityCache fronts a shared store (Redis) for identity on every
// request: the identity a token's session gave is kept in the process for
// a short time (identity_cache, default 1s with Redis, off with the memory
// store, which is in the process already), so that a busy session costs
// one store round trip per interval instead of one per request.
//
// Staleness, by design: a session ended (logout) or expired on another
// instance keeps giving its identity here until the entry expires, at
// most identity_cache later; a logout on this instance takes effect here at
// once. Only identity (openid, unionid) is kept, only for requests off the
// handler's routes; the phone and decrypt routes always read the store.
// An unknown token is not cached (it is looked up each time).
type identityCache struct {
	ttl time.Duration
	now func() time.Time
	mu  sync.RWMutex
	m   map[string]idEntry // store ref (a hash of the token) → identity
}

type idEntry struct {
	id  store.Session // identity only: OpenID, UnionID, Fields
	exp time.Time
}

// identityCacheMax bounds the entries: at the bound, an arbitrary one goes.
const identityCacheMax = 1 << 16

// DefaultIdentityCache is identity_cache's default with a Redis store.
const DefaultIdentityCache = caddy.Duration(time.Second)

func newIdentityCache(ttl time.Duration) *identityCache {
	return &identityCache{ttl: ttl, now: time.Now, m: make(map[string]idEntry)}
}

// get returns the identity cached for ref, if any and still fresh.
func (c *identityCache) get(ref string) (store.Session, bool) {
	c.mu.RLock()
	e, ok := c.m[ref]
	c.mu.RUnlock()
	if !ok || !c.now().Before(e.exp) {
		return store.Session{}, false
	}
	return e.id, true
}

// put caches ref's identity for the cache's ttl, or less when the
// session itself has less left (left > 0).
// Only s's identity is kept (never a session key).
func (c *identityCache) put(ref string, s store.Session, left time.Duration) {
	ttl := c.ttl
	if left > 0 && left < ttl {
		ttl = left
	}
	exp := c.now().Add(ttl)
	c.mu.Lock()
	if _, ok := c.m[ref]; !ok && len(c.m) >= identityCacheMax {
		now := c.now()
		dropped := 0
		for k, e := range c.m {
			if !now.Before(e.exp) || dropped == 0 {
				delete(c.m, k)
				dropped++
			}
			if dropped >= 64 {
				break
			}
		}
	}
	c.m[ref] = idEntry{id: store.Session{OpenID: s.OpenID, UnionID: s.UnionID, Fields: s.Fields}, exp: exp}
	c.mu.Unlock()
}

// del forgets ref (a logout on this instance).
func (c *identityCache) del(ref string) {
	c.mu.Lock()
	delete(c.m, ref)
	c.mu.Unlock()
}

// provisionIdentityCache sets up the identity cache when a session kind
// (bound or issued) gives identity off the routes: identity_cache, or by
// default 1s with Redis and none with the memory store.
func (h *Handler) provisionIdentityCache() {
	if h.sessions == nil && (h.binding == nil || !h.binding.everywhere) {
		return
	}
	ttl := time.Duration(0)
	switch {
	case h.IdentityCache != nil:
		ttl = time.Duration(*h.IdentityCache)
	case h.Store != nil && h.Store.Type == "redis":
		ttl = time.Duration(DefaultIdentityCache)
	}
	if ttl > 0 {
		h.idCache = newIdentityCache(ttl)
	}
}
