package integration

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/mpsim"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/redistest"
)

// Douyin's phone-code flow: the button's e.detail.code, exchanged with
// get_phonenumber_info and a client token shared by every instance; the
// answer is RSA-encrypted with the app's public key, the handler opens it
// with private_key.

// ttKeyPair makes an RSA key pair of the given size, writes the private
// half as PEM (PKCS#8, or PKCS#1) into a file and returns its path.
func ttKeyPair(t testing.TB, bits int, pkcs1 bool) (*rsa.PrivateKey, string, string) {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		t.Fatal(err)
	}
	var block *pem.Block
	if pkcs1 {
		block = &pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)}
	} else {
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		block = &pem.Block{Type: "PRIVATE KEY", Bytes: der}
	}
	text := string(pem.EncodeToMemory(block))
	path := filepath.Join(t.TempDir(), "douyin_app_private.pem")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return k, path, text
}

// ttEnv is a Douyin env with private_key; the simulator knows the public
// half.
func ttEnv(t *testing.T, bits int, extra ...string) *env {
	t.Helper()
	k, path, _ := ttKeyPair(t, bits, bits == 1024)
	e := newEnv(t, "douyin", append([]string{"private_key " + path}, extra...)...)
	if err := e.sim.SetPublicKey(ttApp, &k.PublicKey); err != nil {
		t.Fatal(err)
	}
	return e
}

func ttPhoneCode(t testing.TB, s *Sim, user, phone string) string {
	t.Helper()
	code, err := s.PhoneCode(ttApp, user, phone)
	if err != nil {
		t.Fatal(err)
	}
	return code
}

func wantTTPhone(t testing.TB, got Recorded, phone, openid string) {
	t.Helper()
	h := got.Header
	if h.Get("X-Mp-Phone") != phone || h.Get("X-Mp-Pure-Phone") != phone || h.Get("X-Mp-Country-Code") != "86" {
		t.Fatalf("phone headers: %v", h)
	}
	if h.Get("X-Mp-Platform") != "douyin" || h.Get("X-Mp-App-Id") != ttApp {
		t.Fatalf("platform/app headers: %v", h)
	}
	if g := h.Get("X-Mp-Openid"); g != openid {
		t.Fatalf("X-Mp-Openid %q, want %q", g, openid)
	}
}

// The code alone and e.detail whole, retries, a dead code; a 1024-bit key
// (two RSA blocks per answer).
func TestDouyinPhoneCode(t *testing.T) {
	e := ttEnv(t, 1024)
	calls := func() int { return e.sim.Calls(mpsim.EndpointGetPhoneNumberInfo) }

	// {code} alone, spoofed identity fields and headers dropped.
	pc := ttPhoneCode(t, e.sim, "dora", "13800138200")
	wantOK(t, postJSON(t, e.url("/api/phone"), map[string]any{"code": pc, "keep": "x", "phoneNumber": "spoofed", "openid": "spoofed"},
		"X-Mp-Openid", "evil", "X-Mp-Phone", "evil"))
	got := e.up.Last(t)
	wantTTPhone(t, got, "13800138200", "")
	body := got.JSON(t)
	wantPhoneFields(t, jsonGetter(body), "13800138200")
	if body["keep"] != "x" || body["openid"] != nil {
		t.Fatalf("forwarded body %v", body)
	}

	// The same code again: the kept result, no second exchange.
	n := calls()
	wantOK(t, postJSON(t, e.url("/api/phone"), map[string]any{"code": pc}))
	wantTTPhone(t, e.up.Last(t), "13800138200", "")
	if calls() != n {
		t.Fatalf("a retried phone code made %d more get_phonenumber_info calls, want 0", calls()-n)
	}

	// e.detail whole, after a login: {errMsg, code, encryptedData, iv}.
	lr, err := e.sim.Login(ttApp, "ella")
	if err != nil {
		t.Fatal(err)
	}
	wantOK(t, postJSON(t, e.url("/api/login"), map[string]any{"code": lr.Code}))
	detail, err := e.sim.PhoneButton(ttApp, "ella", "13800138201")
	if err != nil || detail.Code == "" {
		t.Fatalf("button: %+v %v", detail, err)
	}
	n = calls()
	wantOK(t, postJSON(t, e.url("/api/phone"), detail))
	got = e.up.Last(t)
	wantTTPhone(t, got, "13800138201", "")
	if b := got.JSON(t); b["encryptedData"] != nil || b["iv"] != nil {
		t.Fatalf("the payload was forwarded: %v", b)
	}
	if calls()-n != 1 {
		t.Fatalf("e.detail whole made %d get_phonenumber_info calls, want 1", calls()-n)
	}

	// Ten at once with one code: one exchange.
	pc2 := ttPhoneCode(t, e.sim, "dora", "13800138202")
	n = calls()
	var wg sync.WaitGroup
	res := make([]Response, 10)
	for i := range res {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res[i] = postJSON(t, e.url("/api/phone"), map[string]any{"code": pc2})
		}()
	}
	wg.Wait()
	for _, r := range res {
		wantOK(t, r)
	}
	if calls()-n != 1 {
		t.Fatalf("one phone code sent 10 times at once made %d calls, want 1", calls()-n)
	}

	// Dead codes: unknown, expired.
	before := e.up.Count()
	m := wantError(t, postJSON(t, e.url("/api/phone"), map[string]any{"code": "never-issued"}), 401, "invalid_code")
	if m["platform_errcode"] != 28005187.0 {
		t.Fatalf("unknown code: %v", m)
	}
	expired := ttPhoneCode(t, e.sim, "dora", "13800138203")
	e.sim.Advance(5*time.Minute + time.Second)
	m = wantError(t, postJSON(t, e.url("/api/phone"), map[string]any{"code": expired}), 401, "invalid_code")
	if m["platform_errcode"] != 28005187.0 {
		t.Fatalf("expired code: %v", m)
	}
	if e.up.Count() != before {
		t.Fatal("the upstream was called for a dead phone code")
	}
	// After 5 minutes the client token was superseded by nobody: still
	// one fetch.
	if n := e.sim.Calls(mpsim.EndpointClientToken); n != 1 {
		t.Fatalf("client_token calls %d, want 1", n)
	}

	e.caddy.Stop()
	checkPhoneLogs(t, e.caddy.Logs(), pc, pc2, expired, detail.Code, ttSecret,
		"13800138200", "13800138201", "13800138202", "13800138203")
}

// With the login code in its own field beside the phone code, the session
// is known from the same request: X-Mp-Openid is injected (Douyin's
// exchange takes no openid, so the platform does not check it). A 2048-bit
// PKCS#8 key passed as PEM text in an environment variable.
func TestDouyinPhoneCodeWithSession(t *testing.T) {
	k, _, text := ttKeyPair(t, 2048, false)
	t.Setenv("MP_TEST_TT_PRIVATE_KEY", text)
	e := newEnv(t, "douyin", "private_key {env.MP_TEST_TT_PRIVATE_KEY}", "field phone_code phone_code")
	if err := e.sim.SetPublicKey(ttApp, &k.PublicKey); err != nil {
		t.Fatal(err)
	}
	lr, err := e.sim.Login(ttApp, "finn")
	if err != nil {
		t.Fatal(err)
	}
	wantOK(t, postJSON(t, e.url("/api/login"), map[string]any{"code": lr.Code}))
	pc := ttPhoneCode(t, e.sim, "finn", "13800138210")
	wantOK(t, postJSON(t, e.url("/api/phone"), map[string]any{"code": lr.Code, "phone_code": pc}))
	got := e.up.Last(t)
	wantTTPhone(t, got, "13800138210", lr.OpenID)
	if b := got.JSON(t); b["phone_code"] != nil || b["openid"] != lr.OpenID {
		t.Fatalf("forwarded body %v", b)
	}
	// Without the login code: no identity.
	pc = ttPhoneCode(t, e.sim, "finn", "13800138211")
	wantOK(t, postJSON(t, e.url("/api/phone"), map[string]any{"phone_code": pc}))
	wantTTPhone(t, e.up.Last(t), "13800138211", "")
	e.caddy.Stop()
	checkPhoneLogs(t, e.caddy.Logs(), pc, lr.Code, ttSecret, "13800138210", "13800138211", text[40:80])
}

// A client token the platform rejects (another server fetched twice since)
// is refreshed once and the request succeeds.
func TestDouyinPhoneCodeTokenRefresh(t *testing.T) {
	e := ttEnv(t, 1024)
	wantOK(t, postJSON(t, e.url("/api/phone"), map[string]any{"code": ttPhoneCode(t, e.sim, "gus", "13800138220")}))
	// Someone else with the secret fetches two client tokens: the
	// plugin's is now third from the latest, dead at once.
	for range 2 {
		resp, err := http.Post(e.sim.URL+"/oauth/client_token/", "application/json",
			strings.NewReader(`{"grant_type":"client_credential","client_key":"`+ttApp+`","client_secret":"`+ttSecret+`"}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	before := e.sim.Calls(mpsim.EndpointClientToken)
	wantOK(t, postJSON(t, e.url("/api/phone"), map[string]any{"code": ttPhoneCode(t, e.sim, "gus", "13800138221")}))
	wantTTPhone(t, e.up.Last(t), "13800138221", "")
	if n := e.sim.Calls(mpsim.EndpointClientToken) - before; n != 1 {
		t.Fatalf("client_token calls after the rejection %d, want 1", n)
	}
}

// Two instances sharing Redis fetch one client token between them.
func TestDouyinPhoneCodeTwoInstancesOneToken(t *testing.T) {
	rs := redistest.Start(t)
	k, path, _ := ttKeyPair(t, 1024, true)
	sim, up := newSim(t), newUpstream(t)
	if err := sim.SetPublicKey(ttApp, &k.PublicKey); err != nil {
		t.Fatal(err)
	}
	body := mpBlock("douyin", ttApp, ttSecret, sim.URL, "store redis "+rs.URL(), "private_key "+path) + "\n\treverse_proxy " + strings.TrimPrefix(up.URL, "http://")
	a, b := startCaddy(t, body), startCaddy(t, body)

	const n, workers = 30, 6
	codes, phones := make([]string, n), make([]string, n)
	for i := range n {
		phones[i] = fmt.Sprintf("137%08d", i)
		codes[i] = ttPhoneCode(t, sim, fmt.Sprintf("user%02d", i), phones[i])
	}
	res := make([]Response, n)
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				target := a
				if i%2 == 1 {
					target = b
				}
				res[i] = postJSON(t, target.URL+"/api/phone", map[string]any{"code": codes[i], "i": i})
			}
		}()
	}
	for i := range n {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	for i, r := range res {
		if r.Status != http.StatusOK {
			t.Fatalf("request %d: %d %s", i, r.Status, r.Body)
		}
	}
	for _, rec := range up.Requests() {
		i := int(rec.JSON(t)["i"].(float64))
		if got := rec.Header.Get("X-Mp-Phone"); got != phones[i] {
			t.Fatalf("request %d: X-Mp-Phone %q, want %q", i, got, phones[i])
		}
	}
	if c := sim.Calls(mpsim.EndpointClientToken); c != 1 {
		t.Fatalf("client_token calls %d over two instances, want 1", c)
	}
	if c := sim.Calls(mpsim.EndpointGetPhoneNumberInfo); c != n {
		t.Fatalf("get_phonenumber_info calls %d, want %d", c, n)
	}
	// One code to both instances: one exchange.
	pc := ttPhoneCode(t, sim, "twin", "13700009999")
	before := sim.Calls(mpsim.EndpointGetPhoneNumberInfo)
	for _, c := range []*Caddy{a, b, a, b} {
		wantOK(t, postJSON(t, c.URL+"/api/phone", map[string]any{"code": pc}))
		if got := up.Last(t).Header.Get("X-Mp-Phone"); got != "13700009999" {
			t.Fatalf("X-Mp-Phone %q", got)
		}
	}
	if c := sim.Calls(mpsim.EndpointGetPhoneNumberInfo) - before; c != 1 {
		t.Fatalf("one code on two instances: %d exchanges, want 1", c)
	}
	// The client token is in Redis under its own name.
	keys, err := rs.Client().Keys(t.Context(), "*client_token*").Result()
	if err != nil || len(keys) == 0 {
		t.Fatalf("no client_token key in Redis: %v %v", keys, err)
	}
	a.Stop()
	b.Stop()
	checkPhoneLogs(t, a.Logs()+b.Logs(), append(append([]string{pc, ttSecret}, codes...), phones...)...)
}

// A bad, missing or non-RSA private_key stops Caddy at load with a message
// naming the field, never the key.
func TestDouyinPrivateKeyRefused(t *testing.T) {
	sim := newSim(t)
	dir := t.TempDir()
	_, _, good := ttKeyPair(t, 1024, false)
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecDER, _ := x509.MarshalPKCS8PrivateKey(ec)
	ecPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: ecDER}))
	truncated := good[:len(good)/2] + "\n-----END PRIVATE KEY-----\n"
	cases := []struct {
		name, platform, value, want string
	}{
		{"missing file", "douyin", filepath.Join(dir, "nope.pem"), "cannot read the PEM file"},
		{"not PEM", "douyin", write("garbage.pem", "this is not a key\n"), "no PEM block"},
		{"truncated", "douyin", write("truncated.pem", truncated), ""},
		{"ec key", "douyin", write("ec.pem", ecPEM), "not an RSA key"},
		{"on wechat", "wechat", write("good.pem", good), "is for platform douyin"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			app, secret := ttApp, ttSecret
			if c.platform == "wechat" {
				app, secret = wxApp, wxSecret
			}
			out := caddyFailsToStart(t, site(freePort(t), freePort(t), mpBlock(c.platform, app, secret, sim.URL, "private_key "+c.value)+"\n\trespond ok"))
			if !strings.Contains(out, "private_key") || !strings.Contains(out, c.want) {
				t.Fatalf("caddy's refusal does not name private_key and say %q:\n%s", c.want, out)
			}
			for _, line := range strings.Split(good+ecPEM, "\n") {
				if len(line) > 20 && !strings.HasPrefix(line, "-----") && strings.Contains(out, line) {
					t.Fatalf("the refusal quotes key material:\n%s", out)
				}
			}
		})
	}
}
