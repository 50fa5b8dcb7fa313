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

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/claim"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/mperr"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/platform"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/reqbody"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/store"
)

// Headers and body fields the handler injects.
const (
	HeaderOpenID      = "X-Mp-Openid"
	HeaderUnionID     = "X-Mp-Unionid"
	HeaderPlatform    = "X-Mp-Platform"
	HeaderAppID       = "X-Mp-App-Id"
	HeaderPhone       = "X-Mp-Phone"
	HeaderPurePhone   = "X-Mp-Pure-Phone"
	HeaderCountryCode = "X-Mp-Country-Code"
	// A platform's other identity fields (Descriptor.IdentityFields) are
	// injected as body fields of their own name and as headers
	// X-Mp-<Name> (identityHeader): anonymous_openid is
	// X-Mp-Anonymous-Openid, tenant_key X-Mp-Tenant-Key.

	FieldOpenID          = "openid"
	FieldUnionID         = "unionid"
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
	if !h.platformDesc().AnonymousCode {
		anon = ""
	}
	if code == "" && anon == "" {
		return store.Session{}, mperr.Newf(mperr.MissingCode, "the login request carries no %q", h.f.Code)
	}
	ctx, err := h.checkFailures(r)
	if err != nil {
		return store.Session{}, err
	}
	if code == "" {
		return h.serveAnonymousLogin(ctx, r, body, anon)
	}
	s, err := h.exchange(ctx, platform.LoginCodes{Code: code, Anonymous: anon})
	if err != nil {
		return s, err
	}

	h.setIdentity(r.Header, s.OpenID, s.UnionID, s.Fields)
	h.setIdentityBody(body, s.OpenID, s.UnionID, s.Fields)
	body.Apply(r)
	caddyhttp.SetVar(r.Context(), openidVar, s.OpenID)
	if c := h.logger.Check(zap.DebugLevel, "login"); c != nil {
		c.Write(zap.String("openid", s.OpenID), zap.Bool("unionid", s.UnionID != ""))
	}
	return s, nil
}

// serveAnonymousLogin serves an anonymous-only login (a platform whose
// descriptor has AnonymousCode: Douyin's tt.login outside a host-app login
// gives only an anonymous code), which the platform exchanges for its
// anonymous identity fields alone (Douyin: anonymous_openid; no openid, no
// session key). The upstream gets those (X-Mp-Anonymous-Openid and field
// anonymous_openid) and no X-Mp-Openid. Nothing is stored as a session:
// there is no user record to hold, no key to decrypt with, no token to
// bind; only the exchange's result, under the hash of the anonymous code,
// for deadCodeTTL, so that a retried request (or a request on another
// instance) with the same code gets the same answer instead of the
// platform's "code used".
func (h *Handler) serveAnonymousLogin(ctx context.Context, r *http.Request, body *reqbody.Body, anon string) (store.Session, error) {
	fields, err := h.exchangeAnonymous(ctx, anon)
	if err != nil {
		return store.Session{}, err
	}
	h.setIdentity(r.Header, "", "", fields)
	h.setIdentityBody(body, "", "", fields)
	body.Apply(r)
	h.logger.Debug("anonymous login")
	return store.Session{Fields: fields}, nil
}

// exchangeAnonymous returns the identity fields of an anonymous code,
// exchanging the code with the platform at most once (single-flight here,
// a claim across instances), like exchange.
func (h *Handler) exchangeAnonymous(ctx context.Context, anon string) (map[string]string, error) {
	ref := h.ref('a', anon)
	name := "anon:" + ref
	result := func(ctx context.Context) (map[string]string, bool, error) {
		b, err := h.store.Get(ctx, name)
		switch {
		case err == nil:
			if f := h.declaredFields(store.DecodeFields(string(b))); f != nil {
				return f, true, nil
			}
			return nil, true, mperr.New(mperr.Internal, "the stored result of this anonymous code is unreadable")
		case errors.Is(err, store.ErrNotFound):
			return nil, false, nil
		}
		return nil, false, storeErr(err)
	}
	if f, ok, err := result(ctx); err != nil || ok {
		if ok && err == nil {
			metrics.dedup.WithLabelValues(h.Platform, "store").Inc()
		}
		return f, err
	}
	v, err, shared := h.flight.Do(ref, func() (any, error) {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Duration(h.ExchangeWait+h.PlatformTimeout))
		defer cancel()
		f, err := claim.Run(ctx, time.Duration(h.ExchangeWait), claim.Steps[map[string]string]{
			Claim: h.claimer(ref, time.Duration(h.PlatformTimeout)+time.Second),
			Work: func(ctx context.Context) (map[string]string, error) {
				ps, err := h.code2Session(ctx, ref, platform.LoginCodes{Anonymous: anon})
				if err != nil {
					return nil, err
				}
				f := h.declaredFields(ps.Fields)
				if f == nil { // the client checks it; never inject nothing
					return nil, mperr.New(mperr.PlatformError, "the platform's answer to an anonymous code has no identity")
				}
				err = h.store.Set(ctx, name, []byte(store.EncodeFields(f)), deadCodeTTL)
				if err != nil {
					// This request still gets its answer; a retry with the
					// same code on another instance waits, then fails.
					h.logger.Warn("could not keep an anonymous login's result for retries", zap.Error(err))
				}
				return f, nil
			},
			Result: result,
		})
		return f, waitErr(err, "the exchange of this anonymous code by another instance")
	})
	if shared {
		metrics.dedup.WithLabelValues(h.Platform, "singleflight").Inc()
	}
	if err != nil {
		return nil, err
	}
	return v.(map[string]string), nil
}

// exchange returns the session of a login code, exchanging the code with
// the platform only if nobody did yet: once per code in this process
// (single-flight) and across instances sharing the store (a claim the
// others wait on).
func (h *Handler) exchange(ctx context.Context, in platform.LoginCodes) (store.Session, error) {
	ref := h.codeRef(in.Code)
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
		return h.exchangeOnce(ctx, ref, in)
	})
	if shared {
		metrics.dedup.WithLabelValues(h.Platform, "singleflight").Inc()
	}
	if err != nil {
		return store.Session{}, err
	}
	return v.(store.Session), nil
}

func (h *Handler) exchangeOnce(ctx context.Context, ref string, in platform.LoginCodes) (store.Session, error) {
	claimTTL := time.Duration(h.PlatformTimeout) + time.Second
	s, err := claim.Run(ctx, time.Duration(h.ExchangeWait), claim.Steps[store.Session]{
		Claim: h.claimer(ref, claimTTL),
		Work: func(ctx context.Context) (store.Session, error) {
			return h.exchangeClaimed(ctx, ref, in)
		},
		Result: func(ctx context.Context) (store.Session, bool, error) {
			s, err := h.store.Lookup(ctx, ref)
			switch {
			case err == nil:
				metrics.dedup.WithLabelValues(h.Platform, "instance").Inc()
				return s, true, nil
			case errors.Is(err, store.ErrNotFound):
				return s, false, nil
			}
			return s, false, storeErr(err)
		},
	})
	return s, waitErr(err, "the exchange of this code by another instance")
}

// claimer is the Claim step of a claim-or-wait on ref in the store: a
// failure the claim holder recorded is every waiter's error.
func (h *Handler) claimer(ref string, ttl time.Duration) func(context.Context) (bool, error) {
	return func(ctx context.Context) (bool, error) {
		won, failure, err := h.store.Claim(ctx, ref, ttl)
		switch {
		case err != nil:
			return false, storeErr(err)
		case failure != nil:
			return false, decodeFailure(failure)
		}
		return won, nil
	}
}

// waitErr names a wait that ran out (the wait budget or the request's own
// time) in the README's terms.
func waitErr(err error, what string) error {
	if err == nil {
		return nil
	}
	if _, ok := mperr.As(err); !ok && (errors.Is(err, claim.ErrWaitTimeout) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)) {
		return mperr.Wrap(mperr.PlatformTimeout, "timed out waiting for "+what, err)
	}
	return err
}

// code2Session makes the claimed platform call for ref's code: timed,
// counted, and a failure recorded for the waiters and the client's limit.
func (h *Handler) code2Session(ctx context.Context, ref string, in platform.LoginCodes) (platform.Session, error) {
	start := time.Now()
	ps, err := h.client.Code2Session(ctx, in)
	metrics.code2sessionTime.WithLabelValues(h.Platform).Observe(time.Since(start).Seconds())
	metrics.code2session.WithLabelValues(h.Platform, outcome(err)).Inc()
	if err != nil {
		e := mperr.From(err)
		h.recordFailure(ctx, "code2session", ref, e, time.Since(start))
		h.countFailure(ctx, e)
		return ps, e
	}
	return ps, nil
}

func (h *Handler) exchangeClaimed(ctx context.Context, ref string, in platform.LoginCodes) (store.Session, error) {
	start := time.Now()
	ps, err := h.code2Session(ctx, ref, in)
	if err != nil {
		return store.Session{}, err
	}
	rec := store.Session{
		OpenID:     ps.OpenID,
		UnionID:    ps.UnionID,
		Fields:     h.declaredFields(ps.Fields),
		SessionKey: ps.SessionKey,
	}
	s, err := h.store.Save(ctx, ref, rec, time.Duration(h.SessionTTL))
	if err != nil {
		// The code is spent: keep the result for a retry on this instance.
		h.unsaved.put(ref, rec)
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
	// The request's own refusal line (DEBUG) or failure line (ERROR) and
	// the refusal summary tell the rest; a code spent by a lost attempt is
	// the platform's doing, worth a line at INFO.
	level := zap.DebugLevel
	if errors.Is(e, platform.ErrConsumedByRetry) {
		level = zap.InfoLevel
	}
	h.logger.Check(level, call+" failed").Write(zap.String("error", string(e.Code)),
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
