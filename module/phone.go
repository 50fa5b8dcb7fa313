package module

import (
	"context"
	"errors"
	"net/http"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/mperr"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/phone"
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

// session finds the user's session from what the request carries: the
// token the upstream issued at login (token binding), or the login code.
func (h *Handler) session(ctx context.Context, r *http.Request, in *input) (store.Session, error) {
	code, err := in.field(h.f.Code)
	if err != nil {
		return store.Session{}, err
	}
	s, _, err := h.findSession(ctx, r, code)
	return s, err
}

// findSession is session with the login code given; byCode tells that the
// code found it (not a bound token).
func (h *Handler) findSession(ctx context.Context, r *http.Request, code string) (s store.Session, byCode bool, err error) {
	if h.binding != nil {
		// The token the upstream issued at login, when the request has one.
		if s, ok, err := h.boundSession(ctx, r); err != nil || ok {
			return s, false, err
		}
	}
	if code == "" {
		return store.Session{}, false, mperr.Newf(mperr.BadRequest, "the request carries no %q to find the session", h.f.Code)
	}
	s, err = h.store.Lookup(ctx, h.codeRef(code))
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return s, false, mperr.New(mperr.SessionNotFound, "no session for this login: log in again")
		}
		return s, false, storeErr(err)
	}
	return s, true, nil
}

// checkPayload refuses an incomplete or malformed payload before any
// session is looked up.
func (h *Handler) checkPayload(p payload) error {
	if p.data == "" || p.iv == "" {
		return mperr.Newf(mperr.BadRequest, "both %q and %q are required", h.f.EncryptedData, h.f.IV)
	}
	return h.platformDesc().PayloadsOf().Check(p.data, p.iv)
}

// open decrypts p with the session's keys, the current one first, by the
// platform's payload scheme. The watermark is required unless
// watermarkOptional (the decrypt route with decrypt_watermark optional; a
// scheme whose integrity check is not a watermark ignores it).
func (h *Handler) open(s store.Session, p payload, watermarkOptional bool) ([]byte, error) {
	plain, idx, err := h.platformDesc().PayloadsOf().Open(h.AppID, []string{s.SessionKey, s.PrevSessionKey}, p.data, p.iv, watermarkOptional)
	if err != nil {
		return nil, err
	}
	if idx > 0 {
		h.logger.Debug("payload opened with the previous session key", zap.String("openid", s.OpenID))
	}
	return plain, nil
}

// servePhone decrypts a phone payload, or exchanges a phone code (WeChat;
// Douyin with a private_key), and injects the number. The button hands the
// front end the phone code together with encryptedData and iv (WeChat base
// library >= 2.21.2, Douyin >= 3.51.0), and
// front ends forward e.detail whole, so one "code" may be the login code
// (legacy requests) or the phone code. The order costs legacy requests
// nothing:
//
//  1. the session is looked up (bound token, or "code" as a login code:
//     the store only);
//  2. known: the payload is decrypted locally; if that fails and the
//     request carries a phone code, the code is exchanged instead;
//  3. unknown: a phone code is exchanged; otherwise
//     session_not_found.
//
// A "code" that is neither a known login code nor a valid phone code,
// next to a payload, is answered 401 session_not_found (see
// unknownCodeVerdict).
func (h *Handler) servePhone(r *http.Request, in *input) error {
	if h.desc.AppKeyPayloads != nil {
		return h.serveAppKeyPhone(r, in)
	}
	p, encrypted, err := h.payloadOf(in)
	if err != nil {
		return err
	}
	code, err := in.field(h.f.Code)
	if err != nil {
		return err
	}
	phoneCode := ""
	if h.tokens != nil { // the platform's phone codes are taken
		phoneCode = code
		if h.f.PhoneCode != h.f.Code {
			if phoneCode, err = in.field(h.f.PhoneCode); err != nil {
				return err
			}
		}
	}
	if !encrypted {
		if phoneCode != "" {
			return h.servePhoneCode(r, in, phoneCode)
		}
		return mperr.Newf(mperr.BadRequest, "the request carries no %q and %q", h.f.EncryptedData, h.f.IV)
	}
	if err := h.checkPayload(p); err != nil {
		return err
	}
	s, byCode, err := h.findSession(r.Context(), r, code)
	if err != nil {
		if phoneCode != "" && (code == "" || sessionAbsent(err)) {
			return h.unknownCodeVerdict(h.servePhoneCode(r, in, phoneCode))
		}
		return err
	}
	if byCode && h.f.PhoneCode == h.f.Code {
		phoneCode = "" // the one "code" was the login code
	}
	plain, err := h.open(s, p, false)
	if err == nil {
		err = checkIdentity(s, plain)
	}
	if err != nil {
		if phoneCode != "" && mperr.From(err).Code == mperr.DecryptFailed {
			h.logger.Debug("the payload does not open with the session's keys; exchanging the phone code instead")
			return h.servePhoneCode(r, in, phoneCode)
		}
		return err
	}
	ph, err := h.platformDesc().PayloadsOf().ParsePhone(plain)
	if err != nil {
		return err
	}
	h.injectPhone(r, in.body, s.OpenID, ph)
	return nil
}

// unknownCodeVerdict is the answer when a request with a payload carried a
// "code" that no session knows and the platform refused as a phone code:
// to a legacy front end it was a login code whose session is gone, and
// both kinds of client recover the same way, by logging in again (and
// asking for the number again): session_not_found, with the platform's
// errcode.
func (h *Handler) unknownCodeVerdict(err error) error {
	e, ok := mperr.As(err)
	if !ok || e.Code != mperr.InvalidCode || h.f.PhoneCode != h.f.Code {
		return err
	}
	return &mperr.Error{Code: mperr.SessionNotFound, Err: e, HasErrcode: e.HasErrcode, Errcode: e.Errcode,
		Message: "no session for this code, and the platform refused it as a phone code: log in again"}
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
	plain, err := h.open(s, p, h.DecryptWatermark == WatermarkOptional)
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
func (h *Handler) injectPhone(r *http.Request, body *reqbody.Body, openid string, ph phone.Number) {
	body.Del(h.payloadProtected...)
	body.Set(FieldPhoneNumber, ph.PhoneNumber)
	body.Set(FieldPurePhoneNumber, ph.PurePhoneNumber)
	if ph.CountryCode != "" {
		body.Set(FieldCountryCode, ph.CountryCode)
	}
	hdr := r.Header
	hdr.Set(HeaderPhone, ph.PhoneNumber)
	hdr.Set(HeaderPurePhone, ph.PurePhoneNumber)
	if ph.CountryCode != "" {
		hdr.Set(HeaderCountryCode, ph.CountryCode)
	} else {
		// The platform gave none (Alipay's mobile): none is invented, and
		// the body field is left out too.
		hdr.Del(HeaderCountryCode)
		body.Del(FieldCountryCode)
	}
	if openid != "" {
		body.Set(FieldOpenID, openid)
		caddyhttp.SetVar(r.Context(), openidVar, openid)
	}
	h.setIdentity(hdr, openid, "", nil)
	body.Apply(r)
	if c := h.logger.Check(zap.DebugLevel, "phone"); c != nil {
		c.Write(zap.String("openid", openid), zap.String("phone", phone.Mask(ph.PhoneNumber)))
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
	h.setIdentity(r.Header, s.OpenID, s.UnionID, s.Fields)
	body.Apply(r)
	caddyhttp.SetVar(r.Context(), openidVar, s.OpenID)
	if c := h.logger.Check(zap.DebugLevel, "decrypt"); c != nil {
		c.Write(zap.String("openid", s.OpenID), zap.Int("bytes", len(plain)))
	}
	return nil
}
