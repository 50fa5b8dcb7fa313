// Package store keeps sessions: one record per user (openid) holding the
// current and the previous session key, and references (a hash of a login
// code, or of a token the upstream issued) that point at it. Two
// implementations: Memory (one process) and Redis (shared by instances).
//
// Refs are opaque strings made by the caller (hashes, never raw codes or
// tokens). Every method that cannot reach its backend returns an error
// wrapping ErrUnavailable, fast (bounded timeouts).
//
// TTLs: a ttl <= 0 means no expiry (the entry lives until overwritten or,
// in Memory, evicted). Save gives the user record and the ref the same
// ttl, refreshing the record's; a ref made at an older login keeps its own
// TTL and, while it and the record live, finds the user's current record.
//
// Save merges: an empty UnionID or Fields keeps the stored one.
package store

import (
	"context"
	"errors"
	"time"
)

// ErrNotFound: nothing stored under that ref or name (or it expired).
var ErrNotFound = errors.New("store: not found")

// ErrUnavailable: the backend cannot be reached.
var ErrUnavailable = errors.New("store: unavailable")

// errEmptyOpenID: Save or Bind without a user.
var errEmptyOpenID = errors.New("store: empty openid")

// errNoTTL: Touch without a TTL.
var errNoTTL = errors.New("store: touch needs a ttl greater than zero")

// Session is a user's record.
type Session struct {
	OpenID         string
	UnionID        string
	SessionKey     string // current key, base64 text
	PrevSessionKey string // the key before the last rotation, or ""
	// Fields are the platform's other identity fields by name (Douyin's
	// anonymous_openid, Feishu's tenant_key), nil when none. Save replaces
	// them as a whole when non-empty, and keeps the stored ones otherwise.
	Fields map[string]string
}

// Store is what the handler needs from a session store.
type Store interface {
	// Save records a login: it creates or refreshes the user's record
	// (when s.SessionKey differs from the stored current key, the stored
	// current key becomes PrevSessionKey), points ref at the user, and
	// gives both the TTL. s.PrevSessionKey is ignored. It returns the
	// record as stored.
	Save(ctx context.Context, ref string, s Session, ttl time.Duration) (Session, error)
	// Lookup follows ref to the user's record. ErrNotFound when either is
	// missing or expired.
	Lookup(ctx context.Context, ref string) (Session, error)
	// Bind points another ref (e.g. the hash of an upstream token) at the
	// user openid, with the TTL.
	Bind(ctx context.Context, ref, openid string, ttl time.Duration) error
	// LookupTTL is Lookup that also returns the ref's remaining TTL (0
	// when the ref has no expiry), in the same round trip: a caller
	// extending sessions (Touch) reads from it when the ref was last
	// extended, without a write per request.
	LookupTTL(ctx context.Context, ref string) (Session, time.Duration, error)
	// Touch sets ref's TTL to ttl (> 0) and extends the record of the
	// user openid so that it lives at least ttl (a longer TTL is kept; a
	// record without expiry stays so), so the ref cannot outlive the
	// record it points at. ErrNotFound when ref is gone (nothing is
	// changed then).
	Touch(ctx context.Context, ref, openid string, ttl time.Duration) error
	// Unbind deletes ref (absent: nothing to do, no error). The user's
	// record and its other refs stay.
	Unbind(ctx context.Context, ref string) error

	// Claim makes the caller the one that exchanges ref's code, for ttl,
	// across every instance sharing the store. won is false when another
	// caller holds the claim; then failure is what that caller recorded
	// with Fail, or nil while it is still at work.
	Claim(ctx context.Context, ref string, ttl time.Duration) (won bool, failure []byte, err error)
	// Fail records the failure of the claimed exchange for the others.
	Fail(ctx context.Context, ref string, failure []byte, ttl time.Duration) error

	// Get, Set and Lock are a small named key-value space for shared
	// state such as the access token. Get returns ErrNotFound when absent.
	Get(ctx context.Context, name string) ([]byte, error)
	Set(ctx context.Context, name string, value []byte, ttl time.Duration) error
	// SetIfAbsent sets name to value for ttl unless it holds a value:
	// atomically, the first caller's value stays (stored true), every
	// later caller gets the value held (current). A caller that saw an
	// error may have stored its value: calling again tells.
	SetIfAbsent(ctx context.Context, name string, value []byte, ttl time.Duration) (current []byte, stored bool, err error)
	// Lock takes a named lock for ttl; ok is false when someone holds it.
	// unlock releases it only if still ours.
	Lock(ctx context.Context, name string, ttl time.Duration) (unlock func(), ok bool, err error)

	// Close releases the store's resources (for Redis: the shared client's
	// reference in the usage pool).
	Close() error
}
