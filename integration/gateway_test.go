package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/mpsim"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/redistest"
)

// The open-API gateway: a backend calls {caddy}/mp-api/<WeChat API path>
// (or, in host mode, http://api.weixin.qq.com/<path> resolved to Caddy)
// without a token; the plugin adds the app's shared one.

const gwPrefix = "/mp-api"

// gwBlock is the gateway block of the tests: a 64 KiB buffer, so that a
// larger upload streams.
const gwBlock = `gateway ` + gwPrefix + ` {
			allow /cgi-bin/message/subscribe/send /wxa/msg_sec_check
			allow /cgi-bin/media/*
			max_buffer 64KiB
			host_mode
		}`

// gwSite is a Caddyfile whose site answers any host name on a loopback
// port (host mode needs Host: api.weixin.qq.com to reach it), with the
// handler's gateway and nothing else.
func gwSite(admin, port int, sim *Sim, bind, extra string) string {
	return fmt.Sprintf(`{
	admin 127.0.0.1:%d
	auto_https off
	debug
	persist_config off
}

http://:%d {
	%s
	log {
		output stderr
	}
	miniprogram {
		platform wechat
		app_id %s
		app_secret %s
		api_base %s
		%s
	}
}
`, admin, port, bind, wxApp, wxSecret, sim.URL, extra)
}

func startGateway(t *testing.T, sim *Sim, extra string) *Caddy {
	t.Helper()
	admin, port := freePort(t), freePort(t)
	return startCaddyfile(t, admin, gwSite(admin, port, sim, "bind 127.0.0.1", extra), port)
}

// gwCall posts JSON to url, optionally with another Host and headers
// (name, value pairs), and decodes the answer (WeChat's: HTTP 200, errcode
// possibly a string).
func gwCall(t *testing.T, method, u, host string, body any, hdr ...string) (int, map[string]any, []byte, http.Header) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(context.Background(), method, u, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if host != "" {
		req.Host = host
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	return resp.StatusCode, m, raw, resp.Header
}

// errcodeOf reads errcode leniently (number or string; absent is 0).
func errcodeOf(m map[string]any) int {
	switch v := m["errcode"].(type) {
	case float64:
		return int(v)
	case string:
		var n int
		fmt.Sscan(v, &n)
		return n
	}
	return 0
}

func wantWxOK(t *testing.T, what string, st int, m map[string]any, raw []byte) {
	t.Helper()
	if st != 200 || m == nil || errcodeOf(m) != 0 {
		t.Fatalf("%s: %d %s", what, st, raw)
	}
}

// gwUpload posts a multipart upload of data as the "media" file.
func gwUpload(t *testing.T, u string, data []byte) (int, map[string]any, []byte) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	h := map[string][]string{
		"Content-Disposition": {`form-data; name="media"; filename="photo.jpg"`},
		"Content-Type":        {"image/jpeg"},
	}
	pw, _ := mw.CreatePart(h)
	pw.Write(data)
	mw.Close()
	resp, err := httpClient.Post(u, mw.FormDataContentType(), &buf)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	return resp.StatusCode, m, raw
}

func jpeg(n int) []byte {
	b := []byte{0xff, 0xd8, 0xff, 0xe0}
	for i := 0; len(b) < n; i++ {
		b = append(b, byte(i*31), '{', 0x80)
	}
	return b[:n]
}

// currentToken asks the simulator for the app's current stable token (no
// force_refresh: it changes nothing), for the logs check.
func currentToken(t *testing.T, sim *Sim) string {
	t.Helper()
	_, m, raw := sdkPost(t, sim.URL+"/cgi-bin/stable_token", map[string]any{"grant_type": "client_credential", "appid": wxApp, "secret": wxSecret})
	tok, _ := m["access_token"].(string)
	if tok == "" {
		t.Fatalf("no token: %s", raw)
	}
	return tok
}

func TestGatewayRelay(t *testing.T) {
	sim := newSim(t)
	c := startGateway(t, sim, gwBlock)
	base := c.URL + gwPrefix
	lr := login(t, sim, wxApp, "alice")
	msg := map[string]any{"touser": lr.OpenID, "template_id": "TPL-1", "data": map[string]any{"thing1": map[string]any{"value": "已发货"}}}

	// The token added; a client-sent access_token (and cloudbase one)
	// replaced.
	st, m, raw, _ := gwCall(t, "POST", base+"/cgi-bin/message/subscribe/send", "", msg)
	wantWxOK(t, "subscribe send", st, m, raw)
	st, m, raw, _ = gwCall(t, "POST", base+"/cgi-bin/message/subscribe/send?access_token=stale-token-of-the-backend&cloudbase_access_token=x", "", msg)
	wantWxOK(t, "subscribe send with a client token", st, m, raw)
	// The platform's own errors pass through as they are.
	st, m, raw, _ = gwCall(t, "POST", base+"/cgi-bin/message/subscribe/send", "", map[string]any{"touser": "stranger", "template_id": "T", "data": map[string]any{"a": 1}})
	if st != 200 || errcodeOf(m) != 40003 {
		t.Fatalf("platform error: %d %s", st, raw)
	}
	st, m, raw, _ = gwCall(t, "POST", base+"/wxa/msg_sec_check", "", map[string]any{"version": 2, "openid": lr.OpenID, "scene": 2, "content": "来赌博吧"})
	if st != 200 || errcodeOf(m) != 0 || m["result"].(map[string]any)["suggest"] != "risky" {
		t.Fatalf("msg_sec_check: %d %s", st, raw)
	}

	// Off the allow-list, never relayed (under no entry, or spelled
	// otherwise), escaped: 403, no platform call.
	calls := sim.AllCalls()
	for _, p := range []string{"/wxa/img_sec_check", "/cgi-bin/token?grant_type=client_credential", "/sns/jscode2session", "/cgi-bin/media/../token", "/wxa/msg%5Fsec_check", ""} {
		st, m, raw, _ := gwCall(t, "GET", base+p, "", nil)
		if st != http.StatusForbidden || m["error"] != "forbidden" {
			t.Fatalf("%s: %d %s", p, st, raw)
		}
	}
	if got := sim.AllCalls(); fmt.Sprint(got) != fmt.Sprint(calls) {
		t.Fatalf("refused requests reached the platform: %v, then %v", calls, got)
	}

	// Host mode: the platform's URL unchanged, Host api.weixin.qq.com.
	st, m, raw, _ = gwCall(t, "POST", c.URL+"/wxa/msg_sec_check?access_token=whatever", "api.weixin.qq.com", map[string]any{"version": 2, "openid": lr.OpenID, "scene": 1, "content": "hello"})
	if st != 200 || errcodeOf(m) != 0 || m["result"].(map[string]any)["suggest"] != "pass" {
		t.Fatalf("host mode: %d %s", st, raw)
	}
	st, _, raw, _ = gwCall(t, "GET", c.URL+"/cgi-bin/stable_token", "api.weixin.qq.com:80", nil)
	if st != http.StatusForbidden || !strings.Contains(string(raw), "never relayed") {
		t.Fatalf("host mode, token endpoint: %d %s", st, raw)
	}

	// Media: a small upload (buffered), then the download, binary and
	// unchanged.
	img := jpeg(20 << 10)
	st, m, raw = gwUpload(t, base+"/cgi-bin/media/upload?type=image", img)
	id, _ := m["media_id"].(string)
	if st != 200 || id == "" {
		t.Fatalf("upload: %d %s", st, raw)
	}
	st, _, raw, hdr := gwCall(t, "GET", base+"/cgi-bin/media/get?media_id="+id, "", nil)
	if st != 200 || !bytes.Equal(raw, img) || hdr.Get("Content-Type") != "image/jpeg" || !strings.Contains(hdr.Get("Content-Disposition"), id) {
		t.Fatalf("download: %d, %d bytes (want %d), %v", st, len(raw), len(img), hdr)
	}

	// A large upload streams; after the token was invalidated behind the
	// gateway's back, its 40001 is passed on, never retried; the
	// backend's own retry gets the fresh token.
	big := jpeg(200 << 10)
	if err := sim.InvalidateTokens(wxApp, false); err != nil {
		t.Fatal(err)
	}
	uploads, stable := sim.Calls(mpsim.EndpointMediaUpload), sim.Calls(mpsim.EndpointStableToken)
	st, m, raw = gwUpload(t, base+"/cgi-bin/media/upload?type=image", big)
	if st != 200 || errcodeOf(m) != 40001 {
		t.Fatalf("streamed upload with a dead token: %d %s", st, raw)
	}
	if n := sim.Calls(mpsim.EndpointMediaUpload) - uploads; n != 1 {
		t.Fatalf("a streamed upload was sent %d times, want 1", n)
	}
	st, m, raw = gwUpload(t, base+"/cgi-bin/media/upload?type=image", big)
	if id2, _ := m["media_id"].(string); st != 200 || id2 == "" {
		t.Fatalf("retried upload: %d %s", st, raw)
	}
	if n := sim.Calls(mpsim.EndpointStableToken) - stable; n != 1 {
		t.Fatalf("stable_token calls %d after the invalidation, want 1", n)
	}

	// Expired (42001) on a buffered call: one retry, the backend sees
	// success.
	if err := sim.InvalidateTokens(wxApp, true); err != nil {
		t.Fatal(err)
	}
	checks := sim.Calls(mpsim.EndpointMsgSecCheck)
	st, m, raw, _ = gwCall(t, "POST", base+"/wxa/msg_sec_check", "", map[string]any{"version": 2, "openid": lr.OpenID, "scene": 1, "content": "hi"})
	wantWxOK(t, "after 42001", st, m, raw)
	if n := sim.Calls(mpsim.EndpointMsgSecCheck) - checks; n != 2 {
		t.Fatalf("msg_sec_check calls %d, want 2 (one retry)", n)
	}

	// Rate limits pass through, never retried.
	sim.Inject(mpsim.Fault{Endpoint: mpsim.EndpointSubscribeSend, Errcode: 45011, Times: 1})
	sends := sim.Calls(mpsim.EndpointSubscribeSend)
	st, m, raw, _ = gwCall(t, "POST", base+"/cgi-bin/message/subscribe/send", "", msg)
	if st != 200 || errcodeOf(m) != 45011 || sim.Calls(mpsim.EndpointSubscribeSend)-sends != 1 {
		t.Fatalf("rate limit: %d %s, %d calls", st, raw, sim.Calls(mpsim.EndpointSubscribeSend)-sends)
	}

	wantMetricLines(t, c,
		`caddy_miniprogram_gateway_requests_total{api="/cgi-bin/message/subscribe/send",errcode="0",platform="wechat"} 2`,
		`caddy_miniprogram_gateway_requests_total{api="/cgi-bin/message/subscribe/send",errcode="other",platform="wechat"} 1`,
		`caddy_miniprogram_gateway_requests_total{api="/cgi-bin/message/subscribe/send",errcode="45011",platform="wechat"} 1`,
		`caddy_miniprogram_gateway_requests_total{api="/cgi-bin/media/*",errcode="40001",platform="wechat"} 1`,
		`caddy_miniprogram_gateway_requests_total{api="/cgi-bin/media/*",errcode="none",platform="wechat"} 1`,
		`caddy_miniprogram_gateway_requests_total{api="(refused)",errcode="forbidden",platform="wechat"} 7`,
		`caddy_miniprogram_gateway_token_errors_total{api="/cgi-bin/media/*",outcome="not_retried",platform="wechat"} 1`,
		`caddy_miniprogram_gateway_token_errors_total{api="/wxa/msg_sec_check",outcome="retried",platform="wechat"} 1`,
	)
	tok := currentToken(t, sim)
	// A request off the gateway is in the access log; gateway requests
	// are not (a client may send a token in the query string).
	if r := do(t, "GET", c.URL+"/healthz", "", nil); r.Status != 200 {
		t.Fatalf("off the gateway: %d", r.Status)
	}
	c.Stop()
	logs := c.Logs()
	for _, l := range strings.Split(logs, "\n") {
		if strings.Contains(l, `"logger":"http.log.access`) && strings.Contains(l, gwPrefix) {
			t.Errorf("a gateway request in the access log: %s", l)
		}
	}
	noSecrets(t, logs, tok, wxSecret, "stale-token-of-the-backend")
	if !strings.Contains(logs, `"gateway request"`) {
		t.Error("no gateway request log line")
	}
}

// A token invalidated behind the gateways' backs: two instances sharing
// Redis refresh it once between them, and each request is retried once.
func TestGatewayTokenRefreshTwoInstances(t *testing.T) {
	rs := redistest.Start(t)
	sim := newSim(t)
	extra := "store redis " + rs.URL() + "\n\t\t" + gwBlock
	a, b := startGateway(t, sim, extra), startGateway(t, sim, extra)
	lr := login(t, sim, wxApp, "bob")
	check := map[string]any{"version": 2, "openid": lr.OpenID, "scene": 2, "content": "hello"}
	for _, c := range []*Caddy{a, b} {
		st, m, raw, _ := gwCall(t, "POST", c.URL+gwPrefix+"/wxa/msg_sec_check", "", check)
		wantWxOK(t, "warm-up", st, m, raw)
	}
	if n := sim.Calls(mpsim.EndpointStableToken); n != 1 {
		t.Fatalf("two instances fetched %d tokens, want 1", n)
	}

	if err := sim.InvalidateTokens(wxApp, false); err != nil {
		t.Fatal(err)
	}
	before := sim.Calls(mpsim.EndpointMsgSecCheck)
	const n = 10
	var wg sync.WaitGroup
	res := make([]map[string]any, n)
	sts := make([]int, n)
	for i := range n {
		c := a
		if i%2 == 1 {
			c = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sts[i], res[i], _, _ = gwCall(t, "POST", c.URL+gwPrefix+"/wxa/msg_sec_check", "", check)
		}()
	}
	wg.Wait()
	for i := range n {
		if sts[i] != 200 || errcodeOf(res[i]) != 0 {
			t.Fatalf("request %d after the invalidation: %d %v", i, sts[i], res[i])
		}
	}
	if got := sim.Calls(mpsim.EndpointStableToken); got != 2 {
		t.Fatalf("stable_token calls %d, want 2 (one refresh across both instances)", got)
	}
	if got := sim.Calls(mpsim.EndpointMsgSecCheck) - before; got < n || got > 2*n {
		t.Fatalf("msg_sec_check calls %d for %d requests: each is retried at most once", got, n)
	}
	// Each instance retried (at least its first request after the
	// invalidation), and never more than once per request.
	for _, c := range []*Caddy{a, b} {
		mt := metricsText(t, c)
		retried := metricLine(mt, `caddy_miniprogram_gateway_token_errors_total{api="/wxa/msg_sec_check",outcome="retried",platform="wechat"}`)
		if retried < 1 || retried > n/2 {
			t.Errorf("retries on one instance: %v", retried)
		}
		if v := metricLine(mt, `caddy_miniprogram_gateway_token_errors_total{api="/wxa/msg_sec_check",outcome="not_retried",platform="wechat"}`); v > 0 {
			t.Errorf("%v requests failed after their retry", v)
		}
	}
	// Once more, one request at a time: A meets the dead token, refreshes
	// it and retries once; B meets it too (its copy in memory), takes A's
	// new token from Redis without a refresh, and retries once.
	if err := sim.InvalidateTokens(wxApp, false); err != nil {
		t.Fatal(err)
	}
	for i, c := range []*Caddy{a, b} {
		before := sim.Calls(mpsim.EndpointMsgSecCheck)
		st, m, raw, _ := gwCall(t, "POST", c.URL+gwPrefix+"/wxa/msg_sec_check", "", check)
		wantWxOK(t, "sequential", st, m, raw)
		if got := sim.Calls(mpsim.EndpointMsgSecCheck) - before; got != 2 {
			t.Fatalf("instance %d: msg_sec_check calls %d, want 2 (one retry)", i, got)
		}
		if got := sim.Calls(mpsim.EndpointStableToken); got != 3 {
			t.Fatalf("instance %d: stable_token calls %d, want 3 (one refresh for both)", i, got)
		}
	}
	// Then: no refresh, no retry.
	before = sim.Calls(mpsim.EndpointMsgSecCheck)
	for _, c := range []*Caddy{a, b} {
		st, m, raw, _ := gwCall(t, "POST", c.URL+gwPrefix+"/wxa/msg_sec_check", "", check)
		wantWxOK(t, "after", st, m, raw)
	}
	if sim.Calls(mpsim.EndpointMsgSecCheck)-before != 2 || sim.Calls(mpsim.EndpointStableToken) != 3 {
		t.Fatalf("calls %v", sim.AllCalls())
	}
}

// A never-relayed path on the allow-list, or a gateway on a listener
// other hosts reach: Caddy refuses to start.
func TestGatewayRefusedAtLoad(t *testing.T) {
	sim := newSim(t)
	out := caddyFailsToStart(t, gwSite(freePort(t), freePort(t), sim, "bind 127.0.0.1",
		"gateway /mp-api {\n\t\t\tallow /wxa/msg_sec_check /cgi-bin/stable_token\n\t\t}"))
	if !strings.Contains(out, "never relayed") || !strings.Contains(out, "/cgi-bin/stable_token") {
		t.Errorf("never-relayed path:\n%s", out)
	}
	out = caddyFailsToStart(t, gwSite(freePort(t), freePort(t), sim, "", "gateway /mp-api {\n\t\t\tallow /wxa/msg_sec_check\n\t\t}"))
	if !strings.Contains(out, "the API gateway calls the platform") || !strings.Contains(out, "allow_public in the gateway block") {
		t.Errorf("public listener:\n%s", out)
	}
	noSecretsIn(t, out, wxSecret)
}

// A public site on the same host that proxies to the internal listener
// (here Caddy's own reverse_proxy, which adds X-Forwarded-For) does not
// open the gateway or the compat endpoints: such requests come in on a
// loopback connection but are refused 403, with no platform call.
func TestInternalEndpointsRefuseSameHostProxy(t *testing.T) {
	sim := newSim(t)
	admin, internal, public := freePort(t), freePort(t), freePort(t)
	cf := fmt.Sprintf(`{
	admin 127.0.0.1:%d
	auto_https off
	persist_config off
}
http://:%d {
	bind 127.0.0.1
	miniprogram {
		platform wechat
		app_id %s
		app_secret %s
		api_base %s
		compat /mp-compat
		%s
	}
}
http://:%d {
	bind 127.0.0.1
	reverse_proxy 127.0.0.1:%d
}
`, admin, internal, wxApp, wxSecret, sim.URL, gwBlock, public, internal)
	c := startCaddyfile(t, admin, cf, internal, public)
	lr := login(t, sim, wxApp, "alice")
	body := map[string]any{"version": 2, "openid": lr.OpenID, "scene": 1, "content": "hello"}
	calls := sim.Calls(mpsim.EndpointMsgSecCheck) + sim.Calls(mpsim.EndpointStableToken) + sim.Calls(mpsim.EndpointJSCode2Session)
	pub := fmt.Sprintf("http://127.0.0.1:%d", public)
	for _, call := range []struct{ u, host string }{
		{pub + gwPrefix + "/wxa/msg_sec_check", ""},
		{pub + "/wxa/msg_sec_check", "api.weixin.qq.com"},
	} {
		if st, _, raw, _ := gwCall(t, "POST", call.u, call.host, body); st != 403 || !strings.Contains(string(raw), "did not come through a proxy") {
			t.Errorf("%s (Host %q) through the proxy: %d %s", call.u, call.host, st, raw)
		}
	}
	r := do(t, "GET", pub+"/mp-compat/sns/jscode2session?appid="+wxApp+"&secret="+wxSecret+"&js_code="+lr.Code+"&grant_type=authorization_code", "", nil)
	if r.Status != 403 {
		t.Errorf("compat through the proxy: %d %s", r.Status, r.Body)
	}
	if n := sim.Calls(mpsim.EndpointMsgSecCheck) + sim.Calls(mpsim.EndpointStableToken) + sim.Calls(mpsim.EndpointJSCode2Session); n != calls {
		t.Errorf("%d platform calls through the proxy", n-calls)
	}
	// Directly on the internal listener: served.
	if st, m, raw, _ := gwCall(t, "POST", c.URL+gwPrefix+"/wxa/msg_sec_check", "", body); st != 200 || fmt.Sprint(m["errcode"]) != "0" {
		t.Fatalf("direct: %d %s", st, raw)
	}
}

// wantMetricLines fails the test for each line the instance's metrics
// lack.
func wantMetricLines(t *testing.T, c *Caddy, lines ...string) {
	t.Helper()
	mt := metricsText(t, c)
	for _, l := range lines {
		if !strings.Contains(mt, l) {
			t.Errorf("metrics lack %s", l)
		}
	}
}
