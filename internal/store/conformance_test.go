package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// harness is one Store under the conformance suite.
type harness struct {
	s Store
	// ttl is a short TTL the store honours; pass makes d elapse (a fake
	// clock for Memory, real time for Redis).
	ttl  time.Duration
	pass func(d time.Duration)
}

// factory makes a fresh, empty store for one subtest.
type factory func(t *testing.T) harness

// fakeClock is Memory's clock in tests.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Unix(1700000000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// sessionKey makes a plausible session key (base64 of 16 bytes).
func sessionKey(i int) string { return fmt.Sprintf("SK%020d==", i) }

// ref makes a plausible ref: a hex SHA-256, as the handler makes them.
func ref(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func runConformance(t *testing.T, mk factory) {
	tests := []struct {
		name string
		fn   func(t *testing.T, h harness)
	}{
		{"SaveLookup", testSaveLookup},
		{"SetIfAbsent", testSetIfAbsent},
		{"Rotation", testRotation},
		{"OldRefFindsCurrentRecord", testOldRef},
		{"MergeKeepsUnionID", testMerge},
		{"TTLExpiry", testTTLExpiry},
		{"SaveRefreshesTTL", testSaveRefreshesTTL},
		{"RecordExpiryHidesRefs", testRecordExpiryHidesRefs},
		{"Bind", testBind},
		{"LookupTTL", testLookupTTL},
		{"Touch", testTouch},
		{"TouchKeepsLongerRecord", testTouchKeepsLongerRecord},
		{"Unbind", testUnbind},
		{"EmptyOpenID", testEmptyOpenID},
		{"Claim", testClaim},
		{"ClaimExpiry", testClaimExpiry},
		{"ClaimConcurrent", testClaimConcurrent},
		{"GetSet", testGetSet},
		{"SetTTL", testSetTTL},
		{"Lock", testLock},
		{"UnlockOnlyIfOurs", testUnlockOnlyIfOurs},
		{"LockConcurrent", testLockConcurrent},
		{"Concurrency", testConcurrency},
	}
	// The group returns once its parallel subtests have finished.
	t.Run("suite", func(t *testing.T) {
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				h := mk(t)
				tc.fn(t, h)
			})
		}
	})
}

var bg = context.Background()

func mustSave(t *testing.T, h harness, r string, s Session, ttl time.Duration) Session {
	t.Helper()
	got, err := h.s.Save(bg, r, s, ttl)
	if err != nil {
		t.Fatalf("Save: %v", err)
	}
	return got
}

func mustLookup(t *testing.T, h harness, r string) Session {
	t.Helper()
	got, err := h.s.Lookup(bg, r)
	if err != nil {
		t.Fatalf("Lookup: %v", err)
	}
	return got
}

func wantNotFound(t *testing.T, err error, what string) {
	t.Helper()
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("%s: err = %v, want ErrNotFound", what, err)
	}
}

func testSaveLookup(t *testing.T, h harness) {
	in := Session{OpenID: "oABC123", UnionID: "uXYZ", SessionKey: sessionKey(1), PrevSessionKey: "ignored",
		Fields: map[string]string{"anonymous_openid": "anon1", "tenant_key": "t&=%1 x"}}
	got := mustSave(t, h, ref("code1"), in, time.Hour)
	want := in
	want.PrevSessionKey = ""
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Save returned %+v, want %+v", got, want)
	}
	if got := mustLookup(t, h, ref("code1")); !reflect.DeepEqual(got, want) {
		t.Fatalf("Lookup = %+v, want %+v", got, want)
	}
	_, err := h.s.Lookup(bg, ref("other"))
	wantNotFound(t, err, "Lookup of an unknown ref")
	// An empty unionid stays empty.
	in2 := Session{OpenID: "o2", SessionKey: sessionKey(2)}
	mustSave(t, h, ref("code2"), in2, time.Hour)
	if got := mustLookup(t, h, ref("code2")); !reflect.DeepEqual(got, in2) {
		t.Fatalf("Lookup = %+v, want %+v", got, in2)
	}
}

func testRotation(t *testing.T, h harness) {
	a, b, c := sessionKey(1), sessionKey(2), sessionKey(3)
	u := Session{OpenID: "oRot", UnionID: "uRot"}
	u.SessionKey = a
	if got := mustSave(t, h, ref("c1"), u, time.Hour); got.SessionKey != a || got.PrevSessionKey != "" {
		t.Fatalf("first save: %+v", got)
	}
	u.SessionKey = b
	if got := mustSave(t, h, ref("c2"), u, time.Hour); got.SessionKey != b || got.PrevSessionKey != a {
		t.Fatalf("save B: current %q prev %q, want B, A", got.SessionKey, got.PrevSessionKey)
	}
	// The same key again: no rotation, prev stays A.
	if got := mustSave(t, h, ref("c3"), u, time.Hour); got.SessionKey != b || got.PrevSessionKey != a {
		t.Fatalf("save B again: current %q prev %q, want B, A", got.SessionKey, got.PrevSessionKey)
	}
	if got := mustLookup(t, h, ref("c3")); got.SessionKey != b || got.PrevSessionKey != a {
		t.Fatalf("lookup: %+v", got)
	}
	u.SessionKey = c
	if got := mustSave(t, h, ref("c4"), u, time.Hour); got.SessionKey != c || got.PrevSessionKey != b {
		t.Fatalf("save C: current %q prev %q, want C, B", got.SessionKey, got.PrevSessionKey)
	}
}

func testOldRef(t *testing.T, h harness) {
	u := Session{OpenID: "oOld", SessionKey: sessionKey(1)}
	mustSave(t, h, ref("login1"), u, time.Hour)
	u.SessionKey = sessionKey(2)
	mustSave(t, h, ref("login2"), u, time.Hour)
	for _, r := range []string{ref("login1"), ref("login2")} {
		got := mustLookup(t, h, r)
		if got.OpenID != "oOld" || got.SessionKey != sessionKey(2) || got.PrevSessionKey != sessionKey(1) {
			t.Fatalf("Lookup(%s) = %+v, want the current record", r, got)
		}
	}
}

func testMerge(t *testing.T, h harness) {
	mustSave(t, h, ref("m1"), Session{OpenID: "oM", UnionID: "uM", Fields: map[string]string{"a": "aM", "b": "bM"}, SessionKey: sessionKey(1)}, time.Hour)
	got := mustSave(t, h, ref("m2"), Session{OpenID: "oM", SessionKey: sessionKey(1)}, time.Hour)
	if got.UnionID != "uM" || got.Fields["a"] != "aM" || got.Fields["b"] != "bM" {
		t.Fatalf("empty unionid/fields replaced the stored ones: %+v", got)
	}
	got = mustSave(t, h, ref("m2"), Session{OpenID: "oM", Fields: map[string]string{"a": "aM2"}, SessionKey: sessionKey(1)}, time.Hour)
	if !reflect.DeepEqual(got.Fields, map[string]string{"a": "aM2"}) {
		t.Fatalf("new fields did not replace the stored ones as a whole: %+v", got)
	}
	got = mustSave(t, h, ref("m3"), Session{OpenID: "oM", UnionID: "uM2", SessionKey: sessionKey(1)}, time.Hour)
	if got.UnionID != "uM2" {
		t.Fatalf("a new unionid did not replace the stored one: %+v", got)
	}
}

func testTTLExpiry(t *testing.T, h harness) {
	mustSave(t, h, ref("t1"), Session{OpenID: "oT", SessionKey: sessionKey(1)}, h.ttl)
	mustLookup(t, h, ref("t1"))
	h.pass(h.ttl + h.ttl/10)
	_, err := h.s.Lookup(bg, ref("t1"))
	wantNotFound(t, err, "Lookup after the TTL")
	// A new login after expiry starts a fresh record: no previous key.
	got := mustSave(t, h, ref("t2"), Session{OpenID: "oT", SessionKey: sessionKey(2)}, h.ttl)
	if got.PrevSessionKey != "" {
		t.Fatalf("expired key came back as previous: %+v", got)
	}
}

func testSaveRefreshesTTL(t *testing.T, h harness) {
	u := Session{OpenID: "oR", SessionKey: sessionKey(1)}
	mustSave(t, h, ref("r1"), u, h.ttl)
	h.pass(h.ttl * 2 / 3)
	mustSave(t, h, ref("r2"), u, h.ttl) // refreshes the record, not r1
	h.pass(h.ttl * 2 / 3)
	mustLookup(t, h, ref("r2"))
	_, err := h.s.Lookup(bg, ref("r1"))
	wantNotFound(t, err, "Lookup of a ref past its own TTL")
}

func testRecordExpiryHidesRefs(t *testing.T, h harness) {
	u := Session{OpenID: "oH", SessionKey: sessionKey(1)}
	mustSave(t, h, ref("long"), u, 100*h.ttl)
	mustSave(t, h, ref("short"), u, h.ttl) // the record now lives h.ttl
	h.pass(h.ttl + h.ttl/10)
	_, err := h.s.Lookup(bg, ref("long"))
	wantNotFound(t, err, "Lookup of a live ref to an expired record")
}

func testBind(t *testing.T, h harness) {
	u := Session{OpenID: "oB", SessionKey: sessionKey(1)}
	mustSave(t, h, ref("code"), u, time.Hour)
	if err := h.s.Bind(bg, ref("token"), "oB", time.Hour); err != nil {
		t.Fatal(err)
	}
	if got := mustLookup(t, h, ref("token")); got.OpenID != "oB" || got.SessionKey != sessionKey(1) {
		t.Fatalf("Lookup(token) = %+v", got)
	}
	u.SessionKey = sessionKey(2)
	mustSave(t, h, ref("code2"), u, time.Hour)
	if got := mustLookup(t, h, ref("token")); got.SessionKey != sessionKey(2) || got.PrevSessionKey != sessionKey(1) {
		t.Fatalf("Lookup(token) after rotation = %+v", got)
	}
	// A ref bound to a user without a record finds nothing.
	if err := h.s.Bind(bg, ref("ghost"), "oNobody", time.Hour); err != nil {
		t.Fatal(err)
	}
	_, err := h.s.Lookup(bg, ref("ghost"))
	wantNotFound(t, err, "Lookup of a ref to no record")
	// Bind's TTL.
	if err := h.s.Bind(bg, ref("short"), "oB", h.ttl); err != nil {
		t.Fatal(err)
	}
	h.pass(h.ttl + h.ttl/10)
	_, err = h.s.Lookup(bg, ref("short"))
	wantNotFound(t, err, "Lookup of an expired bound ref")
	mustLookup(t, h, ref("token"))
}

func testLookupTTL(t *testing.T, h harness) {
	mustSave(t, h, ref("lt"), Session{OpenID: "oLT", SessionKey: sessionKey(1)}, time.Hour)
	if err := h.s.Bind(bg, ref("lt-tok"), "oLT", 10*time.Minute); err != nil {
		t.Fatal(err)
	}
	s, ttl, err := h.s.LookupTTL(bg, ref("lt-tok"))
	if err != nil || s.OpenID != "oLT" || s.SessionKey != sessionKey(1) {
		t.Fatalf("LookupTTL = %+v, %v", s, err)
	}
	if ttl <= 9*time.Minute || ttl > 10*time.Minute {
		t.Fatalf("LookupTTL ttl %v, want just under 10m", ttl)
	}
	h.pass(h.ttl / 2)
	if _, ttl2, err := h.s.LookupTTL(bg, ref("lt-tok")); err != nil || ttl2 >= ttl {
		t.Fatalf("LookupTTL after a while: ttl %v (was %v), %v", ttl2, ttl, err)
	}
	// No expiry: 0.
	if err := h.s.Bind(bg, ref("lt-forever"), "oLT", 0); err != nil {
		t.Fatal(err)
	}
	if _, ttl, err := h.s.LookupTTL(bg, ref("lt-forever")); err != nil || ttl != 0 {
		t.Fatalf("LookupTTL of a ref without expiry: %v, %v", ttl, err)
	}
	_, _, err = h.s.LookupTTL(bg, ref("lt-none"))
	wantNotFound(t, err, "LookupTTL of an unknown ref")
	if err := h.s.Bind(bg, ref("lt-ghost"), "oNobody", time.Hour); err != nil {
		t.Fatal(err)
	}
	_, _, err = h.s.LookupTTL(bg, ref("lt-ghost"))
	wantNotFound(t, err, "LookupTTL of a ref to no record")
}

// Touch extends the ref and the record: both outlive their first TTL.
func testTouch(t *testing.T, h harness) {
	mustSave(t, h, ref("tc"), Session{OpenID: "oTC", SessionKey: sessionKey(1)}, h.ttl)
	if err := h.s.Bind(bg, ref("tc-tok"), "oTC", h.ttl); err != nil {
		t.Fatal(err)
	}
	h.pass(h.ttl / 2)
	if err := h.s.Touch(bg, ref("tc-tok"), "oTC", 2*h.ttl); err != nil {
		t.Fatalf("Touch: %v", err)
	}
	if _, ttl, err := h.s.LookupTTL(bg, ref("tc-tok")); err != nil || ttl <= 3*h.ttl/2 {
		t.Fatalf("after Touch: ttl %v, %v; want more than %v", ttl, err, 3*h.ttl/2)
	}
	h.pass(h.ttl) // past the first TTL of both the ref and the record
	if got := mustLookup(t, h, ref("tc-tok")); got.OpenID != "oTC" {
		t.Fatalf("Lookup after Touch = %+v", got)
	}
	// The login's own ref was not extended.
	_, err := h.s.Lookup(bg, ref("tc"))
	wantNotFound(t, err, "Lookup of a ref Touch did not extend")
	h.pass(h.ttl + h.ttl/5)
	_, err = h.s.Lookup(bg, ref("tc-tok"))
	wantNotFound(t, err, "Lookup past the touched TTL")
	// A ref that is gone is not brought back.
	wantNotFound(t, h.s.Touch(bg, ref("tc-none"), "oTC", time.Hour), "Touch of an unknown ref")
	_, err = h.s.Lookup(bg, ref("tc-none"))
	wantNotFound(t, err, "Lookup after a Touch of an unknown ref")
	if err := h.s.Touch(bg, ref("tc-tok"), "oTC", 0); err == nil {
		t.Fatal("Touch without a ttl succeeded")
	}
}

// Touch never shortens the record (a later login gave it a longer TTL).
func testTouchKeepsLongerRecord(t *testing.T, h harness) {
	mustSave(t, h, ref("tk"), Session{OpenID: "oTK", SessionKey: sessionKey(1)}, 100*h.ttl)
	if err := h.s.Bind(bg, ref("tk-tok"), "oTK", h.ttl); err != nil {
		t.Fatal(err)
	}
	if err := h.s.Touch(bg, ref("tk-tok"), "oTK", h.ttl); err != nil {
		t.Fatal(err)
	}
	h.pass(h.ttl + h.ttl/5)
	if got := mustLookup(t, h, ref("tk")); got.OpenID != "oTK" {
		t.Fatalf("the record was shortened by Touch: %+v", got)
	}
}

// Unbind ends one ref at once; the record and other refs stay.
func testUnbind(t *testing.T, h harness) {
	mustSave(t, h, ref("ub"), Session{OpenID: "oUB", SessionKey: sessionKey(1)}, time.Hour)
	for _, tok := range []string{"ub-1", "ub-2"} {
		if err := h.s.Bind(bg, ref(tok), "oUB", time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.s.Unbind(bg, ref("ub-1")); err != nil {
		t.Fatalf("Unbind: %v", err)
	}
	_, err := h.s.Lookup(bg, ref("ub-1"))
	wantNotFound(t, err, "Lookup of an unbound ref")
	mustLookup(t, h, ref("ub-2"))
	mustLookup(t, h, ref("ub"))
	if err := h.s.Unbind(bg, ref("ub-1")); err != nil {
		t.Fatalf("Unbind twice: %v", err)
	}
	wantNotFound(t, h.s.Touch(bg, ref("ub-1"), "oUB", time.Hour), "Touch of an unbound ref")
}

func testEmptyOpenID(t *testing.T, h harness) {
	if _, err := h.s.Save(bg, ref("e"), Session{SessionKey: sessionKey(1)}, time.Hour); err == nil {
		t.Fatal("Save without openid succeeded")
	}
	if err := h.s.Bind(bg, ref("e"), "", time.Hour); err == nil {
		t.Fatal("Bind without openid succeeded")
	}
}

func claimT(t *testing.T, h harness, r string, ttl time.Duration) (bool, []byte) {
	t.Helper()
	won, failure, err := h.s.Claim(bg, r, ttl)
	if err != nil {
		t.Fatalf("Claim: %v", err)
	}
	return won, failure
}

func testClaim(t *testing.T, h harness) {
	r := ref("claim-code")
	if won, f := claimT(t, h, r, time.Minute); !won || f != nil {
		t.Fatalf("first claim: won=%v failure=%q", won, f)
	}
	if won, f := claimT(t, h, r, time.Minute); won || f != nil {
		t.Fatalf("second claim: won=%v failure=%q, want lost with nil failure", won, f)
	}
	if err := h.s.Fail(bg, r, []byte(`{"errcode":40029}`), time.Minute); err != nil {
		t.Fatal(err)
	}
	if won, f := claimT(t, h, r, time.Minute); won || string(f) != `{"errcode":40029}` {
		t.Fatalf("claim after Fail: won=%v failure=%q", won, f)
	}
	// An empty failure is still a failure (non-nil).
	r2 := ref("claim-empty")
	claimT(t, h, r2, time.Minute)
	if err := h.s.Fail(bg, r2, nil, time.Minute); err != nil {
		t.Fatal(err)
	}
	if won, f := claimT(t, h, r2, time.Minute); won || f == nil || len(f) != 0 {
		t.Fatalf("claim after an empty Fail: won=%v failure=%#v", won, f)
	}
	// Claims are per ref.
	if won, _ := claimT(t, h, ref("claim-other"), time.Minute); !won {
		t.Fatal("claim of another ref lost")
	}
}

func testClaimExpiry(t *testing.T, h harness) {
	r := ref("claim-exp")
	if won, _ := claimT(t, h, r, h.ttl); !won {
		t.Fatal("first claim lost")
	}
	r2 := ref("claim-exp-failed")
	claimT(t, h, r2, h.ttl)
	if err := h.s.Fail(bg, r2, []byte("boom"), h.ttl); err != nil {
		t.Fatal(err)
	}
	h.pass(h.ttl + h.ttl/10)
	if won, f := claimT(t, h, r, h.ttl); !won || f != nil {
		t.Fatalf("claim after the TTL: won=%v failure=%q", won, f)
	}
	if won, f := claimT(t, h, r2, h.ttl); !won || f != nil {
		t.Fatalf("claim after the failure's TTL: won=%v failure=%q", won, f)
	}
}

func testClaimConcurrent(t *testing.T, h harness) {
	const n = 32
	var wins atomic.Int32
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			won, _, err := h.s.Claim(bg, ref("race"), time.Minute)
			if err != nil {
				t.Error(err)
			}
			if won {
				wins.Add(1)
			}
		})
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d winners, want 1", wins.Load())
	}
}

func testGetSet(t *testing.T, h harness) {
	_, err := h.s.Get(bg, "access_token")
	wantNotFound(t, err, "Get of an unset name")
	v := []byte("tok-1")
	if err := h.s.Set(bg, "access_token", v, time.Hour); err != nil {
		t.Fatal(err)
	}
	v[0] = 'X' // the store keeps its own copy
	got, err := h.s.Get(bg, "access_token")
	if err != nil || string(got) != "tok-1" {
		t.Fatalf("Get = %q, %v", got, err)
	}
	got[0] = 'Y'
	if got, _ := h.s.Get(bg, "access_token"); string(got) != "tok-1" {
		t.Fatalf("Get after mutating a returned slice = %q", got)
	}
	if err := h.s.Set(bg, "access_token", []byte("tok-2"), time.Hour); err != nil {
		t.Fatal(err)
	}
	if got, _ := h.s.Get(bg, "access_token"); string(got) != "tok-2" {
		t.Fatalf("Get after overwrite = %q", got)
	}
	if err := h.s.Set(bg, "bin", []byte{0, 1, 2, 255}, time.Hour); err != nil {
		t.Fatal(err)
	}
	if got, _ := h.s.Get(bg, "bin"); string(got) != "\x00\x01\x02\xff" {
		t.Fatalf("binary value = %q", got)
	}
}

// SetIfAbsent: the first value stays; later callers, concurrent ones
// too, get it; after the TTL the name is free again.
func testSetIfAbsent(t *testing.T, h harness) {
	cur, stored, err := h.s.SetIfAbsent(bg, "owner", []byte("alice"), h.ttl)
	if err != nil || !stored || string(cur) != "alice" {
		t.Fatalf("first: %q %v %v", cur, stored, err)
	}
	cur, stored, err = h.s.SetIfAbsent(bg, "owner", []byte("bob"), h.ttl)
	if err != nil || stored || string(cur) != "alice" {
		t.Fatalf("second: %q %v %v", cur, stored, err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	winners := 0
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, stored, err := h.s.SetIfAbsent(bg, "race", []byte(fmt.Sprint(i)), h.ttl)
			if err != nil {
				t.Error(err)
			}
			if stored {
				mu.Lock()
				winners++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if winners != 1 {
		t.Fatalf("%d callers stored a value, want 1", winners)
	}
	h.pass(h.ttl + h.ttl/2)
	cur, stored, err = h.s.SetIfAbsent(bg, "owner", []byte("carol"), h.ttl)
	if err != nil || !stored || string(cur) != "carol" {
		t.Fatalf("after the TTL: %q %v %v", cur, stored, err)
	}
}

func testSetTTL(t *testing.T, h harness) {
	if err := h.s.Set(bg, "short", []byte("1"), h.ttl); err != nil {
		t.Fatal(err)
	}
	if err := h.s.Set(bg, "forever", []byte("2"), 0); err != nil {
		t.Fatal(err)
	}
	h.pass(h.ttl + h.ttl/10)
	_, err := h.s.Get(bg, "short")
	wantNotFound(t, err, "Get after the TTL")
	if got, err := h.s.Get(bg, "forever"); err != nil || string(got) != "2" {
		t.Fatalf("Get of a value without TTL = %q, %v", got, err)
	}
}

func lock(t *testing.T, h harness, name string, ttl time.Duration) (func(), bool) {
	t.Helper()
	unlock, ok, err := h.s.Lock(bg, name, ttl)
	if err != nil {
		t.Fatalf("Lock: %v", err)
	}
	if unlock == nil {
		t.Fatal("Lock returned a nil unlock")
	}
	return unlock, ok
}

func testLock(t *testing.T, h harness) {
	unlock, ok := lock(t, h, "refresh", time.Minute)
	if !ok {
		t.Fatal("first Lock failed")
	}
	if un2, ok := lock(t, h, "refresh", time.Minute); ok {
		t.Fatal("second Lock succeeded while held")
	} else {
		un2() // a failed Lock's unlock is harmless
	}
	if _, ok := lock(t, h, "other", time.Minute); !ok {
		t.Fatal("Lock of another name failed")
	}
	unlock()
	unlock() // twice is harmless
	un3, ok := lock(t, h, "refresh", time.Minute)
	if !ok {
		t.Fatal("Lock after unlock failed")
	}
	un3()
}

func testUnlockOnlyIfOurs(t *testing.T, h harness) {
	unlock1, ok := lock(t, h, "L", h.ttl)
	if !ok {
		t.Fatal("Lock failed")
	}
	h.pass(h.ttl + h.ttl/10) // ours expires
	unlock2, ok := lock(t, h, "L", time.Minute)
	if !ok {
		t.Fatal("Lock after expiry failed")
	}
	unlock1() // not ours any more: must not release the other holder's
	if _, ok := lock(t, h, "L", time.Minute); ok {
		t.Fatal("a stale unlock released someone else's lock")
	}
	unlock2()
	if _, ok := lock(t, h, "L", time.Minute); !ok {
		t.Fatal("Lock after the holder's unlock failed")
	}
}

func testLockConcurrent(t *testing.T, h harness) {
	const n = 16
	var held, got atomic.Int32
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			unlock, ok, err := h.s.Lock(bg, "C", time.Minute)
			if err != nil {
				t.Error(err)
				return
			}
			if ok {
				got.Add(1)
				if held.Add(1) != 1 {
					t.Error("two holders at once")
				}
			}
			_ = unlock
		})
	}
	wg.Wait()
	if got.Load() != 1 {
		t.Fatalf("%d goroutines got the lock, want 1", got.Load())
	}
}

func testConcurrency(t *testing.T, h harness) {
	const workers, ops, users = 16, 150, 8
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for i := range ops {
				u := rng.IntN(users)
				openid := fmt.Sprintf("oC%d", u)
				r := ref(fmt.Sprintf("w%d-i%d", w, i))
				k := sessionKey(rng.IntN(4))
				s, err := h.s.Save(bg, r, Session{OpenID: openid, SessionKey: k}, time.Hour)
				if err != nil {
					t.Error(err)
					return
				}
				if s.OpenID != openid || s.SessionKey != k {
					t.Errorf("Save returned %+v", s)
					return
				}
				got, err := h.s.Lookup(bg, r)
				if err != nil {
					t.Error(err)
					return
				}
				// Others may have saved the same user since: the
				// record is this user's, with a key from the set.
				if got.OpenID != openid || len(got.SessionKey) != len(k) {
					t.Errorf("Lookup = %+v", got)
					return
				}
				if got.PrevSessionKey == got.SessionKey {
					t.Errorf("previous key equals current: %+v", got)
					return
				}
			}
		})
	}
	wg.Wait()
}
