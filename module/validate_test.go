package module

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
)

// provisionJSON unmarshals a handler's JSON and provisions it, as Caddy
// does; a handler that provisions is cleaned up.
func provisionJSON(t *testing.T, raw string) (*Handler, error) {
	t.Helper()
	h := new(Handler)
	if err := json.Unmarshal([]byte(raw), h); err != nil {
		t.Fatalf("%s: %v", raw, err)
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	err := h.Provision(ctx)
	if err == nil {
		t.Cleanup(func() { _ = h.Cleanup() })
	}
	return h, err
}

// The rules run at the top of Provision: nothing (client, store, request
// machinery) is made for a configuration they refuse, and a negative
// value is refused, not replaced by the default.
func TestProvisionValidatesFirst(t *testing.T) {
	for _, c := range []struct{ json, field string }{
		{`{"platform":"wechat","app_id":"wx1","app_secret":"s","login":"/l","platform_timeout":"1d","store":{"type":"redis","url":"redis://127.0.0.1:1/0"}}`, "platform_timeout"},
		{`{"platform":"wechat","app_id":"wx1","app_secret":"s","login":"/l","session_ttl":-1}`, "session_ttl"},
		{`{"platform":"wechat","app_id":"wx1","app_secret":"s","login":"/l","exchange_wait":-1}`, "exchange_wait"},
		{`{"platform":"wechat","app_id":"wx1","app_secret":"s","login":"/l","max_body_size":-1}`, "max_body_size"},
		{`{"platform":"wechat","app_id":"wx1","app_secret":"s","login":"/l","store":{"type":"redis","url":"redis://127.0.0.1:1/0","timeout":-1}}`, "store.timeout"},
		{`{"platform":"wechat","app_id":"wx1","app_secret":"s","login":"/l","store":{"type":"memory","max_sessions":-5}}`, "store.max_sessions"},
		{`{"platform":"wechat","app_id":"wx1","app_secret":"s","login":"/api/*","phone":"/api/phone"}`, "phone"},
		{`{"platform":"wechat","app_id":"wx1","app_secret":"s","login":"/l","platform_retries":-3}`, "platform_retries"},
		{`{"platform":"wechat","app_id":"wx1","app_secret":"s","login":"/l","store":{"type":"redis","url":"redis://127.0.0.1:1","master_name":"m","tls":true}}`, "store.master_name"},
	} {
		h, err := provisionJSON(t, c.json)
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != c.field || !strings.Contains(err.Error(), c.field+":") {
			t.Errorf("%s: err = %v, want a FieldError of %s", c.json, err, c.field)
			continue
		}
		if h.client != nil || h.store != nil || h.flight != nil || h.unsaved != nil || h.failures != nil || h.tokens != nil {
			t.Errorf("%s: refused, but parts were made", c.json)
		}
		// Validate (what Caddy calls after Provision) is the same check.
		if verr := h.Validate(); verr == nil || verr.Error() != err.Error() {
			t.Errorf("%s: Validate = %v, Provision = %v", c.json, verr, err)
		}
	}
}

// Before provisioning a value holding a placeholder is not checked (the
// Caddyfile adapter sees it so); once Provision has replaced it, it is.
func TestPlaceholderValuesCheckedOnceReplaced(t *testing.T) {
	t.Setenv("MP_TEST_BAD_API_BASE", "ftp://api.weixin.qq.com")
	t.Setenv("MP_TEST_BARE_REDIS", "127.0.0.1:6379")
	t.Setenv("MP_TEST_BAD_ADDR", "10.0.0.1")
	for _, c := range []struct{ json, field, want string }{
		{`{"platform":"wechat","app_id":"wx1","app_secret":"s","login":"/l","api_base":"{env.MP_TEST_BAD_API_BASE}"}`, "api_base", "http:// or https://"},
		{`{"platform":"wechat","app_id":"wx1","app_secret":"s","login":"/l","store":{"type":"redis","url":"{env.MP_TEST_BARE_REDIS}"}}`, "store.url", "expected redis://host:port"},
		{`{"platform":"wechat","app_id":"wx1","app_secret":"s","login":"/l","store":{"type":"redis","addrs":["{env.MP_TEST_BAD_ADDR}"]}}`, "store.addrs", "not host:port"},
	} {
		var h Handler
		if err := json.Unmarshal([]byte(c.json), &h); err != nil {
			t.Fatal(err)
		}
		if err := h.Validate(); err != nil {
			t.Errorf("%s: before provisioning: %v", c.json, err)
		}
		_, err := provisionJSON(t, c.json)
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != c.field || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Provision = %v, want %s: ...%s", c.json, err, c.field, c.want)
		}
	}
}

func TestCheckDuration(t *testing.T) {
	for _, field := range []string{"session_ttl", "platform_timeout", "exchange_wait", "store.timeout"} {
		min, max, ok := DurationBounds(field)
		if !ok || min <= 0 || max <= min {
			t.Fatalf("%s: bounds %v %v %v", field, min, max, ok)
		}
		for _, d := range []caddy.Duration{caddy.Duration(min), caddy.Duration(max)} {
			if err := CheckDuration(field, d); err != nil {
				t.Errorf("%s %v: %v", field, d, err)
			}
		}
		for _, d := range []caddy.Duration{0, -1, caddy.Duration(min) - 1, caddy.Duration(max) + 1} {
			err := CheckDuration(field, d)
			if err == nil || !strings.Contains(err.Error(), field+":") {
				t.Errorf("%s %v: err = %v", field, d, err)
			}
		}
	}
	// The default exchange_wait (platform_timeout + 1s) is within bounds
	// for every accepted platform_timeout.
	_, maxPT, _ := DurationBounds("platform_timeout")
	_, maxEW, _ := DurationBounds("exchange_wait")
	if maxPT+1e9 > maxEW {
		t.Fatalf("platform_timeout up to %v gives a default exchange_wait over %v", maxPT, maxEW)
	}
}
