package platform

import (
	"slices"
	"strings"
	"testing"
)

// Every registered descriptor is complete and agrees with the client it
// makes: what the handler relies on when it names no platform.
func TestRegistry(t *testing.T) {
	if got, want := Names(), []string{WeChat, Douyin, QQ, Baidu, Kuaishou, Feishu, Lark, Alipay}; !slices.Equal(got, want) {
		t.Fatalf("Names() = %q, want %q", got, want)
	}
	seen := map[string]bool{}
	for _, d := range registered {
		if d.Name == "" || d.Name != strings.ToLower(d.Name) || seen[d.Name] {
			t.Errorf("name %q: empty, not lower case or registered twice", d.Name)
		}
		seen[d.Name] = true
		if got, ok := Lookup(d.Name); !ok || got != d {
			t.Errorf("Lookup(%q) = %v, %v", d.Name, got, ok)
		}
		if d.Title == "" || d.New == nil || len(d.APIBases) == 0 {
			t.Errorf("%s: Title, New or APIBases missing", d.Name)
		}
		for _, b := range d.APIBases {
			if err := CheckAPIBase(b); err != nil {
				t.Errorf("%s: API base %q: %v", d.Name, b, err)
			}
		}
		switch d.Compat {
		case "", CompatWX, CompatTT:
		default:
			t.Errorf("%s: unknown compat dialect %q", d.Name, d.Compat)
		}
		c := d.New(Config{})
		if c.Name() != d.Name {
			t.Errorf("%s: the client is named %q", d.Name, c.Name())
		}
		if pc := d.PhoneCode; pc != nil {
			if pc.Call == "" || d.Token == nil {
				t.Errorf("%s: incomplete PhoneCodeSpec %+v or no Token", d.Name, *pc)
			}
			if _, ok := c.(PhoneClient); !ok {
				t.Errorf("%s: declares a phone-code exchange, its client is no PhoneClient", d.Name)
			}
		}
		if d.LoginToken && d.Token == nil {
			t.Errorf("%s: LoginToken without a Token", d.Name)
		}
		if ts := d.Token; ts != nil {
			if ts.Name == "" || ts.Title == "" || ts.Tokens == nil {
				t.Errorf("%s: incomplete TokenSpec %+v", d.Name, *ts)
			}
			tc, ok := ts.Tokens(c)
			if !ok || tc == nil {
				t.Fatalf("%s: Tokens(client) = %v, %v", d.Name, tc, ok)
			}
			if _, stable := tc.(StableTokenClient); stable != ts.Modes {
				t.Errorf("%s: Modes %v, but the token client is stable: %v", d.Name, ts.Modes, stable)
			}
			if _, ok := ts.Tokens(otherClient(d.Name)); ok {
				t.Errorf("%s: Tokens accepts another platform's client", d.Name)
			}
		}
		_ = c.Close()
	}
	for _, name := range []string{"", "WeChat", " wechat", "QQ", "taobao"} {
		if _, ok := Lookup(name); ok {
			t.Errorf("Lookup(%q) found a platform", name)
		}
	}
}

// otherClient is a client of another registered platform than name.
func otherClient(name string) Client {
	for _, d := range registered {
		if d.Name != name {
			return d.New(Config{})
		}
	}
	return nil
}

// The descriptors carry what the handler used to decide by name.
func TestDescriptors(t *testing.T) {
	wx, _ := Lookup(WeChat)
	tt, _ := Lookup(Douyin)
	if wx.AnonymousCode || !tt.AnonymousCode {
		t.Errorf("anonymous code: wechat %v, douyin %v", wx.AnonymousCode, tt.AnonymousCode)
	}
	if wx.PhoneCode.Call != "getuserphonenumber" || tt.PhoneCode.Call != "get_phonenumber_info" {
		t.Errorf("phone-code calls: %q, %q", wx.PhoneCode.Call, tt.PhoneCode.Call)
	}
	if wx.Token.Name != "access_token" || !wx.Token.Modes || wx.PhoneCode.PrivateKey {
		t.Errorf("wechat phone code: %+v %+v", *wx.Token, *wx.PhoneCode)
	}
	if tt.Token.Name != "client_token" || tt.Token.Modes || !tt.PhoneCode.PrivateKey {
		t.Errorf("douyin phone code: %+v %+v", *tt.Token, *tt.PhoneCode)
	}
	if wx.Compat != CompatWX || tt.Compat != CompatTT {
		t.Errorf("compat: %q, %q", wx.Compat, tt.Compat)
	}
	if !slices.Equal(wx.APIBases, []string{DefaultWeChatAPIBase}) || !slices.Equal(tt.APIBases, []string{DefaultDouyinAPIBase, DefaultDouyinOpenAPIBase}) {
		t.Errorf("API bases: %q, %q", wx.APIBases, tt.APIBases)
	}
	// The clients' defaults are the descriptors' origins.
	if c := wx.New(Config{}).(*WeChatClient); c.base != wx.APIBases[0] {
		t.Errorf("wechat client base %q", c.base)
	}
	if c := tt.New(Config{}).(*DouyinClient); c.base != tt.APIBases[0] || c.openBase != tt.APIBases[1] {
		t.Errorf("douyin client bases %q, %q", c.base, c.openBase)
	}
	if got := IdentityFields(); !slices.Equal(got, []string{"anonymous_openid", "tenant_key", "employee_id", "alipay_user_id"}) {
		t.Errorf("IdentityFields() = %q", got)
	}
	if got := NamesWhere(func(d *Descriptor) bool { return d.AnonymousCode }); !slices.Equal(got, []string{Douyin}) {
		t.Errorf("NamesWhere(anonymous code) = %q", got)
	}
}

func TestOrList(t *testing.T) {
	for _, c := range []struct {
		in   []string
		want string
	}{{nil, ""}, {[]string{"a"}, "a"}, {[]string{"a", "b"}, "a or b"}, {[]string{"a", "b", "c"}, "a, b or c"}} {
		if got := OrList(c.in); got != c.want {
			t.Errorf("OrList(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	if _, err := New("nosuchplatform", Config{}); err == nil || !strings.Contains(err.Error(), `(want "wechat", "douyin", "qq", "baidu", "kuaishou", "feishu", "lark" or "alipay")`) {
		t.Errorf("New(nosuchplatform): %v", err)
	}
}
