// Package accesstoken keeps one server token per app (WeChat's access
// token, Douyin's client token), shared by any number of instances through
// a store.Store.
//
// Douyin's client token (POST /oauth/client_token/) behaves like WeChat's
// classic token: a fetch supersedes the previous token, which stays valid
// 5 more minutes. It is kept by a Manager in classic mode under its own
// name (Options.Name "client_token").
//
// WeChat allows one current token per app: a GET /cgi-bin/token invalidates
// the previous token (it lives about 5 more minutes), and a forced
// stable_token refresh invalidates the previous stable token at once. So
// every instance must share one token: one refresher, the others read it
// (a pitfall the platforms document).
//
// # How a token is obtained
//
// Manager.Token answers, in this order:
//
//  1. the token held in memory, while fresh (fetched less than
//     Options.Refresh × expires_in ago) — no I/O;
//  2. the token in the store (named value "access_token", JSON
//     {"token","expires_at","fetched_at"}, stored with TTL = expires_in),
//     while fresh;
//  3. a refresh: the instance that takes the store lock "access_token"
//     (Options.LockTTL) reads the store once more, then fetches a token from
//     the platform and stores it before releasing the lock. Within one
//     process, concurrent callers share one refresh (single flight).
//     Instances that lose the lock use their current token if it is still
//     valid (a refresh ahead of expiry is under way elsewhere); otherwise they
//     poll the store, and retry the lock, for at most Options.Wait (the
//     plugin's one claim-or-wait loop, internal/claim), and then fail
//     (ErrWaitTimeout) rather than start a second refresh.
//
// A refresh runs detached from the context of the caller that started it
// (other callers share it); it is bounded by the store's and the platform's
// timeouts, Wait and LockTTL, and a caller whose context ends stops waiting
// for it.
//
// A token that a business API rejected (Invalidate; the last four are
// remembered) is never taken as valid again, from memory or from the store. In stable mode the refresh first
// asks stable_token without force_refresh (which gives a new token if the
// platform rotated it, and never invalidates anyone's token); only when
// that returns the very token that was rejected does it ask again with
// force_refresh=true, at most once per ForceRefreshInterval per instance.
//
// # When the store fails
//
// A store that cannot be reached (any error but store.ErrNotFound) does not
// stop phone numbers: the manager uses its in-memory token while it is still
// valid (not expired, not rejected), and otherwise fetches a token directly
// from the platform, logging a warning, and tries to store it. After a store
// failure the store is left alone for StoreRetryAfter, during which a valid
// in-memory token is used without a store round trip. In classic mode two
// instances fetching directly invalidate each other's tokens (a "token
// fight"); each then gets 40001 from the platform, and Do refreshes and
// retries once. That is accepted: a token fight is better than no phone
// numbers. Stable mode has no fight unless a token is rejected.
//
// # Secrets
//
// Tokens never appear in a log line or an error message: logs carry only a
// token's length and expiry. The platform client keeps the app secret out of
// its errors.
//
// # Store layout
//
// The store must be the app's own (e.g. a Redis prefix per app): the
// manager uses the named value and the lock Options.Name ("access_token"
// by default).
package accesstoken

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/claim"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/platform"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/store"
)

// Modes.
const (
	ModeStable  = "stable"  // POST /cgi-bin/stable_token (default)
	ModeClassic = "classic" // GET /cgi-bin/token
)

// Defaults of Options.
const (
	DefaultRefresh = 0.8
	DefaultLockTTL = 10 * time.Second
	DefaultWait    = 5 * time.Second
)

// Names in the store (the defaults of Options.Name).
const (
	StoreName = "access_token" // the named value holding the record
	LockName  = "access_token" // the named lock of the refresher
)

const (
	// StoreRetryAfter is how long the store is left alone after it failed.
	StoreRetryAfter = 5 * time.Second
	// ForceRefreshInterval is the platform's minimum interval between
	// forced stable_token refreshes; the manager does not force more often.
	ForceRefreshInterval = 30 * time.Second
	// expirySafety: a token is not handed out in its last moments (it
	// could expire on the way to the platform).
	expirySafety = 10 * time.Second
)

// ErrWaitTimeout is returned by Token when another instance held the refresh
// lock for longer than Options.Wait and no valid token was available.
var ErrWaitTimeout = errors.New("accesstoken: timed out waiting for another instance to refresh the access token")

// Options configure a Manager. Zero values take the defaults.
type Options struct {
	// Mode is ModeStable (default) or ModeClassic. A token client that
	// cannot fetch stable tokens (not a platform.StableTokenClient, such as
	// Douyin's client token) is always used in classic mode: each fetch
	// supersedes the previous token.
	Mode string
	// Name is the store's named value and lock holding the token; default
	// StoreName ("access_token"). Douyin's client token is "client_token".
	Name string
	// Refresh: a token is refreshed once this fraction of its expires_in
	// has passed. In (0, 1); default 0.8.
	Refresh float64
	// LockTTL is the refresh lock's lifetime and bounds one platform fetch.
	// Default 10s.
	LockTTL time.Duration
	// Wait bounds how long an instance without a valid token waits for
	// another instance's refresh. Default 5s.
	Wait time.Duration
	// Now is the clock (tests); default time.Now.
	Now func() time.Time
	// Logger; nil means no logs.
	Logger *zap.Logger
}

// Validate reports options New would have to correct.
func (o Options) Validate() error {
	switch o.Mode {
	case "", ModeStable, ModeClassic:
	default:
		return fmt.Errorf("accesstoken: mode must be %q or %q, not %q", ModeStable, ModeClassic, o.Mode)
	}
	if o.Refresh != 0 && !(o.Refresh > 0 && o.Refresh < 1) {
		return fmt.Errorf("accesstoken: refresh must be a fraction between 0 and 1 (exclusive), not %v", o.Refresh)
	}
	if o.LockTTL < 0 {
		return errors.New("accesstoken: lock TTL must not be negative")
	}
	if o.Wait < 0 {
		return errors.New("accesstoken: wait must not be negative")
	}
	return nil
}

// record is what the store holds (and what the manager holds in memory).
type record struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
	FetchedAt time.Time `json:"fetched_at"`
}

// due is when the token's refresh is due: the refresh fraction of its
// lifetime after it was fetched.
func (r record) due(refresh float64) time.Time {
	life := r.ExpiresAt.Sub(r.FetchedAt)
	return r.FetchedAt.Add(time.Duration(float64(life) * refresh))
}

// fresh: not yet due for a refresh.
func (r record) fresh(now time.Time, refresh float64) bool {
	if r.Token == "" {
		return false
	}
	return now.Before(r.due(refresh)) && r.usable(now)
}

// usable: not expired (with a small safety margin, smaller for short-lived
// tokens).
func (r record) usable(now time.Time) bool {
	if r.Token == "" {
		return false
	}
	margin := min(expirySafety, r.ExpiresAt.Sub(r.FetchedAt)/10)
	return now.Before(r.ExpiresAt.Add(-margin))
}

// flight is one in-process refresh that concurrent callers share.
type flight struct {
	done  chan struct{}
	gen   uint64 // m.rejectGen when it started
	token string
	err   error
}

// rememberRejected is how many rejected tokens a manager remembers.
const rememberRejected = 4

// Manager keeps one app's access token. It is safe for concurrent use.
type Manager struct {
	tc      platform.TokenClient
	st      store.Store
	name    string // the store's named value and lock
	mode    string
	refresh float64
	lockTTL time.Duration
	wait    time.Duration
	now     func() time.Time
	log     *zap.Logger

	mu             sync.Mutex
	cur            record                   // the token in memory
	rejected       [rememberRejected]string // the last tokens a business API rejected
	rejectedNext   int                      // ring position
	rejectGen      uint64                   // incremented by each new rejection
	inflight       *flight                  // the refresh under way, if any
	storeDownUntil time.Time                // leave the store alone until then
	lastForce      time.Time                // this instance's last forced stable refresh

	refreshes atomic.Int64
	forced    atomic.Int64
}

// New returns a manager fetching tokens with tc and sharing them through st
// (nil: a private in-memory store, for a single instance). Invalid options
// are replaced by their defaults, with an error logged; check them first
// with Options.Validate.
func New(tc platform.TokenClient, st store.Store, o Options) *Manager {
	m := &Manager{
		tc:      tc,
		st:      st,
		name:    o.Name,
		mode:    o.Mode,
		refresh: o.Refresh,
		lockTTL: o.LockTTL,
		wait:    o.Wait,
		now:     o.Now,
		log:     o.Logger,
	}
	if m.log == nil {
		m.log = zap.NewNop()
	}
	if err := o.Validate(); err != nil {
		m.log.Error("invalid access token options; using defaults where needed", zap.Error(err))
	}
	if m.name == "" {
		m.name = StoreName
	}
	if _, stable := tc.(platform.StableTokenClient); tc != nil && !stable {
		if o.Mode == ModeStable {
			m.log.Error("this token client has no stable mode; using classic")
		}
		m.mode = ModeClassic
	}
	if m.mode != ModeClassic {
		m.mode = ModeStable
	}
	if !(m.refresh > 0 && m.refresh < 1) {
		m.refresh = DefaultRefresh
	}
	if m.lockTTL <= 0 {
		m.lockTTL = DefaultLockTTL
	}
	if m.wait <= 0 {
		m.wait = DefaultWait
	}
	if m.now == nil {
		m.now = time.Now
	}
	if m.st == nil {
		m.st = store.NewMemory(store.MemoryOptions{MaxSessions: 16, Now: m.now})
	}
	return m
}

// Mode is the mode in use (ModeStable or ModeClassic).
func (m *Manager) Mode() string { return m.mode }

// Refreshes is the number of token fetches (platform calls) this instance
// made, forced ones included.
func (m *Manager) Refreshes() int64 { return m.refreshes.Load() }

// ForcedRefreshes is the number of stable_token calls with
// force_refresh=true this instance made.
func (m *Manager) ForcedRefreshes() int64 { return m.forced.Load() }

// Token returns a valid access token; see the package documentation.
func (m *Manager) Token(ctx context.Context) (string, error) {
	for round := 0; ; round++ {
		now := m.now()
		m.mu.Lock()
		cur := m.cur
		ok := cur.Token != "" && !m.isRejectedLocked(cur.Token)
		if ok && cur.fresh(now, m.refresh) {
			m.mu.Unlock()
			return cur.Token, nil
		}
		usable := ok && cur.usable(now)
		if usable && (m.inflight != nil || now.Before(m.storeDownUntil)) {
			// Refresh under way (or the store is down): the current
			// token is still good meanwhile.
			m.mu.Unlock()
			return cur.Token, nil
		}
		f := m.inflight
		if f == nil {
			f = &flight{done: make(chan struct{}), gen: m.rejectGen}
			m.inflight = f
			// Detached from the caller: other callers share it. It is
			// bounded by the store's and the platform's timeouts, Wait
			// and LockTTL.
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), m.wait+2*m.lockTTL)
			go func() {
				defer cancel()
				f.token, f.err = m.obtain(fctx)
				m.mu.Lock()
				m.inflight = nil
				m.mu.Unlock()
				close(f.done)
			}()
		}
		m.mu.Unlock()

		select {
		case <-f.done:
		case <-ctx.Done():
			return "", ctx.Err()
		}
		if f.err != nil {
			return "", f.err
		}
		m.mu.Lock()
		rejectedSince := f.gen != m.rejectGen && m.isRejectedLocked(f.token)
		m.mu.Unlock()
		if rejectedSince && round == 0 {
			// The flight started before its token was rejected: one
			// more, knowing it.
			continue
		}
		return f.token, nil
	}
}

// KeepMargin is how long before its expiry TokenInfo tells a holder to
// let a token go at the latest.
const KeepMargin = 30 * time.Second

// TokenInfo is Token, and until when a holder that caches the token (a
// backend served by the compat endpoints) may keep it: until the manager's
// own refresh of it is due (Options.Refresh of its lifetime), and at the
// latest KeepMargin before it expires. After that refresh the old token
// stays valid for a while (classic tokens 5 minutes, stable tokens until
// they expire), so such a holder never keeps a dead token. The shared
// record in the store decides: keepUntil is zero (the caller picks a short
// time) when the record cannot be read, is gone, or holds another token
// (another instance refreshed: in classic mode this one dies 5 minutes
// later).
func (m *Manager) TokenInfo(ctx context.Context) (tok string, keepUntil time.Time, err error) {
	tok, err = m.Token(ctx)
	if err != nil {
		return "", time.Time{}, err
	}
	if m.st == nil {
		return tok, time.Time{}, nil
	}
	rec, found, err := m.load(ctx)
	if err != nil || !found || rec.Token != tok {
		return tok, time.Time{}, nil
	}
	keepUntil = rec.due(m.refresh)
	if last := rec.ExpiresAt.Add(-KeepMargin); last.Before(keepUntil) {
		keepUntil = last
	}
	return tok, keepUntil, nil
}

// Invalidate records that a business API rejected the token bad, so that
// the next Token refreshes, unless the store already holds another valid
// token (someone refreshed meanwhile), which is then taken. The mark holds
// even when the store cannot be read; that is the only error.
func (m *Manager) Invalidate(ctx context.Context, bad string) error {
	if bad == "" {
		return nil
	}
	m.mu.Lock()
	if !m.isRejectedLocked(bad) {
		m.rejected[m.rejectedNext] = bad
		m.rejectedNext = (m.rejectedNext + 1) % rememberRejected
		m.rejectGen++
	}
	storeDown := m.now().Before(m.storeDownUntil)
	m.mu.Unlock()
	m.log.Info("access token rejected by the platform; it will be refreshed", zap.Int("token_len", len(bad)))
	if storeDown {
		return nil
	}
	rec, found, err := m.load(ctx)
	if err != nil {
		m.storeFailed(err)
		return fmt.Errorf("accesstoken: invalidate: %w", err)
	}
	if found && !m.isRejected(rec.Token) && rec.usable(m.now()) {
		m.adopt(rec)
		m.log.Debug("access token already refreshed by another instance", tokenFields(rec)...)
	}
	return nil
}

// Do runs f with a token. If f's error wraps platform.ErrTokenInvalid, the
// token is invalidated and f runs once more with a fresh token; its error is
// then returned as it is (no further retry).
func (m *Manager) Do(ctx context.Context, f func(token string) error) error {
	tok, err := m.Token(ctx)
	if err != nil {
		return err
	}
	err = f(tok)
	if err == nil || !errors.Is(err, platform.ErrTokenInvalid) {
		return err
	}
	if ierr := m.Invalidate(ctx, tok); ierr != nil {
		m.log.Warn("access token store unavailable while invalidating; refreshing without it", zap.Error(ierr))
	}
	tok, err = m.Token(ctx)
	if err != nil {
		return err
	}
	return f(tok)
}

// obtain is the body of a flight: the store, the lock, the platform.
func (m *Manager) obtain(ctx context.Context) (string, error) {
	m.mu.Lock()
	storeDown := m.now().Before(m.storeDownUntil)
	m.mu.Unlock()
	if storeDown {
		return m.withoutStore(ctx)
	}
	rec, found, err := m.load(ctx)
	if err != nil {
		m.storeFailed(err)
		return m.withoutStore(ctx)
	}
	if found && !m.isRejected(rec.Token) && rec.fresh(m.now(), m.refresh) {
		m.adopt(rec)
		return rec.Token, nil
	}

	// The lock's holder is refreshing. A still valid token serves
	// meanwhile; otherwise wait for the holder's token (or take the lock
	// when it lapses).
	var unlock func()
	tok, err := claim.Run(ctx, m.wait, claim.Steps[string]{
		Claim: func(ctx context.Context) (bool, error) {
			var won bool
			var err error
			unlock, won, err = m.st.Lock(ctx, m.name, m.lockTTL)
			if err != nil {
				return false, errStoreDown{err}
			}
			return won, nil
		},
		Work: func(ctx context.Context) (string, error) { return m.refreshLocked(ctx, unlock) },
		Result: func(ctx context.Context) (string, bool, error) {
			rec, found, err = m.load(ctx)
			if err != nil {
				return "", false, errStoreDown{err}
			}
			if found && !m.isRejected(rec.Token) && rec.fresh(m.now(), m.refresh) {
				m.adopt(rec)
				return rec.Token, true, nil
			}
			return "", false, nil
		},
		Busy: func() (string, bool) { return m.usableToken(rec, found) },
	})
	var down errStoreDown
	switch {
	case err == nil:
		return tok, nil
	case errors.As(err, &down):
		m.storeFailed(down.err)
		return m.withoutStore(ctx)
	case errors.Is(err, claim.ErrWaitTimeout):
		if tok, ok := m.usableToken(rec, found); ok {
			return tok, nil
		}
		m.log.Warn("gave up waiting for another instance's access token refresh", zap.Duration("wait", m.wait))
		return "", ErrWaitTimeout
	}
	// The refresh's own error, or the caller's context ended (wrapped).
	return "", err
}

// errStoreDown carries a store failure out of the claim-or-wait loop:
// the manager then works without the store for a while.
type errStoreDown struct{ err error }

func (e errStoreDown) Error() string { return e.err.Error() }
func (e errStoreDown) Unwrap() error { return e.err }

// refreshLocked fetches a token while holding the store lock, and stores it
// before releasing the lock.
func (m *Manager) refreshLocked(ctx context.Context, unlock func()) (string, error) {
	defer unlock()
	// Someone may have stored a token between our read and the lock.
	rec, found, err := m.load(ctx)
	if err == nil && found && !m.isRejected(rec.Token) && rec.fresh(m.now(), m.refresh) {
		m.adopt(rec)
		return rec.Token, nil
	}
	if err != nil {
		m.log.Warn("access token store read failed under the lock; fetching anyway", zap.Error(err))
	}
	stored, storedFound := rec, found && err == nil
	rec, err = m.fetch(ctx)
	if err != nil {
		if tok, ok := m.usableToken(stored, storedFound); ok {
			m.log.Warn("access token refresh failed; using the current token until it expires", zap.Error(err))
			return tok, nil
		}
		return "", err
	}
	m.adopt(rec)
	if err := m.save(ctx, rec); err != nil {
		m.storeFailed(err)
	}
	return rec.Token, nil
}

// withoutStore serves a token while the store is unavailable: the memory
// one if still valid, else a direct fetch.
func (m *Manager) withoutStore(ctx context.Context) (string, error) {
	if tok, ok := m.usableToken(record{}, false); ok {
		return tok, nil
	}
	m.log.Warn("access token store unavailable and no valid token in memory; fetching directly (instances may invalidate each other's tokens)")
	rec, err := m.fetch(ctx)
	if err != nil {
		return "", err
	}
	// Not stored: the store just failed. Once it is back, the next
	// refresh stores its token and every instance converges on it.
	m.adopt(rec)
	return rec.Token, nil
}

// usableToken is the memory token, or else rec, if valid and not rejected.
func (m *Manager) usableToken(rec record, found bool) (string, bool) {
	now := m.now()
	m.mu.Lock()
	cur := m.cur
	m.mu.Unlock()
	good := func(r record) bool { return r.usable(now) && !m.isRejected(r.Token) }
	if good(cur) {
		return cur.Token, true
	}
	if found && good(rec) {
		m.adopt(rec)
		return rec.Token, true
	}
	return "", false
}

// fetch asks the platform for a token. In stable mode, when the plain call
// returns a token a business API rejected, it forces a refresh (at most
// once per ForceRefreshInterval).
func (m *Manager) fetch(ctx context.Context) (record, error) {
	ctx, cancel := context.WithTimeout(ctx, m.lockTTL)
	defer cancel()
	var (
		t      platform.Token
		err    error
		forced bool
	)
	m.refreshes.Add(1)
	if m.mode == ModeClassic {
		t, err = m.tc.Token(ctx)
	} else {
		stc := m.tc.(platform.StableTokenClient) // New keeps stable mode for these only
		t, err = stc.StableToken(ctx, false)
		if err == nil && m.isRejected(t.AccessToken) {
			now := m.now()
			m.mu.Lock()
			allowed := m.lastForce.IsZero() || now.Sub(m.lastForce) >= ForceRefreshInterval
			if allowed {
				m.lastForce = now
			}
			m.mu.Unlock()
			if allowed {
				forced = true
				m.refreshes.Add(1)
				m.forced.Add(1)
				t, err = stc.StableToken(ctx, true)
			} else {
				m.log.Warn("the platform still gives the rejected access token, and it was force-refreshed less than 30s ago; not forcing again")
			}
		}
	}
	if err != nil {
		m.log.Warn("access token fetch failed", zap.String("mode", m.mode), zap.Bool("forced", forced), zap.Error(err))
		return record{}, fmt.Errorf("accesstoken: fetch (%s): %w", m.mode, err)
	}
	if t.AccessToken == "" || t.ExpiresIn <= 0 {
		return record{}, fmt.Errorf("accesstoken: fetch (%s): the platform gave no usable token", m.mode)
	}
	now := m.now()
	rec := record{Token: t.AccessToken, FetchedAt: now, ExpiresAt: now.Add(t.ExpiresIn)}
	m.log.Info("access token fetched",
		append(tokenFields(rec), zap.String("mode", m.mode), zap.Bool("forced", forced))...)
	return rec, nil
}

// isRejected: a business API rejected tok (Invalidate).
func (m *Manager) isRejected(tok string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.isRejectedLocked(tok)
}

func (m *Manager) isRejectedLocked(tok string) bool {
	for _, r := range m.rejected {
		if r != "" && r == tok {
			return true
		}
	}
	return false
}

// adopt makes rec the in-memory token.
func (m *Manager) adopt(rec record) {
	m.mu.Lock()
	if rec.Token != m.cur.Token || rec.ExpiresAt.After(m.cur.ExpiresAt) {
		m.cur = rec
	}
	m.mu.Unlock()
}

// load reads the stored record. found is false when absent or unreadable
// (an unreadable record is overwritten by the next refresh); err is set
// only when the store failed.
func (m *Manager) load(ctx context.Context) (rec record, found bool, err error) {
	b, err := m.st.Get(ctx, m.name)
	if errors.Is(err, store.ErrNotFound) {
		return record{}, false, nil
	}
	if err != nil {
		return record{}, false, err
	}
	if err := json.Unmarshal(b, &rec); err != nil || rec.Token == "" || !rec.ExpiresAt.After(rec.FetchedAt) {
		m.log.Warn("stored access token record is unreadable; ignoring it", zap.Int("bytes", len(b)))
		return record{}, false, nil
	}
	return rec, true, nil
}

// save stores rec with TTL = its expires_in.
func (m *Manager) save(ctx context.Context, rec record) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	return m.st.Set(ctx, m.name, b, rec.ExpiresAt.Sub(rec.FetchedAt))
}

// storeFailed notes a store failure: the store is left alone for
// StoreRetryAfter.
func (m *Manager) storeFailed(err error) {
	now := m.now()
	m.mu.Lock()
	already := now.Before(m.storeDownUntil)
	m.storeDownUntil = now.Add(StoreRetryAfter)
	m.mu.Unlock()
	if !already {
		m.log.Warn("access token store unavailable; using the token in memory or fetching directly",
			zap.Duration("retry_after", StoreRetryAfter), zap.Error(err))
	}
}

// tokenFields describe a token for logs without revealing it.
func tokenFields(rec record) []zap.Field {
	return []zap.Field{
		zap.Int("token_len", len(rec.Token)),
		zap.Time("expires_at", rec.ExpiresAt),
		zap.Duration("expires_in", rec.ExpiresAt.Sub(rec.FetchedAt)),
	}
}
