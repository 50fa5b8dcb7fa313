package integration

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/keyseal"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/redistest"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/wxcrypt"
)

// atRestKey is a fresh encryption key: base64 of 32 random bytes.
func atRestKey(t *testing.T) string {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b)
}

// atRestBody is a site body: the wechat miniprogram block on Redis with
// the given lines in the store's block, then the upstream.
func atRestBody(sim *Sim, up *Upstream, rs *redistest.Server, storeLines ...string) string {
	store := "store redis " + rs.URL()
	if len(storeLines) > 0 {
		store += " {\n\t\t\t" + strings.Join(storeLines, "\n\t\t\t") + "\n\t\t}"
	}
	return mpBlock("wechat", wxApp, wxSecret, sim.URL, store) + "\n\treverse_proxy " + strings.TrimPrefix(up.URL, "http://")
}

// atRestRecord reads the user's raw Redis hash.
func atRestRecord(t *testing.T, rs *redistest.Server, openid string) map[string]string {
	t.Helper()
	key := "mp:wechat:" + wxApp + ":u:" + openid
	h, err := rs.Client().HGetAll(context.Background(), key).Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(h) == 0 {
		t.Fatalf("no user record at %s", key)
	}
	return h
}

// atRestAllValues returns every string stored in Redis (string values and
// hash fields), with key names, for scanning.
func atRestAllValues(t *testing.T, rs *redistest.Server) []string {
	t.Helper()
	ctx := context.Background()
	c := rs.Client()
	keys, err := c.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, k := range keys {
		out = append(out, k)
		switch c.Type(ctx, k).Val() {
		case "string":
			out = append(out, c.Get(ctx, k).Val())
		case "hash":
			for f, v := range c.HGetAll(ctx, k).Val() {
				out = append(out, f, v)
			}
		}
	}
	return out
}

// isSessionKeyText: base64 of exactly 16 bytes, as the platform gives it.
func isSessionKeyText(s string) bool {
	b, err := base64.StdEncoding.DecodeString(s)
	return err == nil && len(b) == 16
}

// atRestOpen checks that a stored field is sealed with the key whose id is
// kid and opens, with codec, to a session key; it returns that key.
func atRestOpen(t *testing.T, codec *keyseal.Codec, field, stored, kid string) string {
	t.Helper()
	if isSessionKeyText(stored) {
		t.Fatalf("field %s holds a plain session key", field)
	}
	if !strings.HasPrefix(stored, keyseal.Prefix+kid+":") || len(stored) <= 24 {
		t.Fatalf("field %s is not sealed with key %s: %.13q...", field, kid, stored)
	}
	sk, err := codec.Open(stored)
	if err != nil {
		t.Fatalf("field %s does not open with the test key: %v", field, err)
	}
	if !isSessionKeyText(sk) {
		t.Fatalf("field %s opens to something that is not a session key (%d chars)", field, len(sk))
	}
	return sk
}

// atRestDecrypts checks that sessionKey decrypts the phone payload: it is
// the user's real session key.
func atRestDecrypts(t *testing.T, what, sessionKey, ed, iv, phone string) {
	t.Helper()
	plain, _, err := wxcrypt.Open(wxApp, []string{sessionKey}, ed, iv)
	if err != nil {
		t.Fatalf("%s: the opened key does not decrypt the payload: %v", what, err)
	}
	p, err := wxcrypt.ParsePhone(plain)
	if err != nil || p.PhoneNumber != phone {
		t.Fatalf("%s: decrypted %+v, %v; want %s", what, p, err, phone)
	}
}

func phoneOK(t *testing.T, c *Caddy, up *Upstream, code, ed, iv, phone string) {
	t.Helper()
	wantOK(t, postJSON(t, c.URL+"/api/phone", map[string]any{"code": code, "encryptedData": ed, "iv": iv}))
	if got := up.Last(t).Header.Get("X-Mp-Phone"); got != phone {
		t.Fatalf("X-Mp-Phone %q, want %s", got, phone)
	}
}

// TestAtRestSealedRotatedWrongKey: with encryption_keys, both stored
// session keys are sealed (and are the user's real keys once opened with
// the configured key); a reload with a new key first keeps old sessions
// working and seals new writes with the new key; a Caddy with another key
// answers session_not_found; the key never shows in the logs.
func TestAtRestSealedRotatedWrongKey(t *testing.T) {
	rs := redistest.Start(t)
	sim, up := newSim(t), newUpstream(t)
	key1, key2, wrong := atRestKey(t), atRestKey(t), atRestKey(t)
	t.Setenv("MP_TEST_KEY1", key1)
	t.Setenv("MP_TEST_KEY2", key2)
	t.Setenv("MP_TEST_WRONG", wrong)
	codec1, err := keyseal.New([]string{key1})
	if err != nil {
		t.Fatal(err)
	}
	codec2, err := keyseal.New([]string{key2})
	if err != nil {
		t.Fatal(err)
	}
	both, err := keyseal.New([]string{key2, key1})
	if err != nil {
		t.Fatal(err)
	}
	kid1, kid2 := codec1.WriteKeyID(), codec2.WriteKeyID()

	a := startCaddy(t, atRestBody(sim, up, rs, "encryption_keys {env.MP_TEST_KEY1}"))

	// Two logins: a current and a previous key in the record. The first
	// payload is made before the second login (under the key that becomes
	// the previous one).
	lr1 := login(t, sim, wxApp, "ada")
	wantOK(t, postJSON(t, a.URL+"/api/login", map[string]any{"code": lr1.Code}))
	edPrev, ivPrev := phonePayload(t, sim, wxApp, "ada", "13800138101")
	lr2 := login(t, sim, wxApp, "ada")
	wantOK(t, postJSON(t, a.URL+"/api/login", map[string]any{"code": lr2.Code}))
	edCur, ivCur := phonePayload(t, sim, wxApp, "ada", "13800138102")
	phoneOK(t, a, up, lr2.Code, edCur, ivCur, "13800138102")
	phoneOK(t, a, up, lr2.Code, edPrev, ivPrev, "13800138101")

	rec := atRestRecord(t, rs, lr1.OpenID)
	sk := atRestOpen(t, codec1, "sk", rec["sk"], kid1)
	psk := atRestOpen(t, codec1, "psk", rec["psk"], kid1)
	atRestDecrypts(t, "sk", sk, edCur, ivCur, "13800138102")
	atRestDecrypts(t, "psk", psk, edPrev, ivPrev, "13800138101")
	// No value anywhere in Redis holds either session key in the clear.
	for _, v := range atRestAllValues(t, rs) {
		if strings.Contains(v, sk) || strings.Contains(v, psk) {
			t.Fatal("a Redis key or value holds a session key in the clear")
		}
		if isSessionKeyText(v) {
			t.Fatal("a Redis value is a plain 16-byte base64 key")
		}
	}

	// A Caddy with another key: the session is not found (not a 500, not a
	// decrypt failure on garbage), and the upstream is not called.
	w := startCaddy(t, atRestBody(sim, up, rs, "encryption_keys {env.MP_TEST_WRONG}"))
	before := up.Count()
	wantError(t, postJSON(t, w.URL+"/api/phone", map[string]any{"code": lr2.Code, "encryptedData": edCur, "iv": ivCur}), 401, "session_not_found")
	if up.Count() != before {
		t.Fatal("the upstream was called with a session that does not open")
	}
	w.Stop()

	// Rotation: the new key first, the old one after it.
	a.Reload(t, atRestBody(sim, up, rs, "encryption_keys {env.MP_TEST_KEY2} {env.MP_TEST_KEY1}"))
	// The old server closes its idle keep-alive connections: do not send a
	// POST on one of them.
	httpClient.CloseIdleConnections()
	phoneOK(t, a, up, lr2.Code, edCur, ivCur, "13800138102")
	phoneOK(t, a, up, lr1.Code, edPrev, ivPrev, "13800138101")
	// A Caddy started fresh with the new key alone does not know the old
	// one: not found.
	n := startCaddy(t, atRestBody(sim, up, rs, "encryption_keys {env.MP_TEST_KEY2}"))
	wantError(t, postJSON(t, n.URL+"/api/phone", map[string]any{"code": lr2.Code, "encryptedData": edCur, "iv": ivCur}), 401, "session_not_found")

	// A login after the rotation seals the new current key with the new
	// key; the previous one stays as it was sealed (under the old key) and
	// still works while the old key is configured.
	edOld, ivOld := phonePayload(t, sim, wxApp, "ada", "13800138103")
	lr3 := login(t, sim, wxApp, "ada")
	wantOK(t, postJSON(t, a.URL+"/api/login", map[string]any{"code": lr3.Code}))
	edNew, ivNew := phonePayload(t, sim, wxApp, "ada", "13800138104")
	rec = atRestRecord(t, rs, lr1.OpenID)
	sk3 := atRestOpen(t, codec2, "sk after rotation", rec["sk"], kid2)
	psk3 := atRestOpen(t, codec1, "psk after rotation", rec["psk"], kid1)
	atRestDecrypts(t, "sk after rotation", sk3, edNew, ivNew, "13800138104")
	atRestDecrypts(t, "psk after rotation", psk3, edOld, ivOld, "13800138103")
	if _, err := both.Open(rec["sk"]); err != nil {
		t.Fatal(err)
	}
	phoneOK(t, a, up, lr3.Code, edNew, ivNew, "13800138104")
	phoneOK(t, a, up, lr3.Code, edOld, ivOld, "13800138103")
	// The new-key-only Caddy opens the new current key.
	phoneOK(t, n, up, lr3.Code, edNew, ivNew, "13800138104")

	a.Stop()
	n.Stop()
	logs := a.Logs() + w.Logs() + n.Logs()
	noSecrets(t, logs, key1, key2, wrong, sk, psk, sk3, lr1.Code, lr2.Code, lr3.Code, "13800138102")
	if !strings.Contains(a.Logs(), kid1) || !strings.Contains(a.Logs(), kid2) {
		t.Error("the logs do not name the key ids in use")
	}
}

// TestAtRestPlainRecords: records written before encryption was turned on
// are not found by default, and are accepted with encryption_allow_plain,
// whose new writes are sealed.
func TestAtRestPlainRecords(t *testing.T) {
	rs := redistest.Start(t)
	sim, up := newSim(t), newUpstream(t)
	key := atRestKey(t)
	t.Setenv("MP_TEST_KEY1", key)

	plain := startCaddy(t, atRestBody(sim, up, rs))
	lr1 := login(t, sim, wxApp, "bo")
	wantOK(t, postJSON(t, plain.URL+"/api/login", map[string]any{"code": lr1.Code}))
	if sk := atRestRecord(t, rs, lr1.OpenID)["sk"]; !isSessionKeyText(sk) {
		t.Fatal("without encryption_keys the key should be stored as it is")
	}
	plain.Stop()
	ed, iv := phonePayload(t, sim, wxApp, "bo", "13800138201")

	strict := startCaddy(t, atRestBody(sim, up, rs, "encryption_keys {env.MP_TEST_KEY1}"))
	wantError(t, postJSON(t, strict.URL+"/api/phone", map[string]any{"code": lr1.Code, "encryptedData": ed, "iv": iv}), 401, "session_not_found")
	strict.Stop()

	lax := startCaddy(t, atRestBody(sim, up, rs, "encryption_keys {env.MP_TEST_KEY1}", "encryption_allow_plain"))
	phoneOK(t, lax, up, lr1.Code, ed, iv, "13800138201")
	lr2 := login(t, sim, wxApp, "bo")
	wantOK(t, postJSON(t, lax.URL+"/api/login", map[string]any{"code": lr2.Code}))
	codec, err := keyseal.New([]string{key})
	if err != nil {
		t.Fatal(err)
	}
	rec := atRestRecord(t, rs, lr1.OpenID)
	atRestOpen(t, codec, "sk", rec["sk"], codec.WriteKeyID())
	// The previous key is the one stored before, as it was (plain); it
	// goes at the next login or with the record's TTL.
	if !isSessionKeyText(rec["psk"]) {
		t.Fatalf("psk: want the earlier plain key kept as it was")
	}
	phoneOK(t, lax, up, lr2.Code, ed, iv, "13800138201")
	lax.Stop()
	noSecrets(t, lax.Logs(), key, lr1.Code, lr2.Code, rec["psk"])
}

// TestAtRestConfigErrors: `caddy validate` refuses bad configurations
// without printing the key.
func TestAtRestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	short := base64.StdEncoding.EncodeToString([]byte("0123456789abcdefghij")) // 20 bytes
	t.Setenv("MP_TEST_SHORT", short)
	t.Setenv("MP_TEST_UNSET_KEY", "")
	good := atRestKey(t)
	handler := func(store string) string {
		return `{"apps":{"http":{"servers":{"s":{"listen":["127.0.0.1:0"],"routes":[{"handle":[{"handler":"miniprogram",` +
			`"platform":"wechat","app_id":"wx1","app_secret":"s","login":"/l","store":` + store + `}]}]}}}}}`
	}
	tests := []struct {
		name, store, want string
	}{
		{"memory", `{"type":"memory","encryption_keys":["` + good + `"]}`, "for store redis only"},
		{"default store", `{"encryption_keys":["` + good + `"]}`, "for store redis only"},
		{"short key", `{"type":"redis","url":"redis://127.0.0.1:1/0","encryption_keys":["{env.MP_TEST_SHORT}"]}`, "key 1 of 1: key is 20 bytes"},
		{"unset env", `{"type":"redis","url":"redis://127.0.0.1:1/0","encryption_keys":["` + good + `","{env.MP_TEST_UNSET_KEY}"]}`, "encryption key 2 of 2: evaluated placeholder {env.MP_TEST_UNSET_KEY} is empty (is its environment variable set?)"},
		{"allow plain alone", `{"type":"redis","url":"redis://127.0.0.1:1/0","encryption_allow_plain":true}`, "store.encryption_allow_plain: needs encryption_keys"},
		{"same key twice", `{"type":"redis","url":"redis://127.0.0.1:1/0","encryption_keys":["` + good + `","{env.MP_TEST_DUP}"]}`, "same as key 1"},
	}
	t.Setenv("MP_TEST_DUP", good)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "_")+".json")
			if err := os.WriteFile(f, []byte(handler(tt.store)), 0o600); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(caddyBin, "validate", "--config", f)
			cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("caddy validate accepted it:\n%s", out)
			}
			if !strings.Contains(string(out), tt.want) {
				t.Fatalf("output does not contain %q:\n%s", tt.want, out)
			}
			for _, k := range []string{good, short} {
				if strings.Contains(string(out), k) {
					t.Fatal("the output shows a key")
				}
			}
		})
	}
	// A good one, with a placeholder expanding to two keys ("new,old").
	t.Setenv("MP_TEST_KEYS", atRestKey(t)+","+good)
	f := filepath.Join(dir, "good.json")
	if err := os.WriteFile(f, []byte(handler(`{"type":"redis","url":"redis://127.0.0.1:1/0","encryption_keys":["{env.MP_TEST_KEYS}"]}`)), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(caddyBin, "validate", "--config", f)
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("caddy validate: %v\n%s", err, out)
	} else if !strings.Contains(string(out), `"key_ids"`) || strings.Contains(string(out), good) {
		t.Fatalf("validate output: want the two key ids, no key:\n%s", out)
	}
}
