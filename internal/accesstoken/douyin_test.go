package accesstoken

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/phone"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/platform"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/store"
)

// Douyin's client token through the same manager: classic mode (each fetch
// supersedes the previous token), its own store name, and a phone-code
// exchange whose token the platform rejects is retried once with a new one.
func TestDouyinClientToken(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu          sync.Mutex
		fetches     int
		phoneCalls  int
		tokensSeen  []string
		latestToken string
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		switch r.URL.Path {
		case "/oauth/client_token/":
			var req map[string]string
			if json.Unmarshal(body, &req) != nil || req["client_key"] != "tt1" || req["client_secret"] != "sec" || req["grant_type"] != "client_credential" {
				t.Errorf("client_token request %s", body)
			}
			fetches++
			latestToken = fmt.Sprintf("clt.token%d", fetches)
			fmt.Fprintf(w, `{"data":{"access_token":%q,"description":"","error_code":0,"expires_in":7200},"message":"success"}`, latestToken)
		case "/api/apps/v1/get_phonenumber_info/":
			phoneCalls++
			tok := r.Header.Get("access-token")
			tokensSeen = append(tokensSeen, tok)
			if tok != latestToken || phoneCalls == 1 {
				// The first call is told its token is no longer valid
				// (another server fetched a newer one, say).
				io.WriteString(w, `{"err_no":28001003,"err_tips":"access_token invalid","log_id":"x"}`)
				return
			}
			plain := []byte(`{"phoneNumber":"13800138000","purePhoneNumber":"13800138000","countryCode":"86","watermark":{"appid":"tt1","timestamp":1}}`)
			var ct []byte
			for i := 0; i < len(plain); i += 117 {
				//lint:ignore SA1019 the platform's padding, reproduced to test the client
				c, err := rsa.EncryptPKCS1v15(rand.Reader, &key.PublicKey, plain[i:min(i+117, len(plain))])
				if err != nil {
					t.Error(err)
				}
				ct = append(ct, c...)
			}
			fmt.Fprintf(w, `{"err_no":0,"err_msg":"","log_id":"x","data":%q}`, base64.StdEncoding.EncodeToString(ct))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()

	dy := platform.NewDouyin(platform.Config{AppID: "tt1", AppSecret: "sec", APIBase: srv.URL, PrivateKey: key})
	st := store.NewMemory(store.MemoryOptions{MaxSessions: 16})
	m := New(dy.ClientTokens(), st, Options{Mode: ModeStable, Name: "client_token"})
	if m.Mode() != ModeClassic {
		t.Fatalf("mode %s, want classic for a client without stable tokens", m.Mode())
	}
	var ph phone.Number
	err = m.Do(context.Background(), func(tok string) error {
		var err error
		ph, err = dy.GetUserPhoneNumber(context.Background(), tok, "pc", "")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if ph.PhoneNumber != "13800138000" || ph.WatermarkAppID != "tt1" {
		t.Fatalf("phone %+v", ph)
	}
	mu.Lock()
	if fetches != 2 || phoneCalls != 2 || tokensSeen[0] != "clt.token1" || tokensSeen[1] != "clt.token2" {
		t.Fatalf("client_token fetches %d, phone calls %d with tokens %v; want 2, 2, token1 then token2", fetches, phoneCalls, tokensSeen)
	}
	mu.Unlock()
	if _, err := st.Get(context.Background(), "client_token"); err != nil {
		t.Errorf("the client token is not stored under client_token: %v", err)
	}
	if _, err := st.Get(context.Background(), StoreName); err == nil {
		t.Errorf("the client token was stored under %s", StoreName)
	}
	// A second manager (another instance) sharing the store takes the
	// stored token: no fetch.
	m2 := New(dy.ClientTokens(), st, Options{Name: "client_token"})
	if tok, err := m2.Token(context.Background()); err != nil || tok != "clt.token2" {
		t.Fatalf("second instance: %q %v", tok, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if fetches != 2 {
		t.Fatalf("the second instance fetched: %d fetches", fetches)
	}
}
