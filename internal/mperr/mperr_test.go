package mperr

import (
	"net/http/httptest"
	"testing"
	"time"
)

func TestWriteRetryAfter(t *testing.T) {
	for _, c := range []struct {
		after time.Duration
		want  string
	}{
		{0, ""},
		{time.Millisecond, "1"},
		{time.Second, "1"},
		{1500 * time.Millisecond, "2"},
		{20 * time.Second, "20"},
	} {
		w := httptest.NewRecorder()
		e := New(TooManyFailures, "slow down")
		e.RetryAfter = c.after
		Write(w, e)
		if got := w.Header().Get("Retry-After"); got != c.want || w.Code != 429 {
			t.Errorf("RetryAfter %v: status %d, Retry-After %q, want %q", c.after, w.Code, got, c.want)
		}
	}
}
