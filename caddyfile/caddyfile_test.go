package caddyfile_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	cf "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/caddy-miniprogram/caddy-miniprogram"
	mpcaddyfile "github.com/caddy-miniprogram/caddy-miniprogram/caddyfile"
	"github.com/caddy-miniprogram/caddy-miniprogram/module"
)

var update = flag.Bool("update", false, "rewrite the golden testdata/*.json files")

// adapt runs Caddy's caddyfile adapter on a whole Caddyfile.
func adapt(t *testing.T, filename string, body []byte) ([]byte, []caddyconfig.Warning, error) {
	t.Helper()
	adapter := caddyconfig.GetAdapter("caddyfile")
	if adapter == nil {
		t.Fatal("caddyfile adapter not registered")
	}
	return adapter.Adapt(body, map[string]any{"filename": filename})
}

func TestAdaptGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/*.caddyfile")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no testdata/*.caddyfile")
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".caddyfile")
		t.Run(name, func(t *testing.T) {
			body, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			out, warnings, err := adapt(t, filepath.Base(file), body)
			if err != nil {
				t.Fatalf("adapt: %v", err)
			}
			for _, w := range warnings {
				t.Errorf("warning: %s", w.String())
			}
			var got bytes.Buffer
			if err := json.Indent(&got, out, "", "\t"); err != nil {
				t.Fatal(err)
			}
			got.WriteByte('\n')

			golden := strings.TrimSuffix(file, ".caddyfile") + ".json"
			if *update {
				if err := os.WriteFile(golden, got.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if !bytes.Equal(got.Bytes(), want) {
				t.Errorf("adapted JSON differs from %s (go test -update rewrites it)\ngot:\n%s\nwant:\n%s", golden, got.Bytes(), want)
			}

			// Every miniprogram handler in the output decodes strictly into
			// module.Handler (no unknown keys) and passes its Validate.
			handlers := findHandlers(t, out)
			if len(handlers) != 1 {
				t.Fatalf("found %d miniprogram handlers, want 1", len(handlers))
			}
			for _, raw := range handlers {
				delete(raw, "handler")
				b, _ := json.Marshal(raw)
				dec := json.NewDecoder(bytes.NewReader(b))
				dec.DisallowUnknownFields()
				var h module.Handler
				if err := dec.Decode(&h); err != nil {
					t.Fatalf("decoding %s into module.Handler: %v", b, err)
				}
				if err := h.Validate(); err != nil {
					t.Errorf("module.Handler.Validate: %v", err)
				}
			}
		})
	}
}

// findHandlers returns every {"handler": "miniprogram", ...} object in the
// adapted config.
func findHandlers(t *testing.T, config []byte) []map[string]any {
	t.Helper()
	var v any
	if err := json.Unmarshal(config, &v); err != nil {
		t.Fatal(err)
	}
	var found []map[string]any
	var walk func(any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if v["handler"] == "miniprogram" {
				found = append(found, v)
			}
			for _, e := range v {
				walk(e)
			}
		case []any:
			for _, e := range v {
				walk(e)
			}
		}
	}
	walk(v)
	return found
}

// TestOrderBeforeReverseProxy checks, beyond the golden file, that a site
// with reverse_proxy written first and no order line still runs miniprogram
// first.
func TestOrderBeforeReverseProxy(t *testing.T) {
	body, err := os.ReadFile("testdata/with_reverse_proxy.caddyfile")
	if err != nil {
		t.Fatal(err)
	}
	out, _, err := adapt(t, "Caddyfile", body)
	if err != nil {
		t.Fatal(err)
	}
	s := string(out)
	mp := strings.Index(s, `"handler":"miniprogram"`)
	rp := strings.Index(s, `"handler":"reverse_proxy"`)
	if mp < 0 || rp < 0 || mp > rp {
		t.Fatalf("miniprogram (at %d) should come before reverse_proxy (at %d) in\n%s", mp, rp, s)
	}
}

var atLine = regexp.MustCompile(`at Caddyfile:(\d+)`)

func TestAdaptErrors(t *testing.T) {
	// site wraps a miniprogram block's inner lines in a Caddyfile; the
	// block's first inner line is line 3.
	site := func(inner string) string {
		return "example.com {\n\tminiprogram {\n" + inner + "\t}\n\treverse_proxy 127.0.0.1:9000\n}\n"
	}
	// ok is a valid block body; tests append a bad line after it (line 7).
	const ok = "\t\tplatform wechat\n\t\tapp_id wx1\n\t\tapp_secret s\n\t\tlogin /api/login\n"
	const okLine = 7
	// apps is a valid block of one app (app on line 4, its platform on 5).
	const apps = "\t\tselect_app header X-Mp-App\n\t\tapp wx {\n\t\t\tplatform wechat\n\t\t\tapp_id wx1\n\t\t\tapp_secret s\n\t\t}\n\t\tlogin /api/login\n"

	tests := []struct {
		name  string
		input string
		want  []string
		line  int
	}{
		{"unknown subdirective", site(ok + "\t\tfoo bar\n"), []string{"unrecognized", "foo"}, okLine},
		{"platform missing arg", site("\t\tplatform\n\t\tapp_id a\n\t\tapp_secret s\n"), []string{"platform: no value given", "environment variable may be unset"}, 3},
		{"platform two args", site("\t\tplatform wechat douyin\n"), []string{"platform takes one value, got 2"}, 3},
		{"unknown platform", site("\t\tplatform taobao\n"), []string{"unknown platform", "taobao"}, 3},
		{"app_id two args", site("\t\tplatform wechat\n\t\tapp_id a b\n"), []string{"app_id takes one value, got 2"}, 4},
		{"subdirective with block", site(ok + "\t\tphone /p {\n\t\t\tx\n\t\t}\n"), []string{"phone does not take a block"}, okLine + 1},
		{"duplicate subdirective", site(ok + "\t\tplatform douyin\n"), []string{"duplicate", "platform"}, okLine},
		{"duplicate login", site(ok + "\t\tlogin /other\n"), []string{"duplicate", "login"}, okLine},
		{"duplicate field kind", site(ok + "\t\tfield iv a\n\t\tfield iv b\n"), []string{"duplicate", "field iv"}, okLine + 1},
		{"duplicate store", site(ok + "\t\tstore memory\n\t\tstore redis redis://h:6379\n"), []string{"duplicate", "store"}, okLine + 1},
		{"directive argument", "example.com {\n\tminiprogram /api/* wechat {\n" + ok + "\t}\n}\n", []string{"takes no arguments"}, 2},

		{"missing all required", site("\t\tlogin /api/login\n"), []string{"missing required", "platform, app_id, app_secret"}, 2},
		{"missing app_secret", site("\t\tplatform douyin\n\t\tapp_id a\n\t\tlogin /l\n"), []string{"missing required", "app_secret"}, 2},
		{"no block at all", "example.com {\n\tminiprogram\n\treverse_proxy 127.0.0.1:9000\n}\n", []string{"missing required", "platform"}, 2},
		{"no route", site("\t\tplatform wechat\n\t\tapp_id a\n\t\tapp_secret s\n"), []string{"at least one route"}, 2},
		{"same path twice", site(ok + "\t\tphone /api/login\n"), []string{"phone: path \"/api/login\" is the same as the login path"}, okLine},
		{"route shadowed", site("\t\tplatform wechat\n\t\tapp_id a\n\t\tapp_secret s\n\t\tlogin /api/*\n\t\tdecrypt /api/decrypt/*\n"), []string{"decrypt: path \"/api/decrypt/*\" is unreachable", "login path \"/api/*\""}, 7},

		// Several apps: the app's line, or the line inside it.
		{"app platform unknown", site(strings.Replace(apps, "platform wechat", "platform taobao", 1)), []string{"apps[wx].platform", "unknown platform"}, 5},
		{"app without secret", site(strings.Replace(apps, "\t\t\tapp_secret s\n", "", 1)), []string{"apps[wx]: missing required field(s): app_secret"}, 4},
		{"app private_key on wechat", site(strings.Replace(apps, "app_secret s\n", "app_secret s\n\t\t\tprivate_key /k.pem\n", 1)), []string{"apps[wx].private_key"}, 8},
		{"app unknown option", site(strings.Replace(apps, "app_secret s\n", "app_secret s\n\t\t\tsession_ttl 1h\n", 1)), []string{"unrecognized option 'session_ttl' in app wx"}, 8},
		{"app twice", site(apps + "\t\tapp wx {\n\t\t\tplatform qq\n\t\t}\n"), []string{"duplicate", "app wx"}, 10},
		{"app and platform", site(apps + "\t\tplatform wechat\n"), []string{"platform: goes in each app"}, 10},
		{"select_app unknown", site(strings.Replace(apps, "select_app header X-Mp-App", "select_app cookie", 1)), []string{"unknown selector 'cookie'"}, 3},
		{"select_app header without name", site(strings.Replace(apps, "select_app header X-Mp-App", "select_app referer header", 1)), []string{"header needs a name"}, 3},
		{"apps without select_app", site(strings.Replace(apps, "\t\tselect_app header X-Mp-App\n", "", 1)), []string{"select_app: is needed"}, 2},
		{"app paths overlap", site("\t\tselect_app path\n\t\tapp wx {\n\t\t\tplatform wechat\n\t\t\tapp_id wx1\n\t\t\tapp_secret s\n\t\t\tpath /m/*\n\t\t}\n" +
			"\t\tapp tt {\n\t\t\tplatform douyin\n\t\t\tapp_id tt1\n\t\t\tapp_secret s\n\t\t\tpath /m/tt/* /t/*\n\t\t}\n\t\tlogin /api/login\n"),
			[]string{`apps[tt].path: "/m/tt/*" is covered by app wx's "/m/*"`}, 14},
		{"path without select_app path", site(strings.Replace(apps, "app_secret s\n", "app_secret s\n\t\t\tpath /wx/*\n", 1)), []string{"select_app", "does not say path"}, 3},

		{"api_base scheme", site(ok + "\t\tapi_base ftp://api.weixin.qq.com\n"), []string{"api_base", "http:// or https://"}, okLine},
		{"api_base no host", site(ok + "\t\tapi_base https://\n"), []string{"api_base", "no host"}, okLine},
		{"api_base query", site(ok + "\t\tapi_base https://api.weixin.qq.com?x=1\n"), []string{"api_base", "origin"}, okLine},
		{"api_base two values", site(ok + "\t\tapi_base http://a b\n"), []string{"api_base takes one value, got 2", "quote"}, okLine},
		{"api_base bad url", site(ok + "\t\tapi_base \"http://[::1\"\n"), []string{"api_base", "not a URL"}, okLine},

		{"unknown store", site(ok + "\t\tstore etcd\n"), []string{"unknown store type", "etcd"}, okLine},
		{"store no type", site(ok + "\t\tstore\n"), []string{"store: no value given", "memory or redis"}, okLine},
		{"memory with arg", site(ok + "\t\tstore memory 10\n"), []string{"store memory takes no arguments"}, okLine},
		{"memory unknown option", site(ok + "\t\tstore memory {\n\t\t\taddrs h:1\n\t\t}\n"), []string{"unrecognized store memory option", "addrs"}, okLine + 1},
		{"max_sessions zero", site(ok + "\t\tstore memory {\n\t\t\tmax_sessions 0\n\t\t}\n"), []string{"max_sessions", "greater than zero"}, okLine + 1},
		{"max_sessions not int", site(ok + "\t\tstore memory {\n\t\t\tmax_sessions lots\n\t\t}\n"), []string{"max_sessions", "not an integer"}, okLine + 1},
		{"redis url scheme", site(ok + "\t\tstore redis http://127.0.0.1:6379\n"), []string{"redis://", "rediss://"}, okLine},
		{"redis url db", site(ok + "\t\tstore redis redis://127.0.0.1:6379/x\n"), []string{"database number"}, okLine},
		{"redis url password redacted", site(ok + "\t\tstore redis redis://u:hunter2@127.0.0.1:6379/x\n"), []string{"database number", "xxxxx"}, okLine},
		{"redis url no host", site(ok + "\t\tstore redis redis:///0\n"), []string{"no host"}, okLine},
		{"redis two urls", site(ok + "\t\tstore redis redis://a:1 redis://b:1\n"), []string{"one URL"}, okLine},
		{"redis nothing", site(ok + "\t\tstore redis\n"), []string{"store: redis needs a url", "addrs"}, okLine},
		{"redis empty block", site(ok + "\t\tstore redis {\n\t\t\tdb 1\n\t\t}\n"), []string{"store: redis needs a url", "addrs"}, okLine},
		{"redis url with addrs", site(ok + "\t\tstore redis redis://h:6379 {\n\t\t\taddrs h:6379\n\t\t}\n"), []string{"store.addrs: cannot be combined with a url"}, okLine + 1},
		{"redis url with tls", site(ok + "\t\tstore redis redis://h:6379 {\n\t\t\ttls\n\t\t}\n"), []string{"rediss://"}, okLine + 1},
		{"redis bad addr", site(ok + "\t\tstore redis {\n\t\t\taddrs 10.0.0.1\n\t\t}\n"), []string{"not host:port"}, okLine + 1},
		{"redis addrs none", site(ok + "\t\tstore redis {\n\t\t\taddrs\n\t\t}\n"), []string{"addrs: no value given", "environment variable"}, okLine + 1},
		{"redis master without addrs", site(ok + "\t\tstore redis {\n\t\t\tmaster_name m\n\t\t}\n"), []string{"store.master_name: needs the sentinels' addrs"}, okLine + 1},
		{"redis negative db", site(ok + "\t\tstore redis {\n\t\t\taddrs h:1\n\t\t\tdb -1\n\t\t}\n"), []string{"store.db: -1 is negative"}, okLine + 2},
		{"redis bad timeout", site(ok + "\t\tstore redis {\n\t\t\taddrs h:1\n\t\t\ttimeout soon\n\t\t}\n"), []string{"timeout", "bad duration"}, okLine + 2},
		{"redis unknown option", site(ok + "\t\tstore redis {\n\t\t\taddrs h:1\n\t\t\tpool_size 10\n\t\t}\n"), []string{"unrecognized store redis option", "pool_size"}, okLine + 2},
		{"redis duplicate option", site(ok + "\t\tstore redis {\n\t\t\taddrs h:1\n\t\t\tdb 1\n\t\t\tdb 2\n\t\t}\n"), []string{"duplicate store redis option", "db"}, okLine + 3},
		{"redis tls arg", site(ok + "\t\tstore redis {\n\t\t\taddrs h:1\n\t\t\ttls yes\n\t\t}\n"), []string{"tls takes no value"}, okLine + 2},

		{"bad duration", site(ok + "\t\tsession_ttl forever\n"), []string{"session_ttl", "bad duration"}, okLine},
		{"zero duration", site(ok + "\t\tsession_ttl 0s\n"), []string{"session_ttl", "greater than zero"}, okLine},
		{"negative duration", site(ok + "\t\tplatform_timeout -1s\n"), []string{"platform_timeout", "greater than zero"}, okLine},
		{"exchange_wait missing", site(ok + "\t\texchange_wait\n"), []string{"exchange_wait: no value given"}, okLine},
		{"path without slash", site(ok + "\t\tphone api/phone\n"), []string{"phone", "must start with /"}, okLine},
		{"bad size", site(ok + "\t\tmax_body_size big\n"), []string{"max_body_size", "bad size"}, okLine},
		{"zero size", site(ok + "\t\tmax_body_size 0\n"), []string{"max_body_size", "greater than zero"}, okLine},
		{"negative size", site(ok + "\t\tmax_body_size -1KB\n"), []string{"max_body_size"}, okLine},
		{"negative retries", site(ok + "\t\tplatform_retries -1\n"), []string{"platform_retries", "negative"}, okLine},
		{"retries not int", site(ok + "\t\tplatform_retries two\n"), []string{"platform_retries", "not an integer"}, okLine},
		{"unknown field kind", site(ok + "\t\tfield openid uid\n"), []string{"unknown field kind", "openid"}, okLine},
		{"field one arg", site(ok + "\t\tfield code\n"), []string{"field takes a kind and a name"}, okLine},
		{"field three args", site(ok + "\t\tfield code a b\n"), []string{"field takes a kind and a name"}, okLine},

		{"max_failed_exchanges no arg", site(ok + "\t\tmax_failed_exchanges\n"), []string{"max_failed_exchanges: no value given"}, okLine},
		{"max_failed_exchanges no window", site(ok + "\t\tmax_failed_exchanges 30\n"), []string{"max_failed_exchanges", "<limit>/<window>", "or off"}, okLine},
		{"max_failed_exchanges zero", site(ok + "\t\tmax_failed_exchanges 0/1m\n"), []string{"max_failed_exchanges", "whole number"}, okLine},
		{"max_failed_exchanges bad window", site(ok + "\t\tmax_failed_exchanges 30/soon\n"), []string{"max_failed_exchanges", "duration"}, okLine},
		{"max_failed_exchanges short window", site(ok + "\t\tmax_failed_exchanges 30/100ms\n"), []string{"max_failed_exchanges", "1s to 24h"}, okLine},
		{"max_failed_exchanges two args", site(ok + "\t\tmax_failed_exchanges 30 1m\n"), []string{"max_failed_exchanges takes one value"}, okLine},
		{"max_failed_exchanges duplicate", site(ok + "\t\tmax_failed_exchanges off\n\t\tmax_failed_exchanges 3/1m\n"), []string{"duplicate", "max_failed_exchanges"}, okLine + 1},

		{"compat no prefix", site(ok + "\t\tcompat\n"), []string{"compat: no value given"}, okLine},
		{"compat bad prefix", site(ok + "\t\tcompat mp-compat\n"), []string{"must start with /"}, okLine},
		{"compat unknown option", site(ok + "\t\tcompat /mp-compat {\n\t\t\tpublic\n\t\t}\n"), []string{"unrecognized compat option", "public"}, okLine + 1},
		{"compat allow_public arg", site(ok + "\t\tcompat /mp-compat {\n\t\t\tallow_public yes\n\t\t}\n"), []string{"allow_public takes no value"}, okLine + 1},
		{"gateway no prefix", site(ok + "\t\tgateway\n"), []string{"gateway: no value given"}, okLine},
		{"gateway unknown option", site(ok + "\t\tgateway /mp-api {\n\t\t\tallow /wxa/msg_sec_check\n\t\t\tpublic\n\t\t}\n"), []string{"unrecognized gateway option", "public"}, okLine + 2},
		{"gateway host_mode arg", site(ok + "\t\tgateway /mp-api {\n\t\t\thost_mode yes\n\t\t}\n"), []string{"host_mode takes no value"}, okLine + 1},
		{"gateway allow no path", site(ok + "\t\tgateway /mp-api {\n\t\t\tallow\n\t\t}\n"), []string{"allow"}, okLine + 1},
		{"gateway max_buffer twice", site(ok + "\t\tgateway /mp-api {\n\t\t\tallow /x\n\t\t\tmax_buffer 1KiB\n\t\t\tmax_buffer 2KiB\n\t\t}\n"), []string{"duplicate gateway option"}, okLine + 3},
		{"compat allow_public twice", site(ok + "\t\tcompat /mp-compat {\n\t\t\tallow_public\n\t\t\tallow_public\n\t\t}\n"), []string{"duplicate compat option"}, okLine + 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := adapt(t, "Caddyfile", []byte(tt.input))
			if err == nil {
				t.Fatalf("no error for\n%s", tt.input)
			}
			msg := err.Error()
			t.Log(msg)
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not contain %q", msg, w)
				}
			}
			m := atLine.FindStringSubmatch(msg)
			if m == nil {
				t.Fatalf("error %q names no Caddyfile line", msg)
			}
			if line, _ := strconv.Atoi(m[1]); line != tt.line {
				t.Errorf("error %q is at line %d, want %d", msg, line, tt.line)
			}
			if strings.Contains(msg, "hunter2") {
				t.Errorf("error %q leaks a password", msg)
			}
		})
	}
}

// TestUnmarshalHandler parses a block without httpcaddyfile, from a fresh
// dispenser and from one already on the directive's name.
func TestUnmarshalHandler(t *testing.T) {
	const input = `miniprogram {
		platform douyin
		app_id {env.DY_APP_ID}
		app_secret {env.DY_APP_SECRET}
		login /login
		platform_retries 0
		max_body_size 1MB
		field anonymous_code anon
	}`
	for _, positioned := range []bool{false, true} {
		d := cf.NewTestDispenser(input)
		if positioned && !d.Next() {
			t.Fatal("no tokens")
		}
		var h module.Handler
		if err := mpcaddyfile.UnmarshalHandler(d, &h); err != nil {
			t.Fatalf("positioned=%v: %v", positioned, err)
		}
		if h.Platform != "douyin" || h.AppID != "{env.DY_APP_ID}" || h.AppSecret != "{env.DY_APP_SECRET}" || h.Login != "/login" {
			t.Errorf("positioned=%v: got %+v", positioned, h)
		}
		if h.PlatformRetries == nil || *h.PlatformRetries != 0 {
			t.Errorf("positioned=%v: platform_retries 0 should be kept as 0, got %v", positioned, h.PlatformRetries)
		}
		if h.MaxBodySize != 1_000_000 {
			t.Errorf("positioned=%v: max_body_size 1MB = %d, want 1000000", positioned, h.MaxBodySize)
		}
		if h.Fields == nil || h.Fields.AnonymousCode != "anon" {
			t.Errorf("positioned=%v: fields %+v", positioned, h.Fields)
		}
	}

	d := cf.NewTestDispenser(`miniprogram {
		platform wechat
		app_id wx1
		app_secret s
		gateway /mp-api {
			allow /wxa/msg_sec_check /cgi-bin/message/subscribe/send
			allow /cgi-bin/media/*
			max_buffer 256KiB
			host_mode
			allow_public
		}
	}`)
	var gh module.Handler
	if err := mpcaddyfile.UnmarshalHandler(d, &gh); err != nil {
		t.Fatal(err)
	}
	if g := gh.Gateway; g == nil || g.Prefix != "/mp-api" || strings.Join(g.Allow, " ") != "/wxa/msg_sec_check /cgi-bin/message/subscribe/send /cgi-bin/media/*" ||
		g.MaxBuffer != 256<<10 || !g.HostMode || !g.AllowPublic {
		t.Errorf("gateway %+v", gh.Gateway)
	}

	d = cf.NewTestDispenser("miniprogram {\n\tplatform wechat\n\tbogus\n}")
	err := mpcaddyfile.UnmarshalHandler(d, new(module.Handler))
	if err == nil || !strings.Contains(err.Error(), "Testfile:3") {
		t.Errorf("error %v should name Testfile:3", err)
	}
}
