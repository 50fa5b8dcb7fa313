package module

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/mperr"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/platform"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/reqbody"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/store"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/wxcrypt"
)

// payload is an encryptedData+iv pair and the session that should open it.
type payload struct {
	data, iv string
}

func (h *Handler) payloadOf(in *input) (payload, bool, error) {
	data, err := in.field(h.f.EncryptedData)
	if err != nil {
		return payload{}, false, err
	}
	iv, err := in.field(h.f.IV)
	if err != nil {
		return payload{}, false, err
	}
	return payload{data: data, iv: iv}, data != "" || iv != "", nil
}

// session finds the user's session from what the request carries: the login
// code it logged in with.
func (h *Handler) session(ctx context.Context, r *http.Request, in *input) (store.Session, error) {
	if h.binding != nil {
		// The token the upstream issued at login, when the request has one.
		if s, ok, err := h.boundSession(ctx, r); err != nil || ok {
			return s, err
		}
	}
	code, err := in.field(h.f.Code)
	if err != nil {
		return store.Session{}, err
	}
	if code == "" {
		return store.Session{}, mperr.Newf(mperr.BadRequest, "the request carries no %q to find the session", h.f.Code)
	}
	start := time.Now()
	s, err := h.store.Lookup(ctx, h.codeRef(code))
	h.observeStore("lookup", start, err)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return s, mperr.New(mperr.SessionNotFound, "no session for this login: log in again")
		}
		return s, storeErr(err)
	}
	return s, nil
}

// checkPayload refuses an incomplete or malformed payload before any
// session is looked up.
func (h *Handler) checkPayload(p payload) error {
	if p.data == "" || p.iv == "" {
		return mperr.Newf(mperr.BadRequest, "both %q and %q are required", h.f.EncryptedData, h.f.IV)
	}
	return wxcrypt.CheckPayload(p.data, p.iv)
}

// open decrypts p with the session's keys, the current one first.
func (h *Handler) open(s store.Session, p payload) ([]byte, error) {
	plain, idx, err := wxcrypt.Open(h.AppID, []string{s.SessionKey, s.PrevSessionKey}, p.data, p.iv)
	if err != nil {
		return nil, err
	}
	if idx > 0 {
		h.logger.Debug("payload opened with the previous session key", zap.String("openid", s.OpenID))
	}
	return plain, nil
}

// servePhone decrypts a phone payload (or, on WeChat, exchanges a phone
// code) and injects the number.
func (h *Handler) servePhone(r *http.Request, in *input) error {
	_, encrypted, err := h.payloadOf(in)
	if err != nil {
		return err
	}
	if !encrypted && h.Platform == platform.WeChat {
		// WeChat's newer flow: a phone code instead of a payload.
		pc, err := in.field(h.f.PhoneCode)
		if err != nil {
			return err
		}
		if pc != "" {
			return h.servePhoneCode(r, in, pc)
		}
	}
	s, plain, err := h.decryptBody(r, in)
	if err != nil {
		return err
	}
	ph, err := wxcrypt.ParsePhone(plain)
	if err != nil {
		return err
	}
	h.injectPhone(r, in.body, s.OpenID, platform.Phone{PhoneNumber: ph.PhoneNumber, PurePhoneNumber: ph.PurePhoneNumber, CountryCode: ph.CountryCode})
	return nil
}

// decryptBody finds the body's encryptedData and iv, refuses them when
// incomplete or malformed (before touching the store), finds the user's
// session and decrypts with its keys.
func (h *Handler) decryptBody(r *http.Request, in *input) (store.Session, []byte, error) {
	p, encrypted, err := h.payloadOf(in)
	if err != nil {
		return store.Session{}, nil, err
	}
	if !encrypted {
		return store.Session{}, nil, mperr.Newf(mperr.BadRequest, "the request carries no %q and %q", h.f.EncryptedData, h.f.IV)
	}
	if err := h.checkPayload(p); err != nil {
		return store.Session{}, nil, err
	}
	s, err := h.session(r.Context(), r, in)
	if err != nil {
		return s, nil, err
	}
	plain, err := h.open(s, p)
	if err != nil {
		return s, nil, err
	}
	return s, plain, checkIdentity(s, plain)
}

// checkIdentity refuses a decrypted object whose openId or unionId (under
// any spelling a binder equates) is not the session's, where the session
// has one: the payload was opened with this user's key, so another user's
// id in it was forged (CBC lets a client who controls the IV rewrite the
// first block).
func checkIdentity(s store.Session, plain []byte) error {
	openIDs, unionIDs := wxcrypt.Identity(plain)
	for _, id := range openIDs {
		if s.OpenID != "" && id != s.OpenID {
			return mperr.New(mperr.DecryptFailed, "the decrypted data names another user")
		}
	}
	for _, id := range unionIDs {
		if s.UnionID != "" && id != s.UnionID {
			return mperr.New(mperr.DecryptFailed, "the decrypted data names another user")
		}
	}
	return nil
}

// injectPhone rewrites the request with the phone number.
func (h *Handler) injectPhone(r *http.Request, body *reqbody.Body, openid string, ph platform.Phone) {
	body.Del(h.payloadProtected...)
	body.Set(FieldPhoneNumber, ph.PhoneNumber)
	body.Set(FieldPurePhoneNumber, ph.PurePhoneNumber)
	body.Set(FieldCountryCode, ph.CountryCode)
	hdr := r.Header
	hdr.Set(HeaderPhone, ph.PhoneNumber)
	hdr.Set(HeaderPurePhone, ph.PurePhoneNumber)
	hdr.Set(HeaderCountryCode, ph.CountryCode)
	if openid != "" {
		body.Set(FieldOpenID, openid)
		hdr.Set(HeaderOpenID, openid)
		caddyhttp.SetVar(r.Context(), "mp.openid", openid)
	}
	hdr.Set(HeaderPlatform, h.Platform)
	hdr.Set(HeaderAppID, h.AppID)
	body.Apply(r)
	if c := h.logger.Check(zap.DebugLevel, "phone"); c != nil {
		c.Write(zap.String("openid", openid), zap.String("phone", wxcrypt.MaskPhone(ph.PhoneNumber)))
	}
}

// serveDecrypt decrypts any payload and injects it whole.
func (h *Handler) serveDecrypt(r *http.Request, in *input) error {
	s, plain, err := h.decryptBody(r, in)
	if err != nil {
		return err
	}
	body := in.body
	body.Del(h.payloadProtected...)
	body.SetRaw(FieldDecryptedData, plain)
	body.Set(FieldOpenID, s.OpenID)
	hdr := r.Header
	hdr.Set(HeaderOpenID, s.OpenID)
	if s.UnionID != "" {
		hdr.Set(HeaderUnionID, s.UnionID)
	}
	hdr.Set(HeaderPlatform, h.Platform)
	hdr.Set(HeaderAppID, h.AppID)
	body.Apply(r)
	caddyhttp.SetVar(r.Context(), "mp.openid", s.OpenID)
	if c := h.logger.Check(zap.DebugLevel, "decrypt"); c != nil {
		c.Write(zap.String("openid", s.OpenID), zap.Int("bytes", len(plain)))
	}
	return nil
}
