package mpsim

import (
	"bytes"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"
)

func TestOpenAPISubscribeAndSecCheck(t *testing.T) {
	e := newEnv(t, Options{})
	lr := e.login(wxApp, "olga")
	tok := str(e.stable(wxApp, wxSecret, false), "access_token")
	send := func(tok string, body any) map[string]any {
		return e.json200("POST", "/cgi-bin/message/subscribe/send?access_token="+tok, body)
	}
	msg := map[string]any{"touser": lr.OpenID, "template_id": "TPL", "data": map[string]any{"thing1": map[string]any{"value": "x"}}}
	if m := send(tok, msg); num(m, "errcode") != 0 || str(m, "errmsg") != "ok" {
		t.Fatalf("%v", m)
	}
	wantErrcode(t, send("", msg), 41001)
	wantErrcode(t, send("not-a-token", msg), 40001)
	wantErrcode(t, send(tok, map[string]any{"touser": "stranger", "template_id": "TPL", "data": map[string]any{"a": 1}}), 40003)
	wantErrcode(t, send(tok, map[string]any{"touser": lr.OpenID, "data": map[string]any{"a": 1}}), 40037)
	wantErrcode(t, send(tok, map[string]any{"touser": lr.OpenID, "template_id": "TPL"}), 47003)

	check := func(body any) map[string]any {
		return e.json200("POST", "/wxa/msg_sec_check?access_token="+tok, body)
	}
	m := check(map[string]any{"version": 2, "openid": lr.OpenID, "scene": 2, "content": "hello"})
	if num(m, "errcode") != 0 || m["result"].(map[string]any)["suggest"] != "pass" || str(m, "trace_id") == "" {
		t.Fatalf("%v", m)
	}
	m = check(map[string]any{"version": 2, "openid": lr.OpenID, "scene": 2, "content": "来赌博吧"})
	if r := m["result"].(map[string]any); r["suggest"] != "risky" || r["label"] != 20006.0 {
		t.Fatalf("%v", m)
	}
	wantErrcode(t, check(map[string]any{"version": 1, "openid": lr.OpenID, "scene": 2, "content": "x"}), 47001)
	wantErrcode(t, check(map[string]any{"version": 2, "openid": "nobody", "scene": 2, "content": "x"}), 40003)
	wantErrcode(t, check(map[string]any{"version": 2, "openid": lr.OpenID, "scene": 9, "content": "x"}), 40129)
	wantErrcode(t, check(map[string]any{"version": 2, "openid": lr.OpenID, "scene": 1}), 44002)
	wantErrcode(t, e.json200("GET", "/wxa/msg_sec_check?access_token="+tok, nil), 43302)

	// Invalidated behind the holder's back: 40001, then a new stable
	// token without force_refresh works.
	if err := e.sim.InvalidateTokens(wxApp, false); err != nil {
		t.Fatal(err)
	}
	wantErrcode(t, send(tok, msg), 40001)
	tok2 := str(e.stable(wxApp, wxSecret, false), "access_token")
	if tok2 == tok || num(send(tok2, msg), "errcode") != 0 {
		t.Fatal("no fresh token after the invalidation")
	}
	// Expired: 42001. Through the control API.
	if st, raw := e.do("POST", "/_sim/invalidate_token", map[string]any{"appid": wxApp, "expired": true}); st != 200 {
		t.Fatalf("%d %s", st, raw)
	}
	wantErrcode(t, send(tok2, msg), 42001)
	if st, _ := e.do("POST", "/_sim/invalidate_token", map[string]any{"appid": "ks000000000000001"}); st != 400 {
		t.Fatalf("a Kuaishou app (no server token here): %d", st)
	}
	if n := e.sim.Calls(EndpointSubscribeSend); n != 9 {
		t.Fatalf("subscribe_send calls %d", n)
	}
}

func upload(t *testing.T, url, field, ct string, data []byte) (int, []byte, string) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	h := make(map[string][]string)
	h["Content-Disposition"] = []string{`form-data; name="` + field + `"; filename="a.jpg"`}
	h["Content-Type"] = []string{ct}
	pw, _ := mw.CreatePart(h)
	pw.Write(data)
	mw.Close()
	resp, err := http.Post(url, mw.FormDataContentType(), &buf)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b, resp.Header.Get("Content-Type")
}

func TestOpenAPIMedia(t *testing.T) {
	e := newEnv(t, Options{})
	tok := str(e.stable(wxApp, wxSecret, false), "access_token")
	img := append([]byte{0xff, 0xd8, 0xff, 0xe0}, bytes.Repeat([]byte{0, 1, '{', 0x80}, 5000)...)
	st, raw, ct := upload(t, e.srv.URL+"/cgi-bin/media/upload?type=image&access_token="+tok, "media", "image/jpeg", img)
	m := decodeObj(t, raw)
	if st != 200 || str(m, "type") != "image" || str(m, "media_id") == "" || num(m, "created_at") == 0 || !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("%d %s %s", st, raw, ct)
	}
	id := str(m, "media_id")
	resp, err := http.Get(e.srv.URL + "/cgi-bin/media/get?access_token=" + tok + "&media_id=" + id)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Equal(got, img) || resp.Header.Get("Content-Type") != "image/jpeg" || !strings.Contains(resp.Header.Get("Content-Disposition"), id) {
		t.Fatalf("download: %d bytes, %v", len(got), resp.Header)
	}
	wantErrcode(t, e.json200("GET", "/cgi-bin/media/get?"+q("access_token", tok, "media_id", "nope"), nil), 40007)
	wantErrcode(t, e.json200("GET", "/cgi-bin/media/get?"+q("access_token", "bad", "media_id", id), nil), 40001)
	_, raw, _ = upload(t, e.srv.URL+"/cgi-bin/media/upload?type=image&access_token=bad", "media", "image/jpeg", img)
	wantErrcode(t, decodeObj(t, raw), 40001)
	_, raw, _ = upload(t, e.srv.URL+"/cgi-bin/media/upload?type=voice&access_token="+tok, "media", "image/jpeg", img)
	wantErrcode(t, decodeObj(t, raw), 40004)
	_, raw, _ = upload(t, e.srv.URL+"/cgi-bin/media/upload?type=image&access_token="+tok, "file", "image/jpeg", img)
	wantErrcode(t, decodeObj(t, raw), 41005)
	if e.sim.Calls(EndpointMediaUpload) != 4 || e.sim.Calls(EndpointMediaGet) != 3 {
		t.Fatalf("calls %v", e.sim.AllCalls())
	}
}
