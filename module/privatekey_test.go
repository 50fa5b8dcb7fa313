package module

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/mperr"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/store"
	"go.uber.org/zap"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/platform"
)

// private_key is read from PEM text, the bare base64 of the DER (Alipay's
// key tool gives that) or a PEM file; no error ever quotes a value long
// enough to hold a key; a signing platform (Alipay) wants 2048 bits.
func TestLoadPrivateKey(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	b64 := base64.StdEncoding.EncodeToString(der)
	pemText := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	file := filepath.Join(t.TempDir(), "app.pem")
	if err := os.WriteFile(file, []byte(pemText), 0o600); err != nil {
		t.Fatal(err)
	}
	pkcs1 := base64.StdEncoding.EncodeToString(x509.MarshalPKCS1PrivateKey(key))
	for _, platformName := range []string{platform.Douyin, platform.Alipay} {
		for name, v := range map[string]string{"PEM": pemText, "base64 PKCS#8": b64, "base64 PKCS#1": pkcs1, "wrapped base64": b64[:64] + "\n" + b64[64:], "file": file} {
			h := &Handler{Platform: platformName, PrivateKey: v}
			k, err := h.loadPrivateKey()
			if err != nil || k == nil || !k.Equal(key) {
				t.Errorf("%s %s: %v", platformName, name, err)
			}
		}
	}
	// Values that are no key: the error never quotes one that could be.
	bad := strings.Repeat("A", 40) + "!" + b64[41:] // not base64, not a file
	for _, v := range []string{bad, b64[:len(b64)-10], "MIIE" + strings.Repeat("x", 300)} {
		h := &Handler{Platform: platform.Alipay, PrivateKey: v}
		_, err := h.loadPrivateKey()
		if err == nil {
			t.Fatalf("%.20s… accepted", v)
		}
		if strings.Contains(err.Error(), v[:40]) {
			t.Fatalf("the error quotes the value: %v", err)
		}
	}
	h := &Handler{Platform: platform.Douyin, PrivateKey: "/etc/caddy/missing.pem"}
	if _, err := h.loadPrivateKey(); err == nil || !strings.Contains(err.Error(), `"/etc/caddy/missing.pem"`) {
		t.Fatalf("a short path is named: %v", err)
	}
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	sder, _ := x509.MarshalPKCS8PrivateKey(small)
	h = &Handler{Platform: platform.Alipay, PrivateKey: base64.StdEncoding.EncodeToString(sder)}
	if _, err := h.loadPrivateKey(); err == nil || !strings.Contains(err.Error(), "2048") {
		t.Fatalf("a 1024-bit key for Alipay: %v", err)
	}
	h.Platform = platform.Douyin
	if _, err := h.loadPrivateKey(); err != nil {
		t.Fatalf("a 1024-bit key for Douyin: %v", err)
	}
}

// lossyStore performs SetIfAbsent and then reports a failure, once: a
// Redis reply lost after the write.
type lossyStore struct {
	store.Store
	lost bool
}

func (l *lossyStore) SetIfAbsent(ctx context.Context, name string, value []byte, ttl time.Duration) ([]byte, bool, error) {
	cur, stored, err := l.Store.SetIfAbsent(ctx, name, value, ttl)
	if !l.lost {
		l.lost = true
		return nil, false, store.ErrUnavailable
	}
	return cur, stored, err
}

// A phone payload's binding is one atomic write: when the store fails the
// first presentation (here after writing), the same user's retry is
// accepted and anyone else is refused; nothing is left half bound.
func TestBindPayloadSurvivesALostReply(t *testing.T) {
	mem := store.NewMemory(store.MemoryOptions{})
	defer mem.Close()
	h := &Handler{store: &lossyStore{Store: mem}, logger: zap.NewNop()}
	ctx := context.Background()
	if err := h.bindPayload(ctx, "p1", "ann"); mperr.From(err).Code != mperr.StoreUnavailable {
		t.Fatalf("first: %v", err)
	}
	if err := h.bindPayload(ctx, "p1", "ann"); err != nil {
		t.Fatalf("the owner's retry: %v", err)
	}
	if err := h.bindPayload(ctx, "p1", "eve"); mperr.From(err).Code != mperr.PayloadReused {
		t.Fatalf("another user: %v", err)
	}
	if err := h.bindPayload(ctx, "p2", "eve"); err != nil {
		t.Fatalf("another payload: %v", err)
	}
}
