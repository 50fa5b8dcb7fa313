package module

import (
	"github.com/caddyserver/caddy/v2"
)

// Defaults of the handler's configuration.
const (
	DefaultSessionTTL      = caddy.Duration(30 * 60 * 1e9)
	DefaultMaxBodySize     = 64 << 10
	DefaultPlatformTimeout = caddy.Duration(5 * 1e9)
	DefaultPlatformRetries = 2
	DefaultMaxSessions     = 100_000
)

// Fields renames the request fields the handler reads. Empty means the
// default name.
type Fields struct {
	// Code is the login code's field (and query parameter) on the login
	// route, and the field that finds the session on the phone and decrypt
	// routes. Default "code".
	Code string `json:"code,omitempty"`
	// AnonymousCode is Douyin's anonymous login code. Default
	// "anonymous_code".
	AnonymousCode string `json:"anonymous_code,omitempty"`
	// EncryptedData default "encryptedData".
	EncryptedData string `json:"encrypted_data,omitempty"`
	// IV default "iv".
	IV string `json:"iv,omitempty"`
	// PhoneCode is WeChat's getPhoneNumber code on the phone route, used
	// when the body has no encryptedData. Default "code".
	PhoneCode string `json:"phone_code,omitempty"`
}

// StoreConfig chooses and configures the session store.
type StoreConfig struct {
	// Type is "memory" (default) or "redis".
	Type string `json:"type,omitempty"`

	// MaxSessions bounds the memory store (default 100000); the oldest
	// sessions are evicted first.
	MaxSessions int `json:"max_sessions,omitempty"`

	// URL is redis://[user:pass@]host:port/db, or rediss:// for TLS.
	URL string `json:"url,omitempty"`
	// Addrs are several addresses: Sentinel's (with MasterName) or a
	// Cluster's.
	Addrs      []string `json:"addrs,omitempty"`
	MasterName string   `json:"master_name,omitempty"`
	Username   string   `json:"username,omitempty"`
	Password   string   `json:"password,omitempty"`
	DB         int      `json:"db,omitempty"`
	// TLS turns TLS on for Addrs (a rediss:// URL implies it).
	TLS bool `json:"tls,omitempty"`
	// CAFile is a PEM file of CAs to trust for TLS.
	CAFile string `json:"ca_file,omitempty"`
	// Timeout bounds each store operation (default 500ms).
	Timeout caddy.Duration `json:"timeout,omitempty"`
	// Prefix of every key (default "mp:"); platform and app id follow it.
	Prefix string `json:"prefix,omitempty"`
}
