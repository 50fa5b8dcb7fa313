package module

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/accesstoken"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/claim"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/keyseal"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/mperr"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/phone"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/platform"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/store"
)

// AccessTokenConfig configures how WeChat's access token is obtained and
// shared (through the session store) by every instance.
//
// The token lives in the session store, which is scoped per platform and
// app (memory: one per app in the process; Redis: the key prefix names
// platform and app), so every instance using the same Redis shares one
// token per app: one instance refreshes it, the others read it
// (internal/accesstoken).
type AccessTokenConfig struct {
	// Mode is "stable" (POST /cgi-bin/stable_token, default) or "classic"
	// (GET /cgi-bin/token, which invalidates the previous token: only use
	// it when nothing else fetches tokens for the app).
	Mode string `json:"mode,omitempty"`
	// Refresh is the fraction of a token's lifetime (expires_in) after
	// which it is refreshed, in (0, 1). Default 0.8.
	Refresh float64 `json:"refresh,omitempty"`
}

// phoneCacheTTL is how long the result of a phone code exchange is kept
// for retries with the same code: a phone code lives 5 minutes, after which
// the platform would refuse it anyway.
const phoneCacheTTL = 5 * time.Minute

// accessTokenOptions turns the configuration into the manager's options.
func (h *Handler) accessTokenOptions() (accesstoken.Options, error) {
	var o accesstoken.Options
	if h.AccessToken != nil {
		o.Mode = h.AccessToken.Mode
		o.Refresh = h.AccessToken.Refresh
	}
	// Waiting for another instance's refresh is like waiting for its code
	// exchange: one platform call.
	o.Wait = time.Duration(h.ExchangeWait)
	// The refresher's lock must outlive one fetch (bounded by the
	// platform timeout) and the store write after it.
	o.LockTTL = max(accesstoken.DefaultLockTTL, time.Duration(h.PlatformTimeout)+2*time.Second)
	if err := o.Validate(); err != nil {
		return o, fmt.Errorf("miniprogram: access_token: %v", err)
	}
	return o, nil
}

// validateAccessToken checks the access_token configuration against the
// platform: it configures a token with modes (TokenSpec.Modes: WeChat's
// access token) only (Douyin's client token has no modes: each fetch
// supersedes the previous).
func (h *Handler) validateAccessToken() error {
	if h.AccessToken == nil {
		return nil
	}
	d := h.platformDesc()
	if !hasTokenModes(d) {
		why := d.Title + " has no server token"
		if d.Token != nil {
			why = d.Title + "'s " + d.Token.Title + " needs no configuration"
		}
		return fmt.Errorf("miniprogram: access_token is for platform %s only (%s), not %q", platform.OrList(platform.NamesWhere(hasTokenModes)), why, h.Platform)
	}
	_, err := h.accessTokenOptions()
	return err
}

// hasTokenModes: the platform's token takes access_token.
func hasTokenModes(d *platform.Descriptor) bool {
	return d.Token != nil && d.Token.Modes
}

// phoneCodesOn: the platform has a phone-code exchange and has what it
// needs (a private_key where its spec asks for one).
func (h *Handler) phoneCodesOn() bool {
	spec := h.platformDesc().PhoneCode
	return spec != nil && (!spec.PrivateKey || h.PrivateKey != "")
}

// provisionAccessToken sets h.tokens up, as the platform's TokenSpec
// says, when something uses the token: its login (LoginToken: Feishu's app
// access token) or its phone-code exchange (WeChat's access token; on
// Douyin, with a private_key, the client token: the same manager in
// classic mode, under its own store name). Otherwise it stays nil. The
// manager does no I/O until a token is first needed.
func (h *Handler) provisionAccessToken(ctx caddy.Context) error {
	if err := h.validateAccessToken(); err != nil {
		return err
	}
	d := h.platformDesc()
	phoneCodes := h.phoneCodesOn()
	if d.Token == nil || (!d.LoginToken && !phoneCodes) {
		return nil
	}
	if _, ok := h.client.(platform.PhoneClient); phoneCodes && !ok {
		return fmt.Errorf("miniprogram: the %s client cannot exchange phone codes", h.Platform)
	}
	opts, err := h.accessTokenOptions()
	if err != nil {
		return err
	}
	tc, ok := d.Token.Tokens(h.client)
	if !ok {
		return fmt.Errorf("miniprogram: the %s client cannot fetch tokens", h.Platform)
	}
	if !d.Token.Modes {
		opts.Mode = accesstoken.ModeClassic
	} else if _, ok := tc.(platform.StableTokenClient); !ok {
		return fmt.Errorf("miniprogram: the %s client cannot fetch stable tokens", h.Platform)
	}
	opts.Name = d.Token.Name
	opts.Logger = ctx.Logger().Named(d.Token.Name)
	h.tokens = accesstoken.New(tc, h.store, opts)
	return nil
}

// servePhoneCode exchanges a phone code, WeChat's or Douyin's (at most
// once per code, see exchangePhoneCode), and injects the number. The two
// platforms differ only in the exchange itself (platform.PhoneClient):
// Douyin's takes no openid, so its platform does not check that the code
// belongs to the session's user.
//
// What is forwarded:
//   - phoneNumber, purePhoneNumber, countryCode and the X-Mp-Phone,
//     X-Mp-Pure-Phone, X-Mp-Country-Code headers, as on the encrypted path;
//   - X-Mp-Openid and body field openid only when the request also finds a
//     session: a bound upstream token, or a login code under its own field
//     name (when the phone code and the login code share one field name,
//     the default "code", that one field is the phone code). No session
//     found is not an error: the number is the platform's word on its own,
//     and the upstream sees that no identity came with it;
//   - the phone code itself is removed when it came in a field of its own
//     (field phone_code): that field is the plugin's, and the code is spent.
//     When it shares the login code's field name (the default, "code", as
//     WeChat's own samples send it) it is kept: that is the field a legacy
//     upstream reads on this route, and an upstream that validates its
//     presence keeps working. A spent phone code is worthless to anyone.
func (h *Handler) servePhoneCode(r *http.Request, in *input, phoneCode string) error {
	if h.tokens == nil || !h.phoneCodesOn() {
		d := h.platformDesc()
		if d.PhoneCode == nil {
			return mperr.Newf(mperr.BadRequest, "%s has no phone-code exchange; send %q and %q", d.Title, h.f.EncryptedData, h.f.IV)
		}
		return mperr.Newf(mperr.BadRequest, "%s phone codes need the app's private_key configured; send %q and %q", d.Title, h.f.EncryptedData, h.f.IV)
	}
	ctx := r.Context()
	// The session first: a store that cannot be reached fails the request
	// before the phone code is spent.
	openid, err := h.phoneCodeOpenID(ctx, r, in)
	if err != nil {
		return err
	}
	ctx, err = h.checkFailures(r)
	if err != nil {
		return err
	}
	ph, err := h.exchangePhoneCode(ctx, phoneCode, openid)
	if err != nil {
		return err
	}
	if h.f.PhoneCode != h.f.Code {
		in.body.Del(h.f.PhoneCode)
	}
	h.injectPhone(r, in.body, openid, ph)
	return nil
}

// phoneCodeOpenID is the openid of the session the phone-code request also
// points at, if any: "" when it carries nothing that finds one.
func (h *Handler) phoneCodeOpenID(ctx context.Context, r *http.Request, in *input) (string, error) {
	if h.binding != nil {
		// A request that carries a token is decided by it, as on the
		// encrypted path: an unknown token is session_not_found, whatever
		// else the request carries.
		s, ok, err := h.boundSession(ctx, r)
		switch {
		case ok && err == nil:
			return s.OpenID, nil
		case ok && sessionAbsent(err):
			return "", mperr.New(mperr.SessionNotFound, "no session for this token: log in again")
		case ok:
			return "", storeErr(err)
		}
	}
	if h.f.Code == h.f.PhoneCode {
		return "", nil // the one "code" field holds the phone code
	}
	code, err := in.field(h.f.Code)
	if err != nil || code == "" {
		return "", err
	}
	s, err := h.store.Lookup(ctx, h.codeRef(code))
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return "", nil
		}
		return "", storeErr(err)
	}
	return s.OpenID, nil
}

// sessionAbsent: the error only says there is no session.
func sessionAbsent(err error) bool {
	if errors.Is(err, store.ErrNotFound) {
		return true
	}
	e, ok := mperr.As(err)
	return ok && e.Code == mperr.SessionNotFound
}

// phoneBudget bounds one phone code exchange: obtaining a token (a fetch,
// or waiting for another instance's), the call, and after a rejected token
// one more of each.
func (h *Handler) phoneBudget() time.Duration {
	return 2 * (time.Duration(h.ExchangeWait) + time.Duration(h.PlatformTimeout))
}

// exchangePhoneCode returns the phone number of a phone code, calling
// getuserphonenumber at most once per code: once in this process
// (single-flight) and once across the instances sharing the store (the
// claim of login.go's exchange, on the ref h.ref('p', code)). The result is
// kept for phoneCacheTTL, so that a request retried with the same code (the
// client's network dropped the answer, a double tap) gets the same number
// instead of invalid_code, on any instance.
//
// openid, when the session is known, goes to the platform with the code,
// which then checks the code belongs to that user; it is part of the ref,
// so a result is never handed to a request naming another user.
func (h *Handler) exchangePhoneCode(ctx context.Context, code, openid string) (phone.Number, error) {
	ref := h.ref('p', code+"\x00"+openid)
	if ph, ok, err := h.cachedPhone(ctx, ref, code); err != nil || ok {
		return ph, err
	}
	v, err, _ := h.flight.Do(ref, func() (any, error) {
		// Detached from the first caller, like exchange.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), h.phoneBudget())
		defer cancel()
		return h.exchangePhoneOnce(ctx, ref, code, openid)
	})
	if err != nil {
		return phone.Number{}, err
	}
	return v.(phone.Number), nil
}

func (h *Handler) exchangePhoneOnce(ctx context.Context, ref, code, openid string) (phone.Number, error) {
	// The claim outlives the claimer's whole budget: nobody else calls the
	// platform with this code while it may still be at it. The price: a
	// request waiting on the claim of an instance that died mid-exchange
	// gives up (platform_timeout) when its own budget ends, just before
	// that claim lapses; a retry after that exchanges the code itself.
	claimTTL := h.phoneBudget() + time.Second
	ph, err := claim.Run(ctx, h.phoneBudget(), claim.Steps[phone.Number]{
		Claim: h.claimer(ref, claimTTL),
		Work: func(ctx context.Context) (phone.Number, error) {
			return h.exchangePhoneClaimed(ctx, ref, code, openid)
		},
		Result: func(ctx context.Context) (phone.Number, bool, error) {
			return h.cachedPhone(ctx, ref, code)
		},
	})
	return ph, waitErr(err, "the exchange of this phone code by another instance")
}

func (h *Handler) exchangePhoneClaimed(ctx context.Context, ref, code, openid string) (phone.Number, error) {
	start := time.Now()
	pc := h.client.(platform.PhoneClient) // checked at provisioning
	var ph phone.Number
	err := h.tokens.Do(ctx, func(token string) error {
		var err error
		ph, err = pc.GetUserPhoneNumber(ctx, token, code, openid)
		return err
	})
	if err == nil && ph.WatermarkAppID != "" && ph.WatermarkAppID != h.AppID {
		err = mperr.New(mperr.WatermarkMismatch, "the phone number's watermark appid is not this app's")
	}
	// The store writes below must happen even when the budget just ran
	// out; the store bounds each operation itself.
	sctx := context.WithoutCancel(ctx)
	if err != nil {
		e := tokenCallErr(err)
		metrics.tokenCalls.WithLabelValues(string(e.Code)).Inc()
		h.recordFailure(sctx, h.phoneCodeCall(), ref, e, time.Since(start))
		h.countFailure(sctx, e)
		return phone.Number{}, e
	}
	metrics.tokenCalls.WithLabelValues("ok").Inc()
	if sealed, serr := sealPhone(h.phoneKey(code), ref, ph); serr != nil {
		h.logger.Warn("could not seal a phone number for the retry cache", zap.Error(serr))
	} else if serr := h.store.Set(sctx, phoneCacheName(ref), sealed, phoneCacheTTL); serr != nil {
		// This request still gets its number; a retry with the same code
		// on another instance waits for the claim and then fails.
		h.logger.Warn("could not keep a phone code's result for retries", zap.Error(serr))
	}
	h.logger.Debug(h.phoneCodeCall(), zap.Duration("took", time.Since(start)))
	return ph, nil
}

// withToken runs f with the platform's shared token (platform.Config's
// Tokens: a login that needs the token), refreshed once when f says the
// platform rejected it.
func (h *Handler) withToken(ctx context.Context, f func(token string) error) error {
	if h.tokens == nil {
		return mperr.Newf(mperr.Internal, "%s needs its server token, which is not set up", h.platformDesc().Title)
	}
	if err := h.tokens.Do(ctx, f); err != nil {
		return tokenCallErr(err)
	}
	return nil
}

// tokenCallErr maps a failed call with the platform token (obtaining the
// token, or the call itself: a phone code, a login that needs the token)
// onto the README's error table.
func tokenCallErr(err error) *mperr.Error {
	switch {
	case errors.Is(err, accesstoken.ErrWaitTimeout):
		return mperr.Wrap(mperr.PlatformTimeout, "timed out waiting for another instance to refresh the access token", err)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		if e, ok := mperr.As(err); ok {
			return e
		}
		return mperr.Wrap(mperr.PlatformTimeout, "the platform did not answer in time", err)
	}
	if e, ok := mperr.As(err); ok {
		return e
	}
	// accesstoken's own errors (e.g. a token answer without a token); they
	// never hold the token or the secret.
	return mperr.Wrap(mperr.PlatformError, "could not obtain an access token", err)
}

// The retry cache of phone code results.
//
// The store is the user's own (their Redis, which already holds session
// keys), scoped per platform and app. Still, a phone number is personal
// data that a Redis dump should not hand out: the entry is named after the
// hash of the code (ref, never the code) and sealed with AES-256-GCM under
// a key derived from the code itself (a different hash than ref), so only a
// request that carries the code can read it back. Entries expire after
// phoneCacheTTL. In the memory store, named values share a bound
// (max_sessions, oldest written evicted first) with the access token
// record; if the phone codes of 5 minutes ever exceed it the token record
// is evicted, which costs one token fetch, harmless in stable mode.
func phoneCacheName(ref string) string { return "phone:" + ref }

// phoneKey is the AES-256 key sealing a phone code's cached result.
func (h *Handler) phoneKey(code string) []byte {
	sum := sha256.New()
	sum.Write([]byte("miniprogram phone cache key\x00"))
	sum.Write([]byte(h.Platform))
	sum.Write([]byte{0})
	sum.Write([]byte(h.AppID))
	sum.Write([]byte{0})
	sum.Write([]byte(code))
	return sum.Sum(nil)
}

func sealPhone(key []byte, ref string, ph phone.Number) ([]byte, error) {
	plain, err := json.Marshal(ph)
	if err != nil {
		return nil, err
	}
	return keyseal.SealWithKey(key, plain, []byte(ref))
}

func openPhone(key []byte, ref string, sealed []byte) (phone.Number, error) {
	plain, err := keyseal.OpenWithKey(key, sealed, []byte(ref))
	if err != nil {
		return phone.Number{}, errors.New("sealed phone record does not open")
	}
	var ph phone.Number
	if err := json.Unmarshal(plain, &ph); err != nil || !ph.Valid() {
		return phone.Number{}, errors.New("sealed phone record is unreadable")
	}
	return ph, nil
}

// cachedPhone reads the kept result of a phone code; ok is false when
// there is none.
func (h *Handler) cachedPhone(ctx context.Context, ref, code string) (ph phone.Number, ok bool, err error) {
	sealed, err := h.store.Get(ctx, phoneCacheName(ref))
	if errors.Is(err, store.ErrNotFound) {
		return ph, false, nil
	}
	if err != nil {
		return ph, false, storeErr(err)
	}
	ph, err = openPhone(h.phoneKey(code), ref, sealed)
	if err != nil {
		// Cannot happen short of a hash collision or a tampered store.
		return ph, false, mperr.Wrap(mperr.Internal, "the kept result of this phone code is unreadable", err)
	}
	return ph, true, nil
}
