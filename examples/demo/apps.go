package main

import (
	"fmt"
	"net/http"
	"regexp"
)

var selectAppLine = regexp.MustCompile(`(?m)^\s*select_app\s`)

// severalAppsOf tells whether the Caddyfile serves several apps from one
// handler (select_app): then the demo plays the apps story.
func severalAppsOf(caddyfile string) bool { return selectAppLine.MatchString(caddyfile) }

// demoApp is one app of examples/Caddyfile.apps, with the Referer its
// platform's runtime sets on requests (the demo front end sends it as the
// real one would).
type demoApp struct {
	platform, appID, user, referer string
}

var demoApps = []demoApp{
	{"wechat", "wxdemoapp0000001", "wendy", "https://servicewechat.com/wxdemoapp0000001/3/page-frame.html"},
	{"douyin", "ttdemoapp0000001", "doug", "https://tmaservice.developer.toutiao.com/?appid=ttdemoapp0000001&version=1.0.0"},
	{"qq", "qqdemoapp0000001", "quinn", "https://appservice.qq.com/qqdemoapp0000001/1.0.0/page-frame.html"},
}

// appsStory: one backend, one /api/login, three apps of three platforms.
func (d *demo) appsStory(c *client, simURL, caddyURL string) error {
	// (a) Three users, three platforms, one route.
	step("a", "Users of a WeChat, a Douyin and a QQ mini-program log in through the same /api/login")
	codes := map[string]string{}
	for _, a := range demoApps {
		var login struct{ Code, OpenID string }
		if err := c.callQuiet("POST", simURL+"/_sim/login", map[string]string{"appid": a.appID, "user": a.user}, 200, &login); err != nil {
			return fail("a", err)
		}
		codes[a.platform] = login.Code
		d.backend.reset()
		hdr := http.Header{"Referer": {a.referer}}
		if _, err := c.callWith("POST", caddyURL+"/api/login", hdr, map[string]string{"code": login.Code}, 200, nil); err != nil {
			return fail("a", err)
		}
		got, err := d.backend.only("/api/login")
		if err != nil {
			return fail("a", err)
		}
		if err := verify([]check{
			{"header X-Mp-Platform", got.header.Get("X-Mp-Platform"), a.platform},
			{"header X-Mp-App-Id", got.header.Get("X-Mp-App-Id"), a.appID},
			{"header X-Mp-Openid", got.header.Get("X-Mp-Openid"), login.OpenID},
		}); err != nil {
			return fail("a", fmt.Errorf("the backend did not get %s's identity: %w", a.platform, err))
		}
		fmt.Printf("    ✓ %s user %s: the backend got openid %s, X-Mp-Platform %s, X-Mp-App-Id %s\n", a.platform, a.user, login.OpenID, a.platform, a.appID)
	}

	// (b) A mismatch costs a refused request, nothing more.
	step("b", "A Douyin login code sent as WeChat's (a forged Referer): WeChat refuses the code, the backend is not called")
	var login struct{ Code string }
	if err := c.callQuiet("POST", simURL+"/_sim/login", map[string]string{"appid": demoApps[1].appID, "user": "mallory"}, 200, &login); err != nil {
		return fail("b", err)
	}
	d.backend.reset()
	if _, err := c.callWith("POST", caddyURL+"/api/login", http.Header{"Referer": {demoApps[0].referer}}, map[string]string{"code": login.Code}, 401, nil); err != nil {
		return fail("b", err)
	}
	if err := d.backend.none(); err != nil {
		return fail("b", err)
	}
	fmt.Printf("    ✓ 401 invalid_code: a code belongs to its app, whatever the request claims\n")

	// (c) No app named: refused.
	step("c", "A login request that names no app (no Referer, no X-Mp-App: a web view, an H5 build)")
	d.backend.reset()
	if err := c.call("POST", caddyURL+"/api/login", map[string]string{"code": login.Code}, 400, nil); err != nil {
		return fail("c", err)
	}
	if err := d.backend.none(); err != nil {
		return fail("c", err)
	}
	fmt.Printf("    ✓ 400 unknown_app: such a front end names its app in the X-Mp-App header\n")

	// (d) The Douyin user's phone, on the same /api/phone.
	step("d", "The Douyin user taps the phone button; the front end posts code + encryptedData + iv to /api/phone")
	a := demoApps[1]
	var enc map[string]string
	if err := c.callQuiet("POST", simURL+"/_sim/phone", map[string]string{"appid": a.appID, "user": a.user, "phone": phone}, 200, &enc); err != nil {
		return fail("d", err)
	}
	d.backend.reset()
	body := map[string]string{"code": codes[a.platform], "encryptedData": enc["encryptedData"], "iv": enc["iv"]}
	if _, err := c.callWith("POST", caddyURL+"/api/phone", http.Header{"X-Mp-App": {"tt"}}, body, 200, nil); err != nil {
		return fail("d", err)
	}
	got, err := d.backend.only("/api/phone")
	if err != nil {
		return fail("d", err)
	}
	if err := verify([]check{
		{"header X-Mp-Phone", got.header.Get("X-Mp-Phone"), phone},
		{"header X-Mp-Platform", got.header.Get("X-Mp-Platform"), a.platform},
	}); err != nil {
		return fail("d", err)
	}
	fmt.Printf("    ✓ the backend got %s for the Douyin user (app picked by X-Mp-App: tt)\n", phone)

	fmt.Printf("\ndemo OK. Caddy's log: %s\n", d.caddyLog)
	return nil
}
