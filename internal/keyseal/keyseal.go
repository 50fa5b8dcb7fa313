// Package keyseal seals short secrets (the users' session keys) for storage
// at rest with AES-GCM, so that a dump of the store does not expose them.
//
// # Keys
//
// A Codec holds one or more keys, each given as standard base64 (padding
// optional) of 16, 24 or 32 random bytes (AES-128, -192 or -256; 32 is
// recommended: `openssl rand -base64 32`). The first key seals every new
// value; all of them open. To rotate, put the new key first and keep the
// old one after it until every value sealed with it has expired or been
// rewritten, then drop it.
//
// # Sealed value
//
//	ks1:<kid>:<base64(nonce || ciphertext || tag)>
//
// "ks1" is the format version; <kid> is the key id, 8 lowercase hex digits
// (the first 4 bytes of a domain-separated SHA-256 of the key: it tells Open
// which key to use and reveals nothing usable about the key); the nonce is 12
// random bytes, fresh for every Seal; the tag is GCM's 16 bytes; base64 is
// the standard alphabet without padding. The associated data binds the
// ciphertext to its purpose (default "mp-session-key") and to the header
// "ks1:<kid>:", so a value sealed for another purpose, or with its header
// edited, does not open. A 24-character session key seals to 83 characters.
//
// # Values that are not sealed
//
// A value without the "ks1:" prefix was written before sealing was turned
// on. By default Open rejects it (ErrNotSealed), so that a value planted in
// the store in the clear is never used. With AllowPlain (a migration aid)
// Open returns it unchanged. A value that has the prefix is always opened
// strictly: it never falls back to being taken as plain text.
//
// Errors never contain key material, plaintext or the sealed value.
package keyseal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// Prefix starts every sealed value.
const Prefix = "ks1:"

// DefaultPurpose is the associated data's purpose when none is given.
const DefaultPurpose = "mp-session-key"

const (
	kidLen   = 8 // hex digits
	nonceLen = 12
	tagLen   = 16
	// headerLen is len("ks1:<kid>:").
	headerLen = len(Prefix) + kidLen + 1
)

// Errors of Open. They carry no data from the value.
var (
	// ErrNotSealed: the value has no "ks1:" prefix and plain values are
	// not allowed.
	ErrNotSealed = errors.New("keyseal: value is not sealed")
	// ErrUnknownKey: the value was sealed with a key this Codec does not
	// hold.
	ErrUnknownKey = errors.New("keyseal: value was sealed with an unknown key")
	// ErrMalformed: the value has the prefix but not the format.
	ErrMalformed = errors.New("keyseal: sealed value is malformed")
	// ErrAuth: the value does not authenticate (tampered, or sealed for
	// another purpose).
	ErrAuth = errors.New("keyseal: sealed value does not authenticate")
)

// Codec seals and opens values. It implements store.KeyCodec and is safe
// for concurrent use.
type Codec struct {
	keys       []sealKey // keys[0] seals
	purpose    string
	allowPlain bool
}

type sealKey struct {
	id   string
	aead cipher.AEAD
}

// Option tunes New.
type Option func(*Codec)

// AllowPlain makes Open return values that are not sealed (no "ks1:"
// prefix) unchanged: for migrating a store written before sealing was
// turned on. Off by default.
func AllowPlain(allow bool) Option { return func(c *Codec) { c.allowPlain = allow } }

// Purpose sets the associated data's purpose (default DefaultPurpose).
// Values sealed for one purpose do not open for another.
func Purpose(p string) Option { return func(c *Codec) { c.purpose = p } }

// New returns a Codec with keys, the first of which seals. Each key is
// standard base64 (padding optional, surrounding spaces ignored) of 16, 24
// or 32 bytes. At least one key is needed; a key given twice, or two keys
// with the same id, are errors. Errors name a key by its position only.
func New(keys []string, opts ...Option) (*Codec, error) {
	c := &Codec{purpose: DefaultPurpose}
	for _, o := range opts {
		o(c)
	}
	if c.purpose == "" {
		return nil, errors.New("keyseal: empty purpose")
	}
	if len(keys) == 0 {
		return nil, errors.New("keyseal: no key given")
	}
	seen := make(map[string]int, len(keys))
	for i, k := range keys {
		raw, err := ParseKey(k)
		if err != nil {
			return nil, fmt.Errorf("keyseal: key %d of %d: %w", i+1, len(keys), err)
		}
		id := KeyID(raw)
		if j, dup := seen[id]; dup {
			return nil, fmt.Errorf("keyseal: key %d of %d is the same as key %d (or has the same id)", i+1, len(keys), j+1)
		}
		seen[id] = i
		aead, err := newAEAD(raw)
		if err != nil {
			return nil, fmt.Errorf("keyseal: key %d of %d: %w", i+1, len(keys), err)
		}
		c.keys = append(c.keys, sealKey{id: id, aead: aead})
	}
	return c, nil
}

// ParseKey decodes a key's text: standard base64, padding optional,
// surrounding spaces ignored, of 16, 24 or 32 bytes. The error does not
// contain the text.
func ParseKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, errors.New("empty key")
	}
	enc := base64.StdEncoding
	if len(s)%4 != 0 {
		enc = base64.RawStdEncoding
	}
	raw, err := enc.Strict().DecodeString(s)
	if err != nil {
		return nil, errors.New("key is not standard base64")
	}
	switch len(raw) {
	case 16, 24, 32:
		return raw, nil
	}
	return nil, fmt.Errorf("key is %d bytes; want 32 (or 16 or 24) bytes of base64", len(raw))
}

// SplitKeys splits a configured value that may hold several keys (say an
// environment variable with "new,old") at commas and white space, which
// base64 never contains. It returns nil for a value with no key.
func SplitKeys(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool {
		return r == ',' || r == ' ' || r == '\t' || r == '\n' || r == '\r'
	})
}

// KeyID is a key's id: the first 4 bytes, in hex, of SHA-256 over a fixed
// label and the key.
func KeyID(raw []byte) string {
	h := sha256.New()
	h.Write([]byte("caddy-miniprogram keyseal key id\x00"))
	h.Write(raw)
	return hex.EncodeToString(h.Sum(nil)[:kidLen/2])
}

// WriteKeyID is the id of the key that seals (the first).
func (c *Codec) WriteKeyID() string { return c.keys[0].id }

// KeyIDs are the ids of all keys, in order.
func (c *Codec) KeyIDs() []string {
	ids := make([]string, len(c.keys))
	for i, k := range c.keys {
		ids[i] = k.id
	}
	return ids
}

// ad is the associated data for a value with the given header.
func (c *Codec) ad(header string) []byte {
	b := make([]byte, 0, len("caddy-miniprogram/keyseal\x00")+len(c.purpose)+1+len(header))
	b = append(b, "caddy-miniprogram/keyseal\x00"...)
	b = append(b, c.purpose...)
	b = append(b, 0)
	return append(b, header...)
}

// Seal seals plain with the first key and a fresh random nonce.
func (c *Codec) Seal(plain string) (string, error) {
	k := c.keys[0]
	header := Prefix + k.id + ":"
	buf, err := seal(k.aead, []byte(plain), c.ad(header))
	if err != nil {
		return "", err
	}
	out := make([]byte, headerLen+base64.RawStdEncoding.EncodedLen(len(buf)))
	copy(out, header)
	base64.RawStdEncoding.Encode(out[headerLen:], buf)
	return string(out), nil
}

// Open opens a value sealed by Seal with any of the Codec's keys. A value
// without the prefix is returned as it is with AllowPlain, else it is
// ErrNotSealed.
func (c *Codec) Open(stored string) (string, error) {
	if !strings.HasPrefix(stored, Prefix) {
		if c.allowPlain {
			return stored, nil
		}
		return "", ErrNotSealed
	}
	if len(stored) < headerLen || stored[headerLen-1] != ':' {
		return "", ErrMalformed
	}
	header, id := stored[:headerLen], stored[len(Prefix):headerLen-1]
	var aead cipher.AEAD
	for _, k := range c.keys {
		if k.id == id {
			aead = k.aead
			break
		}
	}
	if aead == nil {
		if !isHex(id) {
			return "", ErrMalformed
		}
		return "", ErrUnknownKey
	}
	body := stored[headerLen:]
	buf := make([]byte, base64.RawStdEncoding.DecodedLen(len(body)))
	n, err := base64.RawStdEncoding.Strict().Decode(buf, []byte(body))
	if err != nil {
		return "", ErrMalformed
	}
	plain, err := open(aead, buf[:n], c.ad(header))
	if err != nil {
		return "", err
	}
	return string(plain), nil
}

// seal is the package's one AES-GCM framing: nonce (12 random bytes,
// fresh for every call) || ciphertext || tag.
func seal(aead cipher.AEAD, plain, ad []byte) ([]byte, error) {
	buf := make([]byte, nonceLen, nonceLen+len(plain)+tagLen)
	if _, err := rand.Read(buf); err != nil {
		return nil, errors.New("keyseal: no randomness for the nonce")
	}
	return aead.Seal(buf, buf[:nonceLen], plain, ad), nil
}

// open opens what seal made; it reuses sealed's memory.
func open(aead cipher.AEAD, sealed, ad []byte) ([]byte, error) {
	if len(sealed) < nonceLen+tagLen {
		return nil, ErrMalformed
	}
	plain, err := aead.Open(sealed[nonceLen:nonceLen], sealed[:nonceLen], sealed[nonceLen:], ad)
	if err != nil {
		return nil, ErrAuth
	}
	return plain, nil
}

// SealWithKey seals plain under a 16-, 24- or 32-byte AES key the caller
// derives (not one of a Codec's configured keys): for values only a
// request that presents the secret the key is derived from may read back,
// such as a phone code's cached result. ad binds the value to its name.
// The result is binary: nonce || ciphertext || tag.
func SealWithKey(key, plain, ad []byte) ([]byte, error) {
	aead, err := newAEAD(key)
	if err != nil {
		return nil, err
	}
	return seal(aead, plain, ad)
}

// OpenWithKey opens what SealWithKey sealed with the same key and ad.
// Errors are ErrMalformed or ErrAuth.
func OpenWithKey(key, sealed, ad []byte) ([]byte, error) {
	aead, err := newAEAD(key)
	if err != nil {
		return nil, err
	}
	return open(aead, sealed, ad)
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, errors.New("keyseal: the key is not 16, 24 or 32 bytes")
	}
	return cipher.NewGCM(block)
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
