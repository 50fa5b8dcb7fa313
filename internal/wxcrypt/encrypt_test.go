package wxcrypt

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/mperr"
)

// encrypt is the inverse of Decrypt, for the tests (the simulator has its
// own, so that it cannot agree with a misreading by construction): PKCS#7
// padding and AES-128-CBC with the session key. When iv is nil a random one
// is made. It returns the base64 texts of the ciphertext and of the iv.
func encrypt(sessionKey string, plaintext []byte, iv []byte) (encryptedData, ivB64 string, err error) {
	var key [KeySize]byte
	if !decodeKey(&key, sessionKey) {
		return "", "", mperr.New(mperr.MalformedPayload, MsgBadSessionKey)
	}
	var ivArr [KeySize]byte
	switch {
	case iv == nil:
		_, _ = rand.Read(ivArr[:]) // never fails (Go 1.24+)
	case len(iv) == KeySize:
		copy(ivArr[:], iv)
	default:
		return "", "", mperr.New(mperr.MalformedPayload, MsgIVSize)
	}
	pad := aes.BlockSize - len(plaintext)%aes.BlockSize
	buf := make([]byte, len(plaintext)+pad)
	copy(buf, plaintext)
	for i := len(plaintext); i < len(buf); i++ {
		buf[i] = byte(pad)
	}
	block, err := aes.NewCipher(key[:])
	if err != nil {
		return "", "", mperr.Wrap(mperr.Internal, "aes", err)
	}
	cipher.NewCBCEncrypter(block, ivArr[:]).CryptBlocks(buf, buf)
	return base64.StdEncoding.EncodeToString(buf), base64.StdEncoding.EncodeToString(ivArr[:]), nil
}

// newSessionKey returns a fresh random 16-byte key as base64 text.
func newSessionKey() string {
	var k [KeySize]byte
	_, _ = rand.Read(k[:]) // never fails (Go 1.24+)
	return base64.StdEncoding.EncodeToString(k[:])
}
