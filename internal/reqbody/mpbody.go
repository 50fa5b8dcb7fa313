package reqbody

import (
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/mperr"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/reqbody/multipart"
)

// readMultipart reads a multipart/form-data body whole (see ReadLimits).
// A field typed as JSON is refused: Spring's @RequestPart and others bind
// members of such a part, which the handler would not see.
func readMultipart(r *http.Request, fields, upload int64) (*Body, error) {
	f, err := multipart.Read(r.Body, r.Header.Get("Content-Type"), multipart.Limits{MaxFields: fields, MaxFile: upload})
	_ = r.Body.Close()
	if err != nil {
		return nil, err
	}
	for _, p := range f.Parts() {
		if !p.File && isJSONType(p.ContentType) {
			_ = f.Close()
			return nil, mperr.New(mperr.UnsupportedMediaType, msgMultipartJSON)
		}
	}
	if encoded(r.Header) {
		_ = f.Close()
		return nil, mperr.New(mperr.UnsupportedMediaType, msgEncoded)
	}
	return &Body{kind: Multipart, mp: f}, nil
}

func isJSONType(ct string) bool {
	mt, _, _ := strings.Cut(ct, ";")
	mt = strings.ToLower(strings.TrimSpace(mt))
	return strings.HasSuffix(mt, "/json") || strings.HasSuffix(mt, "+json") || strings.HasSuffix(mt, "/x-json")
}

// applyMultipart writes the re-serialised form into r.
func (b *Body) applyMultipart(r *http.Request) {
	ct, body, n := b.mp.Body()
	r.Body = body
	r.GetBody = func() (io.ReadCloser, error) {
		_, body, _ := b.mp.Body()
		return body, nil
	}
	r.ContentLength = n
	r.TransferEncoding = nil
	r.Header.Del("Transfer-Encoding")
	r.Header.Set("Content-Type", ct)
	r.Header.Set("Content-Length", strconv.FormatInt(n, 10))
}

// Close releases what the body holds outside memory (a multipart body's
// spooled files). Call it once the request has been forwarded; a no-op for
// other kinds.
func (b *Body) Close() error {
	if b == nil || b.mp == nil {
		return nil
	}
	return b.mp.Close()
}
