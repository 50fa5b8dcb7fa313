package integration

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Wrong content types: every route takes JSON, a form or multipart;
// other bodies are refused with 415 (a backend could read them), a body
// that does not parse as its type with 400. A multipart login is re-written
// with the identity as a part.
func TestWrongContentTypes(t *testing.T) {
	e := newEnv(t, "wechat")
	lr := login(t, e.sim, wxApp, "ct")
	ed, iv := phonePayload(t, e.sim, wxApp, "ct", "13800138050")
	raw := `{"code":"` + lr.Code + `","encryptedData":"` + ed + `","iv":"` + iv + `"}`
	for _, p := range []string{"/api/login", "/api/phone", "/api/decrypt"} {
		for _, ct := range []string{"text/plain", "application/xml", "application/octet-stream"} {
			wantError(t, do(t, http.MethodPost, e.url(p), ct, []byte(raw)), 415, "unsupported_media_type")
		}
		// Not a multipart body at all.
		wantError(t, do(t, http.MethodPost, e.url(p), "multipart/form-data; boundary=x", []byte(raw)), 400, "bad_request")
		// A form type with a JSON body (Gin's ShouldBindJSON reads the JSON).
		wantError(t, do(t, http.MethodPost, e.url(p), "application/x-www-form-urlencoded", []byte(raw)), 415, "unsupported_media_type")
	}
	// A JSON content type with a form body.
	wantError(t, do(t, http.MethodPost, e.url("/api/phone"), "application/json", []byte("code=x&iv=y")), 400, "bad_request")
	if n := e.up.Count(); n != 0 {
		t.Fatalf("the upstream was called %d times", n)
	}
	// Login: the code in the query string, a multipart body with a client
	// openid part and a file: re-written, the file kept, the openid true.
	mp := "--x\r\nContent-Disposition: form-data; name=\"openid\"\r\n\r\nevil\r\n" +
		"--x\r\nContent-Disposition: form-data; name=\"avatar\"; filename=\"a.png\"\r\nContent-Type: image/png\r\n\r\nPNGDATA\r\n--x--\r\n"
	wantOK(t, do(t, http.MethodPost, e.url("/api/login?code="+lr.Code), "multipart/form-data; boundary=x", []byte(mp)))
	got := e.up.Last(t)
	req, _ := http.NewRequest(http.MethodPost, "/", bytes.NewReader(got.Body))
	req.Header.Set("Content-Type", got.Header.Get("Content-Type"))
	if err := req.ParseMultipartForm(1 << 20); err != nil {
		t.Fatalf("forwarded multipart: %v", err)
	}
	if v := req.MultipartForm.Value["openid"]; len(v) != 1 || v[0] != lr.OpenID || got.Header.Get("X-Mp-Openid") != lr.OpenID {
		t.Fatalf("multipart login: openid parts %q header %q", v, got.Header.Get("X-Mp-Openid"))
	}
	if f := req.MultipartForm.File["avatar"]; len(f) != 1 || f[0].Size != int64(len("PNGDATA")) {
		t.Fatalf("multipart login: avatar %v", f)
	}
}

// A slow body (a client trickling bytes) is cut off by Caddy's read_body
// timeout; the handler answers with an error and the upstream never sees a
// half-written request.
func TestSlowBody(t *testing.T) {
	sim, up := newSim(t), newUpstream(t)
	c := startCaddyWith(t, "\tservers {\n\t\ttimeouts {\n\t\t\tread_body 1s\n\t\t}\n\t}",
		mpBlock("wechat", wxApp, wxSecret, sim.URL)+"\n\treverse_proxy "+strings.TrimPrefix(up.URL, "http://"))
	conn, err := net.Dial("tcp", strings.TrimPrefix(c.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	body := `{"code":"abc","encryptedData":"` + strings.Repeat("A", 64) + `","iv":"` + strings.Repeat("A", 22) + `=="}`
	if _, err := io.WriteString(conn, "POST /api/phone HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: "+
		strconv.Itoa(len(body))+"\r\n\r\n"+body[:10]); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	// Trickle one byte every 300 ms for at most 5 s.
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 10; i < len(body) && time.Since(start) < 5*time.Second; i++ {
			time.Sleep(300 * time.Millisecond)
			if _, err := conn.Write([]byte{body[i]}); err != nil {
				return
			}
		}
	}()
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 4096)
	n, _ := conn.Read(buf)
	elapsed := time.Since(start)
	answer := string(buf[:n])
	if !strings.Contains(answer, " 400 ") && !strings.Contains(answer, " 408 ") && n != 0 {
		t.Fatalf("slow body answered %q", answer)
	}
	if elapsed > 4*time.Second {
		t.Fatalf("slow body held for %v with read_body 1s", elapsed)
	}
	conn.Close()
	<-done
	if up.Count() != 0 {
		t.Fatal("the upstream was called")
	}
	t.Logf("slow body cut after %v: %q", elapsed.Round(time.Millisecond), strings.SplitN(answer, "\r\n", 2)[0])
}
