package swancrypt

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"encoding/binary"
	"strings"
	"testing"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/mperr"
)

// The sample vector of Baidu's documentation (its decryption sample code).
const (
	vecAppKey     = "y2dTfnWfkx2OXttMEMWlGHoB1KzMogm7"
	vecSessionKey = "1df09d0a1677dd72b8325aec59576e0c"
	vecIV         = "1df09d0a1677dd72b8325Q=="
	vecData       = "OpCoJgs7RrVgaMNDixIvaCIyV2SFDBNLivgkVqtzq2GC10egsn+PKmQ/+5q+chT8xzldLUog2haTItyIkKyvzvmXonBQLIMeq54axAu9c3KG8IhpFD6+ymHocmx07ZKi7eED3t0KyIxJgRNSDkFk5RV1ZP2mSWa7ZgCXXcAbP0RsiUcvhcJfrSwlpsm0E1YJzKpYy429xrEEGvK+gfL+Cw=="
	vecPlain      = `{"openid":"open_id","nickname":"baidu_user","headimgurl":"url of image","sex":1}`
	vecRandom     = "5d0aa9913c63765d"
)

func rawDecrypt(t *testing.T, key, iv, data string) []byte {
	t.Helper()
	k, _ := base64.StdEncoding.DecodeString(key)
	v, _ := base64.StdEncoding.DecodeString(iv)
	ct, _ := base64.StdEncoding.DecodeString(data)
	b, err := aes.NewCipher(k)
	if err != nil {
		t.Fatal(err)
	}
	pt := make([]byte, len(ct))
	cipher.NewCBCDecrypter(b, v).CryptBlocks(pt, ct)
	return pt
}

// TestOfficialVector decrypts Baidu's published sample byte for byte, and
// checks its frame as the sample lays it out: 16 random bytes, the length
// 80, the data, the app key, 28 bytes of value 28 (a 32-byte boundary).
func TestOfficialVector(t *testing.T) {
	pt := rawDecrypt(t, vecSessionKey, vecIV, vecData)
	want := []byte(vecRandom)
	want = binary.BigEndian.AppendUint32(want, uint32(len(vecPlain)))
	want = append(want, vecPlain...)
	want = append(want, vecAppKey...)
	want = append(want, bytes.Repeat([]byte{28}, 28)...)
	if !bytes.Equal(pt, want) {
		t.Fatalf("plaintext frame:\n got %q\nwant %q", pt, want)
	}
	if len(vecPlain) != 80 || len(pt)%32 != 0 {
		t.Fatalf("vector shape: data %d bytes, plaintext %d", len(vecPlain), len(pt))
	}

	got, err := Decrypt(vecAppKey, vecSessionKey, vecData, vecIV)
	if err != nil || string(got) != vecPlain {
		t.Fatalf("Decrypt = %q, %v; want %q", got, err, vecPlain)
	}
	got, idx, err := Open(vecAppKey, []string{"", vecSessionKey}, vecData, vecIV)
	if err != nil || idx != 1 || string(got) != vecPlain {
		t.Fatalf("Open = %q, %d, %v", got, idx, err)
	}
	// The lenient base64 forms front ends produce.
	for _, d := range []string{
		strings.ReplaceAll(vecData, "+", " "),
		strings.NewReplacer("+", "-", "/", "_", "=", "").Replace(vecData),
		strings.NewReplacer("+", "%2B", "/", "%2F", "=", "%3D").Replace(vecData),
	} {
		if got, err := Decrypt(vecAppKey, vecSessionKey, d, vecIV); err != nil || string(got) != vecPlain {
			t.Errorf("lenient form: %q, %v", got, err)
		}
	}
}

func code(err error) mperr.Code {
	if err == nil {
		return ""
	}
	return mperr.From(err).Code
}

func TestRefusals(t *testing.T) {
	ct, _ := base64.StdEncoding.DecodeString(vecData)
	flip := func(i int) string {
		c := bytes.Clone(ct)
		c[i] ^= 1
		return base64.StdEncoding.EncodeToString(c)
	}
	otherKey := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 24))
	cases := []struct {
		name                  string
		appKey, key, data, iv string
		want                  mperr.Code
	}{
		{"wrong app key", "y2dTfnWfkx2OXttMEMWlGHoB1KzMogm8", vecSessionKey, vecData, vecIV, mperr.DecryptFailed},
		{"app key a prefix of the trailer", vecAppKey[:31], vecSessionKey, vecData, vecIV, mperr.DecryptFailed},
		{"empty app key", "", vecSessionKey, vecData, vecIV, mperr.DecryptFailed},
		{"wrong session key", vecAppKey, otherKey, vecData, vecIV, mperr.DecryptFailed},
		{"16-byte session key", vecAppKey, "MDEyMzQ1Njc4OWFiY2RlZg==", vecData, vecIV, mperr.DecryptFailed},
		{"session key not base64", vecAppKey, "1df09d0a1677dd72b8325aec59576e0!", vecData, vecIV, mperr.DecryptFailed},
		{"tampered last block (padding)", vecAppKey, vecSessionKey, flip(len(ct) - 1), vecIV, mperr.DecryptFailed},
		{"tampered trailer block", vecAppKey, vecSessionKey, flip(len(ct) - 33), vecIV, mperr.DecryptFailed},
		// No MAC: a changed iv changes only the random prefix, which nothing
		// checks (documented; the handler checks ids in the data).
		{"iv changed (random prefix only)", vecAppKey, vecSessionKey, vecData, func() string {
			v, _ := base64.StdEncoding.DecodeString(vecIV)
			v[3] ^= 1
			return base64.StdEncoding.EncodeToString(v)
		}(), ""},
		{"length rewritten through block 1", vecAppKey, vecSessionKey, flip(3), vecIV, mperr.DecryptFailed},
		{"length rewritten far out", vecAppKey, vecSessionKey, flip(0), vecIV, mperr.DecryptFailed},
		{"truncated by a block", vecAppKey, vecSessionKey, base64.StdEncoding.EncodeToString(ct[:len(ct)-16]), vecIV, mperr.DecryptFailed},
		{"one block", vecAppKey, vecSessionKey, base64.StdEncoding.EncodeToString(ct[:16]), vecIV, mperr.DecryptFailed},
		{"not whole blocks", vecAppKey, vecSessionKey, base64.StdEncoding.EncodeToString(ct[:20]), vecIV, mperr.MalformedPayload},
		{"empty", vecAppKey, vecSessionKey, "", vecIV, mperr.MalformedPayload},
		{"data not base64", vecAppKey, vecSessionKey, "!!!!", vecIV, mperr.MalformedPayload},
		{"iv not base64", vecAppKey, vecSessionKey, vecData, "!!!!", mperr.MalformedPayload},
		{"short iv", vecAppKey, vecSessionKey, vecData, "MTIzNDU2Nzg=", mperr.MalformedPayload},
	}
	for _, c := range cases {
		_, err := Decrypt(c.appKey, c.key, c.data, c.iv)
		if got := code(err); got != c.want {
			t.Errorf("%s: code %q, want %q (%v)", c.name, got, c.want, err)
		}
		if err != nil && c.want == mperr.DecryptFailed && mperr.From(err).Message != MsgDecryptFailed {
			t.Errorf("%s: message %q", c.name, mperr.From(err).Message)
		}
	}
}

// encryptFrame builds a payload as Baidu's sample does, for the tests.
func encryptFrame(t testing.TB, key, iv []byte, data, appKey string, block int) string {
	pt := bytes.Repeat([]byte{'r'}, PrefixSize)
	pt = binary.BigEndian.AppendUint32(pt, uint32(len(data)))
	pt = append(pt, data...)
	pt = append(pt, appKey...)
	pad := block - len(pt)%block
	pt = append(pt, bytes.Repeat([]byte{byte(pad)}, pad)...)
	b, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	cipher.NewCBCEncrypter(b, iv).CryptBlocks(pt, pt)
	return base64.StdEncoding.EncodeToString(pt)
}

func TestPaddingsAndJSON(t *testing.T) {
	key := bytes.Repeat([]byte{1}, KeySize)
	iv := bytes.Repeat([]byte{2}, IVSize)
	sk, ivs := base64.StdEncoding.EncodeToString(key), base64.StdEncoding.EncodeToString(iv)
	for _, block := range []int{16, 32} {
		for n := 0; n < 40; n++ {
			data := `{"mobile":"1` + strings.Repeat("3", n) + `"}`
			enc := encryptFrame(t, key, iv, data, "appkey", block)
			got, idx, err := Open("appkey", []string{sk}, enc, ivs)
			if err != nil || idx != 0 || string(got) != data {
				t.Fatalf("block %d, n %d: %q %v", block, n, got, err)
			}
		}
	}
	// Data that is not a JSON object is refused by Open (it is injected raw).
	enc := encryptFrame(t, key, iv, `not json`, "appkey", 32)
	if _, _, err := Open("appkey", []string{sk}, enc, ivs); code(err) != mperr.DecryptFailed {
		t.Fatalf("non-JSON data: %v", err)
	}
	// Previous key: index 1.
	other := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{9}, KeySize))
	enc = encryptFrame(t, key, iv, `{"a":1}`, "appkey", 32)
	if _, idx, err := Open("appkey", []string{other, sk}, enc, ivs); err != nil || idx != 1 {
		t.Fatalf("previous key: %d %v", idx, err)
	}
}

func TestParsePhone(t *testing.T) {
	for in, want := range map[string]string{
		`{"mobile":"13800138000"}`:                                             "13800138000",
		`{"mobile":13800138000}`:                                               "13800138000",
		`{"mobile":"1","mobile":"13900139000"}`:                                "13900139000",
		`{"phoneNumber":"+86 139","purePhoneNumber":"139","countryCode":"86"}`: "+86 139",
	} {
		p, err := ParsePhone([]byte(in))
		if err != nil || p.PhoneNumber != want {
			t.Errorf("%s: %+v %v", in, p, err)
		}
		if strings.Contains(in, "mobile") && (p.PurePhoneNumber != want || p.CountryCode != "") {
			t.Errorf("%s: %+v", in, p)
		}
	}
	for _, in := range []string{`{"mobile":"13800138000\r\nX: y"}`, `{"mobile":true}`, `{"mobile":1.5}`, `{"mobile":""}`, `[]`, `{}`, `{"mobile":null}`} {
		if _, err := ParsePhone([]byte(in)); code(err) != mperr.BadRequest {
			t.Errorf("%s: %v", in, err)
		}
	}
}
