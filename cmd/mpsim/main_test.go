package main

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/mpsim"
)

func TestParseApp(t *testing.T) {
	cases := []struct {
		in   string
		want mpsim.App
		err  bool
	}{
		{"wechat:wx1:sec", mpsim.App{Platform: "wechat", AppID: "wx1", Secret: "sec"}, false},
		{"wechat:wx1:sec:unionid", mpsim.App{Platform: "wechat", AppID: "wx1", Secret: "sec", UnionID: true}, false},
		{"douyin:tt1:a:b", mpsim.App{Platform: "douyin", AppID: "tt1", Secret: "a:b"}, false},
		{"douyin:tt1:a:b:unionid", mpsim.App{Platform: "douyin", AppID: "tt1", Secret: "a:b", UnionID: true}, false},
		{"wechat:wx1:unionid", mpsim.App{Platform: "wechat", AppID: "wx1", Secret: "unionid"}, false},
		{"wechat:wx1", mpsim.App{}, true},
		{"qq:q1:sec", mpsim.App{Platform: "qq", AppID: "q1", Secret: "sec"}, false},
		{"taobao:a1:topsecret", mpsim.App{}, true},
		{"wechat::s", mpsim.App{}, true},
		{"wechat:wx1:", mpsim.App{}, true},
	}
	for _, c := range cases {
		got, err := parseApp(c.in)
		if (err != nil) != c.err || got != c.want {
			t.Errorf("%q: got %+v, %v", c.in, got, err)
		}
		if err != nil && strings.Contains(err.Error(), "topsecret") {
			t.Errorf("error leaks the secret: %v", err)
		}
	}
}

func TestBadQuirkFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-success-errcode", "sometimes"},
		{"-string-errcode", "yes"},
		{"-key-idle-ttl", "soon"},
		{"-seed", "-1"},
		{"-wechat-content-type", "a\nb"},
	} {
		done := make(chan error, 1)
		go func() { done <- run(append([]string{"-listen", "127.0.0.1:0"}, args...), io.Discard, io.Discard) }()
		select {
		case err := <-done:
			if err == nil {
				t.Errorf("%q: no error", args)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%q: accepted (the simulator is serving)", args)
		}
	}
}

// TestRun starts the command on a free port, uses it, and stops it with
// SIGINT.
func TestRun(t *testing.T) {
	outR, outW := io.Pipe()
	errR, errW := io.Pipe()
	go io.Copy(io.Discard, errR)
	done := make(chan error, 1)
	go func() {
		done <- run([]string{"-listen", "127.0.0.1:0", "-app", "wechat:wxrun:run-secret:unionid",
			"-success-errcode", "always", "-string-errcode", "always", "-seed", "9", "-key-idle-ttl", "never"}, outW, errW)
		outW.Close()
		errW.Close()
	}()
	sc := bufio.NewScanner(outR)
	var addr string
	var banner []string
	for sc.Scan() {
		line := sc.Text()
		banner = append(banner, line)
		if a, ok := strings.CutPrefix(line, "mpsim listening on "); ok {
			addr = a
		}
		if strings.Contains(line, "control API") {
			break
		}
	}
	go io.Copy(io.Discard, outR)
	if addr == "" {
		t.Fatalf("no address in %q", banner)
	}
	all := strings.Join(banner, "\n")
	if !strings.Contains(all, "appid=wxrun") || strings.Contains(all, "run-secret") ||
		!strings.Contains(all, "seed=9 success-errcode=always string-errcode=always wechat-content-type=\"text/plain\" werun-watermark=false key-idle-ttl=never") {
		t.Fatalf("banner:\n%s", all)
	}
	resp, err := http.Post("http://"+addr+"/_sim/login", "application/json", strings.NewReader(`{"appid":"wxrun","user":"alice"}`))
	if err != nil {
		t.Fatal(err)
	}
	var lr mpsim.LoginResult
	json.NewDecoder(resp.Body).Decode(&lr)
	resp.Body.Close()
	v := url.Values{"appid": {"wxrun"}, "secret": {"run-secret"}, "js_code": {lr.Code}, "grant_type": {"authorization_code"}}
	resp, err = http.Get("http://" + addr + "/sns/jscode2session?" + v.Encode())
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), lr.OpenID) || lr.UnionID == "" || !strings.HasPrefix(string(body), `{"errcode":"0","errmsg":"ok",`) {
		t.Fatalf("exchange: %s", body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/plain" {
		t.Fatalf("Content-Type %q", ct)
	}
	syscall.Kill(syscall.Getpid(), syscall.SIGINT)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no shutdown on SIGINT")
	}
}
