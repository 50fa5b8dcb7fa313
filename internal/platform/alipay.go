package platform

import (
	"context"
	"crypto/rsa"
	"errors"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/alipaycrypt"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/mperr"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/phone"
)

// Alipay is the platform name of Alipay mini programs (支付宝小程序).
const Alipay = "alipay"

// DefaultAlipayAPIBase is Alipay's open-platform gateway origin.
const DefaultAlipayAPIBase = "https://openapi.alipay.com"

// Alipay's gateway: every API is a signed call to one path, named by the
// method parameter.
const (
	apPathGateway  = "/gateway.do"
	apMethodOAuth  = "alipay.system.oauth.token"
	apResponseKey  = "alipay_system_oauth_token_response"
	apErrorKey     = "error_response"
	apSuccessCode  = "10000"
	apTimeLayout   = "2006-01-02 15:04:05"
	apFieldPayload = "response"
)

// FieldAlipayUserID is the identity field of an Alipay login beyond
// openid: Alipay's user_id (2088…), when the answer carries it.
const FieldAlipayUserID = "alipay_user_id"

// alipayTime is Alipay's clock: timestamps are Beijing time (UTC+8, no
// daylight saving), whatever the server's zone.
var alipayTime = time.FixedZone("UTC+8", 8*3600)

// alipayPlatform is Alipay's descriptor: login by a signed gateway call
// (no session key, no anonymous code, no server token, no compat
// dialect), phone payloads opened with the app's keys, no decrypt route.
var alipayPlatform = Descriptor{
	Name:           Alipay,
	Title:          "Alipay",
	APIBases:       []string{DefaultAlipayAPIBase},
	New:            func(cfg Config) Client { return NewAlipay(cfg) },
	IdentityFields: []string{FieldAlipayUserID},
	SignedAPI:      true,
	AppKeyPayloads: &AlipayPayloads,
}

// AlipayPayloads is Alipay's phone payload (my.getPhoneNumber's
// res.response): {"response": "<base64>", "sign", ...}, the signature
// RSA2 over the quoted base64 with Alipay's key, the content AES-CBC with
// the app's content key and a zero IV: {"code":"10000","msg","mobile"}.
var AlipayPayloads = AppKeyScheme{
	Name:  "alipay-rsa2-aes",
	Field: apFieldPayload,
	Check: func(payload string) error {
		if _, err := alipaycrypt.ParseEnvelope(payload); err != nil {
			return envelopeErr(err)
		}
		return nil
	},
	OpenPhone:   openAlipayPhone,
	ParseAESKey: alipaycrypt.ParseAESKey,
}

func envelopeErr(err error) error {
	switch {
	case errors.Is(err, alipaycrypt.ErrNotEncrypted):
		return mperr.New(mperr.MalformedPayload, "the phone response is not encrypted: set the content encryption key (AES) in Alipay's console")
	case errors.Is(err, alipaycrypt.ErrNotSigned):
		return mperr.New(mperr.MalformedPayload, "the phone response carries no sign")
	case errors.Is(err, alipaycrypt.ErrSignType):
		return mperr.New(mperr.MalformedPayload, "the phone response's sign_type is not RSA2")
	case errors.Is(err, alipaycrypt.ErrEncryptType):
		return mperr.New(mperr.MalformedPayload, "the phone response's encrypt_type is not AES")
	}
	return mperr.New(mperr.MalformedPayload, `the phone response is not my.getPhoneNumber's {"response": "<base64>", "sign": ...} text`)
}

// alipayPhone is the decrypted content.
type alipayPhone struct {
	Code    lenientString `json:"code"`
	Msg     lenientString `json:"msg"`
	SubCode lenientString `json:"subCode"`
	SubCod2 lenientString `json:"sub_code"`
	Mobile  lenientString `json:"mobile"`
}

func openAlipayPhone(keys AppKeys, payload string) (phone.Number, string, error) {
	env, err := alipaycrypt.ParseEnvelope(payload)
	if err != nil {
		return phone.Number{}, "", envelopeErr(err)
	}
	plain, err := alipaycrypt.OpenContent(keys.PlatformPublicKey, keys.AESKey, env)
	switch {
	case errors.Is(err, alipaycrypt.ErrSignature):
		return phone.Number{}, "", mperr.New(mperr.DecryptFailed, "the phone response's signature does not verify with Alipay's public key")
	case err != nil:
		return phone.Number{}, "", mperr.New(mperr.DecryptFailed, "the phone response does not decrypt with this app's AES key")
	}
	var p alipayPhone
	if err := decodeObject(plain, &p); err != nil {
		return phone.Number{}, "", mperr.New(mperr.DecryptFailed, "the phone response does not decrypt to a JSON object")
	}
	if p.Code != apSuccessCode {
		sub := string(p.SubCode)
		if sub == "" {
			sub = string(p.SubCod2)
		}
		e := mperr.Newf(mperr.BadRequest, "the phone response is Alipay's refusal, not a number (code %q, sub_code %q)", trimForMessage(string(p.Code)), trimForMessage(sub))
		if n, err := strconv.Atoi(string(p.Code)); err == nil {
			e.HasErrcode, e.Errcode = true, n
		}
		return phone.Number{}, "", e
	}
	// Alipay's mobile carries no country code: none is invented.
	n := phone.Number{PhoneNumber: string(p.Mobile), PurePhoneNumber: string(p.Mobile)}
	if !n.Valid() {
		return phone.Number{}, "", mperr.New(mperr.DecryptFailed, "the phone response holds no usable mobile")
	}
	return n, env.Response, nil
}

// trimForMessage keeps a platform text short and printable for a message.
func trimForMessage(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
	if r := []rune(s); len(r) > 40 {
		s = string(r[:40])
	}
	return s
}

// ParsePublicKey reads a platform's RSA public key (platform_public_key):
// PEM, or the bare base64 Alipay's console shows. Errors never quote it.
func ParsePublicKey(text []byte) (*rsa.PublicKey, error) { return alipaycrypt.ParsePublicKey(text) }

// AlipayClient calls Alipay's gateway: alipay.system.oauth.token, signed
// with the app's private key, its answer checked with Alipay's public key.
// It is safe for concurrent use.
type AlipayClient struct {
	core
	key *rsa.PrivateKey
	pub *rsa.PublicKey
	now func() time.Time
}

var _ Client = (*AlipayClient)(nil)

// NewAlipay returns an Alipay client: cfg.AppID is the app's APPID,
// cfg.PrivateKey its RSA2 private key, cfg.PlatformPublicKey Alipay's
// public key (both required: without them every login fails with an
// internal_error). cfg.AppSecret is not used by Alipay.
func NewAlipay(cfg Config) *AlipayClient {
	return &AlipayClient{core: newCore(Alipay, DefaultAlipayAPIBase, cfg), key: cfg.PrivateKey, pub: cfg.PlatformPublicKey, now: time.Now}
}

// Name is Alipay.
func (c *AlipayClient) Name() string { return Alipay }

// apAnswer is the content of a _response or error_response object.
type apAnswer struct {
	Code        lenientString `json:"code"`
	Msg         lenientString `json:"msg"`
	SubCode     lenientString `json:"sub_code"`
	SubMsg      lenientString `json:"sub_msg"`
	UserID      lenientString `json:"user_id"`
	OpenID      lenientString `json:"open_id"`
	AccessToken lenientString `json:"access_token"`
}

// alipayVerdict maps an Alipay error: sub_code isv.code-invalid (the auth
// code is unknown, used or expired) is invalid_code; code 20000 (service
// unavailable) is transient; everything else is a platform_error keeping
// the code (40002 for a bad signature, app id or parameter).
func alipayVerdict(code, subCode, subMsg string) (*int, verdict) {
	var n *int
	if v, err := strconv.Atoi(code); err == nil {
		n = &v
	}
	num := 0
	if n != nil {
		num = *n
	}
	cause := platformMessage(strings.TrimSpace(subCode + ": " + subMsg))
	mk := func(c mperr.Code, msg string) *mperr.Error {
		if n == nil {
			return mperr.Wrap(c, msg, cause)
		}
		return platformErr(c, num, msg, cause)
	}
	switch {
	case subCode == "isv.code-invalid" || subCode == "isv.code-expired" || subCode == "isv.auth-code-invalid":
		return n, verdict{err: mk(mperr.InvalidCode, "the auth code is invalid, expired or already used")}
	case subCode == "isv.invalid-signature" || subCode == "isv.missing-signature":
		return n, verdict{err: mk(mperr.PlatformError, "Alipay refused the request's signature: is private_key the app's, and its public key the one in Alipay's console?")}
	case subCode == "isv.invalid-app-id" || subCode == "isv.missing-app-id":
		return n, verdict{err: mk(mperr.PlatformError, "Alipay does not know this app id")}
	case code == "20000":
		return n, verdict{err: mk(mperr.PlatformError, "Alipay's service is unavailable"), transient: true}
	}
	return n, verdict{err: mk(mperr.PlatformError, "the platform returned an error")}
}

// Code2Session calls alipay.system.oauth.token (grant_type
// authorization_code) with the auth code of my.getAuthCode. The answer's
// signature is checked over the raw bytes of its response object. The
// identity is open_id when the answer has one (apps created since Alipay
// introduced it), else user_id; user_id, when present, is also the
// identity field alipay_user_id. The user's access token is not kept, and
// there is no session key. Alipay has no anonymous code.
func (c *AlipayClient) Code2Session(ctx context.Context, in LoginCodes) (Session, error) {
	code := in.Code
	if code == "" {
		return Session{}, mperr.New(mperr.MissingCode, "no login code")
	}
	if !plainCode(code) {
		// The sign string joins name=value pairs with "&" unescaped: a
		// code holding "&" or "=" would sign another request's text.
		return Session{}, mperr.New(mperr.InvalidCode, "the login code has characters an Alipay auth code never has")
	}
	if c.key == nil || c.pub == nil {
		return Session{}, mperr.New(mperr.Internal, "the alipay client has no private key or no Alipay public key")
	}
	params := map[string]string{
		"app_id":     c.appID,
		"method":     apMethodOAuth,
		"format":     "JSON",
		"charset":    "utf-8",
		"sign_type":  alipaycrypt.SignType,
		"timestamp":  c.now().In(alipayTime).Format(apTimeLayout),
		"version":    "1.0",
		"grant_type": "authorization_code",
		"code":       code,
	}
	sig, err := alipaycrypt.Sign(c.key, []byte(alipaycrypt.SignString(params)))
	if err != nil {
		return Session{}, mperr.Wrap(mperr.Internal, "cannot sign the platform request", err)
	}
	form := url.Values{}
	for k, v := range params {
		form.Set(k, v)
	}
	form.Set("sign", sig)
	body := form.Encode()
	var s Session
	err = c.do(ctx, attempt{
		endpoint:   apPathGateway,
		newRequest: postForm(c.endpointURL(apPathGateway, nil), body),
		secrets:    []string{code},
		parse: func(status int, body []byte) (*int, verdict) {
			if status >= 500 {
				v, _ := httpStatusVerdict(status)
				return nil, v
			}
			var err error
			s, err = c.readOAuth(body)
			if err != nil {
				if v, ok := err.(verdictErr); ok {
					return v.errcode, v.v
				}
				return nil, unreadable(err)
			}
			if hv, bad := httpStatusVerdict(status); bad {
				return nil, hv
			}
			return nil, verdict{}
		},
	})
	if err != nil {
		return Session{}, err
	}
	return s, nil
}

// verdictErr carries a verdict out of readOAuth.
type verdictErr struct {
	errcode *int
	v       verdict
}

func (v verdictErr) Error() string { return v.v.err.Error() }

var errAnswerSignature = errors.New("the answer's signature does not verify with Alipay's public key")

// readOAuth reads a gateway answer to alipay.system.oauth.token. A success
// must carry a valid sign; an error_response with a sign must verify too
// (one without is taken as the refusal it is: it cannot grant a login).
func (c *AlipayClient) readOAuth(body []byte) (Session, error) {
	content, sign, ok, err := alipaycrypt.ResponseContent(body, apResponseKey)
	if err != nil {
		return Session{}, err
	}
	if !ok {
		content, sign, ok, _ = alipaycrypt.ResponseContent(body, apErrorKey)
		if !ok {
			return Session{}, verdictErr{v: incomplete(apResponseKey)}
		}
		if sign != "" {
			signed, err := alipaycrypt.VerifyContent(c.pub, content, sign)
			if err != nil {
				return Session{}, verdictErr{v: verdict{err: mperr.Wrap(mperr.PlatformError, "the platform's answer is not signed by Alipay", errAnswerSignature)}}
			}
			content = signed
		}
		var a apAnswer
		if err := decodeObject(content, &a); err != nil {
			return Session{}, err
		}
		n, v := alipayVerdict(string(a.Code), string(a.SubCode), string(a.SubMsg))
		return Session{}, verdictErr{errcode: n, v: v}
	}
	if sign == "" {
		return Session{}, verdictErr{v: verdict{err: mperr.Wrap(mperr.PlatformError, "the platform's answer is not signed by Alipay", errors.New("no sign in a success answer"))}}
	}
	signed, err := alipaycrypt.VerifyContent(c.pub, content, sign)
	if err != nil {
		return Session{}, verdictErr{v: verdict{err: mperr.Wrap(mperr.PlatformError, "the platform's answer is not signed by Alipay", errAnswerSignature)}}
	}
	content = signed
	var a apAnswer
	if err := decodeObject(content, &a); err != nil {
		return Session{}, err
	}
	if a.Code != "" && a.Code != apSuccessCode {
		n, v := alipayVerdict(string(a.Code), string(a.SubCode), string(a.SubMsg))
		return Session{}, verdictErr{errcode: n, v: v}
	}
	id := string(a.OpenID)
	if id == "" {
		id = string(a.UserID)
	}
	if id == "" {
		return Session{}, verdictErr{v: incomplete("open_id or user_id")}
	}
	s := Session{OpenID: id}
	if a.UserID != "" {
		s.Fields = map[string]string{FieldAlipayUserID: string(a.UserID)}
	}
	return s, nil
}

// plainCode: an auth code of letters, digits, "_", "-" and ".", at most
// 256 bytes (Alipay's are hex-like).
func plainCode(code string) bool {
	if len(code) > 256 {
		return false
	}
	for i := 0; i < len(code); i++ {
		c := code[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}
