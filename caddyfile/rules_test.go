package caddyfile_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-miniprogram/caddy-miniprogram/module"
)

// block is a Caddyfile site whose miniprogram block holds lines (one per
// argument, tabs added); the block's first line is line 3.
func block(lines ...string) string {
	var b strings.Builder
	b.WriteString("example.com {\n\tminiprogram {\n")
	for _, l := range lines {
		b.WriteString("\t\t" + l + "\n")
	}
	b.WriteString("\t}\n\treverse_proxy 127.0.0.1:9000\n}\n")
	return b.String()
}

// base is a valid block's lines (3 to 6); a rule's bad line follows at 7.
var base = []string{"platform wechat", "app_id wx1", "app_secret s", "login /api/login"}

func withBase(lines ...string) string {
	return block(append(append([]string(nil), base...), lines...)...)
}

// baseJSON is the same valid handler in JSON; a rule's fields are added
// (or override) with handlerJSON.
const baseJSON = `{"platform":"wechat","app_id":"wx1","app_secret":"s","login":"/api/login"}`

// handlerJSON merges fields (a JSON object; a null value deletes) into
// baseJSON.
func handlerJSON(t *testing.T, fields string) []byte {
	t.Helper()
	var h, f map[string]any
	if err := json.Unmarshal([]byte(baseJSON), &h); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(fields), &f); err != nil {
		t.Fatalf("fields %s: %v", fields, err)
	}
	for k, v := range f {
		if v == nil {
			delete(h, k)
		} else {
			h[k] = v
		}
	}
	b, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fullConfig is a whole Caddy JSON config serving the handler on a
// loopback listener (compat needs one).
func fullConfig(handler []byte) []byte {
	var h map[string]any
	_ = json.Unmarshal(handler, &h)
	h["handler"] = "miniprogram"
	b, _ := json.Marshal(h)
	return []byte(`{"admin":{"disabled":true},"apps":{"http":{"servers":{"s":{"listen":["127.0.0.1:0"],"routes":[{"handle":[` + string(b) + `]}]}}}}}`)
}

// The configuration's rules, each through the Caddyfile (the error names
// the line that set the field) and through JSON (the handler's Validate
// before provisioning, and caddy.Validate on a whole config, which
// provisions the handler): both refuse, naming the field.
func TestRulesCaddyfileAndJSON(t *testing.T) {
	t.Setenv("XDG_DATA_HOME", t.TempDir())
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	const key = "3q2+7wAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
	tests := []struct {
		name string
		// caddyfile and line: the Caddyfile form ("" when the Caddyfile
		// cannot say it) and the line its error must name.
		caddyfile string
		line      int
		// json: the handler's fields added to baseJSON.
		json string
		// field is the module.FieldError's field ("" for the two
		// block-wide rules); want a fragment of the reason.
		field, want string
	}{
		{"platform", block("platform taobao", "app_id wx1", "app_secret s", "login /l"), 3,
			`{"platform":"taobao"}`, "platform", "unknown platform"},
		{"required", block("platform wechat", "app_id wx1", "login /l"), 2,
			`{"app_secret":null}`, "", "missing required field(s): app_secret"},
		{"api_base scheme", withBase("api_base ftp://api.weixin.qq.com"), 7,
			`{"api_base":"ftp://api.weixin.qq.com"}`, "api_base", "http:// or https://"},
		{"api_base user info", withBase("api_base https://u:hunter2@api.weixin.qq.com"), 7,
			`{"api_base":"https://u:hunter2@api.weixin.qq.com"}`, "api_base", "origin"},
		{"api_base query", withBase("api_base https://api.weixin.qq.com?x=1"), 7,
			`{"api_base":"https://api.weixin.qq.com?x=1"}`, "api_base", "origin"},
		{"no route", block("platform wechat", "app_id wx1", "app_secret s"), 2,
			`{"login":null}`, "", "at least one route is needed: login, phone, decrypt, compat or gateway"},
		{"route path", withBase("phone api/phone"), 7,
			`{"phone":"api/phone"}`, "phone", "must start with /"},
		{"same route path", withBase("phone /API/login"), 7,
			`{"phone":"/API/login"}`, "phone", "same as the login path"},
		{"shadowed route", block("platform wechat", "app_id wx1", "app_secret s", "login /api/*", "phone /api/phone"), 7,
			`{"login":"/api/*","phone":"/api/phone"}`, "phone", "unreachable"},
		{"route_param name", withBase("route_param s=1"), 7,
			`{"route_params":["s=1"]}`, "route_param", "plain query parameter name"},
		{"route_param without route", block("platform wechat", "app_id wx1", "app_secret s", "compat /mp-compat", "route_param s"), 7,
			`{"login":null,"compat":{"prefix":"/mp-compat"},"route_params":["s"]}`, "route_param", "needs a login, phone or decrypt route"},
		{"decrypt_watermark value", withBase("decrypt_watermark maybe"), 7,
			`{"decrypt_watermark":"maybe"}`, "decrypt_watermark", "required or optional"},
		{"decrypt_watermark without decrypt", withBase("decrypt_watermark optional"), 7,
			`{"decrypt_watermark":"optional"}`, "decrypt_watermark", "needs a decrypt route"},
		{"session_ttl short", withBase("session_ttl 10s"), 7,
			`{"session_ttl":"10s"}`, "session_ttl", "out of range: want 1m0s to 720h0m0s"},
		{"session_ttl long", withBase("session_ttl 60d"), 7,
			`{"session_ttl":"60d"}`, "session_ttl", "out of range"},
		{"platform_timeout a day", withBase("platform_timeout 1d"), 7,
			`{"platform_timeout":"1d"}`, "platform_timeout", "24h0m0s is out of range: want 100ms to 1m0s"},
		{"platform_timeout negative", withBase("platform_timeout -1s"), 7,
			`{"platform_timeout":-1000000000}`, "platform_timeout", "greater than zero"},
		{"exchange_wait long", withBase("exchange_wait 10m"), 7,
			`{"exchange_wait":"10m"}`, "exchange_wait", "want 100ms to 2m0s"},
		{"max_body_size", withBase("max_body_size 0"), 7,
			`{"max_body_size":-1}`, "max_body_size", "greater than zero"},
		{"platform_retries", withBase("platform_retries -3"), 7,
			`{"platform_retries":-3}`, "platform_retries", "-3 is negative"},
		{"max_failed_exchanges", withBase("max_failed_exchanges 30"), 7,
			`{"max_failed_exchanges":"30"}`, "max_failed_exchanges", "or off"},
		{"access_token on douyin", block("platform douyin", "app_id tt1", "app_secret s", "login /l", "access_token"), 7,
			`{"platform":"douyin","access_token":{}}`, "access_token", "wechat only"},
		{"access_token mode", withBase("access_token fast"), 7,
			`{"access_token":{"mode":"fast"}}`, "access_token.mode", "stable or classic"},
		{"access_token refresh", withBase("access_token {", "\trefresh 1.5", "}"), 8,
			`{"access_token":{"refresh":1.5}}`, "access_token.refresh", "between 0 and 1"},
		{"gateway prefix", withBase("gateway mp-api {", "allow /wxa/msg_sec_check", "}"), 7,
			`{"gateway":{"prefix":"mp-api","allow":["/wxa/msg_sec_check"]}}`, "gateway", "must start with /"},
		{"gateway overlap", withBase("gateway /api {", "allow /wxa/msg_sec_check", "}"), 7,
			`{"gateway":{"prefix":"/api","allow":["/wxa/msg_sec_check"]}}`, "gateway", "overlaps the login path"},
		{"gateway overlaps compat", withBase("compat /mp", "gateway /mp/api {", "allow /wxa/msg_sec_check", "}"), 8,
			`{"compat":{"prefix":"/mp"},"gateway":{"prefix":"/mp/api","allow":["/wxa/msg_sec_check"]}}`, "gateway", "overlaps the compat prefix"},
		{"gateway no allow", withBase("gateway /mp-api"), 7,
			`{"gateway":{"prefix":"/mp-api"}}`, "gateway.allow", "at least one API path"},
		{"gateway never relayed", withBase("gateway /mp-api {", "allow /wxa/msg_sec_check", "allow /cgi-bin/stable_token", "}"), 8,
			`{"gateway":{"prefix":"/mp-api","allow":["/wxa/msg_sec_check","/cgi-bin/stable_token"]}}`, "gateway.allow", "never relayed"},
		{"gateway getuserphonenumber", withBase("gateway /mp-api {", "allow /wxa/business/getuserphonenumber", "}"), 8,
			`{"gateway":{"prefix":"/mp-api","allow":["/wxa/business/getuserphonenumber"]}}`, "gateway.allow", "phone route"},
		{"gateway allow shape", withBase("gateway /mp-api {", "allow /wxa/../cgi-bin/token", "}"), 8,
			`{"gateway":{"prefix":"/mp-api","allow":["/wxa/../cgi-bin/token"]}}`, "gateway.allow", "not a clean path"},
		{"gateway max_buffer", withBase("gateway /mp-api {", "allow /wxa/msg_sec_check", "max_buffer 1GiB", "}"), 9,
			`{"gateway":{"prefix":"/mp-api","allow":["/wxa/msg_sec_check"],"max_buffer":1073741824}}`, "gateway.max_buffer", "out of range"},
		{"gateway platform", block("platform qq", "app_id 1109", "app_secret s", "login /api/login", "gateway /mp-api {", "allow /x", "}"), 7,
			`{"platform":"qq","gateway":{"prefix":"/mp-api","allow":["/x"]}}`, "gateway", "has no API gateway"},
		{"gateway douyin host", block("platform douyin", "app_id tt1", "app_secret s", "login /api/login", "gateway /mp-api {", "allow /api/apps/qrcode", "}"), 8,
			`{"platform":"douyin","gateway":{"prefix":"/mp-api","allow":["/api/apps/qrcode"]}}`, "gateway.allow", "names no API host"},
		{"gateway douyin never", block("platform douyin", "app_id tt1", "app_secret s", "login /api/login", "gateway /mp-api {", "allow /developer.toutiao.com/api/apps/v2/token", "}"), 8,
			`{"platform":"douyin","gateway":{"prefix":"/mp-api","allow":["/developer.toutiao.com/api/apps/v2/token"]}}`, "gateway.allow", "never relayed"},
		{"compat prefix", withBase("compat mp-compat"), 7,
			`{"compat":{"prefix":"mp-compat"}}`, "compat", "must start with /"},
		{"compat overlap", withBase("compat /api"), 7,
			`{"compat":{"prefix":"/api"}}`, "compat", "overlaps the login path"},
		{"token_binding no from", withBase("token_binding {", "\trequest bearer", "}"), 7,
			`{"token_binding":{"request":{"bearer":true}}}`, "token_binding.from", "exactly one of"},
		{"token_binding json path", withBase("token_binding {", "\tfrom json data..token", "}"), 8,
			`{"token_binding":{"from":{"json":"data..token"}}}`, "token_binding.from", "empty segment"},
		{"token_binding header name", withBase("token_binding {", "\tfrom header X:Token", "}"), 8,
			`{"token_binding":{"from":{"header":"X:Token"}}}`, "token_binding.from", "not a header name"},
		{"token_binding request name", withBase("token_binding {", "\tfrom json data.token", "\trequest cookie a;b", "}"), 9,
			`{"token_binding":{"from":{"json":"data.token"},"request":{"cookie":"a;b"}}}`, "token_binding.request", "not a cookie name"},
		{"token_binding response size", withBase("token_binding {", "\tfrom json data.token", "\tmax_response_size 2TiB", "}"), 9,
			`{"token_binding":{"from":{"json":"data.token"},"max_response_size":2199023255552}}`, "token_binding.max_response_size", "1TiB"},
		{"token_binding without login", block("platform wechat", "app_id wx1", "app_secret s", "phone /p", "token_binding {", "\tfrom json data.token", "}"), 7,
			`{"login":null,"phone":"/p","token_binding":{"from":{"json":"data.token"}}}`, "token_binding", "needs the login route"},

		{"store type", withBase("store etcd"), 7,
			`{"store":{"type":"etcd"}}`, "store.type", "unknown store type"},
		{"store max_sessions", withBase("store memory {", "\tmax_sessions 0", "}"), 8,
			`{"store":{"type":"memory","max_sessions":-1}}`, "store.max_sessions", "greater than zero"},
		{"store memory with a redis option", "", 0,
			`{"store":{"url":"redis://127.0.0.1:6379"}}`, "store.url", "for store redis only"},
		{"store redis with max_sessions", "", 0,
			`{"store":{"type":"redis","url":"redis://127.0.0.1:6379","max_sessions":10}}`, "store.max_sessions", "for store memory only"},
		{"store redis nothing", withBase("store redis"), 7,
			`{"store":{"type":"redis"}}`, "store", "redis needs a url"},
		{"store url host:port", withBase("store redis 127.0.0.1:6379"), 7,
			`{"store":{"type":"redis","url":"127.0.0.1:6379"}}`, "store.url", "expected redis://host:port[/db] or rediss://host:port[/db] (TLS), e.g. redis://127.0.0.1:6379/0"},
		{"store url scheme", withBase("store redis http://127.0.0.1:6379"), 7,
			`{"store":{"type":"redis","url":"http://127.0.0.1:6379"}}`, "store.url", "not a Redis URL"},
		{"store url db", withBase("store redis redis://u:hunter2@127.0.0.1:6379/x"), 7,
			`{"store":{"type":"redis","url":"redis://u:hunter2@127.0.0.1:6379/x"}}`, "store.url", "database number"},
		{"store url and addrs", withBase("store redis redis://127.0.0.1:6379 {", "\taddrs 127.0.0.1:6380", "}"), 8,
			`{"store":{"type":"redis","url":"redis://127.0.0.1:6379","addrs":["127.0.0.1:6380"]}}`, "store.addrs", "cannot be combined with a url"},
		{"store url, master_name and tls", withBase("store redis redis://127.0.0.1:6379 {", "\tmaster_name m", "\ttls", "}"), 8,
			`{"store":{"type":"redis","url":"redis://127.0.0.1:6379","master_name":"m","tls":true}}`, "store.master_name", "cannot be combined with a url"},
		{"store url and tls", withBase("store redis redis://127.0.0.1:6379 {", "\ttls", "}"), 8,
			`{"store":{"type":"redis","url":"redis://127.0.0.1:6379","tls":true}}`, "store.tls", "rediss://"},
		{"identity_cache too long", withBase("identity_cache 2m"), 7,
			`{"identity_cache":"2m"}`, "identity_cache", "out of range"},
		{"identity_cache negative", withBase("identity_cache -1s"), 7,
			`{"identity_cache":"-1s"}`, "identity_cache", "out of range"},
		{"header_names unknown", withBase("header_names wx"), 7,
			`{"header_names":"wx"}`, "header_names", "not mp, cloudrun or both"},
		{"token_binding identity unknown", withBase("token_binding {", "\tfrom json data.token", "\tidentity everywhere", "}"), 9,
			`{"token_binding":{"from":{"json":"data.token"},"identity":"everywhere"}}`, "token_binding.identity", "not all or routes"},
		{"token_binding rebind not a path", withBase("token_binding {", "\tfrom json data.token", "\trebind api/refresh", "}"), 9,
			`{"token_binding":{"from":{"json":"data.token"},"rebind":["api/refresh"]}}`, "token_binding.rebind", "is not a path"},
		{"session request unknown", withBase("session {", "\trequest query", "}"), 8,
			`{"session":{"request":"query"}}`, "session.request", "not bearer, header or cookie"},
		{"session request cookie without a cookie", withBase("session {", "\trequest cookie", "}"), 8,
			`{"session":{"request":"cookie"}}`, "session.request", "needs session cookie"},
		{"session header name", withBase("session {", "\theader X:Session", "}"), 8,
			`{"session":{"header":"X:Session"}}`, "session.header", "not a header name"},
		{"session header an identity name", withBase("session {", "\theader X-Mp-Openid", "}"), 8,
			`{"session":{"header":"X-Mp-Openid"}}`, "session.header", "identity headers' families"},
		{"session cookie name", withBase("session {", "\tcookie a;b", "}"), 8,
			`{"session":{"cookie":"a;b"}}`, "session.cookie", "not a cookie name"},
		{"session ttl short", withBase("session {", "\tttl 500ms", "}"), 8,
			`{"session":{"ttl":"500ms"}}`, "session.ttl", "out of range: want 1s to 720h0m0s"},
		{"session max_age long", withBase("session {", "\tmax_age 400d", "}"), 8,
			`{"session":{"max_age":"400d"}}`, "session.max_age", "out of range"},
		{"session max_age under ttl", withBase("session {", "\tttl 2h", "\tmax_age 1h", "}"), 9,
			`{"session":{"ttl":"2h","max_age":"1h"}}`, "session.max_age", "shorter than the session's ttl 2h0m0s"},
		{"session max_age under the default ttl", withBase("session_ttl 2h", "session {", "\tmax_age 1h", "}"), 9,
			`{"session_ttl":"2h","session":{"max_age":"1h"}}`, "session.max_age", "shorter than the session's ttl 2h0m0s"},
		{"session refresh_every not under ttl", withBase("session {", "\tttl 10s", "\trefresh_every 10s", "}"), 9,
			`{"session":{"ttl":"10s","refresh_every":"10s"}}`, "session.refresh_every", "not shorter than the session's ttl 10s"},
		{"session without login", block("platform wechat", "app_id wx1", "app_secret s", "phone /p", "session"), 7,
			`{"login":null,"phone":"/p","session":{}}`, "session", "needs the login route"},
		{"session header is token_binding's", withBase("token_binding {", "\tfrom json data.token", "\trequest header X-Token", "}", "session {", "\theader x-token", "}"), 12,
			`{"token_binding":{"from":{"json":"data.token"},"request":{"header":"X-Token"}},"session":{"header":"x-token"}}`, "session.header", "also carries token_binding's token"},
		{"session cookie is token_binding's", withBase("token_binding {", "\tfrom cookie sid", "}", "session {", "\tcookie sid", "}"), 11,
			`{"token_binding":{"from":{"cookie":"sid"}},"session":{"cookie":"sid"}}`, "session.cookie", "also token_binding's cookie"},
		{"require_session not a path", withBase("session", "require_session api/*"), 8,
			`{"session":{},"require_session":["api/*"]}`, "require_session", "must start with /"},
		{"require_session without sessions", withBase("require_session /api/*"), 7,
			`{"require_session":["/api/*"]}`, "require_session", "needs session, or token_binding with identity all"},
		{"require_session with identity routes", withBase("token_binding {", "\tfrom json data.token", "\tidentity routes", "}", "require_session /api/*"), 11,
			`{"token_binding":{"from":{"json":"data.token"},"identity":"routes"},"require_session":["/api/*"]}`, "require_session", "needs session"},
		{"logout not a path", withBase("session", "logout logout"), 8,
			`{"session":{},"logout":["logout"]}`, "logout", "must start with /"},
		{"logout without sessions", withBase("logout /api/logout"), 7,
			`{"logout":["/api/logout"]}`, "logout", "needs session, or token_binding with identity all"},
		{"store master_name without addrs", withBase("store redis {", "\tmaster_name m", "}"), 8,
			`{"store":{"type":"redis","master_name":"m"}}`, "store.master_name", "needs the sentinels' addrs"},
		{"store sentinel_password without master_name", withBase("store redis {", "\taddrs 127.0.0.1:7000 127.0.0.1:7001", "\tsentinel_password p", "}"), 9,
			`{"store":{"type":"redis","addrs":["127.0.0.1:7000","127.0.0.1:7001"],"sentinel_password":"p"}}`, "store.sentinel_password", "need master_name"},
		{"store cert_file without key_file", withBase("store redis rediss://127.0.0.1:6379 {", "\tcert_file c.pem", "}"), 8,
			`{"store":{"type":"redis","url":"rediss://127.0.0.1:6379","cert_file":"c.pem"}}`, "store.cert_file", "go together"},
		{"store addrs", withBase("store redis {", "\taddrs 10.0.0.1", "}"), 8,
			`{"store":{"type":"redis","addrs":["10.0.0.1"]}}`, "store.addrs", "not host:port"},
		{"store db", withBase("store redis {", "\taddrs 127.0.0.1:1", "\tdb -1", "}"), 9,
			`{"store":{"type":"redis","addrs":["127.0.0.1:1"],"db":-1}}`, "store.db", "-1 is negative"},
		{"store cluster db", withBase("store redis {", "\taddrs 127.0.0.1:1 127.0.0.1:2", "\tdb 3", "}"), 9,
			`{"store":{"type":"redis","addrs":["127.0.0.1:1","127.0.0.1:2"],"db":3}}`, "store.db", "only db 0"},
		{"store timeout", withBase("store redis redis://127.0.0.1:6379 {", "\ttimeout 1m", "}"), 8,
			`{"store":{"type":"redis","url":"redis://127.0.0.1:6379","timeout":"1m"}}`, "store.timeout", "want 10ms to 30s"},
		{"store encryption key", withBase("store redis redis://127.0.0.1:6379 {", "\tencryption_keys c2hvcnQ=", "}"), 8,
			`{"store":{"type":"redis","url":"redis://127.0.0.1:6379","encryption_keys":["c2hvcnQ="]}}`, "store.encryption_keys", "encryption key 1 of 1: key is 5 bytes"},
		{"store encryption key twice", withBase("store redis redis://127.0.0.1:6379 {", "\tencryption_keys "+key+" "+key, "}"), 8,
			`{"store":{"type":"redis","url":"redis://127.0.0.1:6379","encryption_keys":["` + key + `","` + key + `"]}}`, "store.encryption_keys", "same as key 1"},
		{"store encryption_allow_plain", withBase("store redis redis://127.0.0.1:6379 {", "\tencryption_allow_plain", "}"), 8,
			`{"store":{"type":"redis","url":"redis://127.0.0.1:6379","encryption_allow_plain":true}}`, "store.encryption_allow_plain", "needs encryption_keys"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			check := func(how string, err error) {
				t.Helper()
				if err == nil {
					t.Fatalf("%s: accepted", how)
				}
				msg := err.Error()
				if !strings.Contains(msg, tt.want) {
					t.Errorf("%s: error %q does not contain %q", how, msg, tt.want)
				}
				if tt.field != "" && !strings.Contains(msg, "miniprogram: "+tt.field+": ") {
					t.Errorf("%s: error %q does not name the field %s", how, msg, tt.field)
				}
				for _, leak := range []string{"hunter2", "first path segment"} {
					if strings.Contains(msg, leak) {
						t.Errorf("%s: error %q shows %q", how, msg, leak)
					}
				}
			}

			if tt.caddyfile != "" {
				_, _, err := adapt(t, "Caddyfile", []byte(tt.caddyfile))
				check("Caddyfile", err)
				if err != nil {
					m := atLine.FindStringSubmatch(err.Error())
					if m == nil {
						t.Errorf("Caddyfile: error %q names no line", err)
					} else if line, _ := strconv.Atoi(m[1]); line != tt.line {
						t.Errorf("Caddyfile: error %q is at line %d, want %d", err, line, tt.line)
					}
				}
			}

			raw := handlerJSON(t, tt.json)
			dec := json.NewDecoder(bytes.NewReader(raw))
			dec.DisallowUnknownFields()
			var h module.Handler
			if err := dec.Decode(&h); err != nil {
				t.Fatalf("decoding %s: %v", raw, err)
			}
			err := h.Validate()
			check("JSON Validate", err)
			var fe *module.FieldError
			if tt.field != "" && (!errors.As(err, &fe) || fe.Field != tt.field) {
				t.Errorf("JSON Validate: error %v is not a FieldError of %s", err, tt.field)
			}

			var cfg caddy.Config
			if err := json.Unmarshal(fullConfig(raw), &cfg); err != nil {
				t.Fatal(err)
			}
			check("caddy.Validate", caddy.Validate(&cfg))
		})
	}
}

// Configurations at the rules' edges and with placeholders not yet
// replaced are accepted both ways.
func TestRulesAccept(t *testing.T) {
	t.Setenv("XDG_DATA_HOME", t.TempDir())
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	t.Setenv("MP_TEST_API_BASE", "http://127.0.0.1:1")
	tests := []struct {
		name, caddyfile, json string
	}{
		{"bounds", withBase("session_ttl 720h", "platform_timeout 1m", "exchange_wait 2m", "platform_retries 0", "max_body_size 1"),
			`{"session_ttl":"720h","platform_timeout":"1m","exchange_wait":"2m","platform_retries":0,"max_body_size":1}`},
		{"lower bounds", withBase("session_ttl 1m", "platform_timeout 100ms", "exchange_wait 100ms"),
			`{"session_ttl":"1m","platform_timeout":"100ms","exchange_wait":"100ms"}`},
		{"default exchange_wait after the longest platform_timeout", withBase("platform_timeout 60s"),
			`{"platform_timeout":"60s"}`},
		{"placeholders", withBase("api_base {env.MP_TEST_API_BASE}"),
			`{"api_base":"{env.MP_TEST_API_BASE}"}`},
		{"sentinel with tls", withBase("store redis {", "\taddrs 127.0.0.1:26379 127.0.0.1:26380", "\tmaster_name m", "\tdb 2", "\ttls", "\ttimeout 30s", "}"),
			`{"store":{"type":"redis","addrs":["127.0.0.1:26379","127.0.0.1:26380"],"master_name":"m","db":2,"tls":true,"timeout":"30s"}}`},
		{"rediss url", withBase("store redis rediss://u:p@127.0.0.1:6380/1"),
			`{"store":{"type":"redis","url":"rediss://u:p@127.0.0.1:6380/1"}}`},
		{"session defaults", withBase("session", "require_session /api/* /admin/*", "logout /api/logout"),
			`{"session":{},"require_session":["/api/*","/admin/*"],"logout":["/api/logout"]}`},
		{"session at its edges", withBase("session {", "\theader X-Mp-Session", "\tcookie mp_session", "\tttl 1s", "\tmax_age 1s", "\trefresh_every 100ms", "}"),
			`{"session":{"header":"X-Mp-Session","cookie":"mp_session","ttl":"1s","max_age":"1s","refresh_every":"100ms"}}`},
		{"session with a long ttl and the default max_age", withBase("session {", "\tttl 720h", "}"),
			`{"session":{"ttl":"720h"}}`},
		{"bound tokens only, enforced", withBase("token_binding {", "\tfrom json data.token", "}", "require_session /api/*", "logout /api/logout"),
			`{"token_binding":{"from":{"json":"data.token"}},"require_session":["/api/*"],"logout":["/api/logout"]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, err := adapt(t, "Caddyfile", []byte(tt.caddyfile)); err != nil {
				t.Errorf("Caddyfile: %v", err)
			}
			var cfg caddy.Config
			if err := json.Unmarshal(fullConfig(handlerJSON(t, tt.json)), &cfg); err != nil {
				t.Fatal(err)
			}
			if err := caddy.Validate(&cfg); err != nil {
				t.Errorf("caddy.Validate: %v", err)
			}
		})
	}
}

// An unset {$VAR} leaves nothing where the value was (Caddy replaces it
// when it reads the Caddyfile): the error says so, for a value missing
// and for a quoted one left empty.
func TestUnsetEnvironmentVariable(t *testing.T) {
	const unset = "MP_TEST_SURELY_UNSET_VARIABLE"
	t.Setenv(unset, "")
	for _, c := range []struct {
		input, want string
		line        int
	}{
		{block("platform wechat", "app_id wx1", "app_secret {$"+unset+"}", "login /l"), "app_secret: no value given", 5},
		{block("platform wechat", "app_id wx1", `app_secret "{$`+unset+`}"`, "login /l"), "app_secret: the value is empty", 5},
		{withBase("store redis {", "\taddrs {$"+unset+"}", "}"), "addrs: no value given", 8},
		{withBase("route_param {$" + unset + "}"), "route_param: no value given", 7},
	} {
		_, _, err := adapt(t, "Caddyfile", []byte(c.input))
		if err == nil {
			t.Errorf("accepted:\n%s", c.input)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, c.want) || !strings.Contains(msg, "environment variable may be unset") || strings.Contains(msg, "wrong argument count") {
			t.Errorf("error %q: want %q and the environment variable named as a cause", msg, c.want)
		}
		if !strings.Contains(msg, "Caddyfile:"+strconv.Itoa(c.line)) {
			t.Errorf("error %q: want line %d", msg, c.line)
		}
	}
}

// Sizes: "64 KiB" (the unit as its own argument) reads as 64KiB.
func TestSizeWithSpace(t *testing.T) {
	for _, c := range []struct {
		lines []string
		want  string
	}{
		{[]string{"max_body_size 64 KiB"}, `"max_body_size":65536`},
		{[]string{"max_body_size 64KiB"}, `"max_body_size":65536`},
		{[]string{"max_body_size 1 MB"}, `"max_body_size":1000000`},
		{[]string{"token_binding {", "\tfrom json data.token", "\tmax_response_size 256 KiB", "}"}, `"max_response_size":262144`},
	} {
		out, _, err := adapt(t, "Caddyfile", []byte(withBase(c.lines...)))
		if err != nil {
			t.Errorf("%v: %v", c.lines, err)
			continue
		}
		if !strings.Contains(string(out), c.want) {
			t.Errorf("%v: adapted JSON has no %s:\n%s", c.lines, c.want, out)
		}
	}
	for _, c := range []struct{ line, want string }{
		{"max_body_size 64 KiB more", "takes one size"},
		{"max_body_size 64 32", "takes one size such as 64KiB, got '64 32'"},
		{"max_body_size lots", "bad size 'lots'"},
	} {
		_, _, err := adapt(t, "Caddyfile", []byte(withBase(c.line)))
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "Caddyfile:7") {
			t.Errorf("%s: error %v, want %q at line 7", c.line, err, c.want)
		}
	}
}
