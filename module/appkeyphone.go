package module

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"os"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/mperr"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/platform"
)

// Platforms whose API calls are signed (Descriptor.SignedAPI: the app's
// private_key signs, platform_public_key checks the platform's answers)
// and whose phone payloads are opened with the app's keys
// (Descriptor.AppKeyPayloads: platform_public_key verifies, aes_key
// decrypts), not with a session key: Alipay's.
//
// Such a payload names no user and carries no time, so whoever captures
// one could present it, forever, as their own number. Its first use binds
// it to the session that presented it (in the store, under a hash of the
// payload's signed content, for payloadBindingTTL); any other session
// presenting it is refused with payload_reused.

// payloadBindingTTL is how long a phone payload stays bound to the session
// that first presented it.
const payloadBindingTTL = 30 * 24 * time.Hour

// maxPublicKeyFile bounds the platform_public_key file read.
const maxPublicKeyFile = 64 << 10

// validateAppKeys is the rule of platform_public_key and aes_key, and of
// private_key for a signed API (no I/O).
func (h *Handler) validateAppKeys() error {
	d := h.platformDesc()
	if h.Platform == "" {
		return nil
	}
	if d.SignedAPI {
		for _, k := range []struct{ name, v, what string }{
			{"private_key", h.PrivateKey, "the app's RSA private key, which signs its API calls"},
			{"platform_public_key", h.PlatformPublicKey, d.Title + "'s public key, which checks its answers"},
		} {
			if k.v == "" {
				return fieldErr(k.name, "is required for platform %s: %s", h.Platform, k.what)
			}
		}
	} else if h.PlatformPublicKey != "" {
		return fieldErr("platform_public_key", "is for platform %s (its answers are signed), not %q", platform.OrList(platform.NamesWhere(func(d *platform.Descriptor) bool { return d.SignedAPI })), h.Platform)
	}
	s := d.AppKeyPayloads
	if s == nil {
		if h.AESKey != "" {
			return fieldErr("aes_key", "is for platform %s (its phone payloads are encrypted with the app's key), not %q", platform.OrList(platform.NamesWhere(func(d *platform.Descriptor) bool { return d.AppKeyPayloads != nil })), h.Platform)
		}
		return nil
	}
	if h.Decrypt != "" {
		return fieldErr("decrypt", "%s has no decrypt route: its only encrypted front-end payload handled here is the phone number's (phone route)", d.Title)
	}
	if h.Phone != "" && h.AESKey == "" {
		return fieldErr("aes_key", "is required by the phone route on platform %s: the app's content encryption key (AES, base64) from its console", h.Platform)
	}
	if h.AESKey != "" && !h.pending(h.AESKey) {
		if _, err := s.ParseAESKey(h.AESKey); err != nil {
			return fieldErr("aes_key", "%v", err)
		}
	}
	return nil
}

// loadAppKeys reads platform_public_key and aes_key into h.appKeys.
func (h *Handler) loadAppKeys() error {
	if v := h.PlatformPublicKey; v != "" {
		text := []byte(v)
		if !strings.Contains(v, "-----BEGIN") && looksLikePath(v) {
			b, err := readSmallFile("platform_public_key", strings.TrimSpace(v), maxPublicKeyFile)
			if err != nil {
				return err
			}
			text = b
		}
		k, err := platform.ParsePublicKey(text)
		if err != nil {
			return fieldErr("platform_public_key", "%v", err)
		}
		h.appKeys.PlatformPublicKey = k
	}
	if s := h.platformDesc().AppKeyPayloads; s != nil && h.AESKey != "" {
		k, err := s.ParseAESKey(h.AESKey)
		if err != nil {
			return fieldErr("aes_key", "%v", err)
		}
		h.appKeys.AESKey = k
	}
	return nil
}

// looksLikePath: a key setting that is a file's path, not the key's
// base64 (which has no path separator... but may: '/' is a base64
// character, so a value that exists as a file, or starts like a path, is
// a path).
func looksLikePath(v string) bool {
	v = strings.TrimSpace(v)
	if strings.HasPrefix(v, "/") || strings.HasPrefix(v, "./") || strings.HasPrefix(v, "../") || strings.HasSuffix(v, ".pem") || strings.HasSuffix(v, ".txt") {
		return true
	}
	_, err := os.Stat(v)
	return err == nil
}

// readSmallFile reads a key file, bounded; errors name the field.
func readSmallFile(field, path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, fieldErr(field, "cannot read the file %q: %v", path, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, fieldErr(field, "cannot read the file %q", path)
	}
	if int64(len(b)) > max {
		return nil, fieldErr(field, "the file %q is larger than a key can be", path)
	}
	return b, nil
}

// serveAppKeyPhone serves the phone route of a platform whose payloads are
// opened with the app's keys: the payload field (h.f.Response) is checked
// without keys, the session found (bound token or login code), the
// payload verified and decrypted with the configured keys, its first use
// bound to that session, and the number injected.
func (h *Handler) serveAppKeyPhone(r *http.Request, in *input) error {
	s := h.desc.AppKeyPayloads
	payload, err := in.field(h.f.Response)
	if err != nil {
		return err
	}
	if payload == "" {
		return mperr.Newf(mperr.BadRequest, "the request carries no %q (my.getPhoneNumber's response)", h.f.Response)
	}
	if err := s.Check(payload); err != nil {
		return err
	}
	sess, err := h.session(r.Context(), r, in)
	if err != nil {
		return err
	}
	ph, id, err := s.OpenPhone(h.appKeys, payload)
	if err != nil {
		return err
	}
	if err := h.bindPayload(r.Context(), id, sess.OpenID); err != nil {
		return err
	}
	h.injectPhone(r, in.body, sess.OpenID, ph)
	return nil
}

// bindPayload binds a payload (its id) to the user openid at its first
// use, and refuses it to anyone else: one atomic set-if-absent of the
// owner (a hash of the openid) under a name made of the payload's hash; a
// later presenter is that user (accepted) or not (payload_reused). A
// failed store call leaves nothing half done: the owner is recorded or
// not, and the same user's retry tells. Alipay's payload for one mobile is
// the same bytes every time (zero IV, deterministic signature), so in
// effect the binding is mobile → first user, for payloadBindingTTL.
func (h *Handler) bindPayload(ctx context.Context, id, openid string) error {
	sum := sha256.Sum256([]byte(id))
	name := "phone_payload:" + hex.EncodeToString(sum[:16])
	owner := sha256.Sum256([]byte(openid))
	ownerHex := hex.EncodeToString(owner[:16])
	cur, stored, err := h.store.SetIfAbsent(ctx, name, []byte(ownerHex), payloadBindingTTL)
	switch {
	case err != nil:
		return storeErr(err)
	case stored, string(cur) == ownerHex:
		return nil
	}
	h.logger.Debug("a phone payload bound to another session was presented", zap.String("openid", openid))
	return mperr.New(mperr.PayloadReused, "this phone number was first presented by another user (Alipay's payload for a number is the same every time): it stays bound to that user")
}
