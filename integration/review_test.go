package integration

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// Adversarial review of the trust boundary (issue 8): attacks sent as a
// client would send them, through the real Caddy, each expected to fail
// until the hole it shows is closed. The property is TestTrustBoundary's:
// no client-chosen value of a protected name reaches the upstream, and
// the injected values always arrive.

// reviewCases are the attacks, in the form of TestTrustBoundary's table
// (route is the endpoint the backend dispatches the request to).
func reviewCases() []bcase {
	var cs []bcase
	add := func(c bcase) { cs = append(cs, c.withDefaults()) }
	for _, r := range boundaryRoutes {
		// Cookies are not touched. PHP without a php.ini (the official
		// Docker images' default) has request_order unset, so $_REQUEST
		// follows variables_order EGPCS: a cookie overrides $_POST.
		// Legacy ASP.NET's Request[name] falls back to cookies too.
		ck := "openid=" + spoofMark + "; unionid=" + spoofMark
		if r == "phone" {
			ck += "; phoneNumber=" + spoofMark
		}
		add(bcase{name: r + "/cookie with protected names", route: r, hdr: [][2]string{ctJSONh, {"Cookie", ck}},
			body: "{" + routeJSON(r) + "}", kind: "json", want: wantProcessed})

		// ThinkPHP's URL dispatch reads /controller/action/name/value:
		// extra segments become route parameters, which Request::param()
		// merges last, over $_POST. The handler passes these paths
		// through raw (and a prefix pattern would not help: the path
		// value still wins over an injected body field).
		name := "openid"
		if r == "phone" {
			name = "phoneNumber"
		}
		for _, p := range []string{"/api/" + r + "/" + name + "/" + spoofMark, "/api/" + r + "/" + name + "/" + spoofMark + ".html"} {
			add(bcase{name: r + "/ThinkPHP path parameters " + p, route: r, path: p, hdr: [][2]string{ctJSONh},
				body: "{" + routeJSON(r) + "}", kind: "json", want: wantEither})
		}
	}

	// The path says login, the query's s (ThinkPHP's var_pathinfo, read
	// before PATH_INFO; after try_files the last s wins in $_GET) says
	// phone or decrypt: the handler processes a login (stripping identity
	// names only, injecting the real openid) and the backend's phone or
	// decrypt endpoint reads the client's phoneNumber / decryptedData.
	add(bcase{name: "phone/path /api/login with s=/api/phone", route: "phone", path: "/api/login", query: "s=/api/phone",
		hdr:  [][2]string{ctJSONh},
		body: `{"code":"{code}","phoneNumber":"` + spoofMark + `","purePhoneNumber":"` + spoofMark + `","countryCode":"` + spoofMark + `"}`,
		want: wantRefused})
	add(bcase{name: "decrypt/path /api/login with s=api/decrypt", route: "decrypt", path: "/api/login", query: "s=api/decrypt",
		hdr: [][2]string{ctJSONh}, body: `{"code":"{code}","decryptedData":{"nickName":"` + spoofMark + `"}}`, want: wantRefused})

	// Zend Framework 1, laminas-http before 2.x fixes, Symfony before
	// 3.4.14/4.1.3 and IIS URL Rewrite route by these headers.
	add(bcase{name: "phone/X-Original-URL: /api/phone on /api/other", route: "phone", path: "/api/other",
		hdr: [][2]string{ctJSONh, {"X-Original-URL", "/api/phone"}}, body: `{"code":"{code}","phoneNumber":"` + spoofMark + `"}`, want: wantPassed, noHeader: "X-Original-Url"})
	add(bcase{name: "login/X-Rewrite-URL: /api/login on /api/other", route: "login", path: "/api/other",
		hdr: [][2]string{ctJSONh, {"X-Rewrite-URL", "/api/login"}}, body: `{"code":"{code}","openid":"` + spoofMark + `"}`, want: wantPassed, noHeader: "X-Rewrite-Url"})

	// A JSON key that is not UTF-8 is accepted and forwarded byte for
	// byte; PHP's json_decode(..., JSON_INVALID_UTF8_IGNORE) reads
	// "open\xffid" as openid (and would keep the later of two).
	for _, r := range boundaryRoutes {
		add(bcase{name: r + "/JSON key with invalid UTF-8 open\\xffid", route: r, hdr: [][2]string{ctJSONh},
			body: "{" + routeJSON(r) + `,"open` + "\xff" + `id":"` + spoofMark + `"}`, kind: "json", want: wantEither})
	}
	return cs
}

// TestReviewTrustBoundary runs reviewCases in the layouts the README
// documents (plain; try_files as for ThinkPHP; the same with route_param
// s, the README's answer for ThinkPHP's s parameter).
func TestReviewTrustBoundary(t *testing.T) {
	var cases []bcase
	for _, c := range boundaryCases() {
		if strings.Contains(c.name, "/baseline") { // they open the sessions
			cases = append(cases, c)
		}
	}
	cases = append(cases, reviewCases()...)
	var layouts []bLayout
	for _, l := range boundaryLayouts {
		switch l.name {
		case "plain", "try_files":
			layouts = append(layouts, l)
		}
		if l.name == "try_files" {
			rp := l
			rp.name = "try_files+route_param"
			inner := l.site
			rp.site = func(mp, up, root string) string {
				return inner(strings.Replace(mp, "\t\tlogin /api/login\n", "\t\tlogin /api/login\n\t\troute_param s\n", 1), up, root)
			}
			layouts = append(layouts, rp)
		}
	}
	for _, l := range layouts {
		t.Run(l.name, func(t *testing.T) {
			t.Parallel()
			runBoundaryLayout(t, l, cases)
		})
	}
}

// TestReviewPHP shows two of the holes against real PHP.
func TestReviewPHP(t *testing.T) {
	php, fpm := requirePHP(t)
	sim := newSim(t)

	t.Run("php -n: $_REQUEST takes a cookie over the injected $_POST", func(t *testing.T) {
		root := newPHPRoot(t)
		addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
		// -n: no php.ini, as in the official Docker images by default.
		p := startPHPProc(t, php, "-n", "-S", addr, "-t", string(root), root.path("index.php"))
		p.waitDial(t, "tcp", addr, func() string { return "" })
		c := startCaddy(t, mpBlock("wechat", wxApp, wxSecret, sim.URL)+"\n\treverse_proxy "+addr)
		lr := login(t, sim, wxApp, "review-cookie")
		for _, ct := range []struct{ ctype, body string }{
			{ctForm, "code=" + url.QueryEscape(lr.Code)},
			{ctJSON, `{"code":"` + lr.Code + `"}`},
		} {
			tc := phpCase{name: "cookie " + ct.ctype, target: "/api/login", ctype: []string{ct.ctype}, body: ct.body,
				hdr: []string{"Cookie", "openid=" + phpMarker + "; unionid=" + phpMarker}}
			resp := phpSend(t, c.URL, tc, phpVals{})
			saw, ok := phpDecode(resp.Body)
			if resp.Status != http.StatusOK || !ok {
				t.Fatalf("%s: answered %d, PHP reached %v: %.300s", tc.name, resp.Status, ok, resp.Body)
			}
			if got := fmt.Sprint(saw.Request["openid"]); strings.Contains(got, phpMarker) {
				t.Errorf("%s: CLIENT VALUE REACHED PHP: $_REQUEST['openid'] = %q, from the client's Cookie: openid=, which the login route forwards (request_order unset: cookies override GET and POST)",
					tc.name, got)
			}
		}
	})

	t.Run("php_fastcgi try_files: /api/login?s=/api/phone reaches the phone endpoint with the client's phoneNumber", func(t *testing.T) {
		root := newPHPRoot(t)
		sock := startPHPFPM(t, fpm, root)
		c := startCaddy(t, mpBlock("wechat", wxApp, wxSecret, sim.URL, "route_param s")+
			fmt.Sprintf("\n\troot * %s\n\ttry_files {path} /index.php?s={path}&{query}\n\tphp_fastcgi unix/%s", root, sock))
		lr := login(t, sim, wxApp, "review-s")
		tc := phpCase{name: "s conflict", target: "/api/login?s=/api/phone", ctype: []string{ctJSON},
			body: `{"code":"` + lr.Code + `","phoneNumber":"` + phpMarker + `","purePhoneNumber":"` + phpMarker + `"}`}
		resp := phpSend(t, c.URL, tc, phpVals{})
		saw, ok := phpDecode(resp.Body)
		if !ok {
			if resp.Status >= 400 && resp.Status < 500 {
				return // refused: the hole is closed
			}
			t.Fatalf("answered %d without reaching PHP: %.300s", resp.Status, resp.Body)
		}
		j, _ := saw.JSON.(map[string]any)
		if saw.Get["s"] == "/api/phone" && fmt.Sprint(j["phoneNumber"]) == phpMarker && phpHeader(saw, "HTTP_X_MP_OPENID") != "" {
			t.Errorf("CLIENT VALUE REACHED PHP: $_GET['s'] = %q (ThinkPHP dispatches the phone endpoint), php://input phoneNumber = %q, with the injected HTTP_X_MP_OPENID of a real login: the request was processed as a login",
				saw.Get["s"], j["phoneNumber"])
		}
	})
}
