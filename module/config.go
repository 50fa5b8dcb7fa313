package module

import (
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/store"
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
	// Response is the phone route's field carrying a payload opened with
	// the app's keys (Alipay's my.getPhoneNumber res.response text).
	// Default "response".
	Response string `json:"response,omitempty"`
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
	// Username and Password are the data nodes' (an ACL user, or the
	// default user's requirepass).
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
	DB       int    `json:"db,omitempty"`
	// SentinelUsername and SentinelPassword authenticate to the sentinels
	// themselves (their requirepass or an ACL user); with MasterName.
	SentinelUsername string `json:"sentinel_username,omitempty"`
	SentinelPassword string `json:"sentinel_password,omitempty"`
	// TLS turns TLS on for Addrs (a rediss:// URL implies it).
	TLS bool `json:"tls,omitempty"`
	// CAFile is a PEM file of CAs to trust for TLS.
	CAFile string `json:"ca_file,omitempty"`
	// CertFile and KeyFile are a PEM client certificate and its key, for a
	// Redis that requires client certificates (tls-auth-clients); both or
	// neither. Like CAFile, they turn TLS on.
	CertFile string `json:"cert_file,omitempty"`
	KeyFile  string `json:"key_file,omitempty"`
	// Timeout bounds each store operation (default 500ms; 10ms to 30s).
	Timeout caddy.Duration `json:"timeout,omitempty"`
	// Prefix of every key (default "mp:"); platform and app id follow it.
	Prefix string `json:"prefix,omitempty"`

	// EncryptionKeys seal the users' session keys at rest in Redis with
	// AES-GCM (see internal/keyseal): each is standard base64 of 32 random
	// bytes (16 or 24 are accepted too), e.g. from `openssl rand -base64
	// 32`. The first seals new writes; all of them open, so rotating is
	// putting the new key first and keeping the old one until the
	// sessions it sealed have expired (session_ttl). Placeholders such as
	// {env.MP_STORE_KEY} are replaced at provisioning, and a replaced
	// value holding several keys separated by commas or spaces counts as
	// those keys. A session whose key does not open with any of them is
	// not found (the user logs in again). Redis only: the memory store
	// never leaves the process, and setting keys with it is an error.
	EncryptionKeys []string `json:"encryption_keys,omitempty"`
	// EncryptionAllowPlain, a migration aid, accepts session keys stored
	// in the clear (written before EncryptionKeys were set) instead of
	// treating them as not found. New writes are sealed all the same.
	// Off by default: a plain value could have been planted.
	EncryptionAllowPlain bool `json:"encryption_allow_plain,omitempty"`
}

// redisOptions is the store's Redis options of the configuration (without
// the key prefix and the sealing codec, which provisioning adds).
func (c *StoreConfig) redisOptions() store.RedisOptions {
	return store.RedisOptions{
		URL:              c.URL,
		Addrs:            c.Addrs,
		MasterName:       c.MasterName,
		Username:         c.Username,
		Password:         c.Password,
		SentinelUsername: c.SentinelUsername,
		SentinelPassword: c.SentinelPassword,
		DB:               c.DB,
		TLS:              c.TLS,
		CAFile:           c.CAFile,
		CertFile:         c.CertFile,
		KeyFile:          c.KeyFile,
		Timeout:          time.Duration(c.Timeout),
	}
}

// GatewayConfig serves the open-API gateway (see gateway.go): a backend's
// calls to the platform's server API under Prefix are relayed with the
// app's shared token added.
type GatewayConfig struct {
	// Prefix the API paths are served under, e.g. "/mp-api": a backend
	// calls {prefix}/wxa/msg_sec_check. Same rules as compat's prefix; it
	// must not overlap the routes or the compat prefix.
	Prefix string `json:"prefix,omitempty"`
	// Allow lists the API paths relayed: exact ("/wxa/msg_sec_check") or
	// a prefix ending in "/*" ("/cgi-bin/media/*"). Anything else is
	// refused with 403. Required.
	Allow []string `json:"allow,omitempty"`
	// MaxBuffer: request bodies up to this many bytes are buffered and
	// can be sent again after a token error; larger ones stream and are
	// never retried. Default 1 MiB, at most 64 MiB.
	MaxBuffer int64 `json:"max_buffer,omitempty"`
	// HostMode also relays requests whose Host is the platform's API host
	// (api.weixin.qq.com), without the prefix: for a backend whose hosts
	// file points that name at this listener.
	HostMode bool `json:"host_mode,omitempty"`
	// AllowPublic serves the gateway on a server that listens on
	// addresses other than loopback and unix sockets (as compat's).
	AllowPublic bool `json:"allow_public,omitempty"`
}
