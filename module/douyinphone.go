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

// Douyin's phone-code flow needs the app's RSA private key (private_key):
// get_phonenumber_info answers with the phone JSON encrypted with the
// public key uploaded in Douyin's console.

// clientTokenName is the store's named value (and lock) of Douyin's client
// token, kept apart from WeChat's "access_token" (and from Douyin's
// mini-app access_token, which the plugin does not use).
const clientTokenName = "client_token"

// maxPrivateKeyFile bounds the private_key file read (a 4096-bit PEM key
// is about 3.3 KB).
const maxPrivateKeyFile = 64 << 10

// validatePrivateKey is private_key's rule of meaning (no I/O): Douyin's.
func (h *Handler) validatePrivateKey() error {
	if h.PrivateKey == "" {
		return nil
	}
	if h.Platform != "" && h.Platform != platform.Douyin {
		return fieldErr("private_key", "is for platform douyin (its phone-code answers are RSA-encrypted), not %q", h.Platform)
	}
	return nil
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
	if h.Platform == platform.Douyin {
		return "get_phonenumber_info"
	}
	return "getuserphonenumber"
}
