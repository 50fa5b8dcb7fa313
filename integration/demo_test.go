package integration

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The README's first command (make demo) plays the whole story against the
// built Caddy and simulator: it must keep working, against the unkind
// simulator too.
func TestDemo(t *testing.T) {
	mpsimBin := filepath.Join(t.TempDir(), "mpsim")
	if out, err := exec.Command("go", "build", "-o", mpsimBin, "../cmd/mpsim").CombinedOutput(); err != nil {
		t.Fatalf("building mpsim: %v\n%s", err, out)
	}
	// WeChat (make demo), and Douyin (its phone code needs the app's RSA
	// key, which the demo makes).
	for _, cf := range []string{"Caddyfile", "Caddyfile.douyin"} {
		t.Run(cf, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			out, err := exec.CommandContext(ctx, "go", "run", "../examples/demo", "-caddy", caddyBin, "-mpsim", mpsimBin,
				"-caddyfile", "../examples/"+cf).CombinedOutput()
			if err != nil || !strings.Contains(string(out), "\ndemo OK.") || !strings.Contains(string(out), "(f) ") {
				t.Fatalf("the demo failed: %v\n%s", err, out)
			}
		})
	}
}
