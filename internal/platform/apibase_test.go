package platform

import (
	"strings"
	"testing"
)

// CheckAPIBase is the one rule for api_base: New applies it, and its
// errors never show a password.
func TestCheckAPIBase(t *testing.T) {
	for _, ok := range []string{"", "https://api.weixin.qq.com", "http://127.0.0.1:9090", "http://127.0.0.1:9090/prefix"} {
		if err := CheckAPIBase(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
		if _, err := New(WeChat, Config{APIBase: ok}); err != nil {
			t.Errorf("New with %q: %v", ok, err)
		}
	}
	for _, c := range []struct{ base, want string }{
		{"ftp://api.weixin.qq.com", "http:// or https://"},
		{"https://", "no host"},
		{"https://api.weixin.qq.com?x=1", "origin"},
		{"https://api.weixin.qq.com?", "origin"},
		{"https://api.weixin.qq.com#f", "origin"},
		{"https://u:hunter2@api.weixin.qq.com", "origin"},
		{"http://u:hunter2@[::1", "not a URL"},
		{"api.weixin.qq.com", "http:// or https://"},
	} {
		err := CheckAPIBase(c.base)
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%q: err = %v, want %q without the password", c.base, err, c.want)
		}
		_, nerr := New(WeChat, Config{APIBase: c.base})
		if nerr == nil || err == nil || nerr.Error() != "platform: api_base: "+err.Error() {
			t.Errorf("%q: New = %v, CheckAPIBase = %v", c.base, nerr, err)
		}
	}
}
