package multipart

import (
	"bytes"
	"errors"
	"io"
	"net/http"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/mperr"
)

// errBudget is what limitReader returns once its budget is spent.
var errBudget = errors.New("multipart: read budget spent")

// limitReader reads the request body within a budget that Read moves as it
// goes (part headers, epilogue), and remembers why reading stopped.
type limitReader struct {
	r     io.Reader
	left  int64 // bytes that may still be read; < 0: no bound
	hit   bool  // the budget was spent
	err   error // the first error of r other than io.EOF
	atEOF bool
}

// budget allows n more bytes from now (n < 0: no bound).
func (l *limitReader) budget(n int64) { l.left = n }

func (l *limitReader) Read(p []byte) (int, error) {
	if l.err != nil {
		return 0, l.err
	}
	if l.atEOF {
		return 0, io.EOF
	}
	if l.left == 0 {
		l.hit = true
		return 0, errBudget
	}
	if l.left > 0 && int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.r.Read(p)
	if l.left > 0 {
		l.left -= int64(n)
	}
	switch {
	case err == io.EOF:
		l.atEOF = true
	case err != nil:
		l.err = err
	}
	return n, err
}

// fail maps an error met while reading the body to the error Read returns.
func (l *limitReader) fail(err error) error {
	if e, ok := mperr.As(err); ok {
		return e
	}
	if l.err != nil {
		var mbe *http.MaxBytesError
		if errors.As(l.err, &mbe) {
			return mperr.Newf(mperr.BodyTooLarge, "the request body is larger than %d bytes", mbe.Limit)
		}
		return mperr.Wrap(mperr.BadRequest, msgReadFailed, l.err)
	}
	return mperr.New(mperr.BadRequest, msgMalformed)
}

// closeWatch tells whether the stream had a closing delimiter line: at the
// start of a line, "--boundary--", then spaces or tabs, then a line end or
// the end of the stream. mime/multipart answers io.EOF both for that line
// and for a body that ends inside a part's header; the first such line is
// where mime/multipart stops (a part's content ends at "\r\n--boundary-",
// and such a line is no header), so with it the io.EOF is the real end.
type closeWatch struct {
	r   io.Reader
	pat string // "--" + boundary + "--"
	i   int    // bytes of pat matched on this line; -1: not this line
	saw bool
}

func (w *closeWatch) Read(p []byte) (int, error) {
	n, err := w.r.Read(p)
	if !w.saw {
		w.scan(p[:n])
		if err == io.EOF && w.i == len(w.pat) {
			w.saw = true
		}
	}
	return n, err
}

func (w *closeWatch) scan(b []byte) {
	for len(b) > 0 && !w.saw {
		if w.i < 0 {
			j := bytes.IndexByte(b, '\n')
			if j < 0 {
				return
			}
			b, w.i = b[j+1:], 0
			continue
		}
		c := b[0]
		b = b[1:]
		switch {
		case c == '\n':
			w.saw = w.i == len(w.pat)
			w.i = 0
		case w.i < len(w.pat):
			if c == w.pat[w.i] {
				w.i++
			} else {
				w.i = -1
			}
		case c != ' ' && c != '\t' && c != '\r':
			w.i = -1
		}
	}
}
