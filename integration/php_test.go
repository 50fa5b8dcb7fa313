package integration

// The trust boundary against real lenient parsers: PHP, as `php -S` behind
// reverse_proxy and as php-fpm behind php_fastcgi (the usual Caddy + PHP
// setup), each in the layouts sites use. testdata/php/index.php answers with
// what PHP sees ($_GET, $_POST, $_REQUEST, $_FILES, the HTTP_X_MP_* server
// variables, REQUEST_URI, QUERY_STRING, php://input); the property checked
// for every request is that no client-chosen value of a protected name is
// visible to PHP and that the injected values arrive, or that the plugin
// refused the request and PHP was not called.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/mpsim"
)

// phpMarker is the value of every client-chosen protected field the cases
// send: wherever PHP shows it as (or inside) the value of a protected name,
// in any header, array, the original URI's query or the JSON body, a client
// chose a protected value.
const phpMarker = "EVIL"

// requirePHP finds php and php-fpm (MP_PHP and MP_PHP_FPM override; Debian
// installs php-fpm as /usr/sbin/php-fpm<version>). Without them the test
// skips, or fails when MP_REQUIRE_PHP=1 (CI installs both with make deps).
func requirePHP(t *testing.T) (php, fpm string) {
	t.Helper()
	// find returns env's value, or name in PATH, or the last match of glob.
	find := func(env, name, glob string) string {
		if p := os.Getenv(env); p != "" {
			if p, err := exec.LookPath(p); err == nil {
				return p
			}
			return ""
		}
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
		if glob != "" {
			if m, _ := filepath.Glob(glob); len(m) > 0 {
				sort.Strings(m)
				return m[len(m)-1]
			}
		}
		return ""
	}
	php, fpm = find("MP_PHP", "php", ""), find("MP_PHP_FPM", "php-fpm", "/usr/sbin/php-fpm*")
	if php == "" || fpm == "" {
		msg := fmt.Sprintf("php (%q) or php-fpm (%q) not found; make deps installs them", php, fpm)
		if os.Getenv("MP_REQUIRE_PHP") == "1" {
			t.Fatalf("%s (MP_REQUIRE_PHP=1)", msg)
		}
		t.Skipf("%s; skipping (set MP_REQUIRE_PHP=1 to fail instead)", msg)
	}
	return php, fpm
}

// phpProc is a php or php-fpm process of the test, in a process group of
// its own, killed at cleanup.
type phpProc struct {
	cmd  *exec.Cmd
	log  *syncBuffer
	done chan struct{}
}

func startPHPProc(t *testing.T, name string, args ...string) *phpProc {
	t.Helper()
	p := &phpProc{log: &syncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(name, args...)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			<-p.done
		}
	})
	return p
}

// waitDial waits (bounded, 10s) until network/addr accepts a connection.
func (p *phpProc) waitDial(t *testing.T, network, addr string, extraLog func() string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-p.done:
			t.Fatalf("%s exited at start:\n%s%s", p.cmd.Path, p.log.String(), extraLog())
		default:
		}
		if c, err := net.DialTimeout(network, addr, time.Second); err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not accept on %s:\n%s%s", p.cmd.Path, addr, p.log.String(), extraLog())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// phpRoot is a document root holding the echo script (as index.php) and
// the calls.log it appends one line to per call.
type phpRoot string

func newPHPRoot(t *testing.T) phpRoot {
	t.Helper()
	src, err := os.ReadFile(filepath.Join("testdata", "php", "index.php"))
	if err != nil {
		t.Fatal(err)
	}
	// Not t.TempDir: php-fpm's socket lives here, and a unix socket path
	// must stay under ~100 bytes.
	dir, err := os.MkdirTemp("", "mpphp")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.WriteFile(filepath.Join(dir, "index.php"), src, 0o644); err != nil {
		t.Fatal(err)
	}
	return phpRoot(dir)
}

func (d phpRoot) path(name string) string { return filepath.Join(string(d), name) }

// calls is how many times PHP ran the script so far.
func (d phpRoot) calls(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile(d.path("calls.log"))
	if errors.Is(err, os.ErrNotExist) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Count(b, []byte("\n"))
}

// startPHPServer runs `php -S 127.0.0.1:port -t root root/index.php` and
// returns its host:port.
func startPHPServer(t *testing.T, php string, root phpRoot) string {
	t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	p := startPHPProc(t, php, "-S", addr, "-t", string(root), root.path("index.php"))
	p.waitDial(t, "tcp", addr, func() string { return "" })
	return addr
}

// startPHPFPM runs php-fpm in the foreground with a config of its own
// (unix socket, pid and error log in root; -R since tests may run as root)
// and returns the socket's path.
func startPHPFPM(t *testing.T, fpm string, root phpRoot) string {
	t.Helper()
	sock := root.path("fpm.sock")
	conf := fmt.Sprintf(`[global]
pid = %s
error_log = %s
daemonize = no

[mp]
listen = %s
pm = static
pm.max_children = 2
clear_env = yes
catch_workers_output = yes
`, root.path("fpm.pid"), root.path("fpm-error.log"), sock)
	cf := root.path("php-fpm.conf")
	if err := os.WriteFile(cf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startPHPProc(t, fpm, "--nodaemonize", "--fpm-config", cf, "--allow-to-run-as-root")
	p.waitDial(t, "unix", sock, func() string {
		b, _ := os.ReadFile(root.path("fpm-error.log"))
		return string(b)
	})
	return sock
}

// phpSaw is what the echo script answers.
type phpSaw struct {
	PHP         bool           `json:"php"`
	Method      string         `json:"method"`
	RequestURI  string         `json:"request_uri"`
	QueryString string         `json:"query_string"`
	ScriptName  string         `json:"script_name"`
	ContentType string         `json:"content_type"`
	ServerMP    map[string]any `json:"server_mp"`
	Get         map[string]any `json:"get"`
	Post        map[string]any `json:"post"`
	Request     map[string]any `json:"request"`
	Files       map[string]any `json:"files"`
	Input       string         `json:"input"`
	InputForm   map[string]any `json:"input_form"`
	URIQuery    map[string]any `json:"uri_query"`
	JSON        any            `json:"json"`
}

// phpRoute is the route a case is aimed at, whatever its path's spelling.
type phpRoute int

const (
	toLogin phpRoute = iota
	toPhone
	toDecrypt
	toOther // not a route: only headers are protected
)

// phpWant is what a case may end in.
type phpWant int

const (
	// reach: the request is valid and must be processed: it reaches PHP
	// with the true values injected and no client-chosen protected value.
	reach phpWant = iota
	// refuse415: the plugin must answer 415 unsupported_media_type.
	refuse415
	// either: reaching PHP cleanly or a plugin refusal (4xx JSON error).
	either
)

func (w phpWant) String() string {
	return [...]string{"reach", "refuse415", "either"}[w]
}

// phpCase is one request. target, body and header values may hold the
// placeholders {code}, {ed}, {iv} (phone payload), {ded}, {div} (decrypt
// payload); {ed.q} and friends are their form/query escapings.
type phpCase struct {
	name    string
	route   phpRoute
	method  string   // default POST
	target  string   // request target, sent as written
	hdr     []string // name, value pairs, sent as written (names unnormalised)
	ctype   []string // Content-Type lines, in order
	body    string
	kind    string // the body's encoding for the injected-field check: json, form, multipart or "" (not checked)
	chunked bool   // send the body with Transfer-Encoding: chunked
	want    phpWant
}

const mpBoundary = "mpBoundary7MA4YWxk"

// multipart renders a multipart/form-data body; a name "file:x" is a file
// part named x.
func phpMultipart(kv ...string) string {
	var b strings.Builder
	for i := 0; i+1 < len(kv); i += 2 {
		name, val := kv[i], kv[i+1]
		b.WriteString("--" + mpBoundary + "\r\n")
		if n, ok := strings.CutPrefix(name, "file:"); ok {
			fmt.Fprintf(&b, "Content-Disposition: form-data; name=%q; filename=\"a.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n", n)
		} else {
			fmt.Fprintf(&b, "Content-Disposition: form-data; name=%q\r\n\r\n", name)
		}
		b.WriteString(val + "\r\n")
	}
	b.WriteString("--" + mpBoundary + "--\r\n")
	return b.String()
}

const (
	ctJSON      = "application/json"
	ctForm      = "application/x-www-form-urlencoded"
	ctMultipart = "multipart/form-data; boundary=" + mpBoundary
)

// Bodies the cases build on.
const (
	loginJSON     = `{"code":"{code}"}`
	loginJSONEvil = `{"code":"{code}","openid":"EVIL","unionid":"EVIL"}`
	phoneJSON     = `{"code":"{code}","encryptedData":"{ed}","iv":"{iv}"}`
	decryptJSON   = `{"code":"{code}","encryptedData":"{ded}","iv":"{div}"}`
	phoneForm     = `code={code}&encryptedData={ed.q}&iv={iv.q}`
	decryptForm   = `code={code}&encryptedData={ded.q}&iv={div.q}`
)

// phpCases is the table every layout runs.
func phpCases() []phpCase {
	var cs []phpCase
	add := func(c phpCase) { cs = append(cs, c) }
	loginWith := func(name string, hdr ...string) phpCase {
		return phpCase{name: name, target: "/api/login", hdr: hdr, ctype: []string{ctJSON}, body: loginJSON, kind: "json"}
	}

	// Plain requests of each route: the checks below hold for honest
	// clients.
	add(loginWith("baseline/login-json"))
	add(phpCase{name: "baseline/login-form", target: "/api/login", ctype: []string{ctForm}, body: "code={code}&nickName=Ann", kind: "form"})
	add(phpCase{name: "baseline/phone-json", route: toPhone, target: "/api/phone", ctype: []string{ctJSON}, body: phoneJSON, kind: "json"})
	add(phpCase{name: "baseline/phone-form", route: toPhone, target: "/api/phone", ctype: []string{ctForm}, body: phoneForm, kind: "form"})
	add(phpCase{name: "baseline/decrypt-json", route: toDecrypt, target: "/api/decrypt", ctype: []string{ctJSON}, body: decryptJSON, kind: "json"})
	add(phpCase{name: "baseline/decrypt-form", route: toDecrypt, target: "/api/decrypt", ctype: []string{ctForm}, body: decryptForm, kind: "form"})

	// Spoofed identity headers in many spellings.
	add(loginWith("hdr/canonical", "X-Mp-Openid", phpMarker, "X-Mp-Unionid", phpMarker))
	add(loginWith("hdr/lower", "x-mp-openid", phpMarker))
	add(loginWith("hdr/upper", "X-MP-OPENID", phpMarker))
	add(loginWith("hdr/underscore", "X_Mp_Openid", phpMarker))
	add(loginWith("hdr/underscore-lower", "x_mp_openid", phpMarker, "x_mp_unionid", phpMarker))
	add(loginWith("hdr/mixed-separators", "X-Mp_Openid", phpMarker, "X_MP-UNIONID", phpMarker))
	add(loginWith("hdr/cloudrun", "X-WX-OPENID", phpMarker, "X_WX_UNIONID", phpMarker, "x-wx-appid", phpMarker, "X_Wx_Source", phpMarker))
	add(loginWith("hdr/duplicated", "X-Mp-Openid", phpMarker, "X-Mp-Openid", phpMarker+"2", "X_Mp_Openid", phpMarker+"3"))
	add(loginWith("hdr/every-name", "X-Mp-Phone", phpMarker, "X-Mp-Pure-Phone", phpMarker, "X-Mp-Country-Code", phpMarker,
		"X-Mp-Platform", phpMarker, "X-Mp-App-Id", phpMarker, "X-Mp-Anonymous-Openid", phpMarker, "X-Mp-Whatever", phpMarker))
	add(loginWith("hdr/connection-tokens", "X-Mp-Openid", phpMarker,
		"Connection", "X-Mp-Openid, X-Mp-Unionid, X-Mp-Platform, X-Mp-App-Id"))
	add(loginWith("hdr/connection-underscore", "Connection", "x_mp_openid, keep-alive, X_MP_UNIONID"))
	add(loginWith("hdr/connection-two-lines", "Connection", "keep-alive", "Connection", "X-Mp-Openid"))
	add(phpCase{name: "hdr/connection-phone", route: toPhone, target: "/api/phone", ctype: []string{ctJSON}, body: phoneJSON, kind: "json",
		hdr: []string{"X-Mp-Phone", phpMarker, "Connection", "X-Mp-Phone, X-Mp-Openid, X-Mp-Pure-Phone, X-Mp-Country-Code"}})
	add(phpCase{name: "hdr/get-login", method: "GET", target: "/api/login?code={code}",
		hdr: []string{"X_Mp_Openid", phpMarker, "X-Mp-Unionid", phpMarker}})
	add(phpCase{name: "hdr/passthrough", route: toOther, method: "GET", target: "/api/other?x=1",
		hdr: []string{"X-Mp-Openid", phpMarker, "x_mp_openid", phpMarker, "X-MP-PHONE", phpMarker, "X_WX_OPENID", phpMarker}})
	add(phpCase{name: "hdr/passthrough-connection", route: toOther, method: "GET", target: "/somewhere",
		hdr: []string{"Connection", "X-Mp-Openid", "X-Mp-Openid", phpMarker}})

	// Protected names in the query string.
	for _, q := range []struct{ name, query string }{
		{"openid", "openid=EVIL"},
		{"open_id", "open_id=EVIL"},
		{"openid[]", "openid[]=EVIL"},
		{"openid[x]", "openid[x]=EVIL"},
		{"openid%5B%5D", "openid%5B%5D=EVIL"},
		{"plus-openid", "+openid=EVIL"},
		{"space-openid", "%20openid=EVIL"},
		{"openid-space", "openid%20=EVIL"},
		{"open.id", "open.id=EVIL"},
		{"open%20id", "open%20id=EVIL"},
		{"openid%00", "openid%00=EVIL"},
		{"unionid%00", "unionid%00=EVIL"},
		{"OpenID", "OpenID=EVIL"},
		{"union_id+anonymous", "union_id=EVIL&anonymous_openid=EVIL&Anonymous-OpenId=EVIL"},
		{"duplicated", "openid=EVIL&openid=EVIL"},
	} {
		add(phpCase{name: "query/" + q.name, target: "/api/login?" + q.query, ctype: []string{ctJSON}, body: loginJSON, kind: "json"})
	}
	add(phpCase{name: "query/get-login", method: "GET", target: "/api/login?code={code}&openid=EVIL&unionid=EVIL"})
	add(phpCase{name: "query/get-login-near", method: "GET", target: "/api/login?open.id=EVIL&code={code}&+openid=EVIL&openid[]=EVIL"})
	add(phpCase{name: "query/form-body", target: "/api/login?openid=EVIL", ctype: []string{ctForm}, body: "code={code}", kind: "form"})
	add(phpCase{name: "query/phone", route: toPhone, target: "/api/phone?phoneNumber=EVIL&purePhoneNumber=EVIL&countryCode=EVIL&phone_number=EVIL&+PhoneNumber=EVIL&openid=EVIL",
		ctype: []string{ctJSON}, body: phoneJSON, kind: "json"})
	add(phpCase{name: "query/phone-get", route: toPhone, method: "GET", target: "/api/phone?code={code}&encryptedData={ed.q}&iv={iv.q}&phoneNumber=EVIL&purePhoneNumber=EVIL",
		want: either})
	add(phpCase{name: "query/decrypt", route: toDecrypt, target: "/api/decrypt?decryptedData=EVIL&decryptedData[openId]=EVIL&decrypted_data=EVIL&unionid=EVIL",
		ctype: []string{ctJSON}, body: decryptJSON, kind: "json"})

	// Form bodies with near-spellings.
	for _, f := range []struct{ name, pairs string }{
		{"openid", "openid=EVIL&unionid=EVIL"},
		{"anonymous_openid", "anonymous_openid=EVIL&anonymous-openid=EVIL"},
		{"open_id", "open_id=EVIL"},
		{"Open-Id", "Open-Id=EVIL"},
		{"open.id", "open.id=EVIL"},
		{"openid[]", "openid[]=EVIL"},
		{"openid%5Bx%5D", "openid%5Bx%5D=EVIL"},
		{"plus-openid", "+openid=EVIL"},
		{"openid-plus", "openid+=EVIL"},
		{"openid%00", "openid%00=EVIL"},
		{"unionid%00", "unionid%00=EVIL"},
		{"%6Fpenid", "%6Fpenid=EVIL"},
		{"open%5Fid", "open%5Fid=EVIL"},
		{"duplicated", "openid=EVIL&openid=EVIL"},
	} {
		add(phpCase{name: "form/" + f.name, target: "/api/login", ctype: []string{ctForm}, body: f.pairs + "&code={code}", kind: "form"})
	}
	add(phpCase{name: "form/phone", route: toPhone, target: "/api/phone", ctype: []string{ctForm}, kind: "form",
		body: phoneForm + "&phoneNumber=EVIL&phone_number=EVIL&+purePhoneNumber=EVIL&country.code=EVIL&PhoneNumber[]=EVIL&countryCode%00=EVIL&open_id=EVIL"})
	add(phpCase{name: "form/decrypt", route: toDecrypt, target: "/api/decrypt", ctype: []string{ctForm}, kind: "form",
		body: decryptForm + "&decryptedData=EVIL&decrypted_data[openId]=EVIL&DecryptedData%00=EVIL"})
	add(phpCase{name: "form/json-typed-as-form", target: "/api/login?code={code}", ctype: []string{ctForm},
		body: `{"openid":"EVIL"}`, kind: "form", want: either})
	add(phpCase{name: "form/json-typed-as-form-with-code", target: "/api/login", ctype: []string{ctForm},
		body: `{"code":"{code}","openid":"EVIL"}`, want: either})
	add(phpCase{name: "form/chunked", target: "/api/login", ctype: []string{ctForm}, body: "openid=EVIL&code={code}", kind: "form", chunked: true})

	// JSON bodies with near-spellings.
	for _, j := range []struct{ name, members string }{
		{"space-key", `" openid":"EVIL"`},
		{"key-space", `"openid ":"EVIL"`},
		{"nul", `"openid\u0000":"EVIL"`},
		{"escaped", `"\u006fpenid":"EVIL","unio\u006eid":"EVIL"`},
		{"case", `"OpenId":"EVIL","UNIONID":"EVIL"`},
		{"separators", `"open_id":"EVIL","union-id":"EVIL","anonymous-openid":"EVIL","Anonymous_OpenID":"EVIL"`},
		{"object", `"openid":{"v":"EVIL"}`},
		{"array", `"openid":["EVIL"]`},
	} {
		add(phpCase{name: "json/" + j.name, target: "/api/login", ctype: []string{ctJSON}, body: `{"code":"{code}",` + j.members + `}`, kind: "json"})
	}
	add(phpCase{name: "json/duplicate-keys", target: "/api/login", ctype: []string{ctJSON},
		body: `{"openid":"EVIL","code":"{code}","openid":"EVIL","unionid":"EVIL","unionid":"EVIL"}`, kind: "json"})
	add(phpCase{name: "json/charset", target: "/api/login", ctype: []string{ctJSON + "; charset=utf-8"}, body: loginJSONEvil, kind: "json"})
	add(phpCase{name: "json/phone", route: toPhone, target: "/api/phone", ctype: []string{ctJSON}, kind: "json",
		body: `{"code":"{code}","encryptedData":"{ed}","iv":"{iv}","phoneNumber":"EVIL","purePhoneNumber":"EVIL"," countryCode":"EVIL","phone_number":"EVIL","PhoneNumber\u0000":"EVIL","open_id":"EVIL"}`})
	add(phpCase{name: "json/decrypt", route: toDecrypt, target: "/api/decrypt", ctype: []string{ctJSON}, kind: "json",
		body: `{"code":"{code}","encryptedData":"{ded}","iv":"{div}","decryptedData":{"openId":"EVIL"},"decrypted_data":"EVIL","DecryptedData ":"EVIL"}`})

	// Bodies PHP (or a framework on it) reads that are neither JSON nor a
	// form, and ambiguous framing.
	for _, ct := range []string{"text/plain", "*/*", "text/plain; charset=utf-8"} {
		add(phpCase{name: "ctype/" + ct, target: "/api/login", ctype: []string{ct}, body: loginJSONEvil, want: refuse415})
	}
	// JSON under another name: read and rewritten as JSON, or refused.
	for _, ct := range []string{"text/json", "application/x-json"} {
		add(phpCase{name: "ctype/" + ct, target: "/api/login", ctype: []string{ct}, body: loginJSONEvil, want: either})
	}
	// The same with the code in the query, so that the body is all the
	// plugin could object to.
	for _, ct := range []string{"text/plain", "*/*"} {
		add(phpCase{name: "ctype/" + ct + "-code-in-query", target: "/api/login?code={code}", ctype: []string{ct},
			body: `{"openid":"EVIL","unionid":"EVIL"}`, want: refuse415})
	}
	add(phpCase{name: "ctype/none-json-body", target: "/api/login", body: loginJSONEvil, kind: "json", want: either})
	add(phpCase{name: "ctype/none-json-smuggles-form", target: "/api/login", body: `{"code":"{code}","x":"&openid=EVIL&unionid=EVIL&"}`, kind: "json", want: either})
	add(phpCase{name: "ctype/none-form-body", target: "/api/login", body: "code={code}&openid=EVIL", kind: "form", want: either})
	add(phpCase{name: "ctype/form-comma-list", target: "/api/login", ctype: []string{ctForm + ", text/plain"}, body: "code={code}&openid=EVIL", kind: "form", want: either})
	add(phpCase{name: "ctype/form-space-suffix", target: "/api/login", ctype: []string{ctForm + " x"}, body: "code={code}&openid=EVIL", kind: "form", want: either})
	add(phpCase{name: "ctype/two-json-then-form", target: "/api/login", ctype: []string{ctJSON, ctForm},
		body: `{"code":"{code}","x":"&openid=EVIL&phoneNumber=EVIL&"}`, want: refuse415})
	add(phpCase{name: "ctype/two-form-then-json", target: "/api/login", ctype: []string{ctForm, ctJSON},
		body: "code={code}&openid=EVIL", want: refuse415})
	add(phpCase{name: "ctype/phone-text-plain", route: toPhone, target: "/api/phone", ctype: []string{"text/plain"},
		body: `{"code":"{code}","encryptedData":"{ed}","iv":"{iv}","phoneNumber":"EVIL"}`, want: refuse415})

	// Multipart (wx.uploadFile): PHP reads its parts into $_POST and $_FILES.
	add(phpCase{name: "multipart/openid", target: "/api/login", ctype: []string{ctMultipart}, kind: "multipart",
		body: phpMultipart("code", "{code}", "openid", phpMarker, "nickName", "Ann")})
	add(phpCase{name: "multipart/near-spellings", target: "/api/login", ctype: []string{ctMultipart}, kind: "multipart",
		body: phpMultipart("open_id", phpMarker, " openid", phpMarker, "openid[]", phpMarker, "union.id", phpMarker, "code", "{code}")})
	add(phpCase{name: "multipart/file-named-openid", target: "/api/login", ctype: []string{ctMultipart}, kind: "multipart",
		body: phpMultipart("code", "{code}", "file:openid", phpMarker)})
	add(phpCase{name: "multipart/openid-code-in-query", target: "/api/login?code={code}", ctype: []string{ctMultipart}, kind: "multipart",
		body: phpMultipart("openid", phpMarker, "unionid", phpMarker, "nickName", "Ann")})
	add(phpCase{name: "multipart/file-named-openid-code-in-query", target: "/api/login?code={code}", ctype: []string{ctMultipart}, kind: "multipart",
		body: phpMultipart("file:openid", phpMarker)})
	add(phpCase{name: "multipart/avatar", target: "/api/login", ctype: []string{ctMultipart}, kind: "multipart",
		body: phpMultipart("code", "{code}", "nickName", "Ann", "file:avatar", "\x89PNG\r\n\x1a\nnot-really")})
	add(phpCase{name: "multipart/phone", route: toPhone, target: "/api/phone", ctype: []string{ctMultipart}, kind: "multipart",
		body: phpMultipart("code", "{code}", "encryptedData", "{ed}", "iv", "{iv}", "phoneNumber", phpMarker, "purePhoneNumber", phpMarker)})

	// Path spellings a backend routes to the login route.
	for _, p := range []string{"/API/login", "/api/Login", "/api/login/", "/api//login", "//api/login", "/api/./login",
		"/api/x/../login", "/api/%2e/login", "/api/login;x", "/api/login;jsessionid=A", "/api/%6cogin", "/api/%6Cogin/"} {
		add(phpCase{name: "path" + p, target: p, ctype: []string{ctJSON}, body: loginJSONEvil, kind: "json",
			hdr: []string{"X-Mp-Openid", phpMarker}})
	}
	// A front controller routing by a query parameter (route_param s):
	// the client sends the front controller's own URL.
	for _, p := range []string{"/index.php?s=/api/login", "/index.php?s=api/login&openid=EVIL", "/?s=%2FAPI%2Flogin%2F"} {
		add(phpCase{name: "path/front-controller" + p, target: p, ctype: []string{ctJSON}, body: loginJSONEvil, kind: "json"})
	}
	add(phpCase{name: "path/API/phone/", route: toPhone, target: "/API/phone/", ctype: []string{ctJSON}, kind: "json",
		body: `{"code":"{code}","encryptedData":"{ed}","iv":"{iv}","phoneNumber":"EVIL"}`})
	add(phpCase{name: "path/api/decrypt;x", route: toDecrypt, target: "/api/decrypt;x", ctype: []string{ctJSON}, kind: "json",
		body: `{"code":"{code}","encryptedData":"{ded}","iv":"{div}","decryptedData":"EVIL"}`})
	return cs
}

// phpVals are the true values of one login.
type phpVals struct {
	code, openid, unionid string
	phone                 string
	ed, iv, ded, div      string
}

func (v phpVals) expand(s string) string {
	return strings.NewReplacer(
		"{code}", v.code,
		"{ed}", v.ed, "{iv}", v.iv, "{ded}", v.ded, "{div}", v.div,
		"{ed.q}", url.QueryEscape(v.ed), "{iv.q}", url.QueryEscape(v.iv),
		"{ded.q}", url.QueryEscape(v.ded), "{div.q}", url.QueryEscape(v.div),
	).Replace(s)
}

// phpLogin logs a user in at the simulator and makes a phone and a decrypt
// payload; none of the true values may contain the marker.
func phpLogin(t *testing.T, s *Sim) phpVals {
	t.Helper()
	for range 10 {
		lr := login(t, s, wxApp, "php-user")
		v := phpVals{code: lr.Code, openid: lr.OpenID, unionid: lr.UnionID, phone: "13800138099"}
		v.ed, v.iv = phonePayload(t, s, wxApp, "php-user", v.phone)
		var err error
		v.ded, v.div, err = s.Encrypt(wxApp, "php-user", map[string]any{"nickName": "Ann", "openId": lr.OpenID}, mpsim.EncryptOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(strings.Join([]string{v.code, v.openid, v.unionid, v.ed, v.iv, v.ded, v.div}, " "), phpMarker) {
			return v
		}
	}
	t.Fatal("every login's values contained the marker")
	return phpVals{}
}

// phpLayout is one Caddyfile layout in front of PHP.
type phpLayout struct {
	name string
	// site renders the site body after the miniprogram block; up is the
	// php -S host:port, sock the php-fpm socket, root the document root.
	site func(up, sock, root string) string
}

func phpLayouts() []phpLayout {
	return []phpLayout{
		{"php-S", func(up, _, _ string) string {
			return "\treverse_proxy " + up
		}},
		{"php-S-in-handle", func(up, _, _ string) string {
			return fmt.Sprintf("\thandle /api/* {\n\t\treverse_proxy %s\n\t}\n\thandle {\n\t\trespond \"no route\" 404\n\t}", up)
		}},
		{"php_fastcgi", func(_, sock, root string) string {
			return fmt.Sprintf("\troot * %s\n\tphp_fastcgi unix/%s", root, sock)
		}},
		{"php_fastcgi-try_files-front-controller", func(_, sock, root string) string {
			return fmt.Sprintf("\troot * %s\n\ttry_files {path} /index.php?s={path}&{query}\n\tphp_fastcgi unix/%s", root, sock)
		}},
		{"php_fastcgi-in-handle", func(_, sock, root string) string {
			return fmt.Sprintf("\troot * %s\n\thandle /api/* {\n\t\tphp_fastcgi unix/%s\n\t}\n\thandle {\n\t\trespond \"no route\" 404\n\t}", root, sock)
		}},
	}
}

// TestPHPTrustBoundary sends every case of phpCases through the real Caddy
// to PHP in every layout of phpLayouts, after a real login, and checks that
// PHP sees no client-chosen value of a protected name and the injected
// values, or that the plugin refused the request and PHP was not called.
func TestPHPTrustBoundary(t *testing.T) {
	php, fpm := requirePHP(t)
	root := newPHPRoot(t)
	up := startPHPServer(t, php, root)
	sock := startPHPFPM(t, fpm, root)
	cases := phpCases()
	// failed[case] lists the layouts the case failed in, for the summary.
	failed := map[string][]string{}
	defer func() {
		var b strings.Builder
		for _, tc := range cases {
			if ls := failed[tc.name]; len(ls) > 0 {
				fmt.Fprintf(&b, "\n  %-45s %s", tc.name, strings.Join(ls, " "))
			}
		}
		if b.Len() > 0 {
			t.Logf("cases that failed, and in which layouts:%s", b.String())
		}
	}()

	for _, l := range phpLayouts() {
		t.Run(l.name, func(t *testing.T) {
			sim := newSim(t)
			c := startCaddy(t, mpBlock("wechat", wxApp, wxSecret, sim.URL, "route_param s")+"\n"+l.site(up, sock, string(root)))
			v := phpLogin(t, sim)
			// PHP answers in this layout at all (whether the plugin did
			// its part is for the baseline cases to say).
			r := phpSend(t, c.URL, phpCase{route: toOther, method: "GET", target: "/api/ping"}, v)
			if _, ok := phpDecode(r.Body); !ok {
				t.Fatalf("PHP does not answer in this layout: status %d, body %.400q\ncaddy:\n%s", r.Status, r.Body, c.Logs())
			}
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					before := root.calls(t)
					r := phpSend(t, c.URL, tc, v)
					calls := root.calls(t) - before
					problems := phpCheck(tc, v, r, calls)
					for _, problem := range problems {
						t.Errorf("%s %s: %s", l.name, tc.name, problem)
					}
					if len(problems) > 0 {
						failed[tc.name] = append(failed[tc.name], l.name)
					}
				})
			}
		})
	}
}

// phpSend writes the case as a raw HTTP/1.1 request (header names and the
// target exactly as written) and reads the response.
func phpSend(t *testing.T, base string, tc phpCase, v phpVals) Response {
	t.Helper()
	hostport := strings.TrimPrefix(base, "http://")
	method := tc.method
	if method == "" {
		method = http.MethodPost
	}
	body := v.expand(tc.body)
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\n", method, v.expand(tc.target), hostport)
	for i := 0; i+1 < len(tc.hdr); i += 2 {
		fmt.Fprintf(&b, "%s: %s\r\n", tc.hdr[i], v.expand(tc.hdr[i+1]))
	}
	for _, ct := range tc.ctype {
		fmt.Fprintf(&b, "Content-Type: %s\r\n", ct)
	}
	switch {
	case tc.chunked:
		b.WriteString("Transfer-Encoding: chunked\r\n\r\n")
		for rest := body; rest != ""; {
			n := min(7, len(rest))
			fmt.Fprintf(&b, "%x\r\n%s\r\n", n, rest[:n])
			rest = rest[n:]
		}
		b.WriteString("0\r\n\r\n")
	case body != "" || method == http.MethodPost:
		fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n%s", len(body), body)
	default:
		b.WriteString("\r\n")
	}
	conn, err := net.DialTimeout("tcp", hostport, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := conn.Write(b.Bytes()); err != nil {
		t.Fatalf("%s: writing the request: %v", tc.name, err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("%s: reading the response: %v", tc.name, err)
	}
	defer resp.Body.Close()
	rb, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s: reading the response body: %v", tc.name, err)
	}
	return Response{Status: resp.StatusCode, Header: resp.Header, Body: rb}
}

func phpDecode(b []byte) (phpSaw, bool) {
	var saw phpSaw
	if err := json.Unmarshal(b, &saw); err != nil || !saw.PHP {
		return saw, false
	}
	return saw, true
}

func phpHeader(saw phpSaw, name string) string {
	s, _ := saw.ServerMP[name].(string)
	return s
}

// phpCheck returns what is wrong with the outcome of one case (nothing
// when the property holds).
func phpCheck(tc phpCase, v phpVals, r Response, calls int) []string {
	if calls > 1 {
		return []string{fmt.Sprintf("PHP was called %d times for one request", calls)}
	}
	if calls == 0 {
		var e struct{ Error, Message string }
		refused := r.Status >= 400 && r.Status < 500 && json.Unmarshal(r.Body, &e) == nil && e.Error != "" && e.Message != ""
		switch {
		case refused && tc.want == refuse415 && (r.Status != 415 || e.Error != "unsupported_media_type"):
			return []string{fmt.Sprintf("refused with %d %s, want 415 unsupported_media_type", r.Status, e.Error)}
		case refused && tc.want == reach:
			return []string{fmt.Sprintf("refused with %d %s (%s), want it processed and forwarded", r.Status, e.Error, e.Message)}
		case refused:
			return nil
		case r.Status == 404 && string(r.Body) == "no route":
			// The layout does not send this spelling to PHP at all.
			return nil
		}
		return []string{fmt.Sprintf("PHP not called, and no plugin refusal: status %d, body %.200q", r.Status, r.Body)}
	}
	saw, ok := phpDecode(r.Body)
	if !ok {
		return []string{fmt.Sprintf("PHP was called but the answer is not the echo: status %d, body %.300q", r.Status, r.Body)}
	}
	var problems []string
	if tc.want == refuse415 {
		problems = append(problems, "reached PHP, want 415 unsupported_media_type")
	}
	problems = append(problems, phpLeaks(tc, saw)...)
	problems = append(problems, phpWrongValues(tc, v, saw)...)
	problems = append(problems, phpMissing(tc, v, saw)...)
	return problems
}

// phpLeaks finds the marker where it is the value of a protected name (or
// inside one) in what PHP shows: the HTTP_X_MP_* variables (all
// protected), $_GET, $_POST, $_REQUEST, the uploaded files' contents, the
// query of REQUEST_URI, and the raw body decoded as JSON (what a PHP
// framework reading php://input sees). A marker inside a field that is not
// protected is the client's own business.
func phpLeaks(tc phpCase, saw phpSaw) []string {
	protected := phpProtected(tc.route)
	var out []string
	var walk func(where string, x any, under bool)
	walk = func(where string, x any, under bool) {
		switch x := x.(type) {
		case string:
			if under && strings.Contains(x, phpMarker) {
				out = append(out, fmt.Sprintf("leak: PHP saw %s = %q", where, x))
			}
		case map[string]any:
			for _, k := range sortedKeys(x) {
				p := under || protected[phpSkeleton(k)]
				if p && strings.Contains(k, phpMarker) {
					out = append(out, fmt.Sprintf("leak: PHP saw the key %s[%q]", where, k))
				}
				walk(fmt.Sprintf("%s[%q]", where, k), x[k], p)
			}
		case []any:
			for i, e := range x {
				walk(fmt.Sprintf("%s[%d]", where, i), e, under)
			}
		}
	}
	for _, k := range sortedKeys(saw.ServerMP) {
		walk("$_SERVER["+k+"]", saw.ServerMP[k], true)
	}
	walk("$_GET", saw.Get, false)
	walk("$_POST", saw.Post, false)
	walk("$_REQUEST", saw.Request, false)
	walk("$_FILES(contents)", saw.Files, false)
	walk("parse_str(query of REQUEST_URI "+fmt.Sprintf("%q", saw.RequestURI)+")", saw.URIQuery, false)
	walk("json_decode(php://input)", saw.JSON, false)
	return out
}

// phpProtected is the set of protected name skeletons on a route: identity
// names on every route, result names on the phone and decrypt routes, none
// in bodies and queries that are not a route's.
func phpProtected(r phpRoute) map[string]bool {
	switch r {
	case toLogin:
		return map[string]bool{"openid": true, "unionid": true, "anonymousopenid": true}
	case toPhone, toDecrypt:
		return map[string]bool{"openid": true, "unionid": true, "anonymousopenid": true,
			"phonenumber": true, "purephonenumber": true, "countrycode": true, "decrypteddata": true}
	}
	return nil
}

func sortedKeys(m map[string]any) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// phpSkeleton is the name a lenient binder would equate: cut at NUL or '[',
// trimmed, without '_', '-', '.', spaces, case folded.
func phpSkeleton(name string) string {
	if i := strings.IndexAny(name, "\x00["); i >= 0 {
		name = name[:i]
	}
	name = strings.Map(func(r rune) rune {
		switch r {
		case '_', '-', '.', ' ', '\t', '+':
			return -1
		}
		return r
	}, name)
	return strings.ToLower(name)
}

// phpTrue maps the skeletons of the names protected on the case's route to
// their true values ("" when the name must not be present at all, "*" when
// any value the plugin set is right, as decryptedData's).
func phpTrue(tc phpCase, v phpVals) map[string]string {
	if tc.route == toOther {
		return nil
	}
	m := map[string]string{"openid": v.openid, "unionid": "", "anonymousopenid": ""}
	switch tc.route {
	case toLogin:
		m["unionid"] = v.unionid
	case toPhone:
		m["phonenumber"], m["purephonenumber"], m["countrycode"] = v.phone, v.phone, "86"
		m["decrypteddata"] = ""
	case toDecrypt:
		m["phonenumber"], m["purephonenumber"], m["countrycode"] = "", "", ""
		m["decrypteddata"] = "*"
	}
	return m
}

// phpWrongValues finds a protected name (by skeleton) in $_GET, $_POST,
// $_REQUEST or the top level of the JSON body whose value is not the true
// one.
func phpWrongValues(tc phpCase, v phpVals, saw phpSaw) []string {
	want := phpTrue(tc, v)
	if want == nil {
		return nil
	}
	var out []string
	check := func(where string, m map[string]any) {
		for _, k := range sortedKeys(m) {
			w, protected := want[phpSkeleton(k)]
			if !protected || w == "*" {
				continue
			}
			got, isString := m[k].(string)
			if !isString || got != w {
				out = append(out, fmt.Sprintf("wrong value: PHP saw %s[%q] = %v, the true value is %q", where, k, phpShort(m[k]), w))
			}
		}
	}
	check("$_GET", saw.Get)
	check("$_POST", saw.Post)
	check("$_REQUEST", saw.Request)
	check("parse_str(query of REQUEST_URI)", saw.URIQuery)
	if obj, ok := saw.JSON.(map[string]any); ok {
		check("json_decode(php://input)", obj)
	}
	return out
}

func phpShort(x any) string {
	b, _ := json.Marshal(x)
	if len(b) > 80 {
		b = append(b[:80], "..."...)
	}
	return string(b)
}

// phpMissing checks that the injected values arrived: the headers on every
// route, the body fields in the body's own encoding.
func phpMissing(tc phpCase, v phpVals, saw phpSaw) []string {
	var want map[string]string
	var field, fieldVal string
	switch tc.route {
	case toLogin:
		want = map[string]string{"HTTP_X_MP_OPENID": v.openid, "HTTP_X_MP_UNIONID": v.unionid, "HTTP_X_MP_PLATFORM": "wechat", "HTTP_X_MP_APP_ID": wxApp}
		field, fieldVal = "openid", v.openid
	case toPhone:
		want = map[string]string{"HTTP_X_MP_PHONE": v.phone, "HTTP_X_MP_PURE_PHONE": v.phone, "HTTP_X_MP_COUNTRY_CODE": "86", "HTTP_X_MP_OPENID": v.openid}
		field, fieldVal = "phoneNumber", v.phone
	case toDecrypt:
		want = map[string]string{"HTTP_X_MP_OPENID": v.openid}
		field = "decryptedData"
	case toOther:
		if len(saw.ServerMP) != 0 {
			return []string{fmt.Sprintf("X-Mp headers on a pass-through request: %s", phpShort(saw.ServerMP))}
		}
		return nil
	}
	var out []string
	for _, k := range sortedKeys(map[string]any{"HTTP_X_MP_OPENID": 0, "HTTP_X_MP_UNIONID": 0, "HTTP_X_MP_PLATFORM": 0, "HTTP_X_MP_APP_ID": 0,
		"HTTP_X_MP_PHONE": 0, "HTTP_X_MP_PURE_PHONE": 0, "HTTP_X_MP_COUNTRY_CODE": 0}) {
		w, ok := want[k]
		if !ok {
			continue
		}
		if got := phpHeader(saw, k); got != w {
			out = append(out, fmt.Sprintf("injected header missing: $_SERVER[%s] = %q, want %q", k, got, w))
		}
	}
	var body map[string]any
	switch tc.kind {
	case "json":
		body, _ = saw.JSON.(map[string]any)
	case "form":
		// The body as PHP parses a form (PHP leaves $_POST empty without a
		// Content-Type; php_fastcgi then says it is a form).
		body = saw.InputForm
	case "multipart":
		body = saw.Post
	default:
		return out
	}
	got, present := body[field]
	switch {
	case !present:
		out = append(out, fmt.Sprintf("injected body field missing: %s not in the %s body PHP read (%s)", field, tc.kind, phpShort(body)))
	case fieldVal != "" && got != fieldVal:
		out = append(out, fmt.Sprintf("injected body field wrong: %s = %s, want %q", field, phpShort(got), fieldVal))
	}
	return out
}
