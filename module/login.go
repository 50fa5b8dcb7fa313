package module

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/mperr"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/platform"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/store"
)

// Headers and body fields the handler injects.
const (
	HeaderOpenID          = "X-Mp-Openid"
	HeaderUnionID         = "X-Mp-Unionid"
	HeaderAnonymousOpenID = "X-Mp-Anonymous-Openid"
	HeaderPlatform        = "X-Mp-Platform"
	HeaderAppID           = "X-Mp-App-Id"
	HeaderPhone           = "X-Mp-Phone"
	HeaderPurePhone       = "X-Mp-Pure-Phone"
	HeaderCountryCode     = "X-Mp-Country-Code"

	FieldOpenID          = "openid"
	FieldUnionID         = "unionid"
	FieldAnonymousOpenID = "anonymous_openid"
	FieldPhoneNumber     = "phoneNumber"
	FieldPurePhoneNumber = "purePhoneNumber"
	FieldCountryCode     = "countryCode"
	FieldDecryptedData   = "decryptedData"
)

// How long a failed exchange is remembered for the code: a dead code stays
// dead, a transient failure may be retried soon.
const (
	deadCodeTTL  = 5 * time.Minute
	transientTTL = 2 * time.Second
	pollEvery    = 20 * time.Millisecond
)

// codeRef is the store reference of a login code: a hash, never the code.
func (h *Handler) codeRef(code string) string { return h.ref('c', code) }

func (h *Handler) ref(kind byte, secret string) string {
	sum := sha256.New()
	sum.Write([]byte(h.Platform))
	sum.Write([]byte{0})
	sum.Write([]byte(h.AppID))
	sum.Write([]byte{0, kind, 0})
	sum.Write([]byte(secret))
	var buf [sha256.Size]byte
	return hex.EncodeToString(sum.Sum(buf[:0])[:16])
}

// serveLogin exchanges the request's login code (at once, once) and injects
// the identity.
func (h *Handler) serveLogin(r *http.Request, in *input) (store.Session, error) {
	body := in.body
	code, err := in.field(h.f.Code)
	if err != nil {
		return store.Session{}, err
	}
	anon, err := in.field(h.f.AnonymousCode)
	if err != nil {
		return store.Session{}, err
	}
	if code == "" {
		return store.Session{}, mperr.Newf(mperr.MissingCode, "the login request carries no %q", h.f.Code)
	}
	if h.Platform != platform.Douyin {
		anon = ""
	}
	ctx, err := h.checkFailures(r)
	if err != nil {
		return store.Session{}, err
	}
	s, err := h.exchange(ctx, code, anon)
	if err != nil {
		return s, err
	}

	hdr := r.Header
	hdr.Set(HeaderOpenID, s.OpenID)
	if s.UnionID != "" {
		hdr.Set(HeaderUnionID, s.UnionID)
	}
	if s.AnonymousOpenID != "" {
		hdr.Set(HeaderAnonymousOpenID, s.AnonymousOpenID)
	}
	hdr.Set(HeaderPlatform, h.Platform)
	hdr.Set(HeaderAppID, h.AppID)
	body.Del(identityFields...)
	body.Set(FieldOpenID, s.OpenID)
	if s.UnionID != "" {
		body.Set(FieldUnionID, s.UnionID)
	} else {
		body.Del(FieldUnionID)
	}
	if s.AnonymousOpenID != "" {
		body.Set(FieldAnonymousOpenID, s.AnonymousOpenID)
	} else {
		body.Del(FieldAnonymousOpenID)
	}
	body.Apply(r)
	caddyhttp.SetVar(r.Context(), "mp.openid", s.OpenID)
	if c := h.logger.Check(zap.DebugLevel, "login"); c != nil {
		c.Write(zap.String("openid", s.OpenID), zap.Bool("unionid", s.UnionID != ""))
	}
	return s, nil
}

// exchange returns the session of a login code, exchanging the code with
// the platform only if nobody did yet: once per code in this process
// (single-flight) and across instances sharing the store (a claim the
// others wait on).
func (h *Handler) exchange(ctx context.Context, code, anon string) (store.Session, error) {
	ref := h.codeRef(code)
	if s, ok := h.unsaved.get(ref); ok {
		return h.saveUnsaved(ctx, ref, s)
	}
	s, err := h.store.Lookup(ctx, ref)
	if err == nil {
		metrics.dedup.WithLabelValues(h.Platform, "store").Inc()
		return s, nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return s, storeErr(err)
	}
	v, err, shared := h.flight.Do(ref, func() (any, error) {
		// Detached from the first caller: its leaving must not fail the
		// others waiting on the same code.
		// Bounded: waiting for another instance (ExchangeWait) and, if its
		// claim lapses, one exchange of our own (PlatformTimeout).
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Duration(h.ExchangeWait+h.PlatformTimeout))
		defer cancel()
		return h.exchangeOnce(ctx, ref, code, anon)
	})
	if shared {
		metrics.dedup.WithLabelValues(h.Platform, "singleflight").Inc()
	}
	if err != nil {
		return store.Session{}, err
	}
	return v.(store.Session), nil
}

func (h *Handler) exchangeOnce(ctx context.Context, ref, code, anon string) (store.Session, error) {
	claimTTL := time.Duration(h.PlatformTimeout) + time.Second
	waitUntil := time.Now().Add(time.Duration(h.ExchangeWait))
	for {
		won, failure, err := h.store.Claim(ctx, ref, claimTTL)
		if err != nil {
			return store.Session{}, storeErr(err)
		}
		if won {
			return h.exchangeClaimed(ctx, ref, code, anon)
		}
		if failure != nil {
			return store.Session{}, decodeFailure(failure)
		}
		// Another instance is exchanging this code: wait for its result.
		if time.Now().After(waitUntil) {
			return store.Session{}, mperr.New(mperr.PlatformTimeout, "timed out waiting for the exchange of this code by another instance")
		}
		t := time.NewTimer(pollEvery)
		select {
		case <-ctx.Done():
			t.Stop()
			return store.Session{}, mperr.New(mperr.PlatformTimeout, "timed out waiting for the exchange of this code by another instance")
		case <-t.C:
		}
		s, err := h.store.Lookup(ctx, ref)
		if err == nil {
			metrics.dedup.WithLabelValues(h.Platform, "instance").Inc()
			return s, nil
		}
		if !errors.Is(err, store.ErrNotFound) {
			return store.Session{}, storeErr(err)
		}
	}
}

func (h *Handler) exchangeClaimed(ctx context.Context, ref, code, anon string) (store.Session, error) {
	start := time.Now()
	ps, err := h.client.Code2Session(ctx, code, anon)
	metrics.code2sessionTime.WithLabelValues(h.Platform).Observe(time.Since(start).Seconds())
	metrics.code2session.WithLabelValues(h.Platform, outcome(err)).Inc()
	if err != nil {
		e := mperr.From(err)
		h.recordFailure(ctx, "code2session", ref, e, time.Since(start))
		h.countFailure(ctx, e)
		return store.Session{}, e
	}
	s, err := h.store.Save(ctx, ref, store.Session{
		OpenID:          ps.OpenID,
		UnionID:         ps.UnionID,
		AnonymousOpenID: ps.AnonymousOpenID,
		SessionKey:      ps.SessionKey,
	}, time.Duration(h.SessionTTL))
	if err != nil {
		// The code is spent: keep the result for a retry on this instance.
		h.unsaved.put(ref, store.Session{
			OpenID:          ps.OpenID,
			UnionID:         ps.UnionID,
			AnonymousOpenID: ps.AnonymousOpenID,
			SessionKey:      ps.SessionKey,
		})
		return store.Session{}, storeErr(err)
	}
	h.logger.Debug("code2session", zap.String("openid", ps.OpenID), zap.Duration("took", time.Since(start)))
	return s, nil
}

// saveUnsaved retries saving a session exchanged earlier whose save failed.
func (h *Handler) saveUnsaved(ctx context.Context, ref string, s store.Session) (store.Session, error) {
	saved, err := h.store.Save(ctx, ref, s, time.Duration(h.SessionTTL))
	if err != nil {
		return store.Session{}, storeErr(err)
	}
	h.unsaved.del(ref)
	h.logger.Info("saved a session whose first save had failed", zap.String("openid", s.OpenID))
	return saved, nil
}

// recordFailure remembers a failed exchange of ref's code for the other
// requests and instances waiting on it (a dead code for 5 minutes, a
// transient failure for 2 s), and logs it without the code.
func (h *Handler) recordFailure(ctx context.Context, call, ref string, e *mperr.Error, took time.Duration) {
	ttl := transientTTL
	if e.Code == mperr.InvalidCode || e.Code == mperr.UserBlocked || e.Code == mperr.WatermarkMismatch {
		ttl = deadCodeTTL
	}
	buf, _ := json.Marshal(e.Body())
	if ferr := h.store.Fail(ctx, ref, buf, ttl); ferr != nil {
		h.logger.Warn("could not record a failed exchange", zap.String("call", call), zap.Error(ferr))
	}
	h.logger.Info(call+" failed", zap.String("error", string(e.Code)),
		zap.Bool("has_errcode", e.HasErrcode), zap.Int("errcode", e.Errcode),
		zap.Bool("consumed_by_lost_attempt", errors.Is(e, platform.ErrConsumedByRetry)),
		zap.Duration("took", took))
}

func decodeFailure(b []byte) error {
	var body mperr.Body
	if err := json.Unmarshal(b, &body); err != nil || body.Error == "" {
		return mperr.New(mperr.PlatformError, "the exchange of this code failed")
	}
	e := &mperr.Error{Code: body.Error, Message: body.Message}
	if body.PlatformErrcode != nil {
		e.HasErrcode, e.Errcode = true, *body.PlatformErrcode
	}
	return e
}

// storeFailed tells a store error that is not a plain "not found".
func storeFailed(err error) bool { return !errors.Is(err, store.ErrNotFound) }

func storeErr(err error) error {
	if e, ok := mperr.As(err); ok {
		return e
	}
	return mperr.Wrap(mperr.StoreUnavailable, "the session store cannot be reached", err)
}
