package integration

import (
	"bytes"
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/mpsim"
)

// Every row of the README's error table, over real HTTP: the answer is the
// JSON error, and the upstream is not called.
func TestErrorTable(t *testing.T) {
	e := newEnv(t, "wechat", "platform_timeout 1s")
	logged := login(t, e.sim, wxApp, "zoe")
	wantOK(t, postJSON(t, e.url("/api/login"), map[string]any{"code": logged.Code}))
	goodED, goodIV := phonePayload(t, e.sim, wxApp, "zoe", "13800138009")
	before := e.up.Count()

	type tc struct {
		name   string
		setup  func()
		req    func() Response
		status int
		code   string
		errno  any // expected platform_errcode, nil = absent
	}
	phone := func(v map[string]any) func() Response {
		return func() Response { return postJSON(t, e.url("/api/phone"), v) }
	}
	loginWith := func(code string) func() Response {
		return func() Response { return postJSON(t, e.url("/api/login"), map[string]any{"code": code}) }
	}
	fresh := func() string { return login(t, e.sim, wxApp, "yuri").Code }
	var code string
	cases := []tc{
		{name: "missing_code", req: func() Response { return postJSON(t, e.url("/api/login"), map[string]any{"x": 1}) }, status: 400, code: "missing_code"},
		{name: "missing_code empty", req: func() Response { return do(t, "POST", e.url("/api/login"), "", nil) }, status: 400, code: "missing_code"},
		{name: "bad_request no encryptedData", req: phone(map[string]any{"code": logged.Code, "iv": goodIV}), status: 400, code: "bad_request"},
		{name: "bad_request no iv", req: phone(map[string]any{"code": logged.Code, "encryptedData": goodED}), status: 400, code: "bad_request"},
		{name: "bad_request no code", req: phone(map[string]any{"encryptedData": goodED, "iv": goodIV}), status: 400, code: "bad_request"},
		{name: "bad_request unparsable json", req: func() Response {
			return do(t, "POST", e.url("/api/phone"), "application/json", []byte(`{"code": "x", `))
		}, status: 400, code: "bad_request"},
		{name: "bad_request json array", req: func() Response {
			return do(t, "POST", e.url("/api/decrypt"), "application/json", []byte(`[1,2]`))
		}, status: 400, code: "bad_request"},
		{name: "bad_request login unparsable json", req: func() Response {
			return do(t, "POST", e.url("/api/login"), "application/json", []byte(`{"code":`))
		}, status: 400, code: "bad_request"},
		{name: "malformed iv not base64", req: phone(map[string]any{"code": logged.Code, "encryptedData": goodED, "iv": "!!!notbase64!!!"}), status: 400, code: "malformed_payload"},
		{name: "malformed iv 8 bytes", req: phone(map[string]any{"code": logged.Code, "encryptedData": goodED, "iv": base64.StdEncoding.EncodeToString(make([]byte, 8))}), status: 400, code: "malformed_payload"},
		{name: "malformed partial block", req: phone(map[string]any{"code": logged.Code, "encryptedData": base64.StdEncoding.EncodeToString(make([]byte, 17)), "iv": goodIV}), status: 400, code: "malformed_payload"},
		{name: "malformed data not base64", req: phone(map[string]any{"code": logged.Code, "encryptedData": "%%%", "iv": goodIV}), status: 400, code: "malformed_payload"},
		{name: "invalid_code unknown", req: loginWith("never-issued-code"), status: 401, code: "invalid_code", errno: 40029.0},
		{name: "invalid_code expired", setup: func() { code = fresh(); e.sim.Advance(5*time.Minute + 2*time.Second) }, req: func() Response { return loginWith(code)() }, status: 401, code: "invalid_code", errno: 40029.0},
		{name: "invalid_code used elsewhere", setup: func() {
			code = fresh()
			// The legacy backend (or anyone) exchanged it first.
			resp, err := http.Get(e.sim.URL + "/sns/jscode2session?appid=" + wxApp + "&secret=" + wxSecret + "&js_code=" + code + "&grant_type=authorization_code")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
		}, req: func() Response { return loginWith(code)() }, status: 401, code: "invalid_code", errno: 40163.0},
		// An unknown code next to a payload may be a phone code (e.detail
		// forwarded whole): it is tried as one, and the platform's refusal
		// comes with the answer.
		{name: "session_not_found", req: phone(map[string]any{"code": "a-code-never-logged-in", "encryptedData": goodED, "iv": goodIV}), status: 401, code: "session_not_found", errno: 40029.0},
		{name: "body_too_large", req: func() Response {
			big := `{"code":"x","pad":"` + strings.Repeat("a", 70<<10) + `"}`
			return do(t, "POST", e.url("/api/phone"), "application/json", []byte(big))
		}, status: 413, code: "body_too_large"},
		{name: "decrypt_failed other user's key", setup: func() {
			login(t, e.sim, wxApp, "mallory")
		}, req: func() Response {
			ed, iv := phonePayload(t, e.sim, wxApp, "mallory", "13800138010")
			return phone(map[string]any{"code": logged.Code, "encryptedData": ed, "iv": iv})()
		}, status: 422, code: "decrypt_failed"},
		{name: "watermark_mismatch", req: func() Response {
			ed, iv, err := e.sim.Encrypt(wxApp, "zoe", map[string]any{"phoneNumber": "13800138011", "purePhoneNumber": "13800138011", "countryCode": "86"}, mpsim.EncryptOptions{WatermarkAppID: "wx0000000000other"})
			if err != nil {
				t.Fatal(err)
			}
			return phone(map[string]any{"code": logged.Code, "encryptedData": ed, "iv": iv})()
		}, status: 422, code: "watermark_mismatch"},
		{name: "rate_limited", setup: func() {
			code = fresh()
			e.sim.Inject(mpsim.Fault{Endpoint: "jscode2session", Errcode: 45011, Times: 1})
		}, req: func() Response { return loginWith(code)() }, status: 429, code: "rate_limited", errno: 45011.0},
		{name: "user_blocked", setup: func() {
			code = fresh()
			e.sim.Inject(mpsim.Fault{Endpoint: "jscode2session", Errcode: 40226, Times: 1})
		}, req: func() Response { return loginWith(code)() }, status: 403, code: "user_blocked", errno: 40226.0},
		// The same code again: still blocked (remembered like a dead code),
		// not re-exchanged into a 40163 "used" and a 401.
		{name: "user_blocked again", req: func() Response { return loginWith(code)() }, status: 403, code: "user_blocked", errno: 40226.0},
		{name: "platform_error busy after retries", setup: func() {
			code = fresh()
			e.sim.Inject(mpsim.Fault{Endpoint: "jscode2session", Errcode: -1, Times: 3})
		}, req: func() Response { return loginWith(code)() }, status: 502, code: "platform_error", errno: -1.0},
		{name: "platform_error http 500", setup: func() {
			code = fresh()
			e.sim.Inject(mpsim.Fault{Endpoint: "jscode2session", HTTPStatus: 500, Times: 3})
		}, req: func() Response { return loginWith(code)() }, status: 502, code: "platform_error"},
		{name: "platform_timeout", setup: func() {
			code = fresh()
			e.sim.Inject(mpsim.Fault{Endpoint: "jscode2session", Delay: 3 * time.Second, Times: 3})
		}, req: func() Response { return loginWith(code)() }, status: 504, code: "platform_timeout"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e.sim.ClearFaults()
			if c.setup != nil {
				c.setup()
			}
			start := time.Now()
			r := c.req()
			m := wantError(t, r, c.status, c.code)
			if got := m["platform_errcode"]; got != c.errno {
				t.Fatalf("platform_errcode %v, want %v", got, c.errno)
			}
			if c.code == "platform_timeout" && time.Since(start) > 4*time.Second {
				t.Fatalf("platform_timeout took %v with platform_timeout 1s", time.Since(start))
			}
			if n := e.up.Count(); n != before {
				t.Fatalf("the upstream was called (%d requests, want %d)", n, before)
			}
		})
	}
	e.sim.ClearFaults()

	// A retry that succeeds after one busy answer is not an error.
	code = fresh()
	e.sim.Inject(mpsim.Fault{Endpoint: "jscode2session", Errcode: -1, Times: 1})
	calls := e.sim.Calls("jscode2session")
	wantOK(t, postJSON(t, e.url("/api/login"), map[string]any{"code": code}))
	if got := e.sim.Calls("jscode2session") - calls; got != 2 {
		t.Fatalf("one busy answer then success: %d calls, want 2", got)
	}
	// A dead code is not retried.
	calls = e.sim.Calls("jscode2session")
	wantError(t, postJSON(t, e.url("/api/login"), map[string]any{"code": "another-unknown"}), 401, "invalid_code")
	if got := e.sim.Calls("jscode2session") - calls; got != 1 {
		t.Fatalf("invalid code: %d calls, want 1", got)
	}

	e.caddy.Stop()
	noSecrets(t, e.caddy.Logs(), logged.Code, wxSecret, goodED, "13800138009", "13800138010")
}

// A body larger than the limit is refused also when it comes without a
// Content-Length (chunked).
func TestBodyTooLargeChunked(t *testing.T) {
	e := newEnv(t, "wechat", "max_body_size 1KiB")
	big := append([]byte(`{"code":"x","pad":"`), bytes.Repeat([]byte("a"), 4096)...)
	big = append(big, `"}`...)
	req, err := http.NewRequest("POST", e.url("/api/login"), struct{ *bytes.Reader }{bytes.NewReader(big)})
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.ContentLength = -1
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 413 {
		t.Fatalf("status %d, want 413", resp.StatusCode)
	}
	if e.up.Count() != 0 {
		t.Fatal("upstream called")
	}
}
