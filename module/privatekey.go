package module

import (
	"crypto/rsa"
	"errors"
	"io"
	"io/fs"
	"os"
	"strings"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/platform"
)

// A platform's phone-code flow may need the app's RSA private key
// (private_key, PhoneCodeSpec.PrivateKey): Douyin's get_phonenumber_info
// answers with the phone JSON encrypted with the public key uploaded in
// its console.

// maxPrivateKeyFile bounds the private_key file read (a 4096-bit PEM key
// is about 3.3 KB).
const maxPrivateKeyFile = 64 << 10

// validatePrivateKey is private_key's rule of meaning (no I/O): for a
// platform whose phone-code exchange needs it.
func (h *Handler) validatePrivateKey() error {
	if h.PrivateKey == "" {
		return nil
	}
	if h.Platform != "" && !takesPrivateKey(h.platformDesc()) {
		return fieldErr("private_key", "is for platform %s (its phone-code answers are RSA-encrypted, or its API calls are signed), not %q", platform.OrList(platform.NamesWhere(takesPrivateKey)), h.Platform)
	}
	return nil
}

// takesPrivateKey: the platform's phone-code exchange needs private_key,
// or its API calls are signed with it (SignedAPI, which requires it: see
// validateAppKeys).
func takesPrivateKey(d *platform.Descriptor) bool {
	return d.PhoneCode != nil && d.PhoneCode.PrivateKey || d.SignedAPI
}

// loadPrivateKey reads private_key: PEM text (an {env.X} holding it) or
// the path of a PEM file; PKCS#1 or PKCS#8, RSA. Errors name the field and
// never quote the key.
func (h *Handler) loadPrivateKey() (*rsa.PrivateKey, error) {
	v := h.PrivateKey
	if v == "" {
		return nil, nil
	}
	var text []byte
	if strings.Contains(v, "-----BEGIN") {
		text = []byte(v)
	} else {
		path := strings.TrimSpace(v)
		f, err := os.Open(path)
		if err != nil {
			var pe *fs.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			return nil, fieldErr("private_key", "cannot read the PEM file %q: %v", path, err)
		}
		defer f.Close()
		b, err := io.ReadAll(io.LimitReader(f, maxPrivateKeyFile+1))
		if err != nil {
			return nil, fieldErr("private_key", "cannot read the PEM file %q", path)
		}
		if len(b) > maxPrivateKeyFile {
			return nil, fieldErr("private_key", "the file %q is larger than a PEM private key can be", path)
		}
		text = b
	}
	k, err := platform.ParsePrivateKey(text)
	if err != nil {
		return nil, fieldErr("private_key", "%v", err)
	}
	return k, nil
}

// phoneCodeCall names the platform's phone-code exchange in logs and
// failure records.
func (h *Handler) phoneCodeCall() string {
	if pc := h.platformDesc().PhoneCode; pc != nil {
		return pc.Call
	}
	return "phone_code"
}
