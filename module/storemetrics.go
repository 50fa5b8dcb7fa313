package module

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/store"
)

// timedStore is the handler's store as everything uses it (the routes,
// compat, token binding and the access-token manager): each operation is
// observed in store_duration_seconds and, when it fails (anything but
// store.ErrNotFound), in store_errors_total, labelled by store kind and
// operation. Installed once, at Provision; nothing else times the store.
// It implements every method itself (no embedding), so a method added to
// store.Store cannot pass through untimed.
type timedStore struct {
	st  store.Store
	ops [numStoreOps]storeOpMetrics
}

var _ store.Store = (*timedStore)(nil)

// storeOp is the op label of the store metrics.
type storeOp uint8

const (
	opSave storeOp = iota
	opLookup
	opBind
	opClaim
	opFail
	opGet
	opSet
	opLock
	opUnlock // the release Lock returns
	opLookupTTL
	opTouch
	opUnbind
	opSetIfAbsent
	numStoreOps
)

var storeOpNames = [numStoreOps]string{
	opSave: "save", opLookup: "lookup", opBind: "bind", opClaim: "claim", opFail: "fail",
	opGet: "get", opSet: "set", opLock: "lock", opUnlock: "unlock",
	opLookupTTL: "lookupttl", opTouch: "touch", opUnbind: "unbind", opSetIfAbsent: "setifabsent",
}

type storeOpMetrics struct {
	time   prometheus.Observer
	errors prometheus.Counter
}

// newTimedStore wraps st; kind is the store label ("memory", "redis").
func newTimedStore(st store.Store, kind string) *timedStore {
	t := &timedStore{st: st}
	for op, name := range storeOpNames {
		t.ops[op] = storeOpMetrics{
			time:   metrics.storeTime.WithLabelValues(kind, name),
			errors: metrics.storeErrors.WithLabelValues(kind, name),
		}
	}
	return t
}

func (t *timedStore) done(op storeOp, start time.Time, err error) {
	m := &t.ops[op]
	m.time.Observe(time.Since(start).Seconds())
	if err != nil && storeFailed(err) {
		m.errors.Inc()
	}
}

func (t *timedStore) Save(ctx context.Context, ref string, s store.Session, ttl time.Duration) (store.Session, error) {
	start := time.Now()
	out, err := t.st.Save(ctx, ref, s, ttl)
	t.done(opSave, start, err)
	return out, err
}

func (t *timedStore) Lookup(ctx context.Context, ref string) (store.Session, error) {
	start := time.Now()
	s, err := t.st.Lookup(ctx, ref)
	t.done(opLookup, start, err)
	return s, err
}

func (t *timedStore) Bind(ctx context.Context, ref, openid string, ttl time.Duration) error {
	start := time.Now()
	err := t.st.Bind(ctx, ref, openid, ttl)
	t.done(opBind, start, err)
	return err
}

func (t *timedStore) LookupTTL(ctx context.Context, ref string) (store.Session, time.Duration, error) {
	start := time.Now()
	s, ttl, err := t.st.LookupTTL(ctx, ref)
	t.done(opLookupTTL, start, err)
	return s, ttl, err
}

func (t *timedStore) Touch(ctx context.Context, ref, openid string, ttl time.Duration) error {
	start := time.Now()
	err := t.st.Touch(ctx, ref, openid, ttl)
	t.done(opTouch, start, err)
	return err
}

func (t *timedStore) Unbind(ctx context.Context, ref string) error {
	start := time.Now()
	err := t.st.Unbind(ctx, ref)
	t.done(opUnbind, start, err)
	return err
}

func (t *timedStore) Claim(ctx context.Context, ref string, ttl time.Duration) (bool, []byte, error) {
	start := time.Now()
	won, failure, err := t.st.Claim(ctx, ref, ttl)
	t.done(opClaim, start, err)
	return won, failure, err
}

func (t *timedStore) Fail(ctx context.Context, ref string, failure []byte, ttl time.Duration) error {
	start := time.Now()
	err := t.st.Fail(ctx, ref, failure, ttl)
	t.done(opFail, start, err)
	return err
}

func (t *timedStore) Get(ctx context.Context, name string) ([]byte, error) {
	start := time.Now()
	b, err := t.st.Get(ctx, name)
	t.done(opGet, start, err)
	return b, err
}

func (t *timedStore) Set(ctx context.Context, name string, value []byte, ttl time.Duration) error {
	start := time.Now()
	err := t.st.Set(ctx, name, value, ttl)
	t.done(opSet, start, err)
	return err
}

func (t *timedStore) SetIfAbsent(ctx context.Context, name string, value []byte, ttl time.Duration) ([]byte, bool, error) {
	start := time.Now()
	cur, stored, err := t.st.SetIfAbsent(ctx, name, value, ttl)
	t.done(opSetIfAbsent, start, err)
	return cur, stored, err
}

// Lock times the lock, and the release it returns, once, like the
// stores' own (op unlock; the stores report no release errors: a lock they
// cannot release expires).
func (t *timedStore) Lock(ctx context.Context, name string, ttl time.Duration) (func(), bool, error) {
	start := time.Now()
	unlock, ok, err := t.st.Lock(ctx, name, ttl)
	t.done(opLock, start, err)
	if !ok || unlock == nil {
		return unlock, ok, err
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			start := time.Now()
			unlock()
			t.done(opUnlock, start, nil)
		})
	}, ok, err
}

// Close releases the store (not an operation on sessions: not timed).
func (t *timedStore) Close() error { return t.st.Close() }
