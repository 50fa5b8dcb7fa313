package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
	"go.uber.org/zap"
)

// RedisOptions configures a Redis store. Give either URL or Addrs.
type RedisOptions struct {
	// URL is redis://[user:pass@]host:port/db, or rediss:// for TLS. Query
	// parameters are ignored; the fields below set the rest.
	URL string
	// Addrs: one address is a single server; several are a Cluster; with
	// MasterName they are Sentinels.
	Addrs      []string
	MasterName string
	// Username, Password and DB override the URL's when set.
	Username, Password string
	DB                 int
	// SentinelUsername and SentinelPassword authenticate to the sentinels
	// themselves (their requirepass, or an ACL user); Username and
	// Password are the data nodes'. With MasterName only.
	SentinelUsername, SentinelPassword string
	// TLS turns TLS on (rediss:// does too); CAFile is a PEM bundle to
	// verify the server with instead of the system roots. CertFile and
	// KeyFile are a PEM client certificate and its key, for servers that
	// require one (tls-auth-clients); both or neither. Setting any of the
	// three files turns TLS on. The files are read when the store is
	// opened: a config reload picks up renewed ones.
	TLS               bool
	CAFile            string
	CertFile, KeyFile string
	// Timeout bounds each store operation (default 500ms). Dialing is
	// bounded to 1s and waiting for a pooled connection to 1s, and a
	// failed command is retried once, so a dead Redis answers within
	// about Timeout.
	Timeout time.Duration
	// Prefix namespaces every key, e.g. "mp:wechat:wx123:". Stores with
	// different prefixes may share one connection pool.
	Prefix string
	// KeyCodec seals session keys at rest; nil stores them as they are.
	KeyCodec KeyCodec
}

// KeyCodec seals session keys before they are stored and opens them when
// read. Seal may be randomized: the store compares keys through a hash of
// the plain key, not the sealed text.
type KeyCodec interface {
	Seal(plain string) (string, error)
	Open(stored string) (string, error)
}

// DefaultRedisTimeout is RedisOptions.Timeout's default.
const DefaultRedisTimeout = 500 * time.Millisecond

// Redis is a Store in Redis, shared by every instance that uses the same
// server and prefix. One client (connection pool) per distinct connection
// configuration is shared through a package-level usage pool, so config
// reloads and several apps reuse it; Close releases this store's use.
//
// Key layout ({prefix} is RedisOptions.Prefix; refs are the caller's
// hashes, so no raw code, token or session key is ever part of a key):
//
//	{prefix}u:{openid}  HASH sk, psk, uid, idf [, skf]  user record, TTL
//	                    sk/psk: current/previous session key (sealed when a
//	                    KeyCodec is set); skf: hash of the plain current key
//	                    (only with a KeyCodec, to detect rotation)
//	{prefix}r:{ref}     STRING openid                     ref → user, TTL
//	{prefix}c:{ref}     STRING "pending" | "fail:"+bytes  exchange claim, TTL
//	{prefix}v:{name}    STRING value                      named value
//	{prefix}l:{name}    STRING random token               named lock, TTL
//
// Every script touches a single key, so the layout works on Cluster.
type Redis struct {
	conn    *redisConn
	poolKey string
	prefix  string
	codec   KeyCodec
	timeout time.Duration
	caFile  string // for Probe's message
	log     *zap.Logger
	once    sync.Once
}

var _ Store = (*Redis)(nil)

type redisConn struct {
	client redis.UniversalClient
}

func (c *redisConn) Destruct() error { return c.client.Close() }

var redisPool = caddy.NewUsagePool()

// failMarker starts a claim value recorded by Fail.
const failMarker = "fail:"

// OpenRedis opens a Redis store. It does not contact the server: an
// unreachable server shows as ErrUnavailable from the operations (and the
// client reconnects by itself when the server is back).
func OpenRedis(o RedisOptions, logger *zap.Logger) (*Redis, error) {
	if logger == nil {
		logger = zap.NewNop()
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultRedisTimeout
	}
	uo, desc, err := universalOptions(o)
	if err != nil {
		return nil, err
	}
	key := o.fingerprint()
	if uo.TLSConfig != nil {
		// Renewed certificate files under the same names make a new
		// client (the old one keeps the old certificates).
		key += ":" + o.tlsFilesDigest()
	}
	v, loaded, err := redisPool.LoadOrNew(key, func() (caddy.Destructor, error) {
		c := redis.NewUniversalClient(uo)
		if cc, ok := c.(*redis.ClusterClient); ok {
			cc.AddHook(clusterReloadHook{cc})
		}
		return &redisConn{client: c}, nil
	})
	if err != nil {
		return nil, err
	}
	if !loaded {
		logger.Debug("store: redis client created", zap.String("redis", desc), zap.Duration("timeout", o.Timeout))
	}
	return &Redis{
		conn:    v.(*redisConn),
		poolKey: key,
		prefix:  o.Prefix,
		codec:   o.KeyCodec,
		timeout: o.Timeout,
		caFile:  o.CAFile,
		log:     logger,
	}, nil
}

// Client is the shared client, for callers that need more (health checks).
func (r *Redis) Client() redis.UniversalClient { return r.conn.client }

// Close releases this store's use of the shared client; the last release
// closes it. Closing twice does nothing.
func (r *Redis) Close() error {
	var err error
	r.once.Do(func() {
		var deleted bool
		deleted, err = redisPool.Delete(r.poolKey)
		if deleted {
			r.log.Debug("store: redis client closed")
		}
	})
	return err
}

// fingerprint identifies the connection configuration (not the prefix nor
// the codec) by a hash; the password is part of it but never shown.
func (o RedisOptions) fingerprint() string {
	b, _ := json.Marshal(struct {
		URL              string
		Addrs            []string
		MasterName       string
		Username         string
		Password         string
		DB               int
		SentinelUsername string
		SentinelPassword string
		TLS              bool
		CAFile           string
		CertFile         string
		KeyFile          string
		Timeout          time.Duration
	}{o.URL, o.Addrs, o.MasterName, o.Username, o.Password, o.DB, o.SentinelUsername, o.SentinelPassword,
		o.TLS, o.CAFile, o.CertFile, o.KeyFile, o.Timeout})
	h := sha256.Sum256(b)
	return "redis:" + hex.EncodeToString(h[:])
}

// tlsFilesDigest hashes the contents of the TLS files (a file that cannot
// be read counts as empty: universalOptions has reported it).
func (o RedisOptions) tlsFilesDigest() string {
	h := sha256.New()
	for _, f := range []string{o.CAFile, o.CertFile, o.KeyFile} {
		var b []byte
		if f != "" {
			b, _ = os.ReadFile(f)
		}
		fmt.Fprintf(h, "%d:", len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// universalOptions turns RedisOptions into go-redis options, and a
// description without secrets for logs.
func universalOptions(o RedisOptions) (*redis.UniversalOptions, string, error) {
	uo := &redis.UniversalOptions{
		MasterName:            o.MasterName,
		DialTimeout:           time.Second,
		DialerRetries:         1,
		ReadTimeout:           o.Timeout,
		WriteTimeout:          o.Timeout,
		ContextTimeoutEnabled: true,
		PoolTimeout:           time.Second,
		MaxRetries:            1,
		MinRetryBackoff:       10 * time.Millisecond,
		MaxRetryBackoff:       100 * time.Millisecond,
		MaintNotificationsConfig: &maintnotifications.Config{
			Mode: maintnotifications.ModeDisabled,
		},
	}
	if err := o.Check(); err != nil {
		return nil, "", err
	}
	useTLS := o.TLS
	var serverName string
	switch {
	case o.URL != "":
		u, err := url.Parse(o.URL)
		if err != nil {
			// url.Error repeats the URL, password included: keep only
			// the reason.
			var ue *url.Error
			if errors.As(err, &ue) {
				err = ue.Err
			}
			return nil, "", fmt.Errorf("store: redis URL does not parse: %v", err)
		}
		if u.Scheme != "redis" && u.Scheme != "rediss" {
			return nil, "", fmt.Errorf("store: redis URL scheme %q is not redis:// or rediss://", u.Scheme)
		}
		po, err := redis.ParseURL((&url.URL{Scheme: u.Scheme, User: u.User, Host: u.Host, Path: u.Path}).String())
		if err != nil {
			return nil, "", fmt.Errorf("store: redis URL (%s): %v", u.Redacted(), err)
		}
		uo.Addrs = []string{po.Addr}
		uo.Username, uo.Password, uo.DB = po.Username, po.Password, po.DB
		if u.Scheme == "rediss" {
			useTLS = true
		}
		serverName = u.Hostname()
	case len(o.Addrs) > 0:
		uo.Addrs = append([]string(nil), o.Addrs...)
		if len(o.Addrs) == 1 || o.MasterName != "" {
			serverName, _, _ = net.SplitHostPort(o.Addrs[0])
		}
	}
	if o.Username != "" {
		uo.Username = o.Username
	}
	if o.Password != "" {
		uo.Password = o.Password
	}
	if o.DB != 0 {
		uo.DB = o.DB
	}
	uo.SentinelUsername, uo.SentinelPassword = o.SentinelUsername, o.SentinelPassword
	if useTLS || o.CAFile != "" || o.CertFile != "" {
		tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: serverName}
		if o.CAFile != "" {
			pem, err := os.ReadFile(o.CAFile)
			if err != nil {
				return nil, "", fmt.Errorf("store: redis CA file: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, "", fmt.Errorf("store: redis CA file %s holds no PEM certificate", o.CAFile)
			}
			tc.RootCAs = pool
		}
		if o.CertFile != "" {
			// LoadX509KeyPair's errors name what is wrong, never the
			// key's bytes.
			pair, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
			if err != nil {
				return nil, "", fmt.Errorf("store: redis client certificate %s / key %s: %w", o.CertFile, o.KeyFile, err)
			}
			tc.Certificates = []tls.Certificate{pair}
		}
		uo.TLSConfig = tc
	}
	kind := "single"
	switch {
	case uo.MasterName != "":
		kind = "sentinel"
	case len(uo.Addrs) > 1:
		kind = "cluster"
	}
	desc := fmt.Sprintf("%s %s db=%d tls=%t client_cert=%t", kind, strings.Join(uo.Addrs, ","), uo.DB,
		uo.TLSConfig != nil, uo.TLSConfig != nil && len(uo.TLSConfig.Certificates) > 0)
	return uo, desc, nil
}

// OptionError is a combination of RedisOptions that does not make sense;
// Option names the option at fault as the configuration spells it
// ("master_name", "cert_file"...), so that the handler's validation can
// report it as its field.
type OptionError struct {
	Option string
	Reason string
}

func (e *OptionError) Error() string { return "store: redis: " + e.Option + ": " + e.Reason }

// Check holds the rules of which RedisOptions go together (the handler's
// configuration validation uses it, so that they live here only). It reads
// no file and parses no URL.
func (o RedisOptions) Check() error {
	bad := func(option, reason string) error { return &OptionError{Option: option, Reason: reason} }
	switch {
	case o.URL == "" && len(o.Addrs) == 0 && o.MasterName != "":
		return bad("master_name", "needs the sentinels' addrs")
	case o.URL == "" && len(o.Addrs) == 0:
		return bad("url", "redis needs a url (redis://host:port/db) or addrs")
	case o.URL != "" && len(o.Addrs) > 0:
		return bad("addrs", "cannot be combined with a url; use one or the other")
	}
	if o.MasterName != "" {
		if o.URL != "" {
			return bad("master_name", "cannot be combined with a url; give the sentinels with addrs")
		}
	}
	if (o.SentinelUsername != "" || o.SentinelPassword != "") && o.MasterName == "" {
		return bad("sentinel_password", "sentinel_username and sentinel_password need master_name (they are the sentinels' own credentials)")
	}
	if (o.CertFile == "") != (o.KeyFile == "") {
		return bad("cert_file", "cert_file and key_file go together (a client certificate and its key)")
	}
	if o.TLS && o.URL != "" {
		return bad("tls", "cannot be combined with a url; use a rediss:// url for TLS")
	}
	if o.DB < 0 {
		return bad("db", fmt.Sprintf("%d is negative", o.DB))
	}
	// go-redis's ClusterClient has no DB: it would use db 0 silently.
	if o.DB != 0 && len(o.Addrs) > 1 && o.MasterName == "" {
		return bad("db", fmt.Sprintf("a Cluster has only db 0, not db %d (one address is a single server; add master_name for Sentinel)", o.DB))
	}
	return nil
}

// op bounds one store operation by the timeout.
func (r *Redis) op(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, r.timeout)
}

// fail maps a go-redis error: redis.Nil is ErrNotFound, anything else
// wraps ErrUnavailable. The message names the operation and the kind of
// failure, never a key or value.
func fail(op string, err error) error {
	if errors.Is(err, redis.Nil) {
		return ErrNotFound
	}
	return fmt.Errorf("%w: redis %s: %v", ErrUnavailable, op, describe(err))
}

// describe is err's text for network and context errors (addresses at
// most); a server's error reply is reduced to its code (ERR, NOSCRIPT,
// READONLY, ...) since a reply may echo what was sent.
func describe(err error) string {
	var re redis.Error
	if errors.As(err, &re) {
		msg := re.Error()
		if i := strings.IndexByte(msg, ' '); i > 0 {
			msg = msg[:i]
		}
		return "server replied " + msg
	}
	return err.Error()
}

// nilIsUnexpected turns redis.Nil, where a reply was due, into an error
// that is not ErrNotFound.
func nilIsUnexpected(err error) error {
	if errors.Is(err, redis.Nil) {
		return errors.New("unexpected nil reply")
	}
	return err
}

func ms(ttl time.Duration) time.Duration {
	if ttl <= 0 {
		return 0
	}
	if ttl < time.Millisecond {
		return time.Millisecond
	}
	return ttl
}

// saveScript rotates the user record on its single key. ARGV: sealed key,
// fingerprint of the plain key ("" without a codec: compare sk itself),
// unionid, identity fields (EncodeFields), ttl in ms (0: no expiry). It
// returns {sk, psk, uid, idf} as stored.
var saveScript = redis.NewScript(`
local k = KEYS[1]
local sk, fp, uid, idf, ttl = ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local cur = redis.call('HMGET', k, 'sk', 'psk', 'uid', 'idf', 'skf')
local psk = cur[2] or ''
local same
if fp ~= '' then same = (cur[5] == fp) else same = (cur[1] == sk) end
if cur[1] and not same then psk = cur[1] end
if uid == '' then uid = cur[3] or '' end
if idf == '' then idf = cur[4] or '' end
redis.call('HSET', k, 'sk', sk, 'psk', psk, 'uid', uid, 'idf', idf)
if fp ~= '' then redis.call('HSET', k, 'skf', fp) elseif cur[5] then redis.call('HDEL', k, 'skf') end
if ttl > 0 then redis.call('PEXPIRE', k, ttl) else redis.call('PERSIST', k) end
return {sk, psk, uid, idf}
`)

// unlockScript deletes a lock only if it still holds our token.
var unlockScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`)

func (r *Redis) userKey(openid string) string { return r.prefix + "u:" + openid }
func (r *Redis) refKey(ref string) string     { return r.prefix + "r:" + ref }
func (r *Redis) claimKey(ref string) string   { return r.prefix + "c:" + ref }
func (r *Redis) valueKey(name string) string  { return r.prefix + "v:" + name }
func (r *Redis) lockKey(name string) string   { return r.prefix + "l:" + name }

// Save implements Store: one single-key script rotates the record and one
// SET points the ref at it, pipelined in one round trip.
func (r *Redis) Save(ctx context.Context, ref string, s Session, ttl time.Duration) (Session, error) {
	if s.OpenID == "" {
		return Session{}, errEmptyOpenID
	}
	sealed, fp := s.SessionKey, ""
	if r.codec != nil {
		var err error
		if sealed, err = r.codec.Seal(s.SessionKey); err != nil {
			return Session{}, fmt.Errorf("store: sealing the session key: %w", err)
		}
		fp = keyFingerprint(s.SessionKey)
	}
	ctx, cancel := r.op(ctx)
	defer cancel()
	c := r.conn.client
	keys := []string{r.userKey(s.OpenID)}
	args := []any{sealed, fp, s.UnionID, EncodeFields(s.Fields), ms(ttl).Milliseconds()}
	var eval *redis.Cmd
	var set *redis.StatusCmd
	_, _ = c.Pipelined(ctx, func(p redis.Pipeliner) error {
		eval = saveScript.EvalSha(ctx, p, keys, args...)
		set = p.Set(ctx, r.refKey(ref), s.OpenID, ms(ttl))
		return nil
	})
	if err := eval.Err(); errors.Is(err, redis.ErrNoScript) || redis.HasErrorPrefix(err, "NOSCRIPT") {
		// The server lost its script cache (a restart): send the script.
		eval = saveScript.Eval(ctx, c, keys, args...)
	}
	if err := eval.Err(); err != nil {
		return Session{}, fail("save", nilIsUnexpected(err))
	}
	if err := set.Err(); err != nil {
		return Session{}, fail("save", nilIsUnexpected(err))
	}
	vals, err := eval.StringSlice()
	if err != nil || len(vals) != 4 {
		return Session{}, fail("save", errors.New("unexpected script reply"))
	}
	return r.openRecord(s.OpenID, vals[0], vals[1], vals[2], vals[3])
}

// openRecord opens the stored keys. A current key that does not open
// (codec changed) means the session is lost: ErrNotFound; a previous one
// that does not open is dropped.
func (r *Redis) openRecord(openid, sk, psk, uid, idf string) (Session, error) {
	s := Session{OpenID: openid, UnionID: uid, Fields: DecodeFields(idf), SessionKey: sk, PrevSessionKey: psk}
	if r.codec == nil {
		return s, nil
	}
	var err error
	if s.SessionKey, err = r.codec.Open(sk); err != nil {
		return Session{}, fmt.Errorf("%w: the stored session key does not open", ErrNotFound)
	}
	if psk != "" {
		if s.PrevSessionKey, err = r.codec.Open(psk); err != nil {
			s.PrevSessionKey = ""
		}
	}
	return s, nil
}

// keyFingerprint lets the save script tell whether the key changed when
// the stored key is sealed (sealing may be randomized). A session key is
// 128 random bits: its hash does not reveal it.
func keyFingerprint(plain string) string {
	h := sha256.Sum256([]byte("caddy-miniprogram session key\x00" + plain))
	return hex.EncodeToString(h[:16])
}

// lookupScript follows a ref to the user record in one round trip:
// KEYS[1] is the ref, ARGV[1] the user keys' prefix ("{prefix}u:"). It
// returns {openid, sk, psk, uid, idf} (nil where absent), or nil when the
// ref is absent. The user key it reads is not in KEYS, so it is only used
// where every key is on one server (not on a Cluster).
var lookupScript = redis.NewScript(`
local openid = redis.call('GET', KEYS[1])
if not openid then return false end
local v = redis.call('HMGET', ARGV[1] .. openid, 'sk', 'psk', 'uid', 'idf')
return {openid, v[1], v[2], v[3], v[4]}
`)

// lookupTTLScript is lookupScript with the ref's PTTL appended (a separate
// script, so that Lookup needs no PTTL in a Redis user's ACL).
var lookupTTLScript = redis.NewScript(`
local openid = redis.call('GET', KEYS[1])
if not openid then return false end
local v = redis.call('HMGET', ARGV[1] .. openid, 'sk', 'psk', 'uid', 'idf')
return {openid, v[1], v[2], v[3], v[4], redis.call('PTTL', KEYS[1])}
`)

// Lookup implements Store: on a single server or Sentinel in one round
// trip (lookupScript); on a Cluster, where the ref and the record may live
// on different nodes, in two: the ref, then the record.
func (r *Redis) Lookup(ctx context.Context, ref string) (Session, error) {
	s, _, err := r.lookup(ctx, ref, false)
	return s, err
}

// LookupTTL implements Store, as Lookup; on a Cluster the ref's PTTL is
// pipelined with its GET (one key, one node).
func (r *Redis) LookupTTL(ctx context.Context, ref string) (Session, time.Duration, error) {
	return r.lookup(ctx, ref, true)
}

func (r *Redis) lookup(ctx context.Context, ref string, withTTL bool) (Session, time.Duration, error) {
	ctx, cancel := r.op(ctx)
	defer cancel()
	c := r.conn.client
	if _, cluster := c.(*redis.ClusterClient); !cluster {
		script, n := lookupScript, 5
		if withTTL {
			script, n = lookupTTLScript, 6
		}
		vals, err := script.Run(ctx, c, []string{r.refKey(ref)}, r.prefix+"u:").Slice()
		if err != nil {
			return Session{}, 0, fail("lookup", err)
		}
		if len(vals) != n {
			return Session{}, 0, fail("lookup", errors.New("unexpected script reply"))
		}
		openid, _ := vals[0].(string)
		var pttl int64
		if withTTL {
			pttl, _ = vals[5].(int64)
		}
		s, err := r.record(openid, vals[1:5])
		return s, pttlDuration(pttl), err
	}
	var (
		get  *redis.StringCmd
		pttl *redis.DurationCmd
	)
	if withTTL {
		_, _ = c.Pipelined(ctx, func(p redis.Pipeliner) error {
			get = p.Get(ctx, r.refKey(ref))
			pttl = p.PTTL(ctx, r.refKey(ref))
			return nil
		})
	} else {
		get = c.Get(ctx, r.refKey(ref))
	}
	openid, err := get.Result()
	if err != nil {
		return Session{}, 0, fail("lookup", err)
	}
	var ttl time.Duration
	if pttl != nil {
		d, err := pttl.Result()
		if err != nil {
			return Session{}, 0, fail("lookup", nilIsUnexpected(err))
		}
		if d > 0 {
			ttl = d
		}
	}
	vals, err := c.HMGet(ctx, r.userKey(openid), "sk", "psk", "uid", "idf").Result()
	if err != nil {
		return Session{}, 0, fail("lookup", err)
	}
	s, err := r.record(openid, vals)
	return s, ttl, err
}

// pttlDuration is a PTTL reply in ms as a TTL: 0 for none (-1) or absent
// (-2).
func pttlDuration(ms int64) time.Duration {
	if ms <= 0 {
		return 0
	}
	return time.Duration(ms) * time.Millisecond
}

// extendScript makes the key KEYS[1] live at least ARGV[1] ms: a longer
// TTL, or none, is kept; an absent key stays absent. One key (Cluster-safe).
var extendScript = redis.NewScript(`
local p = redis.call('PTTL', KEYS[1])
if p >= 0 and p < tonumber(ARGV[1]) then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return p
`)

// Touch implements Store: PEXPIRE on the ref, then, when it was there,
// extendScript on the user record (two commands of one key each, so a
// Cluster may route them to different nodes).
func (r *Redis) Touch(ctx context.Context, ref, openid string, ttl time.Duration) error {
	if ttl <= 0 {
		return errNoTTL
	}
	ctx, cancel := r.op(ctx)
	defer cancel()
	c := r.conn.client
	ok, err := c.PExpire(ctx, r.refKey(ref), ms(ttl)).Result()
	if err != nil {
		return fail("touch", nilIsUnexpected(err))
	}
	if !ok {
		return ErrNotFound
	}
	if err := extendScript.Run(ctx, c, []string{r.userKey(openid)}, ms(ttl).Milliseconds()).Err(); err != nil {
		return fail("touch", nilIsUnexpected(err))
	}
	return nil
}

// Unbind implements Store.
func (r *Redis) Unbind(ctx context.Context, ref string) error {
	ctx, cancel := r.op(ctx)
	defer cancel()
	if err := r.conn.client.Del(ctx, r.refKey(ref)).Err(); err != nil {
		return fail("unbind", err)
	}
	return nil
}

// record opens the user record of openid from the values of its fields
// sk, psk, uid and idf; ErrNotFound when it has no sk (the record is gone).
func (r *Redis) record(openid string, vals []any) (Session, error) {
	if len(vals) != 4 || vals[0] == nil || openid == "" {
		return Session{}, ErrNotFound
	}
	var f [4]string
	for i, v := range vals {
		f[i], _ = v.(string)
	}
	return r.openRecord(openid, f[0], f[1], f[2], f[3])
}

// Bind implements Store.
func (r *Redis) Bind(ctx context.Context, ref, openid string, ttl time.Duration) error {
	if openid == "" {
		return errEmptyOpenID
	}
	ctx, cancel := r.op(ctx)
	defer cancel()
	if err := r.conn.client.Set(ctx, r.refKey(ref), openid, ms(ttl)).Err(); err != nil {
		return fail("bind", err)
	}
	return nil
}

// Claim implements Store with SET NX PX; a loser reads the claim to see
// whether the winner recorded a failure.
func (r *Redis) Claim(ctx context.Context, ref string, ttl time.Duration) (bool, []byte, error) {
	ctx, cancel := r.op(ctx)
	defer cancel()
	c := r.conn.client
	key := r.claimKey(ref)
	for range 2 {
		won, err := c.SetNX(ctx, key, "pending", ms(ttl)).Result()
		if err != nil {
			return false, nil, fail("claim", err)
		}
		if won {
			return true, nil, nil
		}
		v, err := c.Get(ctx, key).Bytes()
		if errors.Is(err, redis.Nil) {
			continue // expired between the two commands: try again
		}
		if err != nil {
			return false, nil, fail("claim", err)
		}
		if rest, ok := bytes.CutPrefix(v, []byte(failMarker)); ok {
			return false, rest, nil
		}
		return false, nil, nil
	}
	return false, nil, nil
}

// Fail implements Store.
func (r *Redis) Fail(ctx context.Context, ref string, failure []byte, ttl time.Duration) error {
	ctx, cancel := r.op(ctx)
	defer cancel()
	v := make([]byte, 0, len(failMarker)+len(failure))
	v = append(append(v, failMarker...), failure...)
	if err := r.conn.client.Set(ctx, r.claimKey(ref), v, ms(ttl)).Err(); err != nil {
		return fail("fail", err)
	}
	return nil
}

// Get implements Store.
func (r *Redis) Get(ctx context.Context, name string) ([]byte, error) {
	ctx, cancel := r.op(ctx)
	defer cancel()
	v, err := r.conn.client.Get(ctx, r.valueKey(name)).Bytes()
	if err != nil {
		return nil, fail("get", err)
	}
	return v, nil
}

// Set implements Store; ttl <= 0 keeps the value until overwritten.
func (r *Redis) Set(ctx context.Context, name string, value []byte, ttl time.Duration) error {
	ctx, cancel := r.op(ctx)
	defer cancel()
	if err := r.conn.client.Set(ctx, r.valueKey(name), value, ms(ttl)).Err(); err != nil {
		return fail("set", err)
	}
	return nil
}

// setIfAbsentScript: the value held by KEYS[1], or, when none, ARGV[1] set
// with a TTL of ARGV[2] ms (0: none) and false. One key (Cluster-safe).
var setIfAbsentScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v then return v end
if tonumber(ARGV[2]) > 0 then
	redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
else
	redis.call('SET', KEYS[1], ARGV[1])
end
return false
`)

// SetIfAbsent implements Store with one script (GET, else SET).
func (r *Redis) SetIfAbsent(ctx context.Context, name string, value []byte, ttl time.Duration) ([]byte, bool, error) {
	ctx, cancel := r.op(ctx)
	defer cancel()
	v, err := setIfAbsentScript.Run(ctx, r.conn.client, []string{r.valueKey(name)}, value, ms(ttl).Milliseconds()).Result()
	switch {
	case errors.Is(err, redis.Nil):
		return append([]byte{}, value...), true, nil
	case err != nil:
		return nil, false, fail("setifabsent", err)
	}
	s, ok := v.(string)
	if !ok {
		return nil, false, fail("setifabsent", errors.New("unexpected script reply"))
	}
	return []byte(s), false, nil
}

// Lock implements Store: SET NX PX with a random token; unlock deletes the
// key only while it holds that token (compare-and-delete script), bounded
// by the timeout, and ignores errors (the lock expires anyway).
func (r *Redis) Lock(ctx context.Context, name string, ttl time.Duration) (func(), bool, error) {
	var b [16]byte
	_, _ = rand.Read(b[:])
	token := hex.EncodeToString(b[:])
	key := r.lockKey(name)
	octx, cancel := r.op(ctx)
	defer cancel()
	c := r.conn.client
	ok, err := c.SetNX(octx, key, token, ms(ttl)).Result()
	if err != nil {
		return func() {}, false, fail("lock", err)
	}
	if !ok {
		return func() {}, false, nil
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.timeout)
			defer cancel()
			if err := unlockScript.Run(uctx, c, []string{key}, token).Err(); err != nil {
				r.log.Debug("store: redis unlock failed; the lock will expire", zap.Error(fail("unlock", err)))
			}
		})
	}, true, nil
}
