package platform

import (
	"bytes"
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/mperr"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/phone"
)

// Douyin's phone-code flow (base library 3.51.0 and later): the
// getPhoneNumber button gives e.detail.code; the server exchanges it with
// get_phonenumber_info and a client token, and the answer's data is the
// phone JSON encrypted (RSA, PKCS#1 v1.5) with the public key the developer
// uploaded in Douyin's console, so that only the app's private key opens it.
//
// Both endpoints live on the open platform's origin (open.douyin.com), not
// code2session's (developer.toutiao.com); Config.APIBase, when set,
// replaces both.
const (
	ttPathClientToken = "/oauth/client_token/"
	ttPathPhone       = "/api/apps/v1/get_phonenumber_info/"
)

// Douyin err_no values of the phone-code exchange. None is in a published
// table the project could retrieve: they come from SDKs (see the README).
const (
	// TTErrPhoneCodeInvalid: the phone code is expired or already used
	// (an SDK's comment).
	TTErrPhoneCodeInvalid = 28005187
	// TTErrTokenInvalid and TTErrTokenExpired: the client token is not
	// valid / expired (the open platform's common numbers).
	TTErrTokenInvalid = 28001003
	TTErrTokenExpired = 28001008
)

// maxRSABlocks bounds the ciphertext of a phone answer: a phone JSON is
// about 150 bytes, 2 blocks with a 1024-bit key.
const maxRSABlocks = 16

var (
	_ PhoneClient = (*DouyinClient)(nil)
	_ TokenClient = clientTokens{}
)

// ClientTokens is the token client of Douyin's client token
// (POST /oauth/client_token/), for the phone-code exchange. It is not
// Douyin's mini-app access_token (/api/apps/v2/token), which other APIs
// use.
func (c *DouyinClient) ClientTokens() TokenClient { return clientTokens{c} }

type clientTokens struct{ c *DouyinClient }

func (t clientTokens) Token(ctx context.Context) (Token, error) { return t.c.ClientToken(ctx) }

// ttClientTokenAnswer is {"data":{"access_token","expires_in","error_code",
// "description"},"message"}; some gateways answer errors flat
// ({"err_no","err_msg"} or {"error_code","description"}).
type ttClientTokenAnswer struct {
	Data *struct {
		AccessToken lenientString `json:"access_token"`
		ExpiresIn   lenientInt    `json:"expires_in"`
		ErrorCode   lenientInt    `json:"error_code"`
		Description lenientString `json:"description"`
	} `json:"data"`
	Message     lenientString `json:"message"`
	ErrNo       lenientInt    `json:"err_no"`
	ErrMsg      lenientString `json:"err_msg"`
	ErrorCode   lenientInt    `json:"error_code"`
	Description lenientString `json:"description"`
}

func (a *ttClientTokenAnswer) errOf() (lenientInt, string) {
	if a.Data != nil && a.Data.ErrorCode.Set {
		return a.Data.ErrorCode, string(a.Data.Description)
	}
	if a.ErrorCode.Set && a.ErrorCode.Value != 0 {
		return a.ErrorCode, string(a.Description)
	}
	return a.ErrNo, string(a.ErrMsg)
}

// clientTokenVerdict maps the client_token endpoint's error_code.
func clientTokenVerdict(errno int, msg string) verdict {
	cause := platformMessage(msg)
	fail := func(code mperr.Code, m string) verdict { return verdict{err: platformErr(code, errno, m, cause)} }
	switch errno {
	case -1, 2100004:
		return verdict{err: platformErr(mperr.PlatformError, errno, "the platform is busy", cause), transient: true}
	case 10002:
		return fail(mperr.PlatformError, "the platform says a parameter is wrong")
	case 10003:
		return fail(mperr.PlatformError, "the platform rejected the app id (client_key)")
	case 10013:
		return fail(mperr.PlatformError, "the platform rejected the app id or secret")
	}
	return fail(mperr.PlatformError, "the platform returned an error")
}

// ClientToken calls POST /oauth/client_token/. Each fetch supersedes the
// previous token (valid 5 more minutes; the platform keeps the latest two).
func (c *DouyinClient) ClientToken(ctx context.Context) (Token, error) {
	body, err := json.Marshal(struct {
		GrantType    string `json:"grant_type"`
		ClientKey    string `json:"client_key"`
		ClientSecret string `json:"client_secret"`
	}{"client_credential", c.appID, c.secret})
	if err != nil {
		return Token{}, mperr.Wrap(mperr.Internal, "cannot build the platform request", err)
	}
	return c.ttToken(ctx, ttPathClientToken, c.openBase+ttPathClientToken, body, func() ttTokenAnswer { return &ttClientTokenAnswer{} }, clientTokenVerdict)
}

// ttTokenAnswer is a Douyin token endpoint's answer: its error number and
// message, and data's access_token and expires_in.
type ttTokenAnswer interface {
	errOf() (lenientInt, string)
	token() (tok lenientString, expiresIn lenientInt, ok bool)
}

func (a *ttClientTokenAnswer) token() (lenientString, lenientInt, bool) {
	if a.Data == nil {
		return "", lenientInt{}, false
	}
	return a.Data.AccessToken, a.Data.ExpiresIn, true
}

// ttToken fetches a Douyin token (client token, mini-app access token):
// POST body to u, each answer read into a fresh newAnswer(), its errors
// mapped by mapErr.
func (c *DouyinClient) ttToken(ctx context.Context, endpoint, u string, body []byte, newAnswer func() ttTokenAnswer, mapErr func(int, string) verdict) (Token, error) {
	var t Token
	err := c.do(ctx, attempt{
		endpoint:   endpoint,
		newRequest: postJSON(u, body),
		secrets:    []string{c.secret},
		parse: func(status int, body []byte) (*int, verdict) {
			a := newAnswer()
			ec, v, ok := envelope(status, body, a, a.errOf, mapErr)
			if !ok {
				return ec, v
			}
			tok, exp, found := a.token()
			if !found || tok == "" {
				return ec, incomplete("data.access_token")
			}
			if !exp.Set || exp.Value <= 0 {
				return ec, incomplete("positive data.expires_in")
			}
			t = Token{AccessToken: string(tok), ExpiresIn: time.Duration(exp.Value) * time.Second}
			return ec, verdict{}
		},
	})
	if err != nil {
		return Token{}, err
	}
	return t, nil
}

// ttPhoneAnswer is {"err_no","err_tips"/"err_msg","log_id","data":"<base64>"}.
type ttPhoneAnswer struct {
	ErrNo   lenientInt    `json:"err_no"`
	ErrTips lenientString `json:"err_tips"`
	ErrMsg  lenientString `json:"err_msg"`
	Data    lenientString `json:"data"`
}

func (a *ttPhoneAnswer) errOf() (lenientInt, string) {
	msg := string(a.ErrTips)
	if msg == "" {
		msg = string(a.ErrMsg)
	}
	return a.ErrNo, msg
}

// douyinPhoneVerdict maps get_phonenumber_info's err_no.
func douyinPhoneVerdict(errno int, msg string) verdict {
	switch errno {
	case TTErrPhoneCodeInvalid, 40018:
		return verdict{err: platformErr(mperr.InvalidCode, errno, "the phone code is invalid, expired or already used", platformMessage(msg))}
	case TTErrTokenInvalid, TTErrTokenExpired:
		cause := error(ErrTokenInvalid)
		if pm := platformMessage(msg); pm != nil {
			cause = fmt.Errorf("%w (%w)", ErrTokenInvalid, pm)
		}
		return verdict{err: platformErr(mperr.PlatformError, errno, "the client token is invalid or expired", cause)}
	}
	return douyinVerdict(errno, msg)
}

// GetUserPhoneNumber calls POST /api/apps/v1/get_phonenumber_info/ with
// the client token in the access-token header, and decrypts the answer
// with the app's private key (Config.PrivateKey). openid is ignored: the
// exchange takes none, so Douyin does not check that the phone code
// belongs to a user.
func (c *DouyinClient) GetUserPhoneNumber(ctx context.Context, clientToken, code, _ string) (phone.Number, error) {
	if code == "" {
		return phone.Number{}, mperr.New(mperr.BadRequest, "no phone code")
	}
	if c.privateKey == nil {
		return phone.Number{}, mperr.New(mperr.Internal, "no private_key is configured to open Douyin's phone answers")
	}
	if clientToken == "" {
		return phone.Number{}, mperr.Wrap(mperr.PlatformError, "no client token", ErrTokenInvalid)
	}
	body, err := json.Marshal(struct {
		Code string `json:"code"`
	}{code})
	if err != nil {
		return phone.Number{}, mperr.Wrap(mperr.Internal, "cannot build the platform request", err)
	}
	post := postJSON(c.openBase+ttPathPhone, body)
	var p phone.Number
	err = c.do(ctx, attempt{
		endpoint: ttPathPhone,
		newRequest: func(ctx context.Context) (*http.Request, error) {
			req, err := post(ctx)
			if err == nil {
				req.Header.Set("access-token", clientToken)
			}
			return req, err
		},
		secrets: []string{c.secret, clientToken, code},
		parse: func(status int, body []byte) (*int, verdict) {
			var a ttPhoneAnswer
			ec, v, ok := envelope(status, body, &a, a.errOf, douyinPhoneVerdict)
			if !ok {
				return ec, v
			}
			if a.Data == "" {
				return ec, incomplete("data")
			}
			plain, err := DecryptRSA(c.privateKey, string(a.Data))
			if err != nil {
				// Not the client's doing: the operator's key pair.
				return ec, verdict{err: mperr.Wrap(mperr.PlatformError, "the platform's phone answer does not open with the configured private_key (is its public half the one uploaded in Douyin's console?)", err)}
			}
			n, err := parsePhoneInfo(plain)
			if err != nil {
				return ec, unreadable(fmt.Errorf("decrypted data: %w", err))
			}
			p = n
			return ec, verdict{}
		},
	})
	if err != nil {
		return phone.Number{}, err
	}
	return p, nil
}

// ErrRSADecrypt is DecryptRSA's one error: which block or what failed is
// not told.
var ErrRSADecrypt = errors.New("platform: the RSA ciphertext does not decrypt")

// DecryptRSA decodes data (base64: standard or URL-safe, padded or not)
// and decrypts it with RSA PKCS#1 v1.5 block by block: a ciphertext longer
// than one block (a 1024-bit key holds at most 117 bytes per block) is the
// concatenation of blocks of the key's size, whose plaintexts are
// concatenated. Every block is tried whatever the others gave, and any
// failure is the one ErrRSADecrypt.
func DecryptRSA(key *rsa.PrivateKey, data string) ([]byte, error) {
	ct, ok := decodeBase64(data)
	k := key.Size()
	if !ok || len(ct) == 0 || len(ct)%k != 0 || len(ct)/k > maxRSABlocks {
		return nil, ErrRSADecrypt
	}
	out := make([]byte, 0, len(ct))
	failed := false
	for i := 0; i < len(ct); i += k {
		//lint:ignore SA1019 the platform chose PKCS#1 v1.5 (its SDKs all decrypt with it); the ciphertext comes from the platform over TLS, never from the client, and failures are reported as one error
		pt, err := rsa.DecryptPKCS1v15(nil, key, ct[i:i+k])
		if err != nil {
			failed = true
			continue
		}
		out = append(out, pt...)
	}
	if failed {
		return nil, ErrRSADecrypt
	}
	return out, nil
}

func decodeBase64(s string) ([]byte, bool) {
	s = strings.TrimSpace(s)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b, true
		}
	}
	return nil, false
}

// ParsePrivateKey reads an RSA private key from PEM text: PKCS#1 ("RSA
// PRIVATE KEY") or PKCS#8 ("PRIVATE KEY"). Its errors never quote the
// text.
func ParsePrivateKey(pemText []byte) (*rsa.PrivateKey, error) {
	block, _ := pem.Decode(bytes.TrimSpace(pemText))
	if block == nil {
		return nil, errors.New("no PEM block found (want -----BEGIN RSA PRIVATE KEY----- or -----BEGIN PRIVATE KEY-----)")
	}
	return parsePrivateKeyBlock(block)
}

// ParsePrivateKeyDER reads an RSA private key from the bare base64 of its
// DER (PKCS#8 or PKCS#1), as Alipay's key tool gives it. ok is false when
// text is not such base64 (nothing is said about it: it may be a secret).
func ParsePrivateKeyDER(text string) (k *rsa.PrivateKey, ok bool, err error) {
	der, isB64 := decodeBase64(strings.Join(strings.Fields(text), ""))
	if !isB64 || len(der) < 64 {
		return nil, false, nil
	}
	typ := "PRIVATE KEY"
	if _, err := x509.ParsePKCS8PrivateKey(der); err != nil {
		typ = "RSA PRIVATE KEY"
	}
	k, err = parsePrivateKeyBlock(&pem.Block{Type: typ, Bytes: der})
	return k, true, err
}

func parsePrivateKeyBlock(block *pem.Block) (*rsa.PrivateKey, error) {
	var key any
	var err error
	switch block.Type {
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "ENCRYPTED PRIVATE KEY":
		return nil, errors.New("the key is encrypted with a passphrase; give it unencrypted (e.g. openssl pkcs8 -topk8 -nocrypt)")
	default:
		return nil, fmt.Errorf("a PEM block of type %q is not a private key", block.Type)
	}
	if err != nil {
		return nil, errors.New("the PEM block does not hold a readable " + block.Type)
	}
	rk, ok := key.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("the key is a %T, not an RSA key", key)
	}
	if rk.N.BitLen() < 1024 {
		return nil, fmt.Errorf("the RSA key has %d bits; at least 1024 are needed", rk.N.BitLen())
	}
	return rk, nil
}

// parsePhoneInfo reads a phone JSON object {phoneNumber, purePhoneNumber,
// countryCode, watermark{appid, timestamp}} leniently (countryCode as a
// string or a number), and checks the values (phone.Number.Valid).
func parsePhoneInfo(raw []byte) (phone.Number, error) {
	var pi wxPhoneInfo
	if err := decodeObject(raw, &pi); err != nil {
		return phone.Number{}, err
	}
	if pi.PhoneNumber == "" {
		return phone.Number{}, errors.New("no phoneNumber")
	}
	p := phone.Number{
		PhoneNumber:     string(pi.PhoneNumber),
		PurePhoneNumber: string(pi.PurePhoneNumber),
		CountryCode:     string(pi.CountryCode),
	}
	if pi.Watermark != nil {
		p.WatermarkAppID = string(pi.Watermark.AppID)
	}
	if !p.Valid() {
		// The values become headers.
		return phone.Number{}, errors.New("not a phone number")
	}
	return p, nil
}
