package module

import (
	"sync"
	"time"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/store"
)

// unsavedSessions holds sessions whose code was exchanged but that the
// store failed to save right after the platform answered. The code is spent
// by then; keeping the result here lets a retry on this instance save it
// once the store is back, instead of failing with invalid_code.
type unsavedSessions struct {
	mu sync.Mutex
	m  map[string]unsavedEntry
}

type unsavedEntry struct {
	s     store.Session
	until time.Time
}

const (
	unsavedTTL = 2 * time.Minute
	unsavedMax = 10_000
)

func newUnsavedSessions() *unsavedSessions {
	return &unsavedSessions{m: make(map[string]unsavedEntry)}
}

func (u *unsavedSessions) put(ref string, s store.Session) {
	u.mu.Lock()
	defer u.mu.Unlock()
	now := time.Now()
	if len(u.m) >= unsavedMax {
		for k, e := range u.m {
			if now.After(e.until) || len(u.m) >= unsavedMax {
				delete(u.m, k)
			}
		}
	}
	u.m[ref] = unsavedEntry{s: s, until: now.Add(unsavedTTL)}
}

func (u *unsavedSessions) get(ref string) (store.Session, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.m) == 0 {
		return store.Session{}, false
	}
	e, ok := u.m[ref]
	if !ok {
		return store.Session{}, false
	}
	if time.Now().After(e.until) {
		delete(u.m, ref)
		return store.Session{}, false
	}
	return e.s, true
}

func (u *unsavedSessions) del(ref string) {
	u.mu.Lock()
	delete(u.m, ref)
	u.mu.Unlock()
}
