package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The example Caddyfiles must keep the addresses the demo replaces, and a
// platform the demo knows.
func TestExampleCaddyfilesFitTheDemo(t *testing.T) {
	for name, wantPlatform := range map[string]string{
		"Caddyfile":          "wechat",
		"Caddyfile.redis":    "wechat",
		"Caddyfile.douyin":   "douyin",
		"Caddyfile.cloudrun": "wechat",
	} {
		b, err := os.ReadFile(filepath.Join("..", name))
		if err != nil {
			t.Fatal(err)
		}
		out, err := substitute(string(b), map[string]string{
			fileSiteAddr:     "http://:1",
			fileUpstreamAddr: "127.0.0.1:2",
			fileAdminAddr:    "127.0.0.1:3",
		})
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		for _, old := range []string{fileSiteAddr, fileUpstreamAddr, fileAdminAddr} {
			if strings.Contains(out, old) {
				t.Errorf("%s: %s left after substitution", name, old)
			}
		}
		pf, err := platformOf(string(b))
		if err != nil || pf.name != wantPlatform {
			t.Errorf("%s: platform %q, %v; want %q", name, pf.name, err, wantPlatform)
		}
	}
}

func TestSubstituteMissing(t *testing.T) {
	if _, err := substitute("http://localhost {\n}\n", map[string]string{fileSiteAddr: "x"}); err == nil {
		t.Error("no error for a Caddyfile without the site address")
	}
}

func TestPlatformOf(t *testing.T) {
	if pf, err := platformOf("example.com {\n\tminiprogram {\n\t\tapp_id x\n\t}\n}\n"); err != nil || pf.name != "wechat" {
		t.Errorf("default: %q, %v", pf.name, err)
	}
	if _, err := platformOf("\t\tplatform taobao\n"); err == nil {
		t.Error("no error for an unknown platform")
	}
}

// The CloudRun story plays for header_names cloudrun only (both still sends
// the X-Mp-* headers the legacy story checks).
func TestCloudRunOf(t *testing.T) {
	for caddyfile, want := range map[string]bool{
		"\t\theader_names cloudrun\n": true,
		"\t\theader_names both\n":     false,
		"\t\theader_names mp\n":       false,
		"\t\tplatform wechat\n":       false,
	} {
		if got := cloudRunOf(caddyfile); got != want {
			t.Errorf("cloudRunOf(%q) = %v, want %v", caddyfile, got, want)
		}
	}
	for name, want := range map[string]bool{"Caddyfile": false, "Caddyfile.douyin": false, "Caddyfile.redis": false, "Caddyfile.cloudrun": true} {
		b, err := os.ReadFile(filepath.Join("..", name))
		if err != nil {
			t.Fatal(err)
		}
		if got := cloudRunOf(string(b)); got != want {
			t.Errorf("%s: cloudRunOf = %v, want %v", name, got, want)
		}
	}
}
