package keyseal

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/store"
)

var _ store.KeyCodec = (*Codec)(nil)

func newKey(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b)
}

func mustNew(t testing.TB, keys []string, opts ...Option) *Codec {
	t.Helper()
	c, err := New(keys, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// sessionKey is what is sealed in practice: base64 of 16 bytes.
func sessionKey(t testing.TB) string { return newKey(t, 16) }

func TestRoundTrip(t *testing.T) {
	for _, n := range []int{16, 24, 32} {
		c := mustNew(t, []string{newKey(t, n)})
		for _, plain := range []string{sessionKey(t), "", "x", strings.Repeat("é", 300)} {
			sealed, err := c.Seal(plain)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(sealed, Prefix+c.WriteKeyID()+":") {
				t.Fatalf("sealed value %q lacks the header", sealed)
			}
			if len(plain) >= 8 && strings.Contains(sealed, plain) {
				t.Fatalf("sealed value contains the plain text")
			}
			got, err := c.Open(sealed)
			if err != nil {
				t.Fatalf("%d-byte key: open: %v", n, err)
			}
			if got != plain {
				t.Fatalf("%d-byte key: got %q, want %q", n, got, plain)
			}
		}
	}
}

func TestFormat(t *testing.T) {
	c := mustNew(t, []string{newKey(t, 32)})
	sk := sessionKey(t)
	sealed, err := c.Seal(sk)
	if err != nil {
		t.Fatal(err)
	}
	// ks1:<8 hex>:<raw std base64 of 12+24+16 bytes>
	if len(sealed) != 83 {
		t.Fatalf("sealed session key is %d chars, want 83: %q", len(sealed), sealed)
	}
	parts := strings.Split(sealed, ":")
	if len(parts) != 3 || parts[0] != "ks1" || len(parts[1]) != 8 || !isHex(parts[1]) {
		t.Fatalf("format %q", sealed)
	}
	raw, err := base64.RawStdEncoding.Strict().DecodeString(parts[2])
	if err != nil || len(raw) != nonceLen+len(sk)+tagLen {
		t.Fatalf("body: %v, %d bytes", err, len(raw))
	}
	// Text-safe: printable ASCII without spaces.
	for _, r := range sealed {
		if r <= ' ' || r > '~' {
			t.Fatalf("sealed value has %q", r)
		}
	}
}

func TestRotation(t *testing.T) {
	oldKey, newK := newKey(t, 32), newKey(t, 32)
	before := mustNew(t, []string{oldKey})
	sealedOld, err := before.Seal("old-secret")
	if err != nil {
		t.Fatal(err)
	}

	after := mustNew(t, []string{newK, oldKey})
	got, err := after.Open(sealedOld)
	if err != nil || got != "old-secret" {
		t.Fatalf("old value after rotation: %q, %v", got, err)
	}
	sealedNew, err := after.Seal("new-secret")
	if err != nil {
		t.Fatal(err)
	}
	if after.WriteKeyID() == before.WriteKeyID() {
		t.Fatal("the write key did not change")
	}
	if !strings.HasPrefix(sealedNew, Prefix+after.WriteKeyID()+":") {
		t.Fatalf("new writes are not sealed with the first key: %q", sealedNew[:headerLen])
	}
	// The old codec alone cannot open what the new key sealed.
	if _, err := before.Open(sealedNew); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("old codec on a new value: %v, want ErrUnknownKey", err)
	}
	// Once the old key is dropped, old values are unknown.
	done := mustNew(t, []string{newK})
	if _, err := done.Open(sealedOld); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("after dropping the old key: %v, want ErrUnknownKey", err)
	}
	if ids := after.KeyIDs(); len(ids) != 2 || ids[0] != done.WriteKeyID() || ids[1] != before.WriteKeyID() {
		t.Fatalf("KeyIDs %v", ids)
	}
}

func TestUnknownKey(t *testing.T) {
	a := mustNew(t, []string{newKey(t, 32)})
	b := mustNew(t, []string{newKey(t, 32)})
	sealed, _ := a.Seal("secret")
	got, err := b.Open(sealed)
	if !errors.Is(err, ErrUnknownKey) || got != "" {
		t.Fatalf("got %q, %v; want ErrUnknownKey", got, err)
	}
	// Forging the other codec's key id into the header does not help.
	forged := Prefix + b.WriteKeyID() + sealed[headerLen-1:]
	if _, err := b.Open(forged); !errors.Is(err, ErrAuth) {
		t.Fatalf("forged key id: %v, want ErrAuth", err)
	}
}

func TestTamper(t *testing.T) {
	key := newKey(t, 32)
	c := mustNew(t, []string{key})
	sealed, _ := c.Seal(sessionKey(t))
	body := sealed[headerLen:]
	alphabet := "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	// Change every character of the body in turn (nonce, ciphertext, tag).
	for i := range body {
		b := []byte(body)
		j := strings.IndexByte(alphabet, b[i])
		b[i] = alphabet[(j+1)%len(alphabet)]
		got, err := c.Open(sealed[:headerLen] + string(b))
		if err == nil {
			t.Fatalf("tampered at %d: opened to %q", i, got)
		}
		if got != "" {
			t.Fatalf("tampered at %d: error with output %q", i, got)
		}
	}
	// Truncated, extended, and swapped between purposes.
	for name, v := range map[string]string{
		"truncated":  sealed[:len(sealed)-4],
		"short":      sealed[:headerLen+10],
		"extended":   sealed + "AAAA",
		"no body":    sealed[:headerLen],
		"no colon":   sealed[:headerLen-1],
		"prefix":     Prefix,
		"bad base64": sealed[:headerLen] + "!!!!" + sealed[headerLen+4:],
		"bad kid":    Prefix + "zzzzzzzz:" + body,
		"padded":     sealed + "==",
	} {
		if got, err := c.Open(v); err == nil || got != "" {
			t.Errorf("%s: opened to %q, %v", name, got, err)
		}
	}
	other := mustNew(t, []string{key}, Purpose("something-else"))
	if _, err := other.Open(sealed); !errors.Is(err, ErrAuth) {
		t.Fatalf("other purpose: %v, want ErrAuth", err)
	}
}

func TestPlainValues(t *testing.T) {
	sk := sessionKey(t)
	strict := mustNew(t, []string{newKey(t, 32)})
	if got, err := strict.Open(sk); !errors.Is(err, ErrNotSealed) || got != "" {
		t.Fatalf("plain value by default: %q, %v; want ErrNotSealed", got, err)
	}
	lax := mustNew(t, []string{newKey(t, 32)}, AllowPlain(true))
	if got, err := lax.Open(sk); err != nil || got != sk {
		t.Fatalf("plain value with AllowPlain: %q, %v", got, err)
	}
	// AllowPlain never turns a broken sealed value into plain text.
	sealed, _ := lax.Seal(sk)
	if got, err := lax.Open(sealed[:len(sealed)-1]); err == nil {
		t.Fatalf("broken sealed value opened with AllowPlain: %q", got)
	}
	// And writes are sealed all the same.
	if !strings.HasPrefix(sealed, Prefix) {
		t.Fatal("AllowPlain changed Seal")
	}
}

func TestNewRejects(t *testing.T) {
	k := newKey(t, 32)
	tests := map[string][]string{
		"no keys":       nil,
		"empty key":     {""},
		"spaces":        {"   "},
		"8 bytes":       {newKey(t, 8)},
		"15 bytes":      {newKey(t, 15)},
		"31 bytes":      {newKey(t, 31)},
		"33 bytes":      {newKey(t, 33)},
		"64 bytes":      {newKey(t, 64)},
		"not base64":    {"this is not base64!"},
		"url alphabet":  {strings.NewReplacer("+", "-", "/", "_").Replace(urlish(t))},
		"hex":           {strings.Repeat("ab", 32)},
		"second bad":    {k, newKey(t, 20)},
		"duplicate":     {k, k},
		"dup unpadded":  {k, strings.TrimRight(k, "=")},
		"good then gap": {k, ""},
	}
	for name, keys := range tests {
		c, err := New(keys)
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		if c != nil {
			t.Errorf("%s: codec with error", name)
		}
		for _, key := range keys {
			if len(key) > 4 && strings.Contains(err.Error(), key) {
				t.Errorf("%s: error %q contains the key", name, err)
			}
		}
		t.Logf("%s: %v", name, err)
	}
	if _, err := New([]string{k}, Purpose("")); err == nil {
		t.Error("empty purpose accepted")
	}
}

// urlish returns a 32-byte key whose std base64 has a + or / (so that its
// URL-alphabet form is not standard base64).
func urlish(t *testing.T) string {
	for {
		k := newKey(t, 32)
		if strings.ContainsAny(k, "+/") {
			return k
		}
	}
}

func TestKeyForms(t *testing.T) {
	raw := make([]byte, 32)
	rand.Read(raw)
	padded := base64.StdEncoding.EncodeToString(raw)
	a := mustNew(t, []string{padded})
	for _, form := range []string{base64.RawStdEncoding.EncodeToString(raw), " " + padded + "\n"} {
		b := mustNew(t, []string{form})
		if b.WriteKeyID() != a.WriteKeyID() {
			t.Fatalf("form %q: another key id", form)
		}
		sealed, _ := a.Seal("v")
		if got, err := b.Open(sealed); err != nil || got != "v" {
			t.Fatalf("form %q: %q, %v", form, got, err)
		}
	}
}

func TestNonceUniqueness(t *testing.T) {
	c := mustNew(t, []string{newKey(t, 32)})
	const n = 20000
	var mu sync.Mutex
	seen := make(map[string]bool, n)
	sealedSeen := make(map[string]bool, n)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range n / 8 {
				sealed, err := c.Seal("same plain text")
				if err != nil {
					t.Error(err)
					return
				}
				raw, _ := base64.RawStdEncoding.DecodeString(sealed[headerLen:])
				nonce := string(raw[:nonceLen])
				mu.Lock()
				if seen[nonce] || sealedSeen[sealed] {
					t.Errorf("worker %d: nonce or sealed value repeated", w)
				}
				seen[nonce], sealedSeen[sealed] = true, true
				mu.Unlock()
				if got, err := c.Open(sealed); err != nil || got != "same plain text" {
					t.Errorf("concurrent open: %q, %v", got, err)
				}
			}
		}()
	}
	wg.Wait()
	if len(seen) != n {
		t.Fatalf("%d distinct nonces, want %d", len(seen), n)
	}
}

func TestKeyID(t *testing.T) {
	a, b := make([]byte, 32), make([]byte, 32)
	b[31] = 1
	if KeyID(a) == KeyID(b) || len(KeyID(a)) != 8 || !isHex(KeyID(a)) {
		t.Fatalf("key ids %q %q", KeyID(a), KeyID(b))
	}
	if KeyID(a) != KeyID(append([]byte(nil), a...)) {
		t.Fatal("key id not deterministic")
	}
}

func BenchmarkSeal(b *testing.B) {
	c := mustNew(b, []string{newKey(b, 32)})
	sk := sessionKey(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Seal(sk); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpen(b *testing.B) {
	c := mustNew(b, []string{newKey(b, 32)})
	sealed, _ := c.Seal(sessionKey(b))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Open(sealed); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpenOldKey opens a value sealed with the last of four keys.
func BenchmarkOpenOldKey(b *testing.B) {
	keys := []string{newKey(b, 32), newKey(b, 32), newKey(b, 32), newKey(b, 32)}
	sealed, _ := mustNew(b, keys[3:]).Seal(sessionKey(b))
	c := mustNew(b, keys)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Open(sealed); err != nil {
			b.Fatal(err)
		}
	}
}

// SealWithKey: the value opens only with the same key and the same ad,
// and a nonce is never reused.
func TestSealWithKey(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 32)
	other := bytes.Repeat([]byte{8}, 32)
	a, err := SealWithKey(key, []byte("13800138000"), []byte("phone:ref"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := SealWithKey(key, []byte("13800138000"), []byte("phone:ref"))
	if bytes.Equal(a, b) || bytes.Contains(a, []byte("13800138000")) {
		t.Fatal("two seals are equal, or the plaintext shows")
	}
	if p, err := OpenWithKey(key, a, []byte("phone:ref")); err != nil || string(p) != "13800138000" {
		t.Fatalf("%q, %v", p, err)
	}
	if _, err := OpenWithKey(other, a, []byte("phone:ref")); !errors.Is(err, ErrAuth) {
		t.Fatalf("another key: %v", err)
	}
	if _, err := OpenWithKey(key, a, []byte("phone:other")); !errors.Is(err, ErrAuth) {
		t.Fatalf("another ad: %v", err)
	}
	a[len(a)-1] ^= 1
	if _, err := OpenWithKey(key, a, []byte("phone:ref")); !errors.Is(err, ErrAuth) {
		t.Fatalf("tampered: %v", err)
	}
	if _, err := OpenWithKey(key, a[:20], []byte("phone:ref")); !errors.Is(err, ErrMalformed) {
		t.Fatalf("short: %v", err)
	}
	if _, err := SealWithKey(key[:5], nil, nil); err == nil {
		t.Fatal("a 5-byte key was taken")
	}
}
