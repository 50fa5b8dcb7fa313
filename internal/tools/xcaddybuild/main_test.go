package main

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestRepositoryXcaddyJSON(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "..", "xcaddy.json"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := parse(data)
	if err != nil {
		t.Fatal(err)
	}
	inv, err := b.command(".", "bin/caddy-xcaddy")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"build", "v2.11.9",
		"--with", "github.com/caddy-miniprogram/caddy-miniprogram@v0.0.0=.",
		"--output", "bin/caddy-xcaddy"}
	if !reflect.DeepEqual(inv.Args, want) {
		t.Errorf("args = %q\nwant   %q", inv.Args, want)
	}
	if len(inv.Env) != 0 || len(inv.Warnings) != 0 {
		t.Errorf("env = %q, warnings = %q; want none", inv.Env, inv.Warnings)
	}
}

func TestCommand(t *testing.T) {
	tests := []struct {
		name      string
		json      string
		configDir string
		wantArgs  []string
		wantEnv   []string
		wantWarn  bool
	}{
		{
			name:     "plugin without replacement, with version",
			json:     `{"caddy_version":"v2.11.9","plugins":[{"module_path":"github.com/x/y","version":"v1.2.3"}]}`,
			wantArgs: []string{"build", "v2.11.9", "--with", "github.com/x/y@v1.2.3", "--output", "out"},
		},
		{
			name:     "no caddy version, trailing slash trimmed",
			json:     `{"plugins":[{"module_path":"github.com/x/y/"}]}`,
			wantArgs: []string{"build", "--with", "github.com/x/y", "--output", "out"},
		},
		{
			name:      "local replacement relative to the config's directory",
			json:      `{"plugins":[{"module_path":"m"}],"replacements":[{"old":"m","new":"."}]}`,
			configDir: "sub/dir",
			wantArgs:  []string{"build", "--with", "m=" + "." + string(filepath.Separator) + filepath.Join("sub", "dir"), "--output", "out"},
		},
		{
			name:      "absolute config directory",
			json:      `{"plugins":[{"module_path":"m"}],"replacements":[{"old":"m","new":"../m"}]}`,
			configDir: "/src/proj",
			wantArgs:  []string{"build", "--with", "m=" + filepath.Join("/src", "m"), "--output", "out"},
		},
		{
			name: "replacement of a non-plugin becomes --replace, go.mod version form",
			json: `{"caddy_version":"v2.11.9","plugins":[{"module_path":"m"}],
				"replacements":[{"old":"golang.org/x/net v0.60.0","new":"example.com/net-fork v0.60.1"},{"old":"dep","new":"./dep"}]}`,
			wantArgs: []string{"build", "v2.11.9", "--with", "m",
				"--replace", "golang.org/x/net@v0.60.0=example.com/net-fork@v0.60.1",
				"--replace", "dep=./dep", "--output", "out"},
		},
		{
			name:     "plugin with version and replacement",
			json:     `{"plugins":[{"module_path":"m","version":"v1.0.0"}],"replacements":[{"old":"m v1.0.0","new":"/abs/m"}]}`,
			wantArgs: []string{"build", "--with", "m@v1.0.0=/abs/m", "--output", "out"},
		},
		{
			name: "the other fields become environment variables and --embed",
			json: `{"os":"linux","arch":"arm","arm":"7","cgo":true,"race_detector":true,"skip_cleanup":true,
				"debug":true,"build_flags":"-tags nobadger","mod_flags":"-mod=readonly",
				"embed_dir":[{"dir":"site"},{"dir":"/www","name":"w"}],"timeout_build":60000000000}`,
			wantArgs: []string{"build", "--embed", "site", "--embed", "w:/www", "--output", "out"},
			wantEnv: []string{"GOOS=linux", "GOARCH=arm", "GOARM=7", "CGO_ENABLED=1", "XCADDY_RACE_DETECTOR=1",
				"XCADDY_SKIP_CLEANUP=1", "XCADDY_DEBUG=1", "XCADDY_GO_BUILD_FLAGS=-tags nobadger", "XCADDY_GO_MOD_FLAGS=-mod=readonly"},
			wantWarn: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := parse([]byte(tt.json))
			if err != nil {
				t.Fatal(err)
			}
			dir := tt.configDir
			if dir == "" {
				dir = "."
			}
			inv, err := b.command(dir, "out")
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(inv.Args, tt.wantArgs) {
				t.Errorf("args = %q\nwant   %q", inv.Args, tt.wantArgs)
			}
			if len(inv.Env)+len(tt.wantEnv) > 0 && !reflect.DeepEqual(inv.Env, tt.wantEnv) {
				t.Errorf("env = %q\nwant  %q", inv.Env, tt.wantEnv)
			}
			if (len(inv.Warnings) > 0) != tt.wantWarn {
				t.Errorf("warnings = %q, want some: %v", inv.Warnings, tt.wantWarn)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	for _, bad := range []string{
		`{"caddy_versoin":"v2.11.9"}`,    // typo: unknown field
		`{"plugins":[{"module":"m"}]}`,   // unknown field
		`{"caddy_version":"v2.11.9"} {}`, // trailing data
		`{"plugins":"m"}`,                // wrong type
	} {
		if _, err := parse([]byte(bad)); err == nil {
			t.Errorf("parse(%s) = nil error", bad)
		}
	}
	for _, bad := range []string{
		`{"plugins":[{"module_path":""}]}`,
		`{"plugins":[{"module_path":"m@v1"}]}`,
		`{"replacements":[{"old":"m","new":""}]}`,
		`{"caddy_version":"--output"}`,
	} {
		b, err := parse([]byte(bad))
		if err != nil {
			t.Fatalf("parse(%s): %v", bad, err)
		}
		if _, err := b.command(".", "out"); err == nil {
			t.Errorf("command(%s) = nil error", bad)
		}
	}
}

func TestShellLine(t *testing.T) {
	got := shellLine([]string{"XCADDY_GO_BUILD_FLAGS=-tags a b"}, []string{"xcaddy", "build", "--with", "m=./it's"})
	want := `XCADDY_GO_BUILD_FLAGS='-tags a b' xcaddy build --with 'm=./it'\''s'`
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

func TestRunDryRun(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "xcaddy.json")
	if err := os.WriteFile(cfg, []byte(`{"caddy_version":"v2.11.9","plugins":[{"module_path":"m"}],"replacements":[{"old":"m","new":"."}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := run([]string{"-n", "-config", cfg, "-o", "bin/x"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d, stderr %s", code, errb.String())
	}
	want := "xcaddy build v2.11.9 --with m=" + dir + " --output bin/x\n"
	if out.String() != want {
		t.Errorf("got  %q\nwant %q", out.String(), want)
	}
	if _, err := os.Stat("bin"); !os.IsNotExist(err) {
		t.Errorf("-n created the output directory (stat: %v)", err)
	}
}
