package platform

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync/atomic"
	"testing"
)

// formServer answers a platform's form-POST login call with the given
// (status, body) replies in turn (the last one repeats), checking each
// request: POST path, nothing in the query string, a form body of exactly
// want.
func formServer(t *testing.T, path string, want url.Values, replies ...reply) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := int(n.Add(1)) - 1
		if r.Method != http.MethodPost || r.URL.Path != path || r.URL.RawQuery != "" {
			t.Errorf("request %s %s", r.Method, r.URL)
		}
		if ct := r.Header.Get("Content-Type"); ct != "application/x-www-form-urlencoded" {
			t.Errorf("content type %q", ct)
		}
		if err := r.ParseForm(); err != nil {
			t.Error(err)
		}
		if len(r.PostForm) != len(want) {
			t.Errorf("form %v", r.PostForm)
		}
		for k := range want {
			if r.PostForm.Get(k) != want.Get(k) {
				t.Errorf("form %v", r.PostForm)
			}
		}
		if i >= len(replies) {
			i = len(replies) - 1
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(replies[i].status)
		w.Write([]byte(replies[i].body))
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}
