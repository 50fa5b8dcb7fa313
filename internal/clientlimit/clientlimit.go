// Package clientlimit bounds how many costly failures each client may cause.
//
// A Limiter is a token bucket per client key, kept in memory: a client may
// fail Limit times at once, and its allowance refills at Limit per Window
// (one failure every Window/Limit). Only recorded failures use it up; asking
// whether a client may go on costs nothing and stores nothing. A client that
// fails while already over the bound (requests in flight when the bound was
// reached) goes into debt, and waits that much longer.
//
// The state is per Limiter (so per process): instances behind a load
// balancer each allow a client Limit failures. The number of clients tracked
// is bounded (MaxKeys); when full, a client with no recent failures is
// dropped first, else an arbitrary one.
package clientlimit

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"
)

// DefaultMaxKeys bounds the clients a Limiter tracks when Config.MaxKeys is
// not set: 65536 entries take a few megabytes at most.
const DefaultMaxKeys = 1 << 16

// evictScan is how many entries an insertion into a full map looks at for
// one whose failures are forgotten, before dropping an arbitrary one.
const evictScan = 16

// Config configures a Limiter.
type Config struct {
	// Limit is how many failures a client may cause at once (> 0).
	Limit int
	// Window is how long the allowance takes to refill completely (> 0).
	Window time.Duration
	// MaxKeys bounds the clients tracked (default DefaultMaxKeys).
	MaxKeys int
	// Now is the clock (default time.Now); tests pass a fake one.
	Now func() time.Time
}

// Limiter counts failures per client key. It is safe for concurrent use.
type Limiter struct {
	interval time.Duration // the cost of one failure: Window / Limit
	slack    time.Duration // how far ahead of now a client's debt may run and still be allowed: Window - interval
	maxKeys  int
	now      func() time.Time

	mu sync.Mutex
	// tat is each client's "theoretical arrival time": when its allowance
	// is full again. A client is allowed while tat - now <= slack; an
	// entry whose tat has passed is the same as no entry.
	tat map[string]time.Time
}

// New returns a Limiter. It panics unless Limit and Window are positive and
// Window/Limit is at least 1ns (check user input with ParseRate first).
func New(c Config) *Limiter {
	if err := c.validate(); err != nil {
		panic("clientlimit: " + err.Error())
	}
	if c.MaxKeys <= 0 {
		c.MaxKeys = DefaultMaxKeys
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	interval := c.Window / time.Duration(c.Limit)
	return &Limiter{
		interval: interval,
		slack:    c.Window - interval,
		maxKeys:  c.MaxKeys,
		now:      c.Now,
		tat:      make(map[string]time.Time),
	}
}

func (c Config) validate() error {
	if c.Limit <= 0 || c.Window <= 0 || c.Window/time.Duration(c.Limit) <= 0 {
		return fmt.Errorf("bad limit %d per %v", c.Limit, c.Window)
	}
	return nil
}

// Wait reports how long key must wait before it may cause another failure:
// 0 when it may now.
func (l *Limiter) Wait(key string) time.Duration {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	tat, ok := l.tat[key]
	if !ok {
		return 0
	}
	if !tat.After(now) {
		delete(l.tat, key) // forgotten: the same as no entry
		return 0
	}
	if d := tat.Sub(now) - l.slack; d > 0 {
		return d
	}
	return 0
}

// Fail records one failure of key. It reports whether key has now used up
// its allowance (its next Wait is not 0).
func (l *Limiter) Fail(key string) (limited bool) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	tat, ok := l.tat[key]
	if !ok && len(l.tat) >= l.maxKeys {
		l.evict(now)
	}
	if tat.Before(now) {
		tat = now
	}
	tat = tat.Add(l.interval)
	l.tat[key] = tat
	return tat.Sub(now) > l.slack
}

// evict makes room for one entry: the first forgotten one among a few
// (Go's map iteration starts at a random place), else the last one looked
// at. Called with l.mu held.
func (l *Limiter) evict(now time.Time) {
	var victim string
	n := 0
	for k, tat := range l.tat {
		victim = k
		if !tat.After(now) {
			break
		}
		if n++; n >= evictScan {
			break
		}
	}
	delete(l.tat, victim)
}

// Len is the number of clients tracked.
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.tat)
}

// Key is the limiter key of a client IP address: an IPv4 address itself
// (also when written IPv4-mapped), an IPv6 address its /64 (a host usually
// has a whole /64 to choose addresses from). A string that is not an IP
// address is its own key.
func Key(ip string) string {
	host, _, _ := strings.Cut(ip, "%") // no zone
	a, err := netip.ParseAddr(host)
	if err != nil {
		return ip
	}
	a = a.Unmap()
	if a.Is4() {
		return a.String()
	}
	p, _ := a.Prefix(64)
	return p.String()
}

// ParseRate parses a bound written "<limit>/<window>", such as 30/1m or
// 100/1h: limit a whole number from 1 to 1000000, window a Go duration from
// 1s to 24h.
func ParseRate(s string) (limit int, window time.Duration, err error) {
	ns, ws, ok := strings.Cut(s, "/")
	if !ok {
		return 0, 0, fmt.Errorf("%q is not <limit>/<window>, e.g. 30/1m", s)
	}
	limit, err = strconv.Atoi(ns)
	if err != nil || limit < 1 || limit > 1_000_000 {
		return 0, 0, fmt.Errorf("%q: the limit must be a whole number from 1 to 1000000", s)
	}
	window, err = time.ParseDuration(ws)
	if err != nil {
		return 0, 0, fmt.Errorf("%q: the window must be a duration such as 1m", s)
	}
	if window < time.Second || window > 24*time.Hour {
		return 0, 0, fmt.Errorf("%q: the window must be from 1s to 24h", s)
	}
	return limit, window, nil
}
