package mpsim

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// encryptCBC is AES-128-CBC with PKCS#7 padding, as the platforms encrypt
// encryptedData. key and iv are 16 bytes.
func encryptCBC(key, iv, plain []byte) ([]byte, error) {
	if len(key) != 16 || len(iv) != aes.BlockSize {
		return nil, fmt.Errorf("mpsim: key and iv must be 16 bytes (got %d, %d)", len(key), len(iv))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	pad := aes.BlockSize - len(plain)%aes.BlockSize
	buf := make([]byte, len(plain)+pad)
	copy(buf, plain)
	copy(buf[len(plain):], bytes.Repeat([]byte{byte(pad)}, pad))
	cipher.NewCBCEncrypter(block, iv).CryptBlocks(buf, buf)
	return buf, nil
}

// encryptJSON marshals v and encrypts it with a base64 session key and a
// fresh iv; both outputs are standard base64.
func encryptJSON(sessionKey string, v any) (encryptedData, iv string, err error) {
	key, err := base64.StdEncoding.DecodeString(sessionKey)
	if err != nil {
		return "", "", fmt.Errorf("mpsim: bad session key: %w", err)
	}
	var plain bytes.Buffer
	enc := json.NewEncoder(&plain)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return "", "", fmt.Errorf("mpsim: %w", err)
	}
	ivb := make([]byte, aes.BlockSize)
	rand.Read(ivb)
	ct, err := encryptCBC(key, ivb, bytes.TrimSuffix(plain.Bytes(), []byte("\n")))
	if err != nil {
		return "", "", err
	}
	return base64.StdEncoding.EncodeToString(ct), base64.StdEncoding.EncodeToString(ivb), nil
}

// newSessionKeyN is n random bytes, base64.
func newSessionKeyN(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

const alnum = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// randAlnum is n random characters of [0-9A-Za-z], like the platforms' codes.
func randAlnum(n int) string {
	out := make([]byte, 0, n)
	buf := make([]byte, n+n/2)
	for len(out) < n {
		rand.Read(buf)
		for _, b := range buf {
			if b < 248 { // 248 = 4*62: no modulo bias
				out = append(out, alnum[int(b)%len(alnum)])
				if len(out) == n {
					break
				}
			}
		}
	}
	return string(out)
}

// randHex is n random bytes in hex.
func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// newAccessToken looks like the platform's: long, URL-safe.
func newAccessToken() string {
	b := make([]byte, 48)
	rand.Read(b)
	return "SIM_" + base64.RawURLEncoding.EncodeToString(b)
}

func hash64(parts ...string) string {
	h := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

// openID is deterministic per (app, user): WeChat "o" + 27 characters,
// Douyin "_000" + 32 characters (base64url of a hash).
func openID(a App, name string) string {
	switch a.Platform {
	case Douyin:
		return "_000" + hash64("douyin-openid", a.AppID, name)[:32]
	case QQ:
		return qqID("qq-openid", a.AppID, name)
	}
	if a.Platform == Baidu {
		return hash64("baidu-openid", a.AppID, name)[:28]
	}
	if a.Platform == Alipay {
		if a.LegacyUserID {
			return AlipayUserID(a.AppID, name)
		}
		return alipayOpenID(a.AppID, name)
	}
	if isFeishuFamily(a.Platform) {
		return "ou_" + hex.EncodeToString([]byte(hash64("feishu-openid", a.AppID, name)))[:32]
	}
	return "o" + hash64("wechat-openid", a.AppID, name)[:27]
}

// unionID is per (platform, user): the same for every app of a platform.
// WeChat "o" + 27 characters; Douyin a UUID-shaped string.
func unionID(platform, name string) string {
	if platform == QQ {
		return "UID_" + qqID("qq-unionid", name)
	}
	if platform == Douyin {
		h := sha256.Sum256([]byte("douyin-unionid\x00" + name))
		x := hex.EncodeToString(h[:16])
		return x[0:8] + "-" + x[8:12] + "-" + x[12:16] + "-" + x[16:20] + "-" + x[20:32]
	}
	return "o" + hash64("wechat-unionid", name)[:27]
}

// qqID is 32 upper-case hex digits (QQ's openids look like that; the
// unionid's shape is not documented, it is made alike).
func qqID(parts ...string) string {
	h := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return strings.ToUpper(hex.EncodeToString(h[:16]))
}

func anonymousOpenID(appID, device string) string {
	return "_000" + hash64("douyin-anonymous-openid", appID, device)[:32]
}

// rid is the request id WeChat appends to errmsg.
func rid(now time.Time) string {
	return fmt.Sprintf("%08x-%s-%s", uint32(now.Unix()), randHex(4), randHex(4))
}

// logID is Douyin's log_id: a timestamp and 20 hex digits.
func logID(now time.Time) string {
	return now.Format("20060102150405") + strings.ToUpper(randHex(10))
}
