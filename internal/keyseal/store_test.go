package keyseal

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/redistest"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/store"
)

// openStore opens a Redis store on srv with prefix and codec (nil: none).
func openStore(t *testing.T, srv *redistest.Server, prefix string, codec store.KeyCodec) *store.Redis {
	t.Helper()
	r, err := store.OpenRedis(store.RedisOptions{URL: srv.URL(), Prefix: prefix, KeyCodec: codec}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// The codec through the real Redis store: both stored keys are sealed,
// rotation of the session key works (the store compares fingerprints, not
// the randomized sealed text), key rotation keeps sessions, a wrong key
// loses them (ErrNotFound, never garbage), and plain records are accepted
// only with AllowPlain.
func TestWithRedisStore(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	const prefix = "ks:test:"
	oldKey, newK := newKey(t, 32), newKey(t, 32)
	sk1, sk2 := sessionKey(t), sessionKey(t)
	hash := func() map[string]string { return srv.Client().HGetAll(ctx, prefix+"u:o1").Val() }

	codecOld := mustNew(t, []string{oldKey})
	r := openStore(t, srv, prefix, codecOld)
	if _, err := r.Save(ctx, "ref1", store.Session{OpenID: "o1", SessionKey: sk1}, time.Hour); err != nil {
		t.Fatal(err)
	}
	// The same key again is not a rotation.
	got, err := r.Save(ctx, "ref1", store.Session{OpenID: "o1", SessionKey: sk1}, time.Hour)
	if err != nil || got.SessionKey != sk1 || got.PrevSessionKey != "" {
		t.Fatalf("same key saved twice: %+v, %v", got, err)
	}
	got, err = r.Save(ctx, "ref2", store.Session{OpenID: "o1", SessionKey: sk2}, time.Hour)
	if err != nil || got.SessionKey != sk2 || got.PrevSessionKey != sk1 {
		t.Fatalf("rotated: %+v, %v", got, err)
	}
	h := hash()
	for _, f := range []string{"sk", "psk"} {
		if !strings.HasPrefix(h[f], Prefix+codecOld.WriteKeyID()+":") {
			t.Fatalf("field %s not sealed with the key: %q", f, h[f])
		}
	}
	for f, v := range h {
		if strings.Contains(v, sk1) || strings.Contains(v, sk2) {
			t.Fatalf("field %s holds a plain session key", f)
		}
	}

	// Key rotation: new key first, old one kept.
	rotated := openStore(t, srv, prefix, mustNew(t, []string{newK, oldKey}))
	got, err = rotated.Lookup(ctx, "ref1")
	if err != nil || got.SessionKey != sk2 || got.PrevSessionKey != sk1 {
		t.Fatalf("lookup after key rotation: %+v, %v", got, err)
	}

	// A wrong key: not found, not garbage.
	wrong := openStore(t, srv, prefix, mustNew(t, []string{newKey(t, 32)}))
	if got, err := wrong.Lookup(ctx, "ref1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("lookup with a wrong key: %+v, %v; want ErrNotFound", got, err)
	}

	// A plain record from before encryption was turned on.
	plain := openStore(t, srv, "ks:plain:", nil)
	if _, err := plain.Save(ctx, "ref3", store.Session{OpenID: "o2", SessionKey: sk1}, time.Hour); err != nil {
		t.Fatal(err)
	}
	strict := openStore(t, srv, "ks:plain:", mustNew(t, []string{newK}))
	if got, err := strict.Lookup(ctx, "ref3"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("plain record, strict codec: %+v, %v; want ErrNotFound", got, err)
	}
	lax := openStore(t, srv, "ks:plain:", mustNew(t, []string{newK}, AllowPlain(true)))
	if got, err := lax.Lookup(ctx, "ref3"); err != nil || got.SessionKey != sk1 {
		t.Fatalf("plain record with AllowPlain: %+v, %v", got, err)
	}
	// A new login seals the new current key; the old plain one becomes the
	// previous key as it is (it is dropped at the next rotation or expiry).
	got, err = lax.Save(ctx, "ref4", store.Session{OpenID: "o2", SessionKey: sk2}, time.Hour)
	if err != nil || got.SessionKey != sk2 || got.PrevSessionKey != sk1 {
		t.Fatalf("first sealed save over a plain record: %+v, %v", got, err)
	}
	if v := srv.Client().HGet(ctx, "ks:plain:u:o2", "sk").Val(); !strings.HasPrefix(v, Prefix) {
		t.Fatal("new current key not sealed")
	}
}
