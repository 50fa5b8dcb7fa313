package integration

import (
	"context"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

var fullSessionToken = regexp.MustCompile(`mps1\.[A-Za-z0-9_-]{20,}`)

// The README's first command (make demo) plays the whole story against the
// built Caddy and simulator: it must keep working, against the unkind
// simulator too.
func TestDemo(t *testing.T) {
	mpsimBin := filepath.Join(t.TempDir(), "mpsim")
	if out, err := exec.Command("go", "build", "-o", mpsimBin, "../cmd/mpsim").CombinedOutput(); err != nil {
		t.Fatalf("building mpsim: %v\n%s", err, out)
	}
	// WeChat (make demo), Douyin (its phone code needs the app's RSA key,
	// which the demo makes), each to the last step of the legacy story
	// (f); and a CloudRun backend behind header_names cloudrun and
	// session, to the last step of its own story (e); one backend for a
	// WeChat, a Douyin and a QQ app (select_app), to its step (d).
	for _, tc := range []struct{ caddyfile, lastStep string }{
		{"Caddyfile", "\n(f) "},
		{"Caddyfile.douyin", "\n(f) "},
		{"Caddyfile.cloudrun", "\n(e) "},
		{"Caddyfile.apps", "\n(d) "},
	} {
		t.Run(tc.caddyfile, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			out, err := exec.CommandContext(ctx, "go", "run", "../examples/demo", "-caddy", caddyBin, "-mpsim", mpsimBin,
				"-caddyfile", "../examples/"+tc.caddyfile).CombinedOutput()
			if err != nil || !strings.Contains(string(out), "\ndemo OK.") || !strings.Contains(string(out), tc.lastStep) {
				t.Fatalf("the demo failed: %v\n%s", err, out)
			}
			// The session token is a credential: printed shortened only.
			if tok := fullSessionToken.Find(out); tok != nil {
				t.Errorf("the demo printed a whole session token (%.12s…)", tok)
			}
		})
	}
}
