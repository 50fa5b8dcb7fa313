package swancrypt

import (
	"bytes"
	"encoding/base64"
	"testing"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/jsonobj"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/mperr"
)

// FuzzOpen: any input is refused with malformed_payload or decrypt_failed,
// or opens to a JSON object whose frame carried the app key; it never
// panics. A payload built from the fuzzed data always round-trips.
func FuzzOpen(f *testing.F) {
	f.Add(vecData, vecIV, []byte(vecPlain))
	f.Add("AAAA", "AAAAAAAAAAAAAAAAAAAAAA==", []byte(`{}`))
	f.Add("", "", []byte(`{"mobile":"1"}`))
	key := bytes.Repeat([]byte{3}, KeySize)
	iv := bytes.Repeat([]byte{4}, IVSize)
	sk := base64.StdEncoding.EncodeToString(key)
	f.Fuzz(func(t *testing.T, data, ivText string, plain []byte) {
		for _, k := range []string{vecSessionKey, sk} {
			out, idx, err := Open(vecAppKey, []string{k}, data, ivText)
			if err != nil {
				if c := mperr.From(err).Code; c != mperr.MalformedPayload && c != mperr.DecryptFailed {
					t.Fatalf("code %q", c)
				}
				continue
			}
			if idx != 0 || !jsonobj.IsObject(out) {
				t.Fatalf("opened %q at %d", out, idx)
			}
		}
		if len(plain) > 1<<12 {
			return
		}
		enc := encryptFrame(t, key, iv, string(plain), vecAppKey, 32)
		out, err := Decrypt(vecAppKey, sk, enc, base64.StdEncoding.EncodeToString(iv))
		if err != nil || !bytes.Equal(out, plain) {
			t.Fatalf("round trip of %q: %q %v", plain, out, err)
		}
		if _, err := Decrypt("another-app-key", sk, enc, base64.StdEncoding.EncodeToString(iv)); err == nil {
			t.Fatal("another app key's trailer accepted")
		}
	})
}
