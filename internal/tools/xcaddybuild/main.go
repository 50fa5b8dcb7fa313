// Command xcaddybuild turns xcaddy.json into an `xcaddy build` command line,
// prints it and runs it:
//
//	go run ./internal/tools/xcaddybuild [-config xcaddy.json] [-o bin/caddy-xcaddy] [-xcaddy path] [-n]
//
// xcaddy reads no configuration file, only flags and environment variables.
// xcaddy.json is a serialized xcaddy.Builder (xcaddy v0.4.5: caddy_version,
// plugins[{module_path, version}], replacements[{old, new}], and the optional
// os, arch, arm, cgo, race_detector, skip_cleanup, skip_build, debug,
// build_flags, mod_flags, embed_dir), and this tool writes the equivalent
// command:
//
//   - caddy_version becomes the version argument of `xcaddy build`;
//   - a plugin becomes `--with module[@version]`, or `--with module=path`
//     when a replacement's old is that module;
//   - a replacement of no plugin becomes `--replace old=new`;
//   - a relative replacement path (".", "./x", "../x") is relative to the
//     directory of xcaddy.json, as a reader of that file would expect;
//   - the other fields become the environment variables xcaddy reads
//     (XCADDY_RACE_DETECTOR, GOOS, ...) or --embed flags.
//
// timeout_get and timeout_build have no command-line form; they are
// reported and ignored. -n prints the command without running it.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

// The xcaddy.Builder fields (v0.4.5), with its JSON tags.
type builder struct {
	OS           string       `json:"os"`
	Arch         string       `json:"arch"`
	ARM          string       `json:"arm"`
	Cgo          bool         `json:"cgo"`
	CaddyVersion string       `json:"caddy_version"`
	Plugins      []dependency `json:"plugins"`
	Replacements []replace    `json:"replacements"`
	TimeoutGet   int64        `json:"timeout_get"` // time.Duration, in nanoseconds
	TimeoutBuild int64        `json:"timeout_build"`
	RaceDetector bool         `json:"race_detector"`
	SkipCleanup  bool         `json:"skip_cleanup"`
	SkipBuild    bool         `json:"skip_build"`
	Debug        bool         `json:"debug"`
	BuildFlags   string       `json:"build_flags"`
	ModFlags     string       `json:"mod_flags"`
	EmbedDirs    []struct {
		Dir  string `json:"dir"`
		Name string `json:"name"`
	} `json:"embed_dir"`
}

type dependency struct {
	ModulePath string `json:"module_path"`
	Version    string `json:"version"`
}

type replace struct {
	Old string `json:"old"`
	New string `json:"new"`
}

// parse reads a serialized Builder. Unknown fields are an error, to catch
// typos.
func parse(data []byte) (*builder, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var b builder
	if err := dec.Decode(&b); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, errors.New("trailing data after the JSON object")
	}
	return &b, nil
}

// invocation is the command the Builder stands for.
type invocation struct {
	Env      []string // KEY=value, added to the environment
	Args     []string // after "xcaddy"
	Warnings []string
}

// command builds the xcaddy invocation. configDir is the directory of the
// JSON file (relative replacement paths are relative to it); output is the
// binary to write.
func (b *builder) command(configDir, output string) (*invocation, error) {
	inv := &invocation{Args: []string{"build"}}
	if b.CaddyVersion != "" {
		if strings.HasPrefix(b.CaddyVersion, "-") {
			return nil, fmt.Errorf("caddy_version %q: not a version", b.CaddyVersion)
		}
		inv.Args = append(inv.Args, b.CaddyVersion)
	}

	// Replacements, keyed by the module they replace ("mod" or "mod version").
	used := make([]bool, len(b.Replacements))
	for i, r := range b.Replacements {
		if strings.TrimSpace(r.Old) == "" || strings.TrimSpace(r.New) == "" {
			return nil, fmt.Errorf("replacements[%d]: old and new are required", i)
		}
	}
	for i, p := range b.Plugins {
		mod := strings.TrimSuffix(strings.TrimSpace(p.ModulePath), "/")
		if mod == "" {
			return nil, fmt.Errorf("plugins[%d]: module_path is required", i)
		}
		if strings.ContainsAny(mod, "@= ") || strings.ContainsAny(p.Version, "@= ") {
			return nil, fmt.Errorf("plugins[%d]: module_path %q / version %q contain '@', '=' or a space", i, mod, p.Version)
		}
		with := mod
		if p.Version != "" {
			with += "@" + p.Version
		}
		for j, r := range b.Replacements {
			oldMod, _ := splitOld(r.Old)
			if used[j] || oldMod != mod {
				continue
			}
			used[j] = true
			with += "=" + replacementPath(configDir, r.New)
			break
		}
		inv.Args = append(inv.Args, "--with", with)
	}
	for j, r := range b.Replacements {
		if used[j] {
			continue
		}
		oldMod, oldVer := splitOld(r.Old)
		old := oldMod
		if oldVer != "" {
			old += "@" + oldVer
		}
		inv.Args = append(inv.Args, "--replace", old+"="+replacementPath(configDir, r.New))
	}
	for _, e := range b.EmbedDirs {
		if e.Dir == "" {
			return nil, errors.New("embed_dir: dir is required")
		}
		dir := e.Dir
		if !filepath.IsAbs(dir) {
			dir = filepath.Join(configDir, dir)
		}
		if e.Name != "" {
			dir = e.Name + ":" + dir
		}
		inv.Args = append(inv.Args, "--embed", dir)
	}
	if output != "" {
		inv.Args = append(inv.Args, "--output", output)
	}

	set := func(k, v string) { inv.Env = append(inv.Env, k+"="+v) }
	if b.OS != "" {
		set("GOOS", b.OS)
	}
	if b.Arch != "" {
		set("GOARCH", b.Arch)
	}
	if b.ARM != "" {
		set("GOARM", b.ARM)
	}
	if b.Cgo {
		set("CGO_ENABLED", "1")
	}
	if b.RaceDetector {
		set("XCADDY_RACE_DETECTOR", "1")
	}
	if b.SkipCleanup {
		set("XCADDY_SKIP_CLEANUP", "1")
	}
	if b.SkipBuild {
		set("XCADDY_SKIP_BUILD", "1")
	}
	if b.Debug {
		set("XCADDY_DEBUG", "1")
	}
	if b.BuildFlags != "" {
		set("XCADDY_GO_BUILD_FLAGS", b.BuildFlags)
	}
	if b.ModFlags != "" {
		set("XCADDY_GO_MOD_FLAGS", b.ModFlags)
	}
	if b.TimeoutGet != 0 || b.TimeoutBuild != 0 {
		inv.Warnings = append(inv.Warnings, "timeout_get/timeout_build have no xcaddy command-line form; ignored")
	}
	return inv, nil
}

// splitOld splits a replacement's old, "module" or "module version" (the
// go.mod form) or "module@version".
func splitOld(old string) (mod, version string) {
	old = strings.TrimSpace(old)
	if m, v, ok := strings.Cut(old, " "); ok {
		return strings.TrimSuffix(m, "/"), strings.TrimSpace(v)
	}
	if i := strings.LastIndex(old, "@"); i > 0 {
		return strings.TrimSuffix(old[:i], "/"), old[i+1:]
	}
	return strings.TrimSuffix(old, "/"), ""
}

// isLocalPath reports whether a replacement target is a directory rather
// than a module path: go.mod's rule (starts with ./ or ../, or is absolute).
func isLocalPath(p string) bool {
	return p == "." || p == ".." || strings.HasPrefix(p, "./") || strings.HasPrefix(p, "../") ||
		filepath.IsAbs(p) || (runtime.GOOS == "windows" && (strings.HasPrefix(p, `.\`) || strings.HasPrefix(p, `..\`)))
}

// replacementPath resolves a local replacement against the config's
// directory, keeping it recognisably local ("./x", never "x", which go.mod
// would read as a module path). Module targets ("example.com/fork v1.2.3")
// become "example.com/fork@v1.2.3".
func replacementPath(configDir, p string) string {
	p = strings.TrimSpace(p)
	if !isLocalPath(p) {
		mod, ver := splitOld(p)
		if ver != "" {
			return mod + "@" + ver
		}
		return mod
	}
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	j := filepath.Join(configDir, p)
	if filepath.IsAbs(j) || j == "." || j == ".." || strings.HasPrefix(j, ".."+string(filepath.Separator)) {
		return j
	}
	return "." + string(filepath.Separator) + j
}

// shellLine renders env and argv as a copy-pasteable POSIX shell line.
func shellLine(env []string, argv []string) string {
	var parts []string
	for _, e := range env {
		k, v, _ := strings.Cut(e, "=")
		parts = append(parts, k+"="+shellQuote(v))
	}
	for _, a := range argv {
		parts = append(parts, shellQuote(a))
	}
	return strings.Join(parts, " ")
}

func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:=@,+%") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// findXcaddy looks for xcaddy in PATH, then in GOBIN, then in GOPATH/bin.
func findXcaddy() (string, error) {
	if p, err := exec.LookPath("xcaddy"); err == nil {
		return p, nil
	}
	name := "xcaddy"
	if runtime.GOOS == "windows" {
		name += ".exe"
	}
	var dirs []string
	if out, err := exec.Command("go", "env", "GOBIN", "GOPATH").Output(); err == nil {
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if len(lines) >= 1 && strings.TrimSpace(lines[0]) != "" {
			dirs = append(dirs, strings.TrimSpace(lines[0]))
		}
		if len(lines) >= 2 {
			for _, gp := range filepath.SplitList(strings.TrimSpace(lines[1])) {
				dirs = append(dirs, filepath.Join(gp, "bin"))
			}
		}
	}
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p, nil
		}
	}
	return "", errors.New("xcaddy not found in PATH, GOBIN or GOPATH/bin; install it with: go install github.com/caddyserver/xcaddy/cmd/xcaddy@v0.4.5")
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("xcaddybuild", flag.ContinueOnError)
	fs.SetOutput(stderr)
	config := fs.String("config", "xcaddy.json", "serialized xcaddy Builder to build from")
	output := fs.String("o", filepath.Join("bin", "caddy-xcaddy"), "binary to write")
	xcaddyBin := fs.String("xcaddy", "", "xcaddy binary (default: from PATH, GOBIN or GOPATH/bin)")
	dryRun := fs.Bool("n", false, "print the command, do not run it")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "xcaddybuild: unexpected arguments %q\n", fs.Args())
		return 2
	}

	data, err := os.ReadFile(*config)
	if err != nil {
		fmt.Fprintln(stderr, "xcaddybuild:", err)
		return 1
	}
	b, err := parse(data)
	if err != nil {
		fmt.Fprintf(stderr, "xcaddybuild: %s: %v\n", *config, err)
		return 1
	}
	inv, err := b.command(filepath.Dir(*config), *output)
	if err != nil {
		fmt.Fprintf(stderr, "xcaddybuild: %s: %v\n", *config, err)
		return 1
	}
	for _, w := range inv.Warnings {
		fmt.Fprintln(stderr, "xcaddybuild: warning:", w)
	}

	bin := *xcaddyBin
	display := "xcaddy"
	if bin != "" {
		display = bin
	}
	fmt.Fprintln(stdout, shellLine(inv.Env, append([]string{display}, inv.Args...)))
	if *dryRun {
		return 0
	}
	if bin == "" {
		if bin, err = findXcaddy(); err != nil {
			fmt.Fprintln(stderr, "xcaddybuild:", err)
			return 1
		}
	}
	if dir := filepath.Dir(*output); dir != "." {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			fmt.Fprintln(stderr, "xcaddybuild:", err)
			return 1
		}
	}
	cmd := exec.Command(bin, inv.Args...)
	cmd.Env = append(os.Environ(), inv.Env...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, stdout, stderr
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) && ee.ExitCode() > 0 {
			fmt.Fprintf(stderr, "xcaddybuild: xcaddy failed (exit %d)\n", ee.ExitCode())
			return ee.ExitCode()
		}
		fmt.Fprintln(stderr, "xcaddybuild:", err)
		return 1
	}
	return 0
}
