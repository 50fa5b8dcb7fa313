package module

import (
	"strings"
	"testing"
)

// The Redis options that go together: a client certificate's two files;
// the sentinels' own credentials and master_name.
func TestValidateRedisPairs(t *testing.T) {
	for _, tc := range []struct {
		name string
		sc   StoreConfig
		want string // "" for valid
	}{
		{"cert and key", StoreConfig{CertFile: "c.pem", KeyFile: "k.pem"}, ""},
		{"cert alone", StoreConfig{CertFile: "c.pem"}, "cert_file and key_file go together"},
		{"key alone", StoreConfig{KeyFile: "k.pem"}, "cert_file and key_file go together"},
		{"sentinel credentials", StoreConfig{Addrs: []string{"a:26379"}, MasterName: "m", SentinelUsername: "u", SentinelPassword: "p"}, ""},
		{"sentinel password without master_name", StoreConfig{Addrs: []string{"a:1", "b:2"}, SentinelPassword: "p"}, "need master_name"},
		{"sentinel username without master_name", StoreConfig{SentinelUsername: "u"}, "need master_name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sc := tc.sc
			sc.Type = "redis"
			if sc.URL == "" && len(sc.Addrs) == 0 {
				sc.URL = "rediss://127.0.0.1:6379/0"
			}
			h := Handler{Platform: "wechat", AppID: "wx1", AppSecret: "s", Login: "/l", Store: &sc}
			err := h.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
}
