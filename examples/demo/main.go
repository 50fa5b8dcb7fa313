// Command demo plays caddy-miniprogram's main story end to end, on the
// default in-process (memory) session store, against the platform simulator:
//
//	go run ./examples/demo [-caddy bin/caddy] [-mpsim bin/mpsim] [-timeout 60s] [-caddyfile examples/Caddyfile]
//
// -caddyfile examples/Caddyfile.douyin plays the same story on Douyin's
// demo app; examples/Caddyfile.redis needs a Redis at 127.0.0.1:6379.
//
// It builds ./cmd/caddy and ./cmd/mpsim (unless given their paths), starts
// mpsim, a sample "legacy backend" (in process, printing every request it
// receives) and `caddy run` with examples/Caddyfile (ports replaced by free
// ones), and then:
//
//	(a) the mini-program calls wx.login and gets a code;
//	(b) it posts the code to /api/login through Caddy: the backend receives the
//	    user's openid/unionid, Caddy did code2session at once;
//	(c) ten minutes later (simulated clock) the user taps getPhoneNumber;
//	(d) it posts code + encryptedData + iv to /api/phone: the backend receives
//	    the plaintext phone number and no ciphertext;
//	(e) the platform saw one code2session call, and exchanging the code now
//	    (what the backend used to do at this point) fails: the code expired;
//	(f) the current button's e.detail, forwarded whole: its code is a phone
//	    code, which Caddy exchanges once (WeChat getuserphonenumber with the
//	    shared access token; Douyin get_phonenumber_info with the shared
//	    client token, decrypted with the app's RSA key, which the demo makes
//	    and registers with the simulator).
//
// With a Caddyfile that has "select_app" (examples/Caddyfile.apps) it plays
// one backend for three apps (apps.go): WeChat, Douyin and QQ users log in
// through the same route, each request's app picked by the Referer its
// platform's runtime sets; a code sent as another app's is refused, a
// request that names no app too, and the Douyin user's phone arrives.
//
// With a Caddyfile that has "header_names cloudrun" (examples/Caddyfile.cloudrun)
// it plays the CloudRun story instead: the backend is one written for WeChat
// CloudRun, reading only X-WX-OPENID and X-WX-APPID, with no login of its
// own, and the plugin issues the session token (session):
//
//	(a) the mini-program calls wx.login and gets a code;
//	(b) it posts the code to /api/login through Caddy: the backend receives
//	    X-WX-OPENID, the front end gets Caddy's session token (X-Mp-Session);
//	(c) GET /api/orders with "Authorization: Bearer <token>": the backend
//	    receives X-WX-OPENID and never the token;
//	(d) without the token, or with a spoofed X-WX-OPENID, require_session
//	    has Caddy answer 401 session_not_found: the backend is not called;
//	(e) the phone button's encryptedData + iv with the token (no code): the
//	    backend receives X-Mp-Phone.
//
// It exits 0 when every answer is the expected one, 1 with a message saying
// which step went wrong otherwise (130 on Ctrl-C), and stops every process it
// started in all cases. Caddy's and mpsim's logs are kept in a temporary
// directory whose path is printed. The session key is never printed: the
// demo, like the backend, never has it; the session token (a credential) is
// printed shortened.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	modulePath = "github.com/caddy-miniprogram/caddy-miniprogram"

	user   = "alice"
	phone  = "13800138000"
	phone2 = "13900139000" // the number the current button gives (step f)

	// The addresses examples/Caddyfile uses; the demo replaces them with
	// free ports in its own copy. The site, ":8080", matches any host
	// name; default_bind keeps it on loopback.
	fileSiteAddr     = "http://:8080"
	fileUpstreamAddr = "127.0.0.1:9000"
	fileAdminAddr    = "127.0.0.1:2999"
)

// platform is what the story needs to know about the Caddyfile's platform.
type platform struct {
	name, appID, secret string
	loginCall, codeLife string
	// phoneCall is the platform's phone-code exchange (the simulator's
	// endpoint name), tokenKind the token it needs.
	phoneCall, tokenKind string
	// privateKey: the app needs an RSA key pair (Douyin's phone codes);
	// the demo makes one and hands the public half to the simulator.
	privateKey bool
	// exchangeURL and exchangeBody make the direct code2session request the
	// seed backend used to make (GET when exchangeBody is nil).
	exchangeURL  func(simURL, code string) string
	exchangeBody func(code string) any
}

var platforms = map[string]platform{
	"wechat": {
		name: "wechat", appID: "wxdemoapp0000001", secret: "demo-wechat-secret", // mpsim's demo apps
		loginCall: "wx.login()", codeLife: "5 minutes",
		phoneCall: "getuserphonenumber", tokenKind: "the access token",
		exchangeURL: func(simURL, code string) string {
			q := url.Values{"appid": {"wxdemoapp0000001"}, "secret": {"demo-wechat-secret"}, "js_code": {code}, "grant_type": {"authorization_code"}}
			return simURL + "/sns/jscode2session?" + q.Encode()
		},
	},
	"douyin": {
		name: "douyin", appID: "ttdemoapp0000001", secret: "demo-douyin-secret",
		loginCall: "tt.login()", codeLife: "3 minutes",
		phoneCall: "get_phonenumber_info", tokenKind: "the client token", privateKey: true,
		exchangeURL: func(simURL, code string) string { return simURL + "/api/apps/v2/jscode2session" },
		exchangeBody: func(code string) any {
			return map[string]string{"appid": "ttdemoapp0000001", "secret": "demo-douyin-secret", "code": code}
		},
	},
}

var (
	platformLine    = regexp.MustCompile(`(?m)^\s*platform\s+(\S+)\s*$`)
	headerNamesLine = regexp.MustCompile(`(?m)^\s*header_names\s+(\S+)\s*$`)
)

// cloudRunOf tells whether the Caddyfile names the identity headers the
// CloudRun way only (header_names cloudrun): then the demo plays the
// CloudRun story.
func cloudRunOf(caddyfile string) bool {
	m := headerNamesLine.FindStringSubmatch(caddyfile)
	return m != nil && m[1] == "cloudrun"
}

// platformOf reads the platform subdirective of the Caddyfile (wechat when
// there is none).
func platformOf(caddyfile string) (platform, error) {
	m := platformLine.FindStringSubmatch(caddyfile)
	if m == nil {
		return platforms["wechat"], nil
	}
	p, ok := platforms[m[1]]
	if !ok {
		return platform{}, fmt.Errorf("the Caddyfile's platform %q is not one the demo knows", m[1])
	}
	return p, nil
}

func main() {
	// Child processes are started from this goroutine, which stays on its
	// OS thread, so that their parent-death signal (Linux) fires only when
	// the demo itself dies.
	runtime.LockOSThread()
	os.Exit(run())
}

type options struct {
	caddyBin, mpsimBin, caddyfile string
	timeout, buildTimeout         time.Duration
}

func run() int {
	var o options
	flag.StringVar(&o.caddyBin, "caddy", "", "path of a caddy binary with the plugin (default: go build ./cmd/caddy into a temp dir)")
	flag.StringVar(&o.mpsimBin, "mpsim", "", "path of the mpsim binary (default: go build ./cmd/mpsim into a temp dir)")
	flag.StringVar(&o.caddyfile, "caddyfile", "", "Caddyfile to run (default: examples/Caddyfile of this module)")
	flag.DurationVar(&o.timeout, "timeout", 60*time.Second, "give up the story after this long (building excluded)")
	flag.DurationVar(&o.buildTimeout, "build-timeout", 10*time.Minute, "give up building the binaries after this long")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "demo: unexpected arguments %q\n", flag.Args())
		return 2
	}

	sigCtx, stopSignals := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stopSignals()

	d := &demo{opts: o}
	err := d.main(sigCtx)
	d.cleanup()
	switch {
	case err == nil:
		return 0
	case sigCtx.Err() != nil:
		fmt.Fprintln(os.Stderr, "\ndemo: interrupted; all processes stopped")
		return 130
	default:
		fmt.Fprintf(os.Stderr, "\ndemo FAILED: %v\n", err)
		d.printLogTail(os.Stderr)
		return 1
	}
}

// demo holds what the run started, for the cleanup.
type demo struct {
	opts     options
	workDir  string // logs and the Caddyfile (kept)
	buildDir string // built binaries (removed)
	procs    []*proc
	backend  *backend
	pf       platform

	caddyfileName string // as given or found, for the printout
	// privateKeyPEM is the app's RSA private key (Douyin), for Caddy's
	// MP_PRIVATE_KEY; "" when the platform needs none.
	privateKeyPEM string

	caddyLog, mpsimLog string
}

func (d *demo) cleanup() {
	// Stop in reverse order of start: caddy, then mpsim.
	for i := len(d.procs) - 1; i >= 0; i-- {
		d.procs[i].stop()
	}
	if d.backend != nil {
		d.backend.close()
	}
	if d.buildDir != "" {
		os.RemoveAll(d.buildDir)
	}
}

func (d *demo) printLogTail(w io.Writer) {
	for _, p := range []struct{ name, path string }{{"caddy", d.caddyLog}, {"mpsim", d.mpsimLog}} {
		if p.path == "" {
			continue
		}
		fmt.Fprintf(w, "\n--- last lines of the %s log (%s) ---\n%s", p.name, p.path, tail(p.path, 15))
	}
}

func (d *demo) main(sigCtx context.Context) error {
	root, rootErr := moduleRoot()
	caddyfile := d.opts.caddyfile
	if caddyfile == "" {
		if rootErr != nil {
			return fmt.Errorf("cannot find examples/Caddyfile: %v (run from the repository or pass -caddyfile)", rootErr)
		}
		caddyfile = filepath.Join(root, "examples", "Caddyfile")
	}
	d.caddyfileName = caddyfile
	if root != "" {
		if rel, err := filepath.Rel(root, caddyfile); err == nil && !strings.HasPrefix(rel, "..") {
			d.caddyfileName = rel
		}
	}
	template, err := os.ReadFile(caddyfile)
	if err != nil {
		return err
	}

	d.workDir, err = os.MkdirTemp("", "caddy-miniprogram-demo-")
	if err != nil {
		return err
	}
	d.caddyLog = filepath.Join(d.workDir, "caddy.log")
	d.mpsimLog = filepath.Join(d.workDir, "mpsim.log")

	// 0. Binaries.
	if d.opts.caddyBin == "" || d.opts.mpsimBin == "" {
		if rootErr != nil {
			return fmt.Errorf("cannot build the binaries: %v (run from the repository or pass -caddy and -mpsim)", rootErr)
		}
		if d.buildDir, err = os.MkdirTemp("", "caddy-miniprogram-demo-bin-"); err != nil {
			return err
		}
		bctx, cancel := context.WithTimeout(sigCtx, d.opts.buildTimeout)
		defer cancel()
		for _, b := range []struct {
			name string
			dst  *string
		}{{"caddy", &d.opts.caddyBin}, {"mpsim", &d.opts.mpsimBin}} {
			if *b.dst != "" {
				continue
			}
			*b.dst = filepath.Join(d.buildDir, b.name+exeSuffix())
			fmt.Printf("building ./cmd/%s ...\n", b.name)
			cmd := exec.CommandContext(bctx, "go", "build", "-o", *b.dst, "./cmd/"+b.name)
			cmd.Dir = root
			cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
			if err := cmd.Run(); err != nil {
				if bctx.Err() != nil {
					return fmt.Errorf("building ./cmd/%s: %v", b.name, bctx.Err())
				}
				return fmt.Errorf("building ./cmd/%s: %v", b.name, err)
			}
		}
	}
	for _, p := range []string{d.opts.caddyBin, d.opts.mpsimBin} {
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("binary: %v", err)
		}
	}

	ctx, cancel := context.WithTimeout(sigCtx, d.opts.timeout)
	defer cancel()
	err = d.story(ctx, template)
	if err != nil && ctx.Err() == context.DeadlineExceeded && sigCtx.Err() == nil {
		err = fmt.Errorf("%v (gave up after %s)", err, d.opts.timeout)
	}
	return err
}

func (d *demo) story(ctx context.Context, template []byte) error {
	pf, err := platformOf(string(template))
	if err != nil {
		return err
	}
	d.pf = pf
	cloudRun := cloudRunOf(string(template))
	fmt.Printf("\nlogs: %s (caddy.log, mpsim.log)\n", d.workDir)

	// The platform simulator.
	sim, err := d.startMpsim(ctx)
	if err != nil {
		return fmt.Errorf("starting mpsim: %w", err)
	}
	simURL := "http://" + sim
	fmt.Printf("platform simulator (mpsim) on %s, %s app %s\n", simURL, pf.name, pf.appID)

	// The legacy backend (or the CloudRun one).
	d.backend, err = startBackend(cloudRun)
	if err != nil {
		return fmt.Errorf("starting the sample backend: %w", err)
	}
	fmt.Printf("%s (sample upstream, in this process) on http://%s\n", d.backend.name(), d.backend.addr)

	// Caddy.
	addrs, err := freeAddrs(2)
	if err != nil {
		return fmt.Errorf("finding free loopback ports: %w", err)
	}
	site, admin := addrs[0], addrs[1]
	_, sitePort, _ := net.SplitHostPort(site)
	siteAddr := "http://:" + sitePort
	conf, err := substitute(string(template), map[string]string{
		fileSiteAddr:     siteAddr,
		fileUpstreamAddr: d.backend.addr,
		fileAdminAddr:    admin,
	})
	if err != nil {
		return err
	}
	confPath := filepath.Join(d.workDir, "Caddyfile")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		return err
	}
	if pf.privateKey {
		if err := d.makeKeyPair(ctx, simURL); err != nil {
			return fmt.Errorf("the app's RSA key pair: %w", err)
		}
	}
	if err := d.startCaddy(ctx, confPath, site, admin, simURL); err != nil {
		return fmt.Errorf("starting caddy: %w", err)
	}
	caddyURL := "http://" + site
	fmt.Printf("caddy on %s with %s\n  (%s with ports %s→%s, %s→%s, admin %s→%s;\n   MP_APP_ID=%s MP_APP_SECRET=%s MP_API_BASE=%s)\n",
		caddyURL, confPath, d.caddyfileName, fileSiteAddr, siteAddr, fileUpstreamAddr, d.backend.addr, fileAdminAddr, admin, pf.appID, pf.secret, simURL)

	c := &client{ctx: ctx}
	if cloudRun {
		return d.cloudRunStory(c, simURL, caddyURL)
	}
	if severalAppsOf(string(template)) {
		return d.appsStory(c, simURL, caddyURL)
	}

	// (a) wx.login.
	step("a", "The mini-program calls %s for user %q (the simulator's control API plays the phone)", pf.loginCall, user)
	var login struct{ Code, OpenID, UnionID string }
	if err := c.call("POST", simURL+"/_sim/login", map[string]string{"appid": pf.appID, "user": user}, 200, &login); err != nil {
		return fail("a", err)
	}
	if login.Code == "" || login.OpenID == "" {
		return fail("a", fmt.Errorf("mpsim gave no code or openid: %+v", login))
	}
	fmt.Printf("    code = %s   (single use, valid %s)\n", login.Code, pf.codeLife)
	fmt.Printf("    the platform will say: openid = %s, unionid = %s\n", login.OpenID, orNone(login.UnionID))

	// (b) login through Caddy.
	step("b", "The front end posts the code to the backend's login endpoint, through Caddy")
	d.backend.reset()
	var loginResp map[string]any
	if err := c.call("POST", caddyURL+"/api/login", map[string]string{"code": login.Code}, 200, &loginResp); err != nil {
		return fail("b", err)
	}
	got, err := d.backend.only("/api/login")
	if err != nil {
		return fail("b", err)
	}
	checks := []check{
		{"header X-Mp-Openid", got.header.Get("X-Mp-Openid"), login.OpenID},
		{"header X-Mp-Unionid", got.header.Get("X-Mp-Unionid"), login.UnionID},
		{"header X-Mp-Platform", got.header.Get("X-Mp-Platform"), pf.name},
		{"header X-Mp-App-Id", got.header.Get("X-Mp-App-Id"), pf.appID},
		{"body field openid", got.field("openid"), login.OpenID},
		{"body field unionid", got.field("unionid"), login.UnionID},
	}
	if err := verify(checks); err != nil {
		return fail("b", fmt.Errorf("the backend did not get the identity: %w", err))
	}
	fmt.Printf("    ✓ the backend got openid %s and unionid %s without calling code2session itself\n", login.OpenID, orNone(login.UnionID))

	// (c) ten minutes later: getPhoneNumber.
	step("c", "Ten minutes later the user taps the getPhoneNumber button")
	var adv struct{ Now string }
	if err := c.call("POST", simURL+"/_sim/advance", map[string]string{"duration": "10m"}, 200, &adv); err != nil {
		return fail("c", err)
	}
	fmt.Printf("    simulator clock advanced 10m, now %s: the login code has expired\n", adv.Now)
	var enc struct {
		EncryptedData string `json:"encryptedData"`
		IV            string `json:"iv"`
	}
	if err := c.call("POST", simURL+"/_sim/phone", map[string]string{"appid": pf.appID, "user": user, "phone": phone}, 200, &enc); err != nil {
		return fail("c", err)
	}
	if enc.EncryptedData == "" || enc.IV == "" {
		return fail("c", errors.New("mpsim gave no encryptedData/iv"))
	}
	fmt.Printf("    the button gives the front end (encrypted with alice's session key, which only the server holds):\n")
	fmt.Printf("      encryptedData = %s\n      iv            = %s\n", enc.EncryptedData, enc.IV)

	// (d) phone through Caddy.
	step("d", "The front end posts code + encryptedData + iv to the backend's phone endpoint, through Caddy")
	d.backend.reset()
	var phoneResp map[string]any
	if err := c.call("POST", caddyURL+"/api/phone", map[string]string{
		"code": login.Code, "encryptedData": enc.EncryptedData, "iv": enc.IV,
	}, 200, &phoneResp); err != nil {
		return fail("d", err)
	}
	got, err = d.backend.only("/api/phone")
	if err != nil {
		return fail("d", err)
	}
	checks = []check{
		{"body field phoneNumber", got.field("phoneNumber"), phone},
		{"body field purePhoneNumber", got.field("purePhoneNumber"), phone},
		{"body field countryCode", got.field("countryCode"), "86"},
		{"header X-Mp-Phone", got.header.Get("X-Mp-Phone"), phone},
		{"header X-Mp-Openid", got.header.Get("X-Mp-Openid"), login.OpenID},
	}
	if err := verify(checks); err != nil {
		return fail("d", fmt.Errorf("the backend did not get the phone number: %w", err))
	}
	for _, k := range []string{"encryptedData", "iv"} {
		if _, ok := got.json[k]; ok {
			return fail("d", fmt.Errorf("the backend still got the field %q", k))
		}
	}
	if bytes.Contains(got.body, []byte(enc.EncryptedData)) {
		return fail("d", errors.New("the backend still got the ciphertext"))
	}
	fmt.Printf("    ✓ the backend got the plaintext number %s (body and X-Mp-Phone) and no encryptedData/iv\n", phone)

	// (e) the bug that is gone.
	step("e", "What the platform saw, and what the backend used to do at this point")
	var stats struct {
		Calls map[string]int `json:"calls"`
	}
	if err := c.call("GET", simURL+"/_sim/stats", nil, 200, &stats); err != nil {
		return fail("e", err)
	}
	n := stats.Calls["jscode2session"]
	fmt.Printf("    code2session calls the platform received: %d (Caddy's, at login time)\n", n)
	if n != 1 {
		return fail("e", fmt.Errorf("want exactly 1 code2session call, the simulator counted %d", n))
	}
	fmt.Printf("    the old way: the backend exchanges the code only now, at phone time:\n")
	u, body := pf.exchangeURL(simURL, login.Code), any(nil)
	method := "GET"
	if pf.exchangeBody != nil {
		method, body = "POST", pf.exchangeBody(login.Code)
	}
	if body == nil {
		fmt.Printf("    → %s %s\n", method, u)
	} else {
		raw, _ := json.Marshal(body)
		fmt.Printf("    → %s %s  %s\n", method, u, raw)
	}
	// WeChat: {errcode, errmsg, session_key...}; Douyin: {err_no, err_tips, data{session_key...}}.
	// Error numbers may come as JSON numbers or strings (as the platforms,
	// and so the simulator, send them).
	var direct struct {
		Errcode    json.Number `json:"errcode"`
		Errmsg     string      `json:"errmsg"`
		ErrNo      json.Number `json:"err_no"`
		ErrTips    string      `json:"err_tips"`
		SessionKey string      `json:"session_key"`
		Data       *struct {
			SessionKey string `json:"session_key"`
		} `json:"data"`
	}
	if err := c.callQuiet(method, u, body, 200, &direct); err != nil {
		return fail("e", err)
	}
	codeText, msg := direct.Errcode, direct.Errmsg
	if pf.name == "douyin" {
		codeText, msg = direct.ErrNo, direct.ErrTips
	}
	code, _ := strconv.Atoi(strings.Trim(string(codeText), `"`))
	if code == 0 || direct.SessionKey != "" || (direct.Data != nil && direct.Data.SessionKey != "") {
		// Never print the answer: it would hold the session key.
		return fail("e", errors.New("exchanging the expired code directly unexpectedly succeeded"))
	}
	fmt.Printf("    ← error %d %q\n", code, msg)
	fmt.Printf("    ✗ without the plugin this phone request fails and the user has to log in again;\n")
	fmt.Printf("    ✓ with it, Caddy exchanged the code at once and kept the session key for the phone step.\n")

	// (f) the current button: e.detail forwarded whole.
	step("f", "On a current base library the button also gives a phone code; the front end forwards e.detail whole")
	var button map[string]string
	if err := c.call("POST", simURL+"/_sim/phone_button", map[string]string{"appid": pf.appID, "user": user, "phone": phone2}, 200, &button); err != nil {
		return fail("f", err)
	}
	if button["code"] == "" {
		return fail("f", errors.New("mpsim's button gave no phone code"))
	}
	fmt.Printf("    e.detail = {errMsg, code: %s, encryptedData, iv} (the code is a phone code, not a login code)\n", button["code"])
	d.backend.reset()
	if err := c.call("POST", caddyURL+"/api/phone", button, 200, nil); err != nil {
		return fail("f", err)
	}
	got, err = d.backend.only("/api/phone")
	if err != nil {
		return fail("f", err)
	}
	if err := verify([]check{
		{"body field phoneNumber", got.field("phoneNumber"), phone2},
		{"header X-Mp-Phone", got.header.Get("X-Mp-Phone"), phone2},
	}); err != nil {
		return fail("f", fmt.Errorf("the backend did not get the phone number: %w", err))
	}
	if err := c.callQuiet("GET", simURL+"/_sim/stats", nil, 200, &stats); err != nil {
		return fail("f", err)
	}
	fmt.Printf("    ✓ the backend got %s: Caddy exchanged the phone code once (%s calls: %d), with %s shared by every instance\n",
		phone2, pf.phoneCall, stats.Calls[pf.phoneCall], pf.tokenKind)
	if stats.Calls[pf.phoneCall] != 1 {
		return fail("f", fmt.Errorf("want exactly 1 %s call, the simulator counted %d", pf.phoneCall, stats.Calls[pf.phoneCall]))
	}

	fmt.Printf("\ndemo OK. Caddy's log: %s\n", d.caddyLog)
	return nil
}

// cloudRunStory plays the story of a backend written for WeChat CloudRun,
// unchanged behind Caddy (header_names cloudrun, session, require_session).
func (d *demo) cloudRunStory(c *client, simURL, caddyURL string) error {
	pf := d.pf

	// (a) wx.login.
	step("a", "The mini-program calls %s for user %q (the simulator's control API plays the phone)", pf.loginCall, user)
	var login struct{ Code, OpenID, UnionID string }
	if err := c.call("POST", simURL+"/_sim/login", map[string]string{"appid": pf.appID, "user": user}, 200, &login); err != nil {
		return fail("a", err)
	}
	if login.Code == "" || login.OpenID == "" {
		return fail("a", fmt.Errorf("mpsim gave no code or openid: %+v", login))
	}
	fmt.Printf("    code = %s   (single use, valid %s)\n", login.Code, pf.codeLife)
	fmt.Printf("    the platform will say: openid = %s, unionid = %s\n", login.OpenID, orNone(login.UnionID))

	// (b) login through Caddy: X-WX-OPENID for the backend, a session
	// token for the front end.
	step("b", "The front end logs in once: it posts the code to /api/login, through Caddy")
	d.backend.reset()
	answerHeader, err := c.callWith("POST", caddyURL+"/api/login", nil, map[string]string{"code": login.Code}, 200, nil)
	if err != nil {
		return fail("b", err)
	}
	got, err := d.backend.only("/api/login")
	if err != nil {
		return fail("b", err)
	}
	if err := verify([]check{
		{"header X-WX-OPENID", got.header.Get("X-WX-OPENID"), login.OpenID},
		{"header X-WX-UNIONID", got.header.Get("X-WX-UNIONID"), login.UnionID},
		{"header X-WX-APPID", got.header.Get("X-WX-APPID"), pf.appID},
		{"header X-Mp-Openid", got.header.Get("X-Mp-Openid"), ""},
		{"header X-Mp-Platform", got.header.Get("X-Mp-Platform"), ""},
	}); err != nil {
		return fail("b", fmt.Errorf("the backend did not get the CloudRun identity: %w", err))
	}
	token := answerHeader.Get("X-Mp-Session")
	if !strings.HasPrefix(token, "mps1.") {
		return fail("b", fmt.Errorf("the login answer has no session token in X-Mp-Session (%d characters)", len(token)))
	}
	fmt.Printf("    ✓ the backend got X-WX-OPENID %s, as CloudRun's gateway gave it (no X-Mp-Openid)\n", login.OpenID)
	fmt.Printf("    ✓ the front end got Caddy's session token in the answer: X-Mp-Session: %s (a credential: shown shortened)\n", shorten(token))
	bearer := http.Header{"Authorization": {"Bearer " + token}}

	// (c) any request with the token: the backend knows the caller.
	step("c", "Every request carries the token as a bearer; the backend reads X-WX-OPENID as on CloudRun")
	d.backend.reset()
	var orders struct{ User string }
	if _, err := c.callWith("GET", caddyURL+"/api/orders", bearer, nil, 200, &orders); err != nil {
		return fail("c", err)
	}
	if got, err = d.backend.only("/api/orders"); err != nil {
		return fail("c", err)
	}
	if err := verify([]check{
		{"header X-WX-OPENID", got.header.Get("X-WX-OPENID"), login.OpenID},
		{"header X-WX-APPID", got.header.Get("X-WX-APPID"), pf.appID},
		{"the backend's answer's user", orders.User, login.OpenID},
	}); err != nil {
		return fail("c", fmt.Errorf("the backend did not get the identity: %w", err))
	}
	if err := tokenAbsent(got, token); err != nil {
		return fail("c", err)
	}
	fmt.Printf("    ✓ the backend answered for %s, knowing it by X-WX-OPENID alone; it never saw the token\n", login.OpenID)

	// (d) no session, no backend.
	step("d", "Without the token, or with a spoofed X-WX-OPENID, Caddy answers 401 itself (require_session /api/*)")
	for _, h := range []http.Header{nil, {"X-WX-OPENID": {"o-spoofed-by-the-client"}}} {
		d.backend.reset()
		var refused struct{ Error string }
		if _, err := c.callWith("GET", caddyURL+"/api/orders", h, nil, 401, &refused); err != nil {
			return fail("d", err)
		}
		if refused.Error != "session_not_found" {
			return fail("d", fmt.Errorf("error %q, want session_not_found", refused.Error))
		}
		if err := d.backend.none(); err != nil {
			return fail("d", err)
		}
	}
	fmt.Printf("    ✓ both refused with session_not_found; the backend was not called (a client's X-WX-* headers never pass)\n")

	// (e) the phone number with the token, no login code.
	step("e", "The user taps getPhoneNumber; the front end posts encryptedData + iv with the token (no code)")
	var enc struct {
		EncryptedData string `json:"encryptedData"`
		IV            string `json:"iv"`
	}
	if err := c.callQuiet("POST", simURL+"/_sim/phone", map[string]string{"appid": pf.appID, "user": user, "phone": phone}, 200, &enc); err != nil {
		return fail("e", err)
	}
	if enc.EncryptedData == "" || enc.IV == "" {
		return fail("e", errors.New("mpsim gave no encryptedData/iv"))
	}
	d.backend.reset()
	var bound struct {
		BoundPhone string `json:"bound_phone"`
	}
	if _, err := c.callWith("POST", caddyURL+"/api/phone", bearer, map[string]string{
		"encryptedData": enc.EncryptedData, "iv": enc.IV,
	}, 200, &bound); err != nil {
		return fail("e", err)
	}
	if got, err = d.backend.only("/api/phone"); err != nil {
		return fail("e", err)
	}
	if err := verify([]check{
		{"header X-Mp-Phone", got.header.Get("X-Mp-Phone"), phone},
		{"header X-WX-OPENID", got.header.Get("X-WX-OPENID"), login.OpenID},
		{"the backend's answer's bound_phone", bound.BoundPhone, phone},
	}); err != nil {
		return fail("e", fmt.Errorf("the backend did not get the phone number: %w", err))
	}
	if bytes.Contains(got.body, []byte(enc.EncryptedData)) {
		return fail("e", errors.New("the backend still got the ciphertext"))
	}
	if err := tokenAbsent(got, token); err != nil {
		return fail("e", err)
	}
	fmt.Printf("    ✓ the backend got X-Mp-Phone %s for X-WX-OPENID %s: Caddy found the session by the token\n", phone, login.OpenID)

	fmt.Printf("\ndemo OK. Caddy's log: %s\n", d.caddyLog)
	return nil
}

// tokenAbsent fails when the session token reached the backend, in any
// header or in the body.
func tokenAbsent(got received, token string) error {
	for k, vs := range got.header {
		for _, v := range vs {
			if strings.Contains(v, token) {
				return fmt.Errorf("the backend got the session token in its %s header", k)
			}
		}
	}
	if bytes.Contains(got.body, []byte(token)) {
		return errors.New("the backend got the session token in the body")
	}
	return nil
}

// ---------------------------------------------------------------- steps

func step(id, format string, args ...any) {
	fmt.Printf("\n(%s) %s\n", id, fmt.Sprintf(format, args...))
}

func fail(id string, err error) error {
	return fmt.Errorf("step (%s): %w", id, err)
}

type check struct{ what, got, want string }

func verify(cs []check) error {
	var bad []string
	for _, c := range cs {
		if c.got != c.want {
			bad = append(bad, fmt.Sprintf("%s = %q, want %q", c.what, c.got, c.want))
		}
	}
	if len(bad) > 0 {
		return errors.New(strings.Join(bad, "; "))
	}
	return nil
}

// ---------------------------------------------------------------- HTTP client

type client struct{ ctx context.Context }

var httpClient = &http.Client{Timeout: 15 * time.Second}

// call sends a JSON request (body may be nil), prints it and the answer,
// checks the status and decodes the answer into out.
func (c *client) call(method, u string, body any, wantStatus int, out any) error {
	return c.do(method, u, body, wantStatus, out, true)
}

// callQuiet is call without printing the answer.
func (c *client) callQuiet(method, u string, body any, wantStatus int, out any) error {
	return c.do(method, u, body, wantStatus, out, false)
}

func (c *client) do(method, u string, body any, wantStatus int, out any, show bool) error {
	_, err := c.doWith(method, u, nil, body, wantStatus, out, show)
	return err
}

// callWith is call with headers added to the request (printed with bearer
// tokens shortened); it returns the answer's headers.
func (c *client) callWith(method, u string, header http.Header, body any, wantStatus int, out any) (http.Header, error) {
	return c.doWith(method, u, header, body, wantStatus, out, true)
}

func (c *client) doWith(method, u string, header http.Header, body any, wantStatus int, out any, show bool) (http.Header, error) {
	var rd io.Reader
	var raw []byte
	if body != nil {
		var err error
		if raw, err = json.Marshal(body); err != nil {
			return nil, err
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(c.ctx, method, u, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	names := make([]string, 0, len(header))
	for k, vs := range header {
		names = append(names, k)
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	sort.Strings(names)
	if show {
		fmt.Printf("    → %s %s", method, u)
		for _, k := range names {
			for _, v := range header[k] {
				fmt.Printf("  [%s: %s]", k, printable(k, v))
			}
		}
		if raw != nil {
			fmt.Printf("  %s", raw)
		}
		fmt.Println()
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, u, err)
	}
	defer resp.Body.Close()
	rb, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("%s %s: reading the answer: %w", method, u, err)
	}
	if show {
		fmt.Printf("    ← %d %s\n", resp.StatusCode, bytes.TrimSpace(rb))
	}
	if resp.StatusCode != wantStatus {
		return nil, fmt.Errorf("%s %s answered %d, want %d: %s", method, u, resp.StatusCode, wantStatus, bytes.TrimSpace(rb))
	}
	if out != nil {
		if err := json.Unmarshal(rb, out); err != nil {
			return nil, fmt.Errorf("%s %s: answer is not the expected JSON: %v", method, u, err)
		}
	}
	return resp.Header, nil
}

// printable is a request header's value as the demo prints it: a bearer
// token (a credential) shortened.
func printable(name, value string) string {
	if tok, ok := strings.CutPrefix(value, "Bearer "); ok && http.CanonicalHeaderKey(name) == "Authorization" {
		return "Bearer " + shorten(tok)
	}
	return value
}

// shorten is a credential as the demo prints it: its first 12 characters.
func shorten(secret string) string {
	if len(secret) <= 12 {
		return strings.Repeat("*", len(secret))
	}
	return secret[:12] + "…"
}

// ---------------------------------------------------------------- the legacy backend

// received is one request as the backend saw it.
type received struct {
	method, path string
	header       http.Header
	body         []byte
	json         map[string]any // nil when the body is not a JSON object
}

func (r received) field(name string) string {
	v, ok := r.json[name]
	if !ok || v == nil {
		return ""
	}
	if s, ok := v.(string); ok {
		return s
	}
	return fmt.Sprint(v)
}

// backend is the sample upstream: it prints every request and answers JSON,
// like a backend that trusts what the gateway injected. A CloudRun backend
// (cloudRun) reads only X-WX-OPENID and X-WX-APPID (and X-Mp-Phone on the
// phone route), as a backend written for WeChat CloudRun does.
type backend struct {
	addr     string
	srv      *http.Server
	cloudRun bool

	mu   sync.Mutex
	reqs []received
}

func startBackend(cloudRun bool) (*backend, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	b := &backend{addr: ln.Addr().String(), cloudRun: cloudRun}
	b.srv = &http.Server{Handler: http.HandlerFunc(b.serve), ReadHeaderTimeout: 10 * time.Second}
	go b.srv.Serve(ln)
	return b, nil
}

func (b *backend) name() string {
	if b.cloudRun {
		return "CloudRun backend"
	}
	return "legacy backend"
}

func (b *backend) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	b.srv.Shutdown(ctx)
}

func (b *backend) reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.reqs = nil
}

// none fails when the backend received a request since reset.
func (b *backend) none() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.reqs) > 0 {
		return fmt.Errorf("the backend received %d request(s) (%s first)", len(b.reqs), b.reqs[0].path)
	}
	return nil
}

// only returns the one request received since reset, which must be for path.
func (b *backend) only(path string) (received, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case len(b.reqs) == 0:
		return received{}, errors.New("the backend received no request")
	case len(b.reqs) > 1:
		return received{}, fmt.Errorf("the backend received %d requests, want 1", len(b.reqs))
	case b.reqs[0].path != path:
		return received{}, fmt.Errorf("the backend received %s, want %s", b.reqs[0].path, path)
	}
	return b.reqs[0], nil
}

func (b *backend) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	rec := received{method: r.Method, path: r.URL.Path, header: r.Header.Clone(), body: body}
	var obj map[string]any
	if json.Unmarshal(body, &obj) == nil {
		rec.json = obj
	}

	var sb strings.Builder
	fmt.Fprintf(&sb, "      [%s] received %s %s\n", b.name(), r.Method, r.URL.RequestURI())
	var names []string
	for k := range r.Header {
		if l := strings.ToLower(k); strings.HasPrefix(l, "x-mp-") || strings.HasPrefix(l, "x-wx-") {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	for _, k := range names {
		fmt.Fprintf(&sb, "        %s: %s\n", k, strings.Join(r.Header.Values(k), ", "))
	}
	if len(names) == 0 {
		fmt.Fprintf(&sb, "        (no X-Mp-* or X-WX-* headers)\n")
	}
	fmt.Fprintf(&sb, "        Content-Type: %s\n        body: %s\n", r.Header.Get("Content-Type"), bytes.TrimSpace(body))
	fmt.Print(sb.String())

	b.mu.Lock()
	b.reqs = append(b.reqs, rec)
	n := len(b.reqs)
	b.mu.Unlock()

	var answer map[string]any
	if b.cloudRun {
		answer = cloudRunAnswer(r)
	} else {
		answer = legacyAnswer(r, n)
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(answer)
}

// legacyAnswer is what a legacy backend would answer, using only what it was
// given.
func legacyAnswer(r *http.Request, n int) map[string]any {
	switch r.URL.Path {
	case "/api/login":
		return map[string]any{"ok": true, "user": r.Header.Get("X-Mp-Openid"), "token": fmt.Sprintf("backend-session-%d", n)}
	case "/api/phone":
		return map[string]any{"ok": true, "bound_phone": r.Header.Get("X-Mp-Phone")}
	default:
		return map[string]any{"ok": true}
	}
}

// cloudRunAnswer is what a backend written for WeChat CloudRun answers: it
// knows the caller by X-WX-OPENID alone (CloudRun's gateway set it), and has
// no login token of its own to hand out.
func cloudRunAnswer(r *http.Request) map[string]any {
	answer := map[string]any{"ok": true, "user": r.Header.Get("X-WX-OPENID"), "app": r.Header.Get("X-WX-APPID")}
	switch r.URL.Path {
	case "/api/phone":
		answer["bound_phone"] = r.Header.Get("X-Mp-Phone")
	case "/api/orders":
		answer["orders"] = []string{"#1001 coffee beans"}
	}
	return answer
}

// ---------------------------------------------------------------- processes

// proc is a started child process.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error // valid after done
	log  *os.File
}

func startProc(name string, cmd *exec.Cmd, logFile *os.File) (*proc, error) {
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{}), log: logFile}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop asks the process to shut down (SIGINT), and kills it after 5 s.
func (p *proc) stop() {
	if !p.exited() {
		if runtime.GOOS == "windows" || p.cmd.Process.Signal(os.Interrupt) != nil {
			p.cmd.Process.Kill()
		}
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
			fmt.Fprintf(os.Stderr, "demo: %s did not stop in 5s, killing it\n", p.name)
			p.cmd.Process.Kill()
			<-p.done
		}
	}
	if p.log != nil {
		p.log.Close()
	}
}

// startMpsim runs mpsim on a free port and returns its address, read from
// its first line of output.
func (d *demo) startMpsim(ctx context.Context) (string, error) {
	logf, err := os.OpenFile(d.mpsimLog, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return "", err
	}
	cmd := exec.Command(d.opts.mpsimBin, "-listen", "127.0.0.1:0")
	cmd.Stdout, cmd.Stderr = logf, logf
	p, err := startProc("mpsim", cmd, logf)
	if err != nil {
		logf.Close()
		return "", err
	}
	d.procs = append(d.procs, p)

	// Its first line says where it listens.
	for {
		if b, err := os.ReadFile(d.mpsimLog); err == nil {
			for _, line := range strings.Split(string(b), "\n") {
				if a, ok := strings.CutPrefix(line, "mpsim listening on "); ok {
					return strings.TrimSpace(a), nil
				}
			}
		}
		select {
		case <-p.done:
			return "", fmt.Errorf("mpsim exited: %v (see %s)", p.err, d.mpsimLog)
		case <-ctx.Done():
			return "", fmt.Errorf("mpsim did not say where it listens: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// startCaddy runs `caddy run` and waits until its admin API and its site
// answer.
// makeKeyPair makes the app's RSA key pair, as a developer does for
// Douyin's console: the public half goes to the simulator (the console),
// the private half to Caddy (MP_PRIVATE_KEY, the PEM text).
func (d *demo) makeKeyPair(ctx context.Context, simURL string) error {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return err
	}
	priv, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	d.privateKeyPEM = string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: priv}))
	c := &client{ctx: ctx}
	return c.callQuiet("POST", simURL+"/_sim/public_key", map[string]string{
		"appid": d.pf.appID, "public_key": string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub})),
	}, 200, nil)
}

func (d *demo) startCaddy(ctx context.Context, confPath, site, admin, simURL string) error {
	logf, err := os.OpenFile(d.caddyLog, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(d.opts.caddyBin, "run", "--config", confPath, "--adapter", "caddyfile")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(),
		"MP_APP_ID="+d.pf.appID,
		"MP_APP_SECRET="+d.pf.secret,
		"MP_API_BASE="+simURL,
		"MP_PRIVATE_KEY="+d.privateKeyPEM,
		// examples/Caddyfile.apps: one secret per app.
		"MP_WX_SECRET="+platforms["wechat"].secret,
		"MP_TT_SECRET="+platforms["douyin"].secret,
		"MP_QQ_SECRET=demo-qq-secret",
		// Keep Caddy's autosave and storage out of the user's home.
		"XDG_CONFIG_HOME="+filepath.Join(d.workDir, "config"),
		"XDG_DATA_HOME="+filepath.Join(d.workDir, "data"),
	)
	p, err := startProc("caddy", cmd, logf)
	if err != nil {
		logf.Close()
		return err
	}
	d.procs = append(d.procs, p)

	probe := &http.Client{Timeout: time.Second}
	for {
		if ready(ctx, probe, admin, site) {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("caddy exited: %v (see %s)", p.err, d.caddyLog)
		case <-ctx.Done():
			return fmt.Errorf("caddy did not become ready: %w", ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func ready(ctx context.Context, probe *http.Client, admin, site string) bool {
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+admin+"/config/", nil)
	if err != nil {
		return false
	}
	resp, err := probe.Do(req)
	if err != nil {
		return false
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false
	}
	conn, err := net.DialTimeout("tcp", site, time.Second)
	if err != nil {
		return false
	}
	conn.Close()
	return true
}

// ---------------------------------------------------------------- helpers

// moduleRoot finds the directory of this module's go.mod, from the working
// directory up.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.Contains(b, []byte("module "+modulePath)) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod of %s in the working directory or above", modulePath)
		}
		dir = parent
	}
}

// freeAddrs returns n distinct loopback addresses whose ports were free a
// moment ago.
func freeAddrs(n int) ([]string, error) {
	var out []string
	for i := 0; i < n; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer ln.Close()
		out = append(out, ln.Addr().String())
	}
	return out, nil
}

// substitute replaces each key of repl by its value, and fails if a key does
// not occur (the Caddyfile changed and the demo no longer matches it).
func substitute(s string, repl map[string]string) (string, error) {
	var pairs []string
	for k, v := range repl {
		if !strings.Contains(s, k) {
			return "", fmt.Errorf("the Caddyfile no longer contains %q; update examples/demo to match it", k)
		}
		pairs = append(pairs, k, v)
	}
	return strings.NewReplacer(pairs...).Replace(s), nil
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read: %v)\n", err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n") + "\n"
}

func orNone(s string) string {
	if s == "" {
		return "(none: this app is not bound to an open-platform account)"
	}
	return s
}

func exeSuffix() string {
	if runtime.GOOS == "windows" {
		return ".exe"
	}
	return ""
}
