// Package sdkcompare benchmarks the plugin's phone-payload decryption
// (internal/wxcrypt: Open + ParsePhone) against the mini-program encryptor of
// github.com/silenceper/wechat/v2, the most widely used Go WeChat SDK, on the
// same payload.
//
// It is a module of its own (see go.mod) so that the SDK never becomes a
// dependency of the plugin, and the root module's `go test ./...` does not
// descend into it. Run it with `make bench` or:
//
//	cd bench/sdkcompare && go test -run '^$' -bench . -benchmem
package sdkcompare

import (
	"testing"

	"github.com/silenceper/wechat/v2/miniprogram/config"
	mpcontext "github.com/silenceper/wechat/v2/miniprogram/context"
	"github.com/silenceper/wechat/v2/miniprogram/encryptor"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/wxcrypt"
)

// The phone payload of internal/wxcrypt's BenchmarkOpenPhone
// (internal/wxcrypt/vectors_test.go): WeChat's published sample key and iv,
// and a phone JSON encrypted with them (144 bytes of plaintext).
const (
	appID      = "wx4f4bc4dec97d474b"
	sessionKey = "tiihtNczf5v6AKRyjwEUhQ=="
	iv         = "r7BXXKkLb8qrSNn05n0qiA=="
	phoneData  = "xT8p8W6jIVdEWQ+ccHuD2bmG5RSiwg14VWRFw/UGVh6Aj+jDIadafJ4xdCIBQ/uxDiyw/MZWvpFyRn3pP3xxVfNQxFtzghvK+Pj5JQI7x412Zc+UKBdZyt5yiQboroSxabTum1k4MMOlnoCxhJ46cxPDT2EuLbNUf2McwNtGO0/9E+Xj/ZwENw48ucueL3UqNoKpXxFYvqH6eawrR2MXnA=="
	wantPhone  = "13580006666"
)

func sdkEncryptor() *encryptor.Encryptor {
	return encryptor.NewEncryptor(&mpcontext.Context{Config: &config.Config{AppID: appID}})
}

// TestSameResult checks that both decrypt the payload to the same number,
// so the benchmarks compare like with like.
func TestSameResult(t *testing.T) {
	pd, err := sdkEncryptor().Decrypt(sessionKey, phoneData, iv)
	if err != nil {
		t.Fatalf("SDK: %v", err)
	}
	pt, _, err := wxcrypt.Open(appID, []string{sessionKey}, phoneData, iv)
	if err != nil {
		t.Fatalf("wxcrypt.Open: %v", err)
	}
	ph, err := wxcrypt.ParsePhone(pt)
	if err != nil {
		t.Fatalf("wxcrypt.ParsePhone: %v", err)
	}
	if pd.PhoneNumber != wantPhone || ph.PhoneNumber != wantPhone ||
		pd.PurePhoneNumber != ph.PurePhoneNumber || pd.CountryCode != ph.CountryCode {
		t.Fatalf("SDK %+v, plugin %+v", pd, ph)
	}
}

// BenchmarkDecryptPhone/plugin is wxcrypt.Open (base64, AES-128-CBC, strict
// PKCS#7, JSON validity, watermark) then ParsePhone; /sdk is
// encryptor.Decrypt (base64, AES-128-CBC, PKCS#7, json.Unmarshal into
// PlainData, watermark).
func BenchmarkDecryptPhone(b *testing.B) {
	b.Run("plugin", func(b *testing.B) {
		keys := []string{sessionKey}
		b.ReportAllocs()
		for b.Loop() {
			pt, _, err := wxcrypt.Open(appID, keys, phoneData, iv)
			if err != nil {
				b.Fatal(err)
			}
			ph, err := wxcrypt.ParsePhone(pt)
			if err != nil || ph.PhoneNumber != wantPhone {
				b.Fatal(err)
			}
		}
	})
	b.Run("sdk", func(b *testing.B) {
		e := sdkEncryptor()
		b.ReportAllocs()
		for b.Loop() {
			pd, err := e.Decrypt(sessionKey, phoneData, iv)
			if err != nil || pd.PhoneNumber != wantPhone {
				b.Fatal(err)
			}
		}
	})
}
