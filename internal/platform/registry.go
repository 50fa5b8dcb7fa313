package platform

import (
	"crypto/rsa"
	"strings"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/phone"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/wxcrypt"
)

// The platform seam: everything the handler (module/) needs to know about
// a platform is in its Descriptor, and the handler names no platform. A
// platform is one file (or folder) here holding its client and its
// descriptor, plus one line in registered below.

// Descriptor describes one platform.
type Descriptor struct {
	// Name is the platform's name as written in the Caddyfile (platform)
	// and sent in X-Mp-Platform, lower case.
	Name string
	// Title is its name in messages ("WeChat").
	Title string
	// APIBases are its real API origins, in the order the client uses
	// them; the handler's api_base replaces all of them.
	APIBases []string
	// New returns its client. cfg.APIBase has been checked (CheckAPIBase).
	New func(cfg Config) Client
	// AnonymousCode: its login may carry an anonymous login code (field
	// anonymous_code), exchanged with or without the login code. Without
	// it the field is ignored.
	AnonymousCode bool
	// IdentityFields are the identity names it yields beyond openid and
	// unionid (e.g. anonymous_openid): the handler injects them and no
	// client may set them.
	IdentityFields []string
	// Token describes its server token (WeChat's access token, Douyin's
	// client token, Feishu's app access token), one per app, shared by the
	// handler's instances through the session store; nil: none.
	Token *TokenSpec
	// LoginToken: its code2session needs Token. Its client then calls the
	// token through Config.Tokens (the handler's shared token, refreshed
	// once when the platform rejects it).
	LoginToken bool
	// PhoneCode describes its phone-code exchange, which needs Token; nil:
	// it has none (the phone route then decrypts encryptedData only).
	PhoneCode *PhoneCodeSpec
	// NoPayloads: its encryptedData scheme is unknown, so it has no phone
	// or decrypt route (Payloads is then ignored).
	NoPayloads bool
	// Compat names the dialect of its platform-compatible endpoints
	// (compat): one of the Compat* constants, "" for none. The endpoints
	// themselves are the handler's (module/compat.go), selected by this
	// name.
	Compat string
	// Gateway describes its server API for the open-API gateway (the
	// handler's gateway relays a backend's calls with the shared token
	// added); nil: it has none.
	Gateway *GatewaySpec
	// Payloads is its scheme for encryptedData payloads (cipher, padding,
	// framing and integrity check, and the phone payload's fields); nil:
	// the WeChat family's (WXPayloads). See PayloadsOf.
	Payloads *PayloadScheme
	// SignedAPI: its API calls are signed with the app's RSA private key
	// (private_key, then required) and its answers with the platform's
	// own key, which the client checks with the platform's public key
	// (platform_public_key, then required): Config.PrivateKey and
	// Config.PlatformPublicKey.
	SignedAPI bool
	// AppKeyPayloads: its phone payloads are opened with keys the app
	// configures (the platform's public key, aes_key), not with a session
	// key; the phone route then reads AppKeyScheme.Field instead of
	// encryptedData+iv, and there is no decrypt route. nil: session-key
	// payloads (Payloads).
	AppKeyPayloads *AppKeyScheme
}

// AppKeys are the keys an AppKeyScheme opens payloads with.
type AppKeys struct {
	// PlatformPublicKey verifies the platform's signature.
	PlatformPublicKey *rsa.PublicKey
	// AESKey decrypts the content.
	AESKey []byte
}

// AppKeyScheme is a platform's rule for phone payloads opened with the
// app's keys. Such a payload carries no user and no time: whoever holds it
// can present it, so the handler binds its first use to a session (ID).
// Errors are *mperr.Error (malformed_payload, decrypt_failed,
// bad_request).
type AppKeyScheme struct {
	// Name names the scheme in documentation and tests.
	Name string
	// Field is the request field that carries the payload by default.
	Field string
	// Check refuses, without any key, a payload that is not well formed
	// (malformed_payload), before a session is looked up.
	Check func(payload string) error
	// OpenPhone verifies and decrypts a phone payload. id identifies the
	// payload whatever its wrapping (the signed content), for the
	// first-use binding.
	OpenPhone func(keys AppKeys, payload string) (ph phone.Number, id string, err error)
	// ParseAESKey reads the aes_key setting (errors never quote it).
	ParseAESKey func(text string) ([]byte, error)
}

// PayloadScheme is a platform's rule for encryptedData+iv payloads: each
// platform owns its integrity check (WeChat's watermark.appid, Baidu's app
// key trailer). Errors are *mperr.Error from the README's table
// (malformed_payload, decrypt_failed, watermark_mismatch, bad_request).
type PayloadScheme struct {
	// Name names the scheme in documentation and tests ("aes-128-cbc").
	Name string
	// Check refuses, without any key, a payload that is not well formed
	// (malformed_payload), before a session is looked up.
	Check func(encryptedData, iv string) error
	// Open decrypts with the first of sessionKeys (current, then previous;
	// "" skipped) that works and checks the payload belongs to appID.
	// usedKey is the index of that key. watermarkOptional is the decrypt
	// route's decrypt_watermark optional; a scheme whose check is not
	// optional ignores it.
	Open func(appID string, sessionKeys []string, encryptedData, iv string, watermarkOptional bool) (plaintext []byte, usedKey int, err error)
	// ParsePhone reads the phone number from a decrypted phone payload.
	ParsePhone func(plaintext []byte) (phone.Number, error)
}

// WXPayloads is the WeChat family's scheme (internal/wxcrypt): AES-128-CBC,
// strict PKCS#7, watermark.appid.
var WXPayloads = PayloadScheme{
	Name:  "aes-128-cbc",
	Check: wxcrypt.CheckPayload,
	Open: func(appID string, keys []string, data, iv string, optional bool) ([]byte, int, error) {
		if optional {
			return wxcrypt.OpenWatermarkOptional(appID, keys, data, iv)
		}
		return wxcrypt.Open(appID, keys, data, iv)
	},
	ParsePhone: wxcrypt.ParsePhone,
}

// PayloadsOf is d's payload scheme: its own, else WXPayloads.
func (d *Descriptor) PayloadsOf() *PayloadScheme {
	if d != nil && d.Payloads != nil {
		return d.Payloads
	}
	return &WXPayloads
}

// TokenSpec describes a platform's server token: fetched by its client
// (Tokens) and shared through the session store.
type TokenSpec struct {
	// Name is the store's named value (and lock) of the token
	// ("access_token").
	Name string
	// Title names the token in messages ("access token").
	Title string
	// Modes: the handler's access_token settings (mode stable or classic,
	// refresh) apply; Tokens then returns a StableTokenClient. Without it
	// the token is fetched in classic mode (a fetch may supersede the
	// previous token) and access_token is refused.
	Modes bool
	// Tokens returns the token client, from the platform's own client (as
	// New made it).
	Tokens func(Client) (TokenClient, bool)
}

// PhoneCodeSpec describes a platform's phone-code exchange: its client
// implements PhoneClient, with the platform's Token.
type PhoneCodeSpec struct {
	// Call names the exchange in logs and failure records
	// ("getuserphonenumber").
	Call string
	// PrivateKey: the exchange needs the app's RSA private key
	// (private_key; its answers are encrypted with the public half).
	// Without one configured the platform has no phone-code exchange. A
	// platform without it refuses private_key.
	PrivateKey bool
}

// GatewaySpec is what the open-API gateway (internal/gateway) must know of
// a platform's server API: its upstreams (kinds), where each is, how a call
// carries the token, and how an answer tells that the token was refused.
// The relay itself is the gateway's.
type GatewaySpec struct {
	// Kinds are its upstreams, each with its own token. With one kind the
	// gateway's API paths are the kind's own ("/wxa/msg_sec_check"); with
	// several, each path starts with its kind's Name
	// ("/open.douyin.com/api/apps/v1/censor/image/").
	Kinds []GatewayKind
	// Tokens are the server tokens its kinds use besides the platform's
	// Token (GatewayKind.Token names one by its Name).
	Tokens []*TokenSpec
}

// GatewayKind is one upstream of a platform's gateway.
type GatewayKind struct {
	// Name names the kind: its API host, the first path segment of its
	// APIs when the platform has several kinds.
	Name string
	// Origin is the API origin calls are relayed to; the handler's
	// api_base replaces it (as it replaces every APIBases entry).
	Origin string
	// Host is the API's host name: in host mode, a request for this host
	// reaching the gateway's listener is relayed as it is (no prefix).
	Host string
	// Token names the shared token it uses: "" for the platform's Token,
	// else the Name of one of GatewaySpec.Tokens.
	Token string
	// The token's carriers, each set one used: the query parameter
	// TokenParam, the request header TokenHeader, and the member
	// TokenBodyField of a JSON object body (a body of a kind with one must
	// be a JSON object of at most the gateway's max_buffer).
	TokenParam, TokenHeader, TokenBodyField string
	// ClientTokenParams and ClientTokenHeaders are the query parameters
	// and request headers a client may have sent a token in: none of them
	// reaches the platform (nor does a client's TokenBodyField member).
	ClientTokenParams, ClientTokenHeaders []string
	// TrailingSlash: its API paths end in "/" (open.douyin.com's do), so
	// a path may have one final "/".
	TrailingSlash bool
	// Errcodes are the JSON fields of an answer's error number, in the
	// order they are read: the first present with a non-zero number is the
	// answer's error.
	Errcodes []ErrcodeField
	// Never are the API paths the gateway never relays, whatever the
	// allow-list says (compared without regard to case).
	Never []NeverPath
}

// ErrcodeField is a JSON field holding an answer's error number, and the
// numbers it says the token was refused, or a rate limit was hit, with.
type ErrcodeField struct {
	// Path is the field: a member of the answer object, or a dotted path
	// into nested objects ("data.error_code").
	Path string
	// Token are the numbers that say the token was refused (invalid, not
	// the latest, expired): the gateway refreshes it once.
	Token []int
	// Rate are the numbers of the rate limits and quotas: passed through,
	// never retried.
	Rate []int
}

// NeverPath is an API path the gateway never relays, and why.
type NeverPath struct {
	Path, Why string
}

// Compat dialects: which endpoints compat serves, in whose shapes.
const (
	// CompatWX: /sns/jscode2session, /cgi-bin/token and
	// /cgi-bin/stable_token, WeChat's answers and errcodes.
	CompatWX = "wx"
	// CompatTT: /api/apps/v2/jscode2session and /api/apps/jscode2session,
	// Douyin's answers and err_no.
	CompatTT = "tt"
)

// registered are the platforms, in the order messages list them.
var registered = []*Descriptor{
	&weChatPlatform,
	&douyinPlatform,
	&qqPlatform,
	&baiduPlatform,
	&kuaishouPlatform,
	&feishuPlatform,
	&larkPlatform,
	&alipayPlatform,
}

// Lookup returns the descriptor of the platform named name (exactly, as
// written in the configuration).
func Lookup(name string) (*Descriptor, bool) {
	for _, d := range registered {
		if d.Name == name {
			return d, true
		}
	}
	return nil, false
}

// Names are the registered platforms' names.
func Names() []string {
	n := make([]string, len(registered))
	for i, d := range registered {
		n[i] = d.Name
	}
	return n
}

// NamesWhere are the names of the platforms for which keep is true.
func NamesWhere(keep func(*Descriptor) bool) []string {
	var n []string
	for _, d := range registered {
		if keep(d) {
			n = append(n, d.Name)
		}
	}
	return n
}

// IdentityFields is the union of the platforms' IdentityFields, in
// registration order.
func IdentityFields() []string {
	var out []string
	seen := map[string]bool{}
	for _, d := range registered {
		for _, f := range d.IdentityFields {
			if !seen[f] {
				seen[f] = true
				out = append(out, f)
			}
		}
	}
	return out
}

// OrList writes names as "a", "a or b", "a, b or c".
func OrList(names []string) string {
	switch len(names) {
	case 0:
		return ""
	case 1:
		return names[0]
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}
