package module

import (
	"crypto/rsa"
	"errors"
	"fmt"
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

// loadPrivateKey reads private_key: PEM text (an {env.X} holding it), the
// bare base64 of the DER (as Alipay's key tool gives it), or the path of a
// PEM file; PKCS#1 or PKCS#8, RSA. Errors name the field and never quote
// the key: a value is quoted (as a path) only when it is too short to
// hold any RSA private key.
func (h *Handler) loadPrivateKey() (*rsa.PrivateKey, error) {
	k, err := h.readPrivateKey()
	if err != nil || k == nil {
		return k, err
	}
	if h.platformDesc().SignedAPI && k.N.BitLen() < 2048 {
		return nil, fieldErr("private_key", "the RSA key has %d bits; %s signs with RSA2, which takes at least 2048", k.N.BitLen(), h.platformDesc().Title)
	}
	return k, nil
}

// maxQuotedPath: a private_key value up to this long may be quoted in an
// error as the path it was taken for; the base64 of the smallest RSA
// private key is longer.
const maxQuotedPath = 256

func (h *Handler) readPrivateKey() (*rsa.PrivateKey, error) {
	v := h.PrivateKey
	if v == "" {
		return nil, nil
	}
	var text []byte
	if strings.Contains(v, "-----BEGIN") {
		text = []byte(v)
	} else if k, ok, err := platform.ParsePrivateKeyDER(v); ok {
		if err != nil {
			return nil, fieldErr("private_key", "the base64 key: %v", err)
		}
		return k, nil
	} else {
		path := strings.TrimSpace(v)
		what := "the PEM file"
		if len(path) <= maxQuotedPath {
			what = fmt.Sprintf("the PEM file %q", path)
		}
		f, err := os.Open(path)
		if err != nil {
			var pe *fs.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			if len(path) > maxQuotedPath {
				return nil, fieldErr("private_key", "is neither PEM text, the base64 of a private key, nor the path of a readable file")
			}
			return nil, fieldErr("private_key", "cannot read %s: %v", what, err)
		}
		defer f.Close()
		b, err := io.ReadAll(io.LimitReader(f, maxPrivateKeyFile+1))
		if err != nil {
			return nil, fieldErr("private_key", "cannot read %s", what)
		}
		if len(b) > maxPrivateKeyFile {
			return nil, fieldErr("private_key", "%s is larger than a PEM private key can be", what)
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
