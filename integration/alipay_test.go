package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/mpsim"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/redistest"
)

// The simulator's Alipay demo app.
const apApp = "2021000000000001"

// alipayEnv runs Caddy for an Alipay app against apiBase (the simulator,
// or a proxy in front of it): the app's RSA2 key pair (private half in a
// PEM file for Caddy, public half uploaded to the simulator), the
// simulator's Alipay public key in a PEM file, the app's AES key.
func alipayEnv(t *testing.T, e *env, app, apiBase string, extra ...string) *env {
	t.Helper()
	k, keyPath, _ := ttKeyPair(t, 2048, false)
	if err := e.sim.SetPublicKey(app, &k.PublicKey); err != nil {
		t.Fatal(err)
	}
	pubPath := filepath.Join(t.TempDir(), "alipay_public_key.pem")
	if err := os.WriteFile(pubPath, []byte(mpsim.AlipayPublicKeyPEM()), 0o600); err != nil {
		t.Fatal(err)
	}
	block := fmt.Sprintf(`	miniprogram {
		platform alipay
		app_id %s
		private_key %s
		platform_public_key %s
		aes_key %s
		api_base %s
		login /api/login
		phone /api/phone
		session
%s
	}`, app, keyPath, pubPath, mpsim.AlipayAESKey(app), apiBase, "\t\t"+strings.Join(extra, "\n\t\t"))
	e.caddy = startCaddy(t, block+"\n\treverse_proxy "+strings.TrimPrefix(e.up.URL, "http://"))
	return e
}

func alipayPhone(t *testing.T, s *Sim, app, user, mobile string) string {
	t.Helper()
	r, err := s.AlipayPhoneResponse(app, user, mobile)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// Alipay through the real Caddy: the login's gateway call is signed with
// the app's key and checked by the simulator, its answer signed by the
// simulator's Alipay key and checked by the handler; the phone route opens
// my.getPhoneNumber's response with the configured keys; a payload stays
// with the session that first presented it. With the memory store and
// with Redis (sessions without a session key).
func TestAlipayLoginAndPhone(t *testing.T) {
	for _, st := range []string{"memory", "redis"} {
		t.Run(st, func(t *testing.T) {
			var extra []string
			if st == "redis" {
				extra = append(extra, "store redis "+redistest.Start(t).URL())
			}
			e := &env{sim: newSim(t), up: newUpstream(t)}
			alipayEnv(t, e, apApp, e.sim.URL, extra...)

			ann := login(t, e.sim, apApp, "ann")
			r := postJSON(t, e.url("/api/login"), map[string]any{"code": ann.Code, "openid": "spoofed", "alipay_user_id": "spoofed"}, "X-Mp-Openid", "spoofed", "X-Mp-Alipay-User-Id", "spoofed")
			wantOK(t, r)
			got := e.up.Last(t)
			if h := got.Header; h.Get("X-Mp-Openid") != ann.OpenID || h.Get("X-Mp-Platform") != "alipay" || h.Get("X-Mp-App-Id") != apApp || h.Get("X-Mp-Alipay-User-Id") != "" {
				t.Fatalf("login headers %v", h)
			}
			if b := got.JSON(t); b["openid"] != ann.OpenID || b["alipay_user_id"] != nil {
				t.Fatalf("login body %v", b)
			}
			annTok := r.Header.Get(sessionHdr)
			// The code is spent: a second exchange of it is invalid_code at
			// the gateway (the handler answers the retry from its store).
			wantError(t, postJSON(t, e.url("/api/login"), map[string]any{"code": "made-up"}), 401, "invalid_code")

			// The phone route: by login code, or by the issued session.
			resp := alipayPhone(t, e.sim, apApp, "ann", "15976719050")
			wantOK(t, postJSON(t, e.url("/api/phone"), map[string]any{"code": ann.Code, "response": resp, "countryCode": "1"}, "X-Mp-Country-Code", "1"))
			got = e.up.Last(t)
			if h := got.Header; h.Get("X-Mp-Phone") != "15976719050" || h.Get("X-Mp-Pure-Phone") != "15976719050" || h.Get("X-Mp-Openid") != ann.OpenID || len(h.Values("X-Mp-Country-Code")) != 0 {
				t.Fatalf("phone headers %v", h)
			}
			if b := got.JSON(t); b["phoneNumber"] != "15976719050" || b["purePhoneNumber"] != "15976719050" || b["countryCode"] != nil || b["response"] != nil {
				t.Fatalf("phone body %v", b)
			}
			wantOK(t, postJSON(t, e.url("/api/phone"), map[string]any{"response": resp}, sessAuth(annTok)...))

			// Another user presenting ann's payload (captured, or re-wrapped
			// with other spacing and order): 409, nothing upstream.
			bob := login(t, e.sim, apApp, "bob")
			r = postJSON(t, e.url("/api/login"), map[string]any{"code": bob.Code})
			wantOK(t, r)
			n := e.up.Count()
			wantError(t, postJSON(t, e.url("/api/phone"), map[string]any{"response": resp}, sessAuth(r.Header.Get(sessionHdr))...), 409, "payload_reused")
			var env map[string]string
			json.Unmarshal([]byte(resp), &env)
			rewrapped := fmt.Sprintf(` {"sign": %q, "charset":"UTF-8", "response" : %q}`, env["sign"], env["response"])
			wantError(t, postJSON(t, e.url("/api/phone"), map[string]any{"code": bob.Code, "response": rewrapped}), 409, "payload_reused")
			if e.up.Count() != n {
				t.Fatal("a refused phone request reached the upstream")
			}
			// Bob's own payload is his.
			wantOK(t, postJSON(t, e.url("/api/phone"), map[string]any{"code": bob.Code, "response": alipayPhone(t, e.sim, apApp, "bob", "13800138000")}))
			if h := e.up.Last(t).Header; h.Get("X-Mp-Phone") != "13800138000" || h.Get("X-Mp-Openid") != bob.OpenID {
				t.Fatalf("bob's phone %v", h)
			}

			// A response whose signature does not verify (its ciphertext
			// swapped for another's), and malformed ones.
			other := map[string]string{}
			json.Unmarshal([]byte(alipayPhone(t, e.sim, apApp, "bob", "13900139000")), &other)
			forged, _ := json.Marshal(map[string]string{"response": other["response"], "sign": env["sign"], "sign_type": "RSA2"})
			wantError(t, postJSON(t, e.url("/api/phone"), map[string]any{"code": bob.Code, "response": string(forged)}), 422, "decrypt_failed")
			wantError(t, postJSON(t, e.url("/api/phone"), map[string]any{"code": bob.Code, "response": `{"response":"{\"code\":\"10000\"}","sign":"x"}`}), 400, "malformed_payload")
			wantError(t, postJSON(t, e.url("/api/phone"), map[string]any{"code": bob.Code}), 400, "bad_request")
			wantError(t, postJSON(t, e.url("/api/phone"), map[string]any{"code": "never-logged-in", "response": alipayPhone(t, e.sim, apApp, "cat", "13700137000")}), 401, "session_not_found")
		})
	}
}

// An app that gets user_id (older apps): it is the openid, and
// alipay_user_id.
func TestAlipayLegacyUserID(t *testing.T) {
	e := &env{sim: newSim(t), up: newUpstream(t)}
	const app = "2016000000000002"
	e.sim.AddApp(mpsim.App{Platform: mpsim.Alipay, AppID: app, LegacyUserID: true})
	alipayEnv(t, e, app, e.sim.URL)
	lr := login(t, e.sim, app, "dan")
	wantOK(t, postJSON(t, e.url("/api/login"), map[string]any{"code": lr.Code}))
	h := e.up.Last(t).Header
	if h.Get("X-Mp-Openid") != lr.OpenID || !strings.HasPrefix(lr.OpenID, "2088") || h.Get("X-Mp-Alipay-User-Id") != lr.OpenID {
		t.Fatalf("headers %v", h)
	}
}

// Signatures checked both ways: a gateway answer altered on its way (a
// fake gateway in front of the simulator rewrites the open_id) is
// refused, and so is a login whose request the gateway cannot verify (the
// simulator holds another public key for the app).
func TestAlipaySignaturesBothWays(t *testing.T) {
	e := &env{sim: newSim(t), up: newUpstream(t)}
	tamper := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		req, _ := http.NewRequest(r.Method, e.sim.URL+r.URL.RequestURI(), bytes.NewReader(body))
		req.Header = r.Header.Clone()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		b = bytes.Replace(b, []byte(`"open_id":"074a`), []byte(`"open_id":"074b`), 1)
		w.Header().Set("Content-Type", resp.Header.Get("Content-Type"))
		w.WriteHeader(resp.StatusCode)
		w.Write(b)
	}))
	t.Cleanup(tamper.Close)
	alipayEnv(t, e, apApp, tamper.URL)
	n := e.up.Count()
	r := postJSON(t, e.url("/api/login"), map[string]any{"code": login(t, e.sim, apApp, "eve").Code})
	wantError(t, r, 502, "platform_error")
	if e.up.Count() != n {
		t.Fatal("a tampered login reached the upstream")
	}

	// Direct to the simulator, but the app's key there is another one.
	e2 := &env{sim: newSim(t), up: newUpstream(t)}
	alipayEnv(t, e2, apApp, e2.sim.URL)
	k, _, _ := ttKeyPair(t, 2048, false)
	if err := e2.sim.SetPublicKey(apApp, &k.PublicKey); err != nil {
		t.Fatal(err)
	}
	m := wantError(t, postJSON(t, e2.url("/api/login"), map[string]any{"code": login(t, e2.sim, apApp, "eve").Code}), 502, "platform_error")
	if m["platform_errcode"] != float64(40002) {
		t.Fatalf("body %v", m)
	}
}
