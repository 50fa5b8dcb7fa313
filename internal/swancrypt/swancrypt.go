// Package swancrypt decrypts the encryptedData payloads of Baidu smart
// programs (百度智能小程序, "swan"), whose scheme is not the WeChat
// family's:
//
//   - AES-192-CBC; key = base64(session_key), 24 bytes; iv = base64(iv),
//     16 bytes; the ciphertext a whole number of 16-byte blocks;
//   - plaintext = 16 random bytes ‖ uint32 big-endian length n ‖ n bytes of
//     data ‖ the app key ‖ padding;
//   - the padding: Baidu's documentation says PKCS#7, but its sample pads to
//     a 32-byte boundary (pad bytes of value 28 in its vector), which a strict
//     16-byte PKCS#7 unpadder refuses. The plaintext is read through the
//     length prefix; the padding must be 1 to 32 bytes, each equal to its
//     count (either convention passes);
//   - the integrity check is the trailer: the bytes after the data must be
//     the configured app key (as WeChat's is its watermark.appid). There is
//     no MAC: like every CBC payload, the first blocks are malleable by
//     whoever chooses the iv and ciphertext.
//
// Errors are *mperr.Error with fixed messages: key-independent checks give
// malformed_payload (before any key is tried); every key-dependent failure
// (wrong key, bad length, bad padding, wrong trailer, data not a JSON object)
// gives decrypt_failed with one and the same message.
package swancrypt

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/jsonobj"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/mperr"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/wxcrypt"
)

// Sizes of the scheme, in bytes.
const (
	KeySize    = 24 // AES-192 key: the decoded session key
	IVSize     = 16
	PrefixSize = 16 // random bytes before the length
	lenSize    = 4
	// MaxPad is the largest padding accepted (Baidu's sample pads to 32).
	MaxPad = 32
)

// MsgDecryptFailed is the one message of every key-dependent failure.
const MsgDecryptFailed = "the payload does not decrypt with the session key and this app key; log in again"

// Messages of the key-independent (malformed_payload) failures.
const (
	MsgDataNotBase64 = wxcrypt.MsgDataNotBase64
	MsgIVNotBase64   = wxcrypt.MsgIVNotBase64
	MsgIVSize        = wxcrypt.MsgIVSize
	MsgDataEmpty     = wxcrypt.MsgDataEmpty
	MsgDataBlocks    = wxcrypt.MsgDataBlocks
)

var b64 = base64.StdEncoding.Strict()

func errDecryptFailed() error { return mperr.New(mperr.DecryptFailed, MsgDecryptFailed) }

// parse makes the checks that need no key.
func parse(encryptedData, iv string) (ct, ivb []byte, err error) {
	ct, ok := wxcrypt.DecodeBase64(encryptedData)
	if !ok {
		return nil, nil, mperr.New(mperr.MalformedPayload, MsgDataNotBase64)
	}
	ivb, ok = wxcrypt.DecodeBase64(iv)
	if !ok {
		return nil, nil, mperr.New(mperr.MalformedPayload, MsgIVNotBase64)
	}
	if len(ivb) != IVSize {
		return nil, nil, mperr.New(mperr.MalformedPayload, MsgIVSize)
	}
	if len(ct) == 0 {
		return nil, nil, mperr.New(mperr.MalformedPayload, MsgDataEmpty)
	}
	if len(ct)%aes.BlockSize != 0 {
		return nil, nil, mperr.New(mperr.MalformedPayload, MsgDataBlocks)
	}
	return ct, ivb, nil
}

// CheckPayload reports, without any key, whether encryptedData and iv are
// well formed (malformed_payload otherwise).
func CheckPayload(encryptedData, iv string) error {
	_, _, err := parse(encryptedData, iv)
	return err
}

// decodeKey decodes a session key: exactly 24 bytes of padded standard
// base64 (32 characters; a space is read as '+').
func decodeKey(s string) ([]byte, bool) {
	if len(s) != 32 {
		return nil, false
	}
	text := []byte(s)
	for i, c := range text {
		if c == ' ' {
			text[i] = '+'
		}
	}
	key := make([]byte, b64.DecodedLen(len(text)))
	n, err := b64.Decode(key, text)
	if err != nil || n != KeySize {
		return nil, false
	}
	return key[:n], true
}

// Unframe reads the frame of a decrypted plaintext: it returns the data
// when the length prefix fits, the trailer after the data equals appKey
// and the padding is 1..MaxPad bytes each equal to its count. The data
// aliases pt.
func Unframe(pt []byte, appKey string) ([]byte, bool) {
	if appKey == "" || len(pt) < PrefixSize+lenSize+len(appKey)+1 {
		return nil, false
	}
	n := binary.BigEndian.Uint32(pt[PrefixSize : PrefixSize+lenSize])
	room := uint64(len(pt) - PrefixSize - lenSize - len(appKey))
	if uint64(n) >= room { // at least one byte of padding
		return nil, false
	}
	dataEnd := PrefixSize + lenSize + int(n)
	trailerEnd := dataEnd + len(appKey)
	if subtle.ConstantTimeCompare(pt[dataEnd:trailerEnd], []byte(appKey)) != 1 {
		return nil, false
	}
	pad := pt[trailerEnd:]
	if len(pad) > MaxPad || int(pad[len(pad)-1]) != len(pad) {
		return nil, false
	}
	for _, c := range pad {
		if int(c) != len(pad) {
			return nil, false
		}
	}
	return pt[PrefixSize+lenSize : dataEnd : dataEnd], true
}

// Decrypt decrypts one payload with one session key and returns the data
// (not checked for JSON) when its frame carries appKey.
func Decrypt(appKey, sessionKey, encryptedData, iv string) ([]byte, error) {
	ct, ivb, err := parse(encryptedData, iv)
	if err != nil {
		return nil, err
	}
	data, ok := decrypt(appKey, sessionKey, ct, ivb)
	if !ok {
		return nil, errDecryptFailed()
	}
	return data, nil
}

func decrypt(appKey, sessionKey string, ct, iv []byte) ([]byte, bool) {
	key, ok := decodeKey(sessionKey)
	if !ok {
		return nil, false
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, false
	}
	pt := make([]byte, len(ct))
	cipher.NewCBCDecrypter(block, iv).CryptBlocks(pt, ct)
	return Unframe(pt, appKey)
}

// Open decrypts a payload with the first of sessionKeys (current first,
// then previous; "" skipped) whose frame carries appKey and whose data is
// a JSON object; keyIndex is that key's index (-1 on error).
func Open(appKey string, sessionKeys []string, encryptedData, iv string) (data []byte, keyIndex int, err error) {
	ct, ivb, err := parse(encryptedData, iv)
	if err != nil {
		return nil, -1, err
	}
	for i, k := range sessionKeys {
		if k == "" {
			continue
		}
		d, ok := decrypt(appKey, k, ct, ivb)
		if !ok || !jsonobj.IsObject(d) {
			continue
		}
		return d, i, nil
	}
	return nil, -1, errDecryptFailed()
}
