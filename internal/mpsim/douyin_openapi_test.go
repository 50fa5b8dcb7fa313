package mpsim

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// ttPost posts body with an optional access-token header; raw answer.
func (e *env) ttPost(path, header string, body any) (string, []byte) {
	e.t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+path, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	if header != "" {
		req.Header.Set("access-token", header)
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		e.t.Fatalf("%s: %d %s", path, resp.StatusCode, raw)
	}
	return resp.Header.Get("Content-Type"), raw
}

func (e *env) appToken() string {
	e.t.Helper()
	m := e.json200("POST", "/api/apps/v2/token", map[string]any{"appid": ttApp, "secret": ttSecret, "grant_type": "client_credential"})
	d, _ := m["data"].(map[string]any)
	tok := str(d, "access_token")
	if tok == "" || num(m, "err_no") != 0 || num(d, "expires_in") != 7200 || m["err_tips"] != "success" {
		e.t.Fatalf("v2/token: %v", m)
	}
	return tok
}

func ttNum(t *testing.T, raw []byte, field string) int {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("not JSON: %s", raw)
	}
	return num(m, field)
}

func TestDouyinAppTokenAndBodyAPIs(t *testing.T) {
	e := newEnv(t, Options{Quirks: exact})
	for _, c := range []struct {
		body map[string]any
		want int
	}{
		{map[string]any{"appid": ttApp, "secret": "wrong", "grant_type": "client_credential"}, 40017},
		{map[string]any{"appid": "ttnobody", "secret": ttSecret, "grant_type": "client_credential"}, 40015},
		{map[string]any{"appid": ttApp, "secret": ttSecret, "grant_type": "x"}, 40020},
		{map[string]any{"appid": ttApp}, 40014},
	} {
		if m := e.json200("POST", "/api/apps/v2/token", c.body); num(m, "err_no") != c.want {
			t.Errorf("%v: %v", c.body, m)
		}
	}
	tok := e.appToken()
	// The token in the body: a PNG. In a header or of the other kind: 40002.
	ct, raw := e.ttPost("/api/apps/qrcode", "", map[string]any{"access_token": tok, "appname": "douyin", "path": "pages/a", "width": 300})
	if ct != "image/png" || !strings.HasPrefix(string(raw), "\x89PNG") || !strings.Contains(string(raw), "app="+ttApp+" path=pages/a width=300") {
		t.Fatalf("qrcode: %s %q", ct, raw)
	}
	_, raw = e.ttPost("/api/apps/qrcode", tok, map[string]any{"appname": "douyin"})
	if ttNum(t, raw, "errcode") != 40002 {
		t.Fatalf("token in a header: %s", raw)
	}
	clt := e.clt()
	_, raw = e.ttPost("/api/apps/qrcode", "", map[string]any{"access_token": clt})
	if ttNum(t, raw, "errcode") != 40002 {
		t.Fatalf("client token in the body: %s", raw)
	}
	_, raw = e.ttPost("/api/apps/qrcode", "", map[string]any{"access_token": tok, "width": 100})
	if ttNum(t, raw, "errcode") != 40021 {
		t.Fatalf("width: %s", raw)
	}
	_, raw = e.ttPost("/api/apps/censor/image", "", map[string]any{"access_token": tok, "app_id": ttApp, "image": "https://x/risky-content.jpg"})
	if ttNum(t, raw, "error") != 0 || !strings.Contains(string(raw), `{"model_name":"porn","hit":true}`) {
		t.Fatalf("censor v2: %s", raw)
	}
	// A new token supersedes the old one after the grace; InvalidateTokens
	// kills it at once.
	tok2 := e.appToken()
	if _, raw = e.ttPost("/api/apps/censor/image", "", map[string]any{"access_token": tok, "app_id": ttApp, "image": "u"}); ttNum(t, raw, "error") != 0 {
		t.Fatalf("superseded token within the grace: %s", raw)
	}
	e.sim.Advance(TokenGrace + time.Second)
	if _, raw = e.ttPost("/api/apps/censor/image", "", map[string]any{"access_token": tok, "app_id": ttApp, "image": "u"}); ttNum(t, raw, "error") != 2 {
		t.Fatalf("superseded token after the grace: %s", raw)
	}
	if err := e.sim.InvalidateTokens(ttApp, false); err != nil {
		t.Fatal(err)
	}
	if _, raw = e.ttPost("/api/apps/censor/image", "", map[string]any{"access_token": tok2, "app_id": ttApp, "image": "u"}); ttNum(t, raw, "error") != 2 {
		t.Fatalf("invalidated token: %s", raw)
	}
}

func TestDouyinCensorImageHeaderToken(t *testing.T) {
	e := newEnv(t, Options{Quirks: exact})
	clt := e.clt()
	_, raw := e.ttPost("/api/apps/v1/censor/image/", clt, map[string]any{"app_id": ttApp, "image": "https://x/cat.jpg"})
	if ttNum(t, raw, "err_no") != 0 || !strings.Contains(string(raw), `{"model_name":"porn","hit":false}`) {
		t.Fatalf("censor v3: %s", raw)
	}
	// Token in the body only, or the mini-app token: 28001003.
	_, raw = e.ttPost("/api/apps/v1/censor/image/", "", map[string]any{"app_id": ttApp, "access_token": clt, "image": "u"})
	if ttNum(t, raw, "err_no") != 28001003 {
		t.Fatalf("no header: %s", raw)
	}
	_, raw = e.ttPost("/api/apps/v1/censor/image/", e.appToken(), map[string]any{"app_id": ttApp, "image": "u"})
	if ttNum(t, raw, "err_no") != 28001003 {
		t.Fatalf("the other kind: %s", raw)
	}
	if err := e.sim.InvalidateTokens(ttApp, true); err != nil {
		t.Fatal(err)
	}
	_, raw = e.ttPost("/api/apps/v1/censor/image/", clt, map[string]any{"app_id": ttApp, "image": "u"})
	if ttNum(t, raw, "err_no") != 28001008 {
		t.Fatalf("expired: %s", raw)
	}
}
