package store

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/redistest"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// openProbed opens a store with a logger whose lines the test reads, and
// probes it as the handler does at load.
func openProbed(t *testing.T, o RedisOptions) (*Redis, *observer.ObservedLogs, error) {
	t.Helper()
	core, logs := observer.New(zapcore.DebugLevel)
	r, err := OpenRedis(o, zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r, logs, r.Probe(context.Background())
}

// TLS to a real redis-server that requires client certificates, with a
// CA, server and client certificates the test generates: the right CA and
// client certificate work (URL and addrs forms); a wrong CA, or no client
// certificate, fail the probe with a clear message; TLS to a server that
// is down at load does not fail it (a warning), and the store works once
// the server is up.
func TestRedisTLS(t *testing.T) {
	certs, other := redistest.NewCerts(t), redistest.NewCerts(t)
	srv := redistest.StartTLS(t, certs)
	good := RedisOptions{URL: srv.URL(), CAFile: certs.CAFile, CertFile: certs.ClientCert, KeyFile: certs.ClientKey, Prefix: newPrefix(t)}

	t.Run("right CA and client certificate", func(t *testing.T) {
		r, logs, err := openProbed(t, good)
		if err != nil {
			t.Fatal(err)
		}
		if n := logs.FilterLevelExact(zapcore.WarnLevel).Len(); n != 0 {
			t.Fatalf("%d warnings: %v", n, logs.All())
		}
		h := harness{s: r}
		mustSave(t, h, ref("tls"), Session{OpenID: "oTLS", SessionKey: sessionKey(1)}, time.Minute)
		if got := mustLookup(t, h, ref("tls")); got.SessionKey != sessionKey(1) {
			t.Fatalf("lookup: %+v", got)
		}
		// The key is on the server, reached over TLS.
		if n := srv.Client().Exists(bg, good.Prefix+"u:oTLS").Val(); n != 1 {
			t.Fatal("the record is not on the TLS server")
		}
		// The addrs form with tls.
		r2, _, err := openProbed(t, RedisOptions{Addrs: []string{srv.Addr()}, TLS: true, CAFile: certs.CAFile,
			CertFile: certs.ClientCert, KeyFile: certs.ClientKey, Prefix: good.Prefix})
		if err != nil {
			t.Fatal(err)
		}
		if got := mustLookup(t, harness{s: r2}, ref("tls")); got.SessionKey != sessionKey(1) {
			t.Fatalf("addrs form: %+v", got)
		}
	})

	t.Run("wrong CA", func(t *testing.T) {
		o := good
		o.CAFile = other.CAFile
		_, _, err := openProbed(t, o)
		if err == nil {
			t.Fatal("the probe passed with a CA that did not sign the server's certificate")
		}
		for _, want := range []string{"server's certificate does not verify", "CA file " + other.CAFile, "x509"} {
			if !strings.Contains(err.Error(), want) {
				t.Fatalf("error %q does not say %q", err, want)
			}
		}
		t.Logf("wrong CA: %v", err)
	})

	t.Run("system CAs", func(t *testing.T) {
		o := good
		o.CAFile = ""
		_, _, err := openProbed(t, o)
		if err == nil || !strings.Contains(err.Error(), "system's CAs") {
			t.Fatalf("no CA file: %v", err)
		}
	})

	t.Run("no client certificate", func(t *testing.T) {
		o := good
		o.CertFile, o.KeyFile = "", ""
		_, _, err := openProbed(t, o)
		if err == nil || !strings.Contains(err.Error(), "refused the client certificate") {
			t.Fatalf("no client certificate: %v", err)
		}
		t.Logf("no client certificate: %v", err)
	})

	t.Run("client certificate of another CA", func(t *testing.T) {
		o := good
		o.CertFile, o.KeyFile = other.ClientCert, other.ClientKey
		_, _, err := openProbed(t, o)
		if err == nil || !strings.Contains(err.Error(), "refused the client certificate") {
			t.Fatalf("foreign client certificate: %v", err)
		}
	})

	t.Run("plain client to a TLS server is not a certificate error", func(t *testing.T) {
		_, logs, err := openProbed(t, RedisOptions{Addrs: []string{srv.Addr()}, Prefix: good.Prefix})
		if err != nil {
			t.Fatalf("probe failed the load: %v", err)
		}
		if logs.FilterLevelExact(zapcore.WarnLevel).Len() != 1 {
			t.Fatalf("no warning: %v", logs.All())
		}
	})

	t.Run("down at load", func(t *testing.T) {
		down := redistest.StartTLS(t, certs)
		down.Kill()
		o := good
		o.URL = down.URL()
		r, logs, err := openProbed(t, o)
		if err != nil {
			t.Fatalf("a server down at load failed the load: %v", err)
		}
		warn := logs.FilterLevelExact(zapcore.WarnLevel).All()
		if len(warn) != 1 || !strings.Contains(warn[0].Message, "not usable at load") {
			t.Fatalf("warnings %v", warn)
		}
		t.Logf("warning: %s %v", warn[0].Message, warn[0].ContextMap())
		if _, err := r.Lookup(bg, ref("x")); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("lookup with the server down: %v", err)
		}
		down.Restart(t)
		deadline := time.Now().Add(5 * time.Second)
		for {
			_, err := r.Save(bg, ref("late"), Session{OpenID: "oLate", SessionKey: sessionKey(2)}, time.Minute)
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the store does not work 5s after the server started: %v", err)
			}
			time.Sleep(50 * time.Millisecond)
		}
		if got := mustLookup(t, harness{s: r}, ref("late")); got.SessionKey != sessionKey(2) {
			t.Fatalf("lookup: %+v", got)
		}
	})
}

func TestRedisTLSOptions(t *testing.T) {
	certs := redistest.NewCerts(t)
	for _, tc := range []struct {
		name   string
		o      RedisOptions
		errHas string
	}{
		{"cert without key", RedisOptions{URL: "rediss://h", CertFile: certs.ClientCert}, "go together"},
		{"key without cert", RedisOptions{URL: "rediss://h", KeyFile: certs.ClientKey}, "go together"},
		{"key of another file", RedisOptions{URL: "rediss://h", CertFile: certs.ClientCert, KeyFile: certs.ServerKey}, "client certificate"},
		{"missing cert", RedisOptions{URL: "rediss://h", CertFile: "/nonexistent/c.pem", KeyFile: certs.ClientKey}, "client certificate"},
		{"sentinel password without a master name", RedisOptions{Addrs: []string{"a:1"}, SentinelPassword: "x"}, "need master_name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := universalOptions(tc.o)
			if err == nil || !strings.Contains(err.Error(), tc.errHas) {
				t.Fatalf("error %v, want %q", err, tc.errHas)
			}
		})
	}
	// A client certificate turns TLS on by itself, and is presented.
	uo, desc, err := universalOptions(RedisOptions{Addrs: []string{"127.0.0.1:1"}, CertFile: certs.ClientCert, KeyFile: certs.ClientKey})
	if err != nil {
		t.Fatal(err)
	}
	if uo.TLSConfig == nil || len(uo.TLSConfig.Certificates) != 1 || !strings.Contains(desc, "client_cert=true") {
		t.Fatalf("%s: %+v", desc, uo.TLSConfig)
	}
	// Renewed files under the same names make another pooled client.
	o := RedisOptions{URL: "rediss://127.0.0.1:1", CAFile: certs.CAFile}
	a, err := OpenRedis(o, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	renewed := redistest.NewCerts(t)
	copyFile(t, renewed.CAFile, certs.CAFile)
	b, err := OpenRedis(o, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if a.Client() == b.Client() {
		t.Fatal("a renewed CA file kept the old client")
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
