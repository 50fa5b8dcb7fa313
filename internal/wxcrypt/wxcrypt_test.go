package wxcrypt

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/jsonobj"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/mperr"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/phone"
)

// knownMessages are every message this package's errors may carry.
var knownMessages = map[string]bool{
	MsgDecryptFailed: true, MsgWatermarkMismatch: true, MsgDataNotBase64: true,
	MsgIVNotBase64: true, MsgIVSize: true, MsgDataEmpty: true, MsgDataBlocks: true,
	MsgNotPhone: true, MsgBadSessionKey: true, MsgWatermarkShort: true,
}

// wantCode fails unless err is an *mperr.Error with code and a fixed message
// (a fixed message cannot carry a key, a ciphertext or a phone number).
func wantCode(t testing.TB, err error, code mperr.Code) *mperr.Error {
	t.Helper()
	if err == nil {
		t.Fatalf("err = nil, want %s", code)
	}
	e, ok := err.(*mperr.Error)
	if !ok {
		t.Fatalf("err = %T %v, want *mperr.Error", err, err)
	}
	if e.Code != code {
		t.Fatalf("code = %s (%s), want %s", e.Code, e.Message, code)
	}
	if !knownMessages[e.Message] || e.Err != nil {
		t.Fatalf("message %q (cause %v) is not one of the fixed messages", e.Message, e.Err)
	}
	return e
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func b64s(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func mustKey(t testing.TB, s string) []byte {
	t.Helper()
	k, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(k) != 16 {
		t.Fatalf("bad test key %q", s)
	}
	return k
}

// encryptRaw encrypts blocks (a whole number of blocks, padding already
// applied by the caller) so that tests can craft any padding.
func encryptRaw(t testing.TB, key string, iv, blocks []byte) string {
	t.Helper()
	block, err := aes.NewCipher(mustKey(t, key))
	if err != nil {
		t.Fatal(err)
	}
	out := make([]byte, len(blocks))
	cipher.NewCBCEncrypter(block, iv).CryptBlocks(out, blocks)
	return b64s(out)
}

func TestVectorsAreIntact(t *testing.T) {
	// Guards against a typo in the pasted vector (sha256 from the research notes).
	if got := sha256Hex([]byte(officialData)); got != "7842122eb129390ef7ca47b91ae8d142553fc5849eaad857552491f090118a51" || len(officialData) != 536 {
		t.Fatalf("officialData sha256 %s len %d", got, len(officialData))
	}
	if got := sha256Hex([]byte(officialPlain)); got != officialPlainSHA256 {
		t.Fatalf("officialPlain sha256 %s", got)
	}
}

func TestOpenVectors(t *testing.T) {
	tests := []struct {
		name      string
		appID     string
		keys      []string
		data, iv  string
		wantPlain string
		wantIndex int
		wantCode  mperr.Code // "" for success
	}{
		{"official", officialAppID, []string{officialKey}, officialData, officialIV, officialPlain, 0, ""},
		{"official previous key", officialAppID, []string{secondKey, officialKey}, officialData, officialIV, officialPlain, 1, ""},
		{"official empty current", officialAppID, []string{"", officialKey}, officialData, officialIV, officialPlain, 1, ""},
		{"official corrupt stored key", officialAppID, []string{"not-a-key", "AAAA", officialKey + "=", officialKey}, officialData, officialIV, officialPlain, 3, ""},
		{"official current wins", officialAppID, []string{officialKey, secondKey}, officialData, officialIV, officialPlain, 0, ""},
		{"phone", officialAppID, []string{officialKey}, phoneData, officialIV, phonePlain, 0, ""},
		{"second own app", secondAppID, []string{secondKey}, secondData, secondIV, secondPlain, 0, ""},
		{"second watermark mismatch", officialAppID, []string{secondKey}, secondData, secondIV, "", -1, mperr.WatermarkMismatch},
		{"official wrong app", secondAppID, []string{officialKey}, officialData, officialIV, "", -1, mperr.WatermarkMismatch},
		{"empty app id never matches", "", []string{officialKey}, officialData, officialIV, "", -1, mperr.WatermarkMismatch},
		{"wrong key", officialAppID, []string{secondKey}, officialData, officialIV, "", -1, mperr.DecryptFailed},
		{"wrong keys", officialAppID, []string{secondKey, newSessionKey()}, officialData, officialIV, "", -1, mperr.DecryptFailed},
		{"no keys", officialAppID, nil, officialData, officialIV, "", -1, mperr.DecryptFailed},
		{"only empty keys", officialAppID, []string{"", ""}, officialData, officialIV, "", -1, mperr.DecryptFailed},
		{"only corrupt key", officialAppID, []string{"tiihtNczf5v6AKRyjwEUhQ"}, officialData, officialIV, "", -1, mperr.DecryptFailed},
		{"key with newline", officialAppID, []string{"tiihtNczf5v6AKRyjwEU\nQ=="}, officialData, officialIV, "", -1, mperr.DecryptFailed},
		{"wrong iv", officialAppID, []string{officialKey}, officialData, secondIV, "", -1, mperr.DecryptFailed},
		{"space for plus", officialAppID, []string{officialKey}, strings.ReplaceAll(officialData, "+", " "), officialIV, officialPlain, 0, ""},
		{"space for plus phone", officialAppID, []string{officialKey}, strings.ReplaceAll(phoneData, "+", " "), officialIV, phonePlain, 0, ""},
		{"url-safe", officialAppID, []string{officialKey}, urlSafe(officialData), urlSafe(officialIV), officialPlain, 0, ""},
		{"unpadded", officialAppID, []string{officialKey}, strings.TrimRight(officialData, "="), strings.TrimRight(officialIV, "="), officialPlain, 0, ""},
		{"url-safe unpadded", officialAppID, []string{officialKey}, strings.TrimRight(urlSafe(officialData), "="), strings.TrimRight(urlSafe(officialIV), "="), officialPlain, 0, ""},
		{"percent-encoded", officialAppID, []string{officialKey}, url.QueryEscape(officialData), url.QueryEscape(officialIV), officialPlain, 0, ""},
		{"percent-encoded lower hex", officialAppID, []string{officialKey}, strings.NewReplacer("%2B", "%2b", "%2F", "%2f", "%3D", "%3d").Replace(url.QueryEscape(officialData)), officialIV, officialPlain, 0, ""},
		{"wrapped lines", officialAppID, []string{officialKey}, wrap(officialData, 76, "\r\n"), officialIV, officialPlain, 0, ""},
		{"tabs", officialAppID, []string{officialKey}, wrap(officialData, 40, "\t"), officialIV, officialPlain, 0, ""},
		{"vertical tab", officialAppID, []string{officialKey}, officialData[:8] + "\v" + officialData[8:], officialIV, "", -1, mperr.MalformedPayload},
		{"one char too many", officialAppID, []string{officialKey}, strings.TrimRight(officialData, "=") + "AAAAA", officialIV, "", -1, mperr.MalformedPayload},
		{"not base64", officialAppID, []string{officialKey}, "*" + officialData[1:], officialIV, "", -1, mperr.MalformedPayload},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pt, idx, err := Open(tt.appID, tt.keys, tt.data, tt.iv)
			if tt.wantCode != "" {
				wantCode(t, err, tt.wantCode)
				if pt != nil || idx != -1 {
					t.Fatalf("on error got plaintext %d bytes, index %d", len(pt), idx)
				}
				return
			}
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if string(pt) != tt.wantPlain {
				t.Fatalf("plaintext\n got %s\nwant %s", pt, tt.wantPlain)
			}
			if idx != tt.wantIndex {
				t.Fatalf("keyIndex = %d, want %d", idx, tt.wantIndex)
			}
		})
	}
}

func TestOfficialVectorExact(t *testing.T) {
	pt, err := Decrypt(officialKey, officialData, officialIV)
	if err != nil {
		t.Fatal(err)
	}
	if len(pt) != 393 || sha256Hex(pt) != officialPlainSHA256 {
		t.Fatalf("plaintext len %d sha256 %s", len(pt), sha256Hex(pt))
	}
	pt2, idx, err := Open(officialAppID, []string{officialKey}, officialData, officialIV)
	if err != nil || idx != 0 || sha256Hex(pt2) != officialPlainSHA256 {
		t.Fatalf("Open: idx %d err %v sha %s", idx, err, sha256Hex(pt2))
	}
	// Encrypt is Decrypt's inverse: re-encrypting gives the published ciphertext.
	ivRaw, _ := base64.StdEncoding.DecodeString(officialIV)
	data, ivText, err := encrypt(officialKey, pt, ivRaw)
	if err != nil || data != officialData || ivText != officialIV {
		t.Fatalf("Encrypt: err %v, data equal %v, iv %q", err, data == officialData, ivText)
	}
	// The phone vector too.
	data, _, err = encrypt(officialKey, []byte(phonePlain), ivRaw)
	if err != nil || data != phoneData {
		t.Fatalf("Encrypt phone: err %v, equal %v", err, data == phoneData)
	}
}

func TestMalformed(t *testing.T) {
	iv12 := b64s(make([]byte, 12))
	iv32 := b64s(make([]byte, 32))
	tests := []struct {
		name     string
		data, iv string
		msg      string
	}{
		{"data not base64", "!!!!", officialIV, MsgDataNotBase64},
		// Line breaks and tabs are dropped (wrapped base64); other control
		// characters are refused.
		{"data with form feed", officialData[:64] + "\f" + officialData[64:], officialIV, MsgDataNotBase64},
		{"iv with vertical tab", officialData, "r7BXXKkLb8qrSNn0\v5n0qiA==", MsgIVNotBase64},
		{"data non-canonical trailing bits", "AAAAAAAAAAAAAAAAAAAAAB==", officialIV, MsgDataNotBase64},
		{"data empty", "", officialIV, MsgDataEmpty},
		{"data 15 bytes", b64s(make([]byte, 15)), officialIV, MsgDataBlocks},
		{"data 17 bytes", b64s(make([]byte, 17)), officialIV, MsgDataBlocks},
		{"data 399 bytes", officialData[:532], officialIV, MsgDataBlocks}, // 532 chars = 399 bytes
		{"iv not base64", officialData, "r7BXXKkLb8qrSNn05n0qiA=!", MsgIVNotBase64},
		{"iv empty", officialData, "", MsgIVSize},
		{"iv 12 bytes", officialData, iv12, MsgIVSize},
		{"iv 32 bytes", officialData, iv32, MsgIVSize},
		{"data checked before iv", "!!!!", "!!!!", MsgDataNotBase64},
	}
	keySets := [][]string{nil, {officialKey}, {secondKey, officialKey}, {"garbage"}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The verdict never depends on the key.
			for _, keys := range keySets {
				_, idx, err := Open(officialAppID, keys, tt.data, tt.iv)
				if e := wantCode(t, err, mperr.MalformedPayload); e.Message != tt.msg {
					t.Fatalf("keys %d: message %q, want %q", len(keys), e.Message, tt.msg)
				}
				if idx != -1 {
					t.Fatalf("idx %d", idx)
				}
			}
			for _, key := range []string{officialKey, "garbage"} {
				if e := wantCode(t, mustErr(Decrypt(key, tt.data, tt.iv)), mperr.MalformedPayload); e.Message != tt.msg {
					t.Fatalf("Decrypt: message %q, want %q", e.Message, tt.msg)
				}
			}
		})
	}
}

func mustErr(_ []byte, err error) error { return err }

// block16 pads a short JSON text into the first block and returns blocks
// ending with the given final block (the padding under test).
func craft(prefix string, last []byte) []byte {
	b := []byte(prefix)
	return append(b, last...)
}

func TestPaddingEveryByteChecked(t *testing.T) {
	iv := make([]byte, 16)
	for i := range iv {
		iv[i] = byte(i * 7)
	}
	ivText := b64s(iv)
	// A 32-byte JSON object: the second block holds pad bytes and, for
	// small pads, the end of the object.
	body := `{"watermark":{"appid":"` + officialAppID + `"}}` // 44 bytes
	for pad := 1; pad <= 16; pad++ {
		// valid: body + pad×pad, then length must be a block multiple.
		// Grow the body with spaces inside the object so that the total fits.
		n := len(body) + pad
		extra := (16 - n%16) % 16
		obj := body[:1] + strings.Repeat(" ", extra) + body[1:]
		valid := make([]byte, 0, len(obj)+pad)
		valid = append(valid, obj...)
		for i := 0; i < pad; i++ {
			valid = append(valid, byte(pad))
		}
		if len(valid)%16 != 0 {
			t.Fatalf("pad %d: bad test setup %d", pad, len(valid))
		}
		data := encryptRaw(t, officialKey, iv, valid)
		pt, err := Decrypt(officialKey, data, ivText)
		if err != nil || string(pt) != obj {
			t.Fatalf("pad %d valid: err %v pt %q", pad, err, pt)
		}
		if _, _, err := Open(officialAppID, []string{officialKey}, data, ivText); err != nil {
			t.Fatalf("pad %d valid Open: %v", pad, err)
		}
		// Every earlier pad byte, one at a time, set wrong: the last byte
		// alone still says "pad", but the padding is invalid.
		for j := 2; j <= pad; j++ {
			for _, wrong := range []byte{0, byte(pad - 1), byte(pad + 1), 0xff} {
				bad := append([]byte(nil), valid...)
				bad[len(bad)-j] = wrong
				d := encryptRaw(t, officialKey, iv, bad)
				wantCode(t, mustErr(Decrypt(officialKey, d, ivText)), mperr.DecryptFailed)
				_, _, err := Open(officialAppID, []string{officialKey}, d, ivText)
				wantCode(t, err, mperr.DecryptFailed)
			}
		}
	}
	// Last byte out of range.
	for _, last := range []byte{0, 17, 32, 0x80, 0xff} {
		blk := craft(`{"a":1}        `, []byte{last}) // 16 bytes
		d := encryptRaw(t, officialKey, iv, blk)
		wantCode(t, mustErr(Decrypt(officialKey, d, ivText)), mperr.DecryptFailed)
	}
	// A full block of padding (pad 16) on an empty plaintext is valid.
	full := bytes.Repeat([]byte{16}, 16)
	if pt, err := Decrypt(officialKey, encryptRaw(t, officialKey, iv, full), ivText); err != nil || len(pt) != 0 {
		t.Fatalf("full pad block: %v %q", err, pt)
	}
}

func TestUnpad(t *testing.T) {
	mk := func(tail ...byte) []byte { return append(bytes.Repeat([]byte{'x'}, 32-len(tail)), tail...) }
	tests := []struct {
		name string
		in   []byte
		n    int
		ok   bool
	}{
		{"1", mk(1), 31, true},
		{"2", mk(2, 2), 30, true},
		{"2 bad", mk(1, 2), 0, false},
		{"3 bad first", mk(2, 3, 3), 0, false},
		{"3 bad middle", mk(3, 2, 3), 0, false},
		{"16", mk(bytes.Repeat([]byte{16}, 16)...), 16, true},
		{"16 bad", mk(append([]byte{15}, bytes.Repeat([]byte{16}, 15)...)...), 0, false},
		{"17", mk(bytes.Repeat([]byte{17}, 17)...), 0, false},
		{"0", mk(0), 0, false},
		{"short", []byte{1}, 0, false},
	}
	for _, tt := range tests {
		n, ok := unpad(tt.in)
		if ok != tt.ok || (ok && n != tt.n) {
			t.Errorf("%s: unpad = %d, %v; want %d, %v", tt.name, n, ok, tt.n, tt.ok)
		}
	}
}

func TestTamperedLastBlock(t *testing.T) {
	raw, _ := base64.StdEncoding.DecodeString(officialData)
	for i := len(raw) - 16; i < len(raw); i++ {
		bad := append([]byte(nil), raw...)
		bad[i] ^= 0x01
		_, _, err := Open(officialAppID, []string{officialKey}, b64s(bad), officialIV)
		wantCode(t, err, mperr.DecryptFailed)
	}
	// Truncated by one block: the padding of a middle block is garbage.
	_, _, err := Open(officialAppID, []string{officialKey}, b64s(raw[:len(raw)-16]), officialIV)
	wantCode(t, err, mperr.DecryptFailed)
}

// TestNoOracle: whatever went wrong after the key, the error is identical.
func TestNoOracle(t *testing.T) {
	iv := make([]byte, 16)
	ivText := b64s(iv)
	cases := map[string][]byte{
		"not json":         []byte("hello, world"),
		"json array":       []byte(`[{"watermark":{"appid":"wx4f4bc4dec97d474b"}}]`),
		"json string":      []byte(`"wx4f4bc4dec97d474b"`),
		"json null":        []byte(`null`),
		"truncated object": []byte(`{"watermark":{"appid":"wx4f4bc4dec97d474b"}`),
		"empty":            nil,
		"binary":           {0xff, 0xfe, 0x00, 0x01},
	}
	var first *mperr.Error
	for name, pt := range cases {
		data, _, err := encrypt(officialKey, pt, iv)
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = Open(officialAppID, []string{officialKey}, data, ivText)
		e := wantCode(t, err, mperr.DecryptFailed)
		if first == nil {
			first = e
		}
		if e.Error() != first.Error() {
			t.Fatalf("%s: %q differs from %q", name, e.Error(), first.Error())
		}
	}
	// Bad padding and wrong key give the same text as well.
	_, _, err := Open(officialAppID, []string{secondKey}, officialData, officialIV)
	if e := wantCode(t, err, mperr.DecryptFailed); e.Error() != first.Error() {
		t.Fatalf("wrong key: %q", e.Error())
	}
}

func TestWatermark(t *testing.T) {
	iv := make([]byte, 16)
	ivText := b64s(iv)
	tests := []struct {
		plain string
		ok    bool
	}{
		{`{"watermark":{"appid":"wx4f4bc4dec97d474b","timestamp":1}}`, true},
		{` {"a":[1,{"watermark":{"appid":"x"}}],"watermark":{"appid":"wx4f4bc4dec97d474b"}} `, true},
		{`{"watermark":{"appid":"wx4f4bc4dec97d474c"}}`, false},
		{`{"watermark":{"appid":"WX4F4BC4DEC97D474B"}}`, false},
		{`{"watermark":{}}`, false},
		{`{"watermark":null}`, false},
		{`{"watermark":{"appid":null}}`, false},
		{`{"watermark":{"appid":12}}`, false},
		{`{"watermark":"wx4f4bc4dec97d474b"}`, false},
		{`{"phoneNumber":"13800138000"}`, false},
		{`{}`, false},
	}
	for _, tt := range tests {
		data, _, err := encrypt(officialKey, []byte(tt.plain), iv)
		if err != nil {
			t.Fatal(err)
		}
		pt, _, err := Open(officialAppID, []string{officialKey}, data, ivText)
		if tt.ok {
			if err != nil || string(pt) != tt.plain {
				t.Errorf("%s: %v", tt.plain, err)
			}
			continue
		}
		wantCode(t, err, mperr.WatermarkMismatch)
	}
	// A mismatch on the current key is final: the previous key is not tried.
	data, _, _ := encrypt(officialKey, []byte(`{"watermark":{"appid":"other"}}`), iv)
	_, _, err := Open(officialAppID, []string{officialKey, officialKey}, data, ivText)
	wantCode(t, err, mperr.WatermarkMismatch)
}

func TestRoundTrip(t *testing.T) {
	key := newSessionKey()
	for n := 0; n <= 48; n++ {
		pt := bytes.Repeat([]byte{byte('a' + n%26)}, n)
		data, ivText, err := encrypt(key, pt, nil)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := base64.StdEncoding.DecodeString(data)
		if want := (n/16 + 1) * 16; len(raw) != want {
			t.Fatalf("n=%d: ciphertext %d bytes, want %d", n, len(raw), want)
		}
		got, err := Decrypt(key, data, ivText)
		if err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("n=%d: %v %q", n, err, got)
		}
	}
	// Random ivs differ; a given iv is used.
	_, iv1, _ := encrypt(key, []byte("x"), nil)
	_, iv2, _ := encrypt(key, []byte("x"), nil)
	if iv1 == iv2 {
		t.Fatal("two random ivs are equal")
	}
	_, iv3, _ := encrypt(key, []byte("x"), make([]byte, 16))
	if iv3 != "AAAAAAAAAAAAAAAAAAAAAA==" {
		t.Fatalf("iv %q", iv3)
	}
	// A JSON round trip through Open.
	obj := `{"phoneNumber":"+1 2025550123","purePhoneNumber":"2025550123","countryCode":1,"watermark":{"appid":"tt07e3715e98c9aac0"}}`
	data, ivText, _ := encrypt(key, []byte(obj), nil)
	pt, idx, err := Open("tt07e3715e98c9aac0", []string{newSessionKey(), key}, data, ivText)
	if err != nil || idx != 1 || string(pt) != obj {
		t.Fatalf("Open: %v %d %q", err, idx, pt)
	}
}

func TestEncryptErrors(t *testing.T) {
	for _, key := range []string{"", "abc", "tiihtNczf5v6AKRyjwEUhQ", base64.StdEncoding.EncodeToString(make([]byte, 24))} {
		_, _, err := encrypt(key, []byte("{}"), nil)
		wantCode(t, err, mperr.MalformedPayload)
	}
	_, _, err := encrypt(officialKey, []byte("{}"), make([]byte, 12))
	wantCode(t, err, mperr.MalformedPayload)
	// Decrypt with a bad stored key is a key failure, not malformed input.
	wantCode(t, mustErr(Decrypt("abc", officialData, officialIV)), mperr.DecryptFailed)
	wantCode(t, mustErr(Decrypt(secondKey, officialData, officialIV)), mperr.DecryptFailed)
}

func TestNewSessionKey(t *testing.T) {
	a, b := newSessionKey(), newSessionKey()
	if a == b {
		t.Fatal("two keys are equal")
	}
	for _, k := range []string{a, b} {
		raw, err := base64.StdEncoding.DecodeString(k)
		if err != nil || len(raw) != 16 || len(k) != 24 {
			t.Fatalf("key %q: %v %d", k, err, len(raw))
		}
		var dk [KeySize]byte
		if !decodeKey(&dk, k) || !bytes.Equal(dk[:], raw) {
			t.Fatalf("decodeKey(%q)", k)
		}
	}
}

func TestParsePhone(t *testing.T) {
	tests := []struct {
		name  string
		plain string
		want  phone.Number
		ok    bool
	}{
		{"vector", phonePlain, phone.Number{PhoneNumber: "13580006666", PurePhoneNumber: "13580006666", CountryCode: "86"}, true},
		{"numeric country code", `{"phoneNumber":"13800138000","purePhoneNumber":"13800138000","countryCode":86}`, phone.Number{PhoneNumber: "13800138000", PurePhoneNumber: "13800138000", CountryCode: "86"}, true},
		{"foreign", `{"phoneNumber":"+1-2025550123","purePhoneNumber":"2025550123","countryCode":"+1"}`, phone.Number{PhoneNumber: "+1-2025550123", PurePhoneNumber: "2025550123", CountryCode: "+1"}, true},
		{"only phoneNumber", `{"phoneNumber":"13800138000"}`, phone.Number{PhoneNumber: "13800138000", PurePhoneNumber: "", CountryCode: ""}, true},
		{"null country", `{"phoneNumber":"13800138000","countryCode":null}`, phone.Number{PhoneNumber: "13800138000", PurePhoneNumber: "", CountryCode: ""}, true},
		{"escaped", `{"phoneNumber":"1380013800\u0030"}`, phone.Number{PhoneNumber: "13800138000", PurePhoneNumber: "", CountryCode: ""}, true},
		{"missing phone", `{"purePhoneNumber":"13800138000","countryCode":"86"}`, phone.Number{}, false},
		{"empty phone", `{"phoneNumber":""}`, phone.Number{}, false},
		{"user info", officialPlain, phone.Number{}, false},
		{"phone is object", `{"phoneNumber":{"n":"1"}}`, phone.Number{}, false},
		{"phone is bool", `{"phoneNumber":true}`, phone.Number{}, false},
		{"fractional country", `{"phoneNumber":"1","countryCode":8.6}`, phone.Number{}, false},
		{"negative country", `{"phoneNumber":"1","countryCode":-86}`, phone.Number{}, false},
		{"header injection", `{"phoneNumber":"138\r\nX-Mp-Openid: x"}`, phone.Number{}, false},
		{"letters", `{"phoneNumber":"138abc"}`, phone.Number{}, false},
		{"pure with letters", `{"phoneNumber":"1","purePhoneNumber":"x"}`, phone.Number{}, false},
		{"country letters", `{"phoneNumber":"1","countryCode":"CN"}`, phone.Number{}, false},
		{"too long", `{"phoneNumber":"` + strings.Repeat("1", 33) + `"}`, phone.Number{}, false},
		{"not json", `13800138000`, phone.Number{}, false},
		{"array", `["13800138000"]`, phone.Number{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParsePhone([]byte(tt.plain))
			if !tt.ok {
				e := wantCode(t, err, mperr.BadRequest)
				if strings.Contains(e.Error(), "138") {
					t.Fatalf("error leaks the number: %q", e.Error())
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

// TestPlaintextIsFresh: the returned plaintext is not aliased to a pooled
// buffer that a later call would overwrite.
func TestPlaintextIsFresh(t *testing.T) {
	pt1, _, err := Open(officialAppID, []string{officialKey}, phoneData, officialIV)
	if err != nil {
		t.Fatal(err)
	}
	keep := string(pt1)
	for i := 0; i < 10; i++ {
		if _, _, err := Open(officialAppID, []string{officialKey}, officialData, officialIV); err != nil {
			t.Fatal(err)
		}
	}
	if string(pt1) != keep {
		t.Fatal("plaintext changed under a later call")
	}
	if !json.Valid(pt1) {
		t.Fatal("invalid")
	}
}

func FuzzOpen(f *testing.F) {
	f.Add(officialData, officialIV, officialKey)
	f.Add(phoneData, officialIV, officialKey)
	f.Add(secondData, secondIV, secondKey)
	f.Add(strings.ReplaceAll(officialData, "+", " "), officialIV, "")
	f.Add(officialData[:44], officialIV, officialKey)
	f.Add("", "", "")
	f.Add("AAAAAAAAAAAAAAAAAAAAAA==", "AAAAAAAAAAAAAAAAAAAAAA==", "AAAAAAAAAAAAAAAAAAAAAA==")
	f.Fuzz(func(t *testing.T, data, iv, key string) {
		keys := []string{key, officialKey}
		pt, idx, err := Open(officialAppID, keys, data, iv)
		if err == nil {
			if idx != 0 && idx != 1 {
				t.Fatalf("idx %d", idx)
			}
			if !jsonobj.IsObject(pt) || !watermarkIs(pt, officialAppID) {
				t.Fatalf("accepted %q", pt)
			}
			again, err := Decrypt(keys[idx], data, iv)
			if err != nil || !bytes.Equal(again, pt) {
				t.Fatalf("Decrypt disagrees: %v", err)
			}
			return
		}
		e, ok := err.(*mperr.Error)
		if !ok || !knownMessages[e.Message] || idx != -1 || pt != nil {
			t.Fatalf("bad error %v idx %d", err, idx)
		}
		_, _, errNoKey := Open(officialAppID, nil, data, iv)
		switch e.Code {
		case mperr.MalformedPayload:
			// Key-independent: the same verdict with no key at all.
			if e2, _ := errNoKey.(*mperr.Error); e2 == nil || e2.Code != e.Code || e2.Message != e.Message {
				t.Fatalf("malformed verdict depends on the key: %v vs %v", err, errNoKey)
			}
		case mperr.DecryptFailed, mperr.WatermarkMismatch:
			if e2, _ := errNoKey.(*mperr.Error); e2 == nil || e2.Code != mperr.DecryptFailed || e2.Message != MsgDecryptFailed {
				t.Fatalf("no key: %v", errNoKey)
			}
		default:
			t.Fatalf("unexpected code %v", err)
		}
	})
}

func BenchmarkOpenPhone(b *testing.B) {
	keys := []string{officialKey}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := Open(officialAppID, keys, phoneData, officialIV); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpenPhonePreviousKey(b *testing.B) {
	keys := []string{secondKey, officialKey}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := Open(officialAppID, keys, phoneData, officialIV); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpenParsePhone(b *testing.B) {
	keys := []string{officialKey}
	b.ReportAllocs()
	for b.Loop() {
		pt, _, err := Open(officialAppID, keys, phoneData, officialIV)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := ParsePhone(pt); err != nil {
			b.Fatal(err)
		}
	}
}

func TestCheckPayload(t *testing.T) {
	good := "xT8p8W6jIVdEWQ+ccHuD2bmG5RSiwg14VWRFw/UGVh6Aj+jDIadafJ4xdCIBQ/uxDiyw/MZWvpFyRn3pP3xxVfNQxFtzghvK+Pj5JQI7x412Zc+UKBdZyt5yiQboroSxabTum1k4MMOlnoCxhJ46cxPDT2EuLbNUf2McwNtGO0/9E+Xj/ZwENw48ucueL3UqNoKpXxFYvqH6eawrR2MXnA=="
	iv := "r7BXXKkLb8qrSNn05n0qiA=="
	if err := CheckPayload(good, iv); err != nil {
		t.Fatalf("good payload: %v", err)
	}
	for _, c := range []struct{ data, iv string }{
		{good, "AAAA"}, {good, "!!"}, {"AAAA", iv}, {"", iv}, {"%%", iv},
	} {
		err := CheckPayload(c.data, c.iv)
		if e, ok := mperr.As(err); !ok || e.Code != mperr.MalformedPayload {
			t.Fatalf("CheckPayload(%q, %q) = %v, want malformed_payload", c.data, c.iv, err)
		}
	}
}

func TestIdentity(t *testing.T) {
	for _, c := range []struct {
		pt          string
		open, union string
	}{
		{`{"openId":"a","unionId":"b"}`, "[a]", "[b]"},
		{`{"OPENID":"a"," open_id ":"c","open.id\u0000x":"d"}`, "[a c d]", "[]"},
		{`{"union-Id":1,"unionid":"e"}`, "[]", "[1 e]"},
		{`{"openIdx":"a","nickName":"b","watermark":{"openId":"z"}}`, "[]", "[]"},
		{`{"open\u0069d":"a"}`, "[a]", "[]"},
	} {
		o, u := Identity([]byte(c.pt))
		if fmt.Sprint(o) != c.open || fmt.Sprint(u) != c.union {
			t.Errorf("Identity(%s) = %v, %v; want %s, %s", c.pt, o, u, c.open, c.union)
		}
	}
}

func urlSafe(s string) string {
	return strings.NewReplacer("+", "-", "/", "_").Replace(s)
}

// wrap inserts sep every n characters of s.
func wrap(s string, n int, sep string) string {
	var b strings.Builder
	for len(s) > n {
		b.WriteString(s[:n])
		b.WriteString(sep)
		s = s[n:]
	}
	b.WriteString(s)
	return b.String()
}

func TestOpenWatermarkOptional(t *testing.T) {
	key := newSessionKey()
	enc := func(plain string) (string, string) {
		ed, iv, err := encrypt(key, []byte(plain), nil)
		if err != nil {
			t.Fatal(err)
		}
		return ed, iv
	}
	long := `{"stepInfoList":[{"timestamp":1,"step":100}]}`
	for _, c := range []struct {
		name, plain string
		want        mperr.Code
	}{
		{"no watermark, three blocks", long, ""},
		{"no watermark, one block", `{"step":1}`, mperr.WatermarkMismatch},
		{"own watermark", `{"a":1,"watermark":{"appid":"wxapp"}}`, ""},
		{"foreign watermark", `{"a":1,"watermark":{"appid":"wxother"}}`, mperr.WatermarkMismatch},
	} {
		ed, iv := enc(c.plain)
		pt, _, err := OpenWatermarkOptional("wxapp", []string{key}, ed, iv)
		if c.want != "" {
			wantCode(t, err, c.want)
			continue
		}
		if err != nil || string(pt) != c.plain {
			t.Errorf("%s: %q %v", c.name, pt, err)
		}
		// Open itself always requires the watermark.
		if _, _, err := Open("wxapp", []string{key}, ed, iv); c.plain == long {
			wantCode(t, err, mperr.WatermarkMismatch)
		}
	}
}
