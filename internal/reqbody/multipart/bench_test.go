package multipart

import (
	"bytes"
	"io"
	"testing"
)

// BenchmarkSmallForm: the avatar-and-nickname login without its file: Read
// a 3-field form, drop and inject, and write the body out.
func BenchmarkSmallForm(b *testing.B) {
	ct, body := build(b, "----WebKitFormBoundary7MA4YWxkTrZu0gW",
		tpart{name: "code", content: "0a1B2c3D4e5F6g7H8i9J0k"},
		tpart{name: "nickName", content: "小明"},
		tpart{name: "gender", content: "1"},
	)
	protected := func(n string) bool { return n == "openid" || n == "unionid" }
	r := bytes.NewReader(body)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		r.Reset(body)
		f, err := Read(r, ct, Limits{})
		if err != nil {
			b.Fatal(err)
		}
		if _, ok := f.Value("code"); !ok {
			b.Fatal("no code")
		}
		f.Del(protected)
		_ = f.Set("openid", "oAbCdEfGhIjKlMnOpQrStUvWxYz0")
		_, rc, _ := f.Body()
		if _, err := io.Copy(io.Discard, rc); err != nil {
			b.Fatal(err)
		}
		f.Close()
	}
}
