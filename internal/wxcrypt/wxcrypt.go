// Package wxcrypt decrypts the encryptedData payloads of WeChat-family mini
// programs (WeChat, Douyin, QQ, Kuaishou): AES-128-CBC with strict PKCS#7
// padding, key = base64(session_key), iv = base64(iv), and a JSON plaintext
// carrying watermark.appid.
//
// Every error is an *mperr.Error whose message is one of a few fixed texts:
// no error ever carries a session key, a ciphertext, an iv or a plaintext.
//
// Input checks that do not depend on a key (base64 of encryptedData and iv,
// iv length, ciphertext length) are made before any key is tried and give
// mperr.MalformedPayload. Every failure that does depend on the key (bad
// padding, plaintext not a JSON object, a stored key that is not 16 bytes of
// base64) gives mperr.DecryptFailed with one and the same message, so that a
// client cannot tell them apart (no padding oracle).
package wxcrypt

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/subtle"
	"encoding/base64"
	"sync"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/jsonobj"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/mperr"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/ascii"
)

// KeySize is the size of a session key and of an iv, in bytes.
const KeySize = 16

// keyTextLen is the length of the base64 text of 16 bytes ("...==").
const keyTextLen = 24

// The fixed messages of the errors this package returns. They are exported so
// that callers and tests can recognise them; none contains request data.
const (
	MsgDecryptFailed     = "the payload does not decrypt with the session key; log in again"
	MsgWatermarkMismatch = "the decrypted data belongs to another app"
	MsgWatermarkShort    = "the decrypted data carries no watermark and is too short to be trusted without one"
	MsgDataNotBase64     = "encryptedData is not valid base64"
	MsgIVNotBase64       = "iv is not valid base64"
	MsgIVSize            = "iv is not 16 bytes"
	MsgDataEmpty         = "encryptedData is empty"
	MsgDataBlocks        = "encryptedData is not a whole number of 16-byte blocks"
	MsgNotPhone          = "the decrypted data is not a phone number"
	MsgBadSessionKey     = "the session key is not 16 bytes of base64"
)

// b64 is the standard alphabet with padding, rejecting non-canonical
// trailing bits. Go's decoder skips '\r' and '\n': normalize rejects them
// before it sees the text.
var b64 = base64.StdEncoding.Strict()

// scratch holds the buffers one call needs; pooled so that a call allocates
// (almost) nothing but the plaintext.
type scratch struct {
	text []byte // normalised base64 text
	ct   []byte // decoded ciphertext
	aux  []byte // decoded iv
}

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

// maxPooled bounds the buffers kept in the pool (request bodies are small).
const maxPooled = 1 << 20

func getScratch() *scratch { return scratchPool.Get().(*scratch) }

func putScratch(s *scratch) {
	if cap(s.text) > maxPooled || cap(s.ct) > maxPooled || cap(s.aux) > maxPooled {
		return
	}
	scratchPool.Put(s)
}

// normalize copies s into buf as padded standard base64, repairing what
// front ends and common mistakes do to it:
//   - percent-encoding (encodeURIComponent before JSON): %2B, %2F, %3D and
//     any other valid %XX are decoded once;
//   - '+' turned into a space by form or query decoding: every space is a
//     '+' (base64 has no spaces; a 48n-byte ciphertext has no padding and
//     may end in '+', so spaces are mapped, never trimmed);
//   - line breaks and tabs (wrapped base64) are dropped; any other control
//     character fails;
//   - the URL-safe alphabet ('-', '_') becomes the standard one;
//   - missing '=' padding is added.
//
// Anything else that is not base64 makes the strict decoder fail.
func normalize(buf []byte, s string) ([]byte, bool) {
	buf = buf[:0]
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case ' ':
			c = '+'
		case '-':
			c = '+'
		case '_':
			c = '/'
		case '\t', '\n', '\r':
			continue
		case '\v', '\f':
			return buf, false
		case '%':
			if i+2 < len(s) && ascii.IsHex(s[i+1]) && ascii.IsHex(s[i+2]) {
				c = ascii.Unhex(s[i+1])<<4 | ascii.Unhex(s[i+2])
				i += 2
				if c == ' ' {
					c = '+'
				}
			}
		}
		buf = append(buf, c)
	}
	switch len(buf) % 4 {
	case 1:
		return buf, false
	case 2:
		buf = append(buf, '=', '=')
	case 3:
		buf = append(buf, '=')
	}
	return buf, true
}

// decodeText normalises and decodes s; text and dst are reusable buffers.
func decodeText(text, dst []byte, s string) (newText, out []byte, ok bool) {
	text, ok = normalize(text, s)
	if !ok {
		return text, dst[:0], false
	}
	if n := b64.DecodedLen(len(text)); cap(dst) < n {
		dst = make([]byte, n)
	} else {
		dst = dst[:n]
	}
	n, err := b64.Decode(dst, text)
	if err != nil {
		return text, dst[:0], false
	}
	return text, dst[:n], true
}

// decodeKey decodes a base64 session key into key; false when it is not
// exactly 16 bytes of (padded, standard) base64.
func decodeKey(key *[KeySize]byte, s string) bool {
	if len(s) != keyTextLen {
		return false
	}
	var text [keyTextLen]byte
	for i := 0; i < keyTextLen; i++ {
		c := s[i]
		switch c {
		case ' ':
			c = '+'
		case '\t', '\n', '\v', '\f', '\r':
			return false
		}
		text[i] = c
	}
	var out [18]byte // b64.DecodedLen(24)
	n, err := b64.Decode(out[:], text[:])
	if err != nil || n != KeySize {
		return false
	}
	copy(key[:], out[:KeySize])
	return true
}

// payload is a checked ciphertext and iv.
type payload struct {
	ct []byte // len > 0, multiple of aes.BlockSize; aliases scratch
	iv []byte // KeySize bytes; aliases scratch (a stack copy would escape into the CBC mode)
}

// parse makes the checks that do not depend on a key.
func (s *scratch) parse(encryptedData, iv string) (payload, error) {
	var p payload
	var ok bool
	s.text, s.ct, ok = decodeText(s.text, s.ct, encryptedData)
	if !ok {
		return p, mperr.New(mperr.MalformedPayload, MsgDataNotBase64)
	}
	var ivb []byte
	s.text, ivb, ok = decodeText(s.text, s.aux, iv)
	s.aux = ivb
	if !ok {
		return p, mperr.New(mperr.MalformedPayload, MsgIVNotBase64)
	}
	if len(ivb) != KeySize {
		return p, mperr.New(mperr.MalformedPayload, MsgIVSize)
	}
	if len(s.ct) == 0 {
		return p, mperr.New(mperr.MalformedPayload, MsgDataEmpty)
	}
	if len(s.ct)%aes.BlockSize != 0 {
		return p, mperr.New(mperr.MalformedPayload, MsgDataBlocks)
	}
	p.ct, p.iv = s.ct, ivb
	return p, nil
}

// decrypt decrypts p into out (len(out) == len(p.ct)) and checks the
// padding; it returns the plaintext length.
//
// CBC is done here block by block rather than with cipher.NewCBCDecrypter,
// which allocates its state on every call: on amd64 and arm64 the standard
// library's CBC decrypter is this same loop (crypto/internal/fips140/aes,
// cryptBlocksDecGeneric), so only the allocation goes.
func decrypt(out []byte, p *payload, key *[KeySize]byte) (int, bool) {
	block, err := aes.NewCipher(key[:])
	if err != nil { // cannot happen: the key is 16 bytes
		return 0, false
	}
	cbcDecrypt(block, p.iv, out, p.ct)
	return unpad(out)
}

// cbcDecrypt decrypts src (a whole number of blocks) into dst (as long),
// AES-CBC with iv. dst and src may not overlap.
func cbcDecrypt(b cipher.Block, iv, dst, src []byte) {
	prev := iv
	for i := 0; i < len(src); i += aes.BlockSize {
		ct := src[i : i+aes.BlockSize : i+aes.BlockSize]
		pt := dst[i : i+aes.BlockSize : i+aes.BlockSize]
		b.Decrypt(pt, ct)
		subtle.XORBytes(pt, pt, prev)
		prev = ct
	}
}

// unpad checks strict PKCS#7 padding of p (len(p) a positive multiple of the
// block size): the last byte n is 1..16 and the last n bytes all equal n. The
// loop looks at the whole last block whatever n is, so its timing does not
// depend on the pad content.
func unpad(p []byte) (int, bool) {
	n := len(p)
	if n < aes.BlockSize {
		return 0, false
	}
	pad := int(p[n-1])
	good := subtle.ConstantTimeLessOrEq(1, pad) & subtle.ConstantTimeLessOrEq(pad, aes.BlockSize)
	for i := 1; i <= aes.BlockSize; i++ {
		inPad := subtle.ConstantTimeLessOrEq(i, pad)
		eq := subtle.ConstantTimeByteEq(p[n-i], byte(pad))
		good &= eq | (inPad ^ 1)
	}
	if good != 1 {
		return 0, false
	}
	return n - pad, true
}

func errDecryptFailed() error { return mperr.New(mperr.DecryptFailed, MsgDecryptFailed) }

// Decrypt decodes sessionKey (16 bytes), encryptedData and iv (standard
// base64 with padding; a space is read as '+', other whitespace is
// rejected), decrypts AES-128-CBC and checks strict PKCS#7 padding. It
// returns the plaintext, which it does not parse.
func Decrypt(sessionKey, encryptedData, iv string) ([]byte, error) {
	s := getScratch()
	defer putScratch(s)
	p, err := s.parse(encryptedData, iv)
	if err != nil {
		return nil, err
	}
	var key [KeySize]byte
	if !decodeKey(&key, sessionKey) {
		return nil, errDecryptFailed()
	}
	out := make([]byte, len(p.ct))
	n, ok := decrypt(out, &p, &key)
	if !ok {
		return nil, errDecryptFailed()
	}
	return out[:n:n], nil
}

// Open decrypts a payload with the first of sessionKeys (current first, then
// previous; empty strings are skipped) that yields valid padding and a JSON
// object, then checks that the object's watermark.appid equals appID.
// keyIndex is the index in sessionKeys of the key that worked (-1 on error).
func Open(appID string, sessionKeys []string, encryptedData, iv string) (plaintext []byte, keyIndex int, err error) {
	return open(appID, sessionKeys, encryptedData, iv, false)
}

// MinBlocksWithoutWatermark is how many cipher blocks a payload opened
// with OpenWatermarkOptional must have when it carries no watermark: CBC
// without a MAC lets a client who controls the IV forge any first block,
// so a one-block plaintext could be entirely the client's.
const MinBlocksWithoutWatermark = 2

// OpenWatermarkOptional is Open for payloads that may carry no watermark
// (WeRun-like data, by the operator's choice): a plaintext without a
// "watermark" member is accepted when the ciphertext has at least
// MinBlocksWithoutWatermark blocks; a watermark that is present must
// still be appID's. This is weaker than Open: without the watermark a
// client who controls the IV can still rewrite the first 16 bytes.
func OpenWatermarkOptional(appID string, sessionKeys []string, encryptedData, iv string) (plaintext []byte, keyIndex int, err error) {
	return open(appID, sessionKeys, encryptedData, iv, true)
}

func open(appID string, sessionKeys []string, encryptedData, iv string, optional bool) (plaintext []byte, keyIndex int, err error) {
	s := getScratch()
	defer putScratch(s)
	p, err := s.parse(encryptedData, iv)
	if err != nil {
		return nil, -1, err
	}
	var out []byte
	for i, k := range sessionKeys {
		if k == "" {
			continue
		}
		var key [KeySize]byte
		if !decodeKey(&key, k) {
			continue
		}
		if out == nil {
			out = make([]byte, len(p.ct))
		}
		n, ok := decrypt(out, &p, &key)
		if !ok {
			continue
		}
		pt := out[:n:n]
		if !jsonobj.IsObject(pt) {
			continue
		}
		if optional && member(pt, "watermark") == nil {
			if len(p.ct) < MinBlocksWithoutWatermark*aes.BlockSize {
				return nil, -1, mperr.New(mperr.WatermarkMismatch, MsgWatermarkShort)
			}
			return pt, i, nil
		}
		if !watermarkIs(pt, appID) {
			return nil, -1, mperr.New(mperr.WatermarkMismatch, MsgWatermarkMismatch)
		}
		return pt, i, nil
	}
	return nil, -1, errDecryptFailed()
}

// watermarkIs reports whether the JSON object b (valid JSON) has
// watermark.appid == appID: keys matched exactly, the last of duplicates
// wins, appid must be a string; an empty appID never matches.
func watermarkIs(b []byte, appID string) bool {
	if appID == "" {
		return false
	}
	wm := member(b, "watermark")
	if wm == nil {
		return false
	}
	app := member(wm, "appid")
	return len(app) > 0 && app[0] == '"' && jsonobj.Equal(app, appID)
}

// member returns the raw value of the last top-level member of the JSON
// object obj whose key is exactly name; nil when there is none or obj is
// not an object.
func member(obj []byte, name string) []byte {
	it, ok := jsonobj.Object(obj)
	if !ok {
		return nil
	}
	var v []byte
	for k, val, ok := it.Next(); ok; k, val, ok = it.Next() {
		if jsonobj.Equal(k, name) {
			v = val
		}
	}
	return v
}

// CheckPayload reports, without any key, whether encryptedData and iv are
// well formed (the MalformedPayload checks of Open), so that a caller can
// refuse a malformed payload before looking up a session.
func CheckPayload(encryptedData, iv string) error {
	s := getScratch()
	defer putScratch(s)
	_, err := s.parse(encryptedData, iv)
	return err
}

// Identity returns the values of every top-level member of the decrypted
// object pt named like openId or unionId (ignoring case, '_', '-', '.' and
// blanks, cut at NUL: the spellings lenient JSON binders equate), so that a
// caller can check them against the session's. A payload from a genuine
// client carries at most the platform's own "openId"/"unionId"; CBC
// without a MAC lets a client who controls the IV rewrite the first block,
// hence the check. It allocates only for the values it returns.
func Identity(pt []byte) (openIDs, unionIDs []string) {
	it, ok := jsonobj.Object(pt)
	if !ok {
		return nil, nil
	}
	for k, v, ok := it.Next(); ok; k, v, ok = it.Next() {
		kind := identityKey(k)
		if kind == notIdentity {
			continue
		}
		val := string(v)
		if len(v) > 0 && v[0] == '"' {
			val = jsonobj.Unquote(v)
		}
		if kind == keyOpenID {
			openIDs = append(openIDs, val)
		} else {
			unionIDs = append(unionIDs, val)
		}
	}
	return openIDs, unionIDs
}

const (
	notIdentity = iota
	keyOpenID
	keyUnionID
)

// identityKey tells whether the raw key token tok (with its quotes) names
// openid or unionid under a lenient binder's rules (ASCII case, '_', '-',
// '.' and blanks ignored, cut at NUL). No non-ASCII letter folds to a
// letter of either name. Escapes are decoded first (rare: a slow path).
func identityKey(tok []byte) int {
	if bytes.IndexByte(tok, '\\') >= 0 {
		return identityName(jsonobj.Unquote(tok))
	}
	if len(tok) < 2 {
		return notIdentity
	}
	return identityName(string(tok[1 : len(tok)-1])) // no allocation: not kept
}

func identityName(key string) int {
	var b [16]byte
	n := 0
	for i := 0; i < len(key); i++ {
		c := key[i]
		switch {
		case c == 0:
			i = len(key)
			continue
		case c == '_' || c == '-' || c == '.' || c == ' ' || c == '\t':
			continue
		case c >= 0x80 || n == len(b):
			return notIdentity
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		}
		b[n] = c
		n++
	}
	switch string(b[:n]) {
	case "openid":
		return keyOpenID
	case "unionid":
		return keyUnionID
	}
	return notIdentity
}

// DecodeBase64 decodes s with the lenient normalisation payloads get here
// (percent-encoding, '+' turned into a space, line breaks, the URL-safe
// alphabet, missing padding; see normalize), for other schemes that take
// base64 from the same front ends. It allocates the result.
func DecodeBase64(s string) ([]byte, bool) {
	_, out, ok := decodeText(nil, nil, s)
	if !ok {
		return nil, false
	}
	return bytes.Clone(out), true
}
