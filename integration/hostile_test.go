package integration

import (
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Wrong content types: the phone and decrypt routes take JSON or a form
// only; a login with another body still works with a query-string code.
func TestWrongContentTypes(t *testing.T) {
	e := newEnv(t, "wechat")
	lr := login(t, e.sim, wxApp, "ct")
	ed, iv := phonePayload(t, e.sim, wxApp, "ct", "13800138050")
	raw := `{"code":"` + lr.Code + `","encryptedData":"` + ed + `","iv":"` + iv + `"}`
	for _, ct := range []string{"text/plain", "multipart/form-data; boundary=x", "application/xml", "application/octet-stream"} {
		wantError(t, do(t, http.MethodPost, e.url("/api/phone"), ct, []byte(raw)), 400, "bad_request")
		wantError(t, do(t, http.MethodPost, e.url("/api/decrypt"), ct, []byte(raw)), 400, "bad_request")
	}
	// A JSON content type with a form body, and a form type with JSON.
	wantError(t, do(t, http.MethodPost, e.url("/api/phone"), "application/json", []byte("code=x&iv=y")), 400, "bad_request")
	wantError(t, do(t, http.MethodPost, e.url("/api/phone"), "application/x-www-form-urlencoded", []byte(raw)), 400, "bad_request")
	if n := e.up.Count(); n != 0 {
		t.Fatalf("the upstream was called %d times", n)
	}
	// Login: the code in the query string, a body of another type kept as is.
	multipart := "--x\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--x--\r\n"
	wantOK(t, do(t, http.MethodPost, e.url("/api/login?code="+lr.Code), "multipart/form-data; boundary=x", []byte(multipart)))
	got := e.up.Last(t)
	if got.Header.Get("X-Mp-Openid") != lr.OpenID || string(got.Body) != multipart {
		t.Fatalf("multipart login: openid %q body %q", got.Header.Get("X-Mp-Openid"), got.Body)
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
