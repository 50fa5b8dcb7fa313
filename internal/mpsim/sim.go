// Package mpsim simulates the server HTTP APIs of the WeChat (微信), Douyin
// (抖音), QQ, Baidu (百度), Kuaishou (快手), Feishu (飞书, and Lark) and Alipay (支付宝)
// mini-program platforms, for integration tests and for trying the plugin
// without a real app id. One http.Handler (*Sim) serves every platform
// on one origin: point the plugin's api_base at it.
//
// Platform endpoints (HTTP 200 with the platform's JSON in every business
// case, in the shapes the platforms document):
//
//	GET  /sns/jscode2session                 WeChat code2session
//	GET  /cgi-bin/token                      WeChat classic access token
//	POST /cgi-bin/stable_token               WeChat stable access token
//	POST /wxa/business/getuserphonenumber    WeChat phone-code exchange
//	POST /api/apps/v2/jscode2session         Douyin code2session (v2)
//	GET  /api/apps/jscode2session            Douyin code2session (legacy v1)
//	POST /oauth/client_token/                Douyin client token
//	POST /api/apps/v1/get_phonenumber_info/  Douyin phone-code exchange (see douyin_phone.go)
//	POST /api/apps/v2/token                  Douyin mini-app access_token (see douyin_openapi.go)
//	POST /api/apps/v1/censor/image/          Douyin image check, client token (open.douyin.com)
//	POST /api/apps/qrcode                    Douyin QR code, mini-app access_token in the body
//	POST /api/apps/censor/image              Douyin image check v2, mini-app access_token in the body
//	GET  /sns/jscode2session                 QQ code2session, for a QQ app's appid (see qq.go)
//	POST /oauth/jscode2sessionkey            Baidu code2session (see baidu.go)
//	POST /oauth2/mp/code2session             Kuaishou code2session (see kuaishou.go)
//	POST /open-apis/auth/v3/app_access_token/internal  Feishu/Lark app access token (see feishu.go)
//	POST /open-apis/mina/v2/tokenLoginValidate         Feishu/Lark code2session
//	POST /cgi-bin/message/subscribe/send     WeChat subscribe message (see openapi.go)
//	POST /wxa/msg_sec_check                  WeChat content-security check
//	POST /cgi-bin/media/upload               WeChat temporary media upload (multipart)
//	GET  /cgi-bin/media/get                  WeChat temporary media download (binary)
//	POST /gateway.do                         Alipay's gateway: alipay.system.oauth.token (see alipay.go)
//
// The control API lives under /_sim/ (see control.go); the same operations
// are methods of *Sim.
//
// # As unkind as the platforms
//
// The simulator is never kinder than the real platforms, so that a client
// that passes against it does not fail against them (see Quirks for each
// choice and its source):
//
//   - WeChat answers are labelled text/plain, JSON or not.
//   - A WeChat success carries "errcode":0,"errmsg":"ok" on some calls and no
//     errcode at all on others; an error number (WeChat errcode, Douyin
//     err_no and legacy errcode) is a JSON string on some calls. Which calls,
//     is decided by Quirks.Seed and the call's index, so tests reproduce.
//   - The getPhoneNumber button (PhoneButton) gives the phone code together
//     with encryptedData/iv and cloudID, as e.detail does on WeChat's base
//     library 2.21.2 and later; front ends forward it whole.
//   - WeRun payloads (WeRun) carry no watermark. The sources disagree: the
//     wx.getWeRunData documentation shows the decrypted JSON as only
//     {"stepInfoList": [...]}, while the general page on encrypted data says
//     a watermark is added to sensitive data and an SDK's WeRun type has one.
//     A client that demands a watermark would fail on the documented shape,
//     so the simulator sends none by default (Quirks.WeRunWatermark adds one).
//   - Session keys rotate without a login (RotateKey: WeChat does on a data
//     pre-fetch) and expire silently after Quirks.KeyIdleTTL unused: the
//     next payload is encrypted with a key no exchange ever returned.
//
// The wire formats are the simulator's own types, written from the
// platforms' documentation, never the plugin's: the simulator cannot agree
// with a field the plugin misreads.
//
// Choices where the documentation left room (all documented in README-style
// comments beside the code that implements them):
//
//   - WeChat jscode2session with any method but GET answers 41002 "appid
//     missing" (the platform reads the query of a GET only).
//     GET /cgi-bin/token with another method answers 43001 "require GET
//     method"; stable_token and getuserphonenumber with another method answer
//     43002 "require POST method"; an unparsable JSON body answers 47001
//     "data format error".
//   - A wrong secret on /cgi-bin/token and /cgi-bin/stable_token answers 40001
//     "invalid credential, ..." (the getAccessToken documentation); on
//     jscode2session it answers 40125 "invalid appsecret".
//   - A business API given an unknown token, or a token superseded and past
//     its grace, answers 40001; a token past its 7200 s answers 42001.
//   - stable_token with force_refresh less than 30 s after the previous forced
//     refresh answers 45009 "reach max api daily quota limit". The 20 forced
//     refreshes per day limit is not simulated.
//   - A reused phone code answers 40029 (like an unknown or expired one).
//   - getuserphonenumber with an "openid" that does not match the code's user
//     answers 40003 "invalid openid".
//   - WeChat grant_type must be exactly authorization_code / client_credential
//     (missing → 40002).
//   - Douyin: missing appid, secret or both codes, a body that is not JSON, or
//     a method other than POST on v2 → 40014; err_tips texts are the
//     simulator's own (the official table was not retrieved).
//   - The rate limit (45011) is 100 calls per user per simulated minute, fixed
//     window, on WeChat's jscode2session and getuserphonenumber. Douyin has
//     none.
//   - Every Login rotates the user's session key (the real platforms have a
//     minimum refresh period); an exchange returns the user's current key,
//     whatever code it exchanges, since a user has one valid key at a time.
//   - A WeChat user who taps the phone button without ever having logged in
//     gets encryptedData under a key minted for the occasion (no exchange
//     returned it), while the phone code beside it works: WeChat's code flow
//     needs no login.
//   - The legacy Douyin API's answers carry "error": 0 or 1 beside
//     errcode/errmsg, as SDKs of that API read them.
package mpsim

import (
	"crypto/rsa"
	"crypto/subtle"
	"errors"
	"fmt"
	"log"
	"sort"
	"sync"
	"time"
)

// Platform names.
const (
	WeChat = "wechat"
	Douyin = "douyin"
	QQ     = "qq"
)

// Endpoint names, as used by Fault.Endpoint, Calls and the stats.
const (
	EndpointJSCode2Session     = "jscode2session" // WeChat, Douyin v2 and Douyin legacy
	EndpointToken              = "token"
	EndpointStableToken        = "stable_token"
	EndpointGetUserPhoneNumber = "getuserphonenumber"
	EndpointClientToken        = "client_token"         // Douyin
	EndpointGetPhoneNumberInfo = "get_phonenumber_info" // Douyin
	EndpointAll                = "*"                    // Fault only: every endpoint
)

// Endpoints lists the endpoint names in a stable order.
var Endpoints = []string{EndpointJSCode2Session, EndpointToken, EndpointStableToken, EndpointGetUserPhoneNumber, EndpointClientToken, EndpointGetPhoneNumberInfo,
	EndpointSubscribeSend, EndpointMsgSecCheck, EndpointMediaUpload, EndpointMediaGet,
	EndpointTTAppToken, EndpointTTCensorImage, EndpointTTQRCode, EndpointTTCensorV2}

// Limits of the simulated platforms.
const (
	AccessTokenTTL     = 7200 * time.Second // expires_in of both kinds of token
	TokenGrace         = 5 * time.Minute    // a superseded classic token stays valid this long; stable pre-rotation window
	ForceRefreshPeriod = 30 * time.Second   // minimum interval between forced stable refreshes
	RateLimit          = 100                // calls per user per RateWindow
	RateWindow         = time.Minute
)

// Memory bounds.
const (
	maxUsers       = 100_000
	maxTokens      = 20_000
	deadTokenKeep  = 24 * time.Hour // dead tokens are remembered this long, to answer 40001/42001 rather than "unknown"
	prunePeriod    = 30 * time.Second
	pruneMinGrowth = 1000
)

// Errors of the in-process control methods (wrapped with details).
var (
	ErrUnknownApp    = errors.New("mpsim: unknown app")
	ErrWrongPlatform = errors.New("mpsim: operation not available on this app's platform")
	ErrNoSession     = errors.New("mpsim: user has no session key (call Login first)")
	ErrNoPrevious    = errors.New("mpsim: user has no previous session key (log in twice)")
	ErrInvalid       = errors.New("mpsim: invalid argument")
)

// App is a registered mini-program.
type App struct {
	Platform string `json:"platform"` // "wechat", "douyin" or "qq"
	AppID    string `json:"appid"`
	Secret   string `json:"secret"`
	UnionID  bool   `json:"unionid"` // give unionids (app bound to an open-platform account)
	// LegacyUserID: an Alipay app that gets user_id, not open_id.
	LegacyUserID bool `json:"legacy_user_id,omitempty"`
}

// Options configure a Sim. Zero values take the defaults.
type Options struct {
	Apps          []App         // default DemoApps()
	WeChatCodeTTL time.Duration // default 5m
	DouyinCodeTTL time.Duration // default 3m (also anonymous codes)
	PhoneCodeTTL  time.Duration // default 5m (WeChat's and Douyin's phone codes)
	QQCodeTTL     time.Duration // default 5m (QQ documents none; WeChat's)
	// DouyinPublicKeys are the app public keys Douyin apps uploaded in the
	// console (app id → key): get_phonenumber_info encrypts with them.
	// See also SetPublicKey.
	DouyinPublicKeys map[string]*rsa.PublicKey
	Quirks           Quirks      // how unkind the answers and keys are; the zero value is the unkind default
	Logger           *log.Logger // one line per request, never codes, secrets, tokens or keys; nil = silent
}

// DemoApps are the apps a Sim serves when Options.Apps is empty.
func DemoApps() []App {
	return []App{
		{Platform: WeChat, AppID: "wxdemoapp0000001", Secret: "demo-wechat-secret", UnionID: true},
		{Platform: Douyin, AppID: "ttdemoapp0000001", Secret: "demo-douyin-secret"},
		{Platform: QQ, AppID: "qqdemoapp0000001", Secret: "demo-qq-secret"},
		{Platform: Baidu, AppID: "bddemoappkey0000000000000000001", Secret: "demo-baidu-secret"},
		{Platform: Kuaishou, AppID: "ks000000000000001", Secret: "demo-kuaishou-secret"},
		{Platform: Feishu, AppID: "cli_demofeishu00001", Secret: "demo-feishu-secret"},
		{Platform: Lark, AppID: "cli_demolark000001", Secret: "demo-lark-secret"},
		{Platform: Alipay, AppID: "2021000000000001"},
	}
}

// LoginResult is what Login gives: the code the front end would send, and
// (for the test's convenience) the identity the exchange will return.
type LoginResult struct {
	Code    string `json:"code"`
	OpenID  string `json:"openid"`
	UnionID string `json:"unionid"`
}

// EncryptOptions tune Encrypt.
type EncryptOptions struct {
	Previous       bool   // encrypt with the user's previous session key
	WatermarkAppID string // watermark appid instead of the app's own
	NoWatermark    bool   // add no watermark (as WeRun payloads may come)
}

// Fault makes calls to an endpoint misbehave.
// HTTPStatus wins over Errcode; Delay applies before either (a fault with
// only a Delay slows the call down and then lets it through). A faulted call
// counts in Calls; an injected error (Errcode or HTTPStatus) does not consume
// a code or count toward a rate limit.
// See FaultJSON for the control API's form.
type Fault struct {
	Endpoint   string        // an Endpoint* name or "*"
	Platform   string        // "" = every platform, else "wechat", "douyin" or "qq"
	Errcode    int           // platform error number, answered in the platform's shape (HTTP 200); 0 = none
	HTTPStatus int           // a bare HTTP error with this status (text/plain body); 0 = none
	Delay      time.Duration // sleep before answering (real time; ends early if the request is canceled, with no answer)
	Times      int           // how many calls it applies to; 0 = until cleared
}

// Sim is the simulator. It is an http.Handler and safe for concurrent use.
type Sim struct {
	wechatTTL, douyinTTL, phoneTTL, qqTTL time.Duration
	logger                                *log.Logger

	mu         sync.Mutex
	quirks     Quirks
	apps       map[string]App
	users      map[string]*user // key userKey(appID, user)
	codes      map[string]*loginCode
	anonCodes  map[string]*anonCode
	phoneCodes map[string]*phoneCode
	tokens     map[string]*token
	appTok     map[string]*appTokens
	media      map[string]*medium        // temporary media (see openapi.go)
	pubKeys    map[string]*rsa.PublicKey // Douyin app public keys; kept by Reset
	faults     []*Fault
	calls      map[string]int
	offset     time.Duration
	lastPrune  time.Time
	pruneSize  int
}

type user struct {
	name      string
	openID    string
	unionID   string    // empty when the app gives none
	key, prev string    // session keys, base64
	keyLen    int       // bytes of a session key (16; Baidu 24)
	keyUsed   time.Time // when key was last issued or used (see Quirks.KeyIdleTTL)
	lastSeen  time.Time
	rateStart map[string]time.Time
	rateCount map[string]int
}

type loginCode struct {
	appID, user string
	expires     time.Time
	used        bool
}

type anonCode struct {
	appID, device string
	expires       time.Time
	used          bool
}

type phoneCode struct {
	appID, user, phone string
	expires            time.Time
	used               bool
}

const (
	kindClassic = "classic"
	kindStable  = "stable"
)

type token struct {
	appID, kind string
	expires     time.Time
	deadAt      time.Time // superseded: invalid from then on (zero = not superseded)
}

// status is 0 while valid, 40001 once superseded (past the grace), 42001 once
// expired, whichever came first.
func (t *token) status(now time.Time) int {
	if !t.deadAt.IsZero() && t.deadAt.Before(t.expires) && !now.Before(t.deadAt) {
		return 40001
	}
	if !now.Before(t.expires) {
		return 42001
	}
	return 0
}

func (t *token) invalidAt() time.Time {
	if !t.deadAt.IsZero() && t.deadAt.Before(t.expires) {
		return t.deadAt
	}
	return t.expires
}

type appTokens struct {
	client    string // Douyin: the latest client token
	app       string // Douyin: the latest mini-app access_token
	stable    string // current stable token
	forced    bool
	lastForce time.Time
}

// appTokensLocked is the token state of an app, made on first use.
func (s *Sim) appTokensLocked(appID string) *appTokens {
	at := s.appTok[appID]
	if at == nil {
		at = &appTokens{}
		s.appTok[appID] = at
	}
	return at
}

// New returns a simulator. It panics if an app (see AddApp) or a quirk is
// invalid.
func New(o Options) *Sim {
	s := &Sim{
		wechatTTL: o.WeChatCodeTTL,
		douyinTTL: o.DouyinCodeTTL,
		qqTTL:     o.QQCodeTTL,
		phoneTTL:  o.PhoneCodeTTL,
		logger:    o.Logger,
		apps:      map[string]App{},
		pubKeys:   map[string]*rsa.PublicKey{},
	}
	if s.wechatTTL <= 0 {
		s.wechatTTL = 5 * time.Minute
	}
	if s.qqTTL <= 0 {
		s.qqTTL = 5 * time.Minute
	}
	if s.douyinTTL <= 0 {
		s.douyinTTL = 3 * time.Minute
	}
	if s.phoneTTL <= 0 {
		s.phoneTTL = 5 * time.Minute
	}
	if err := o.Quirks.validate(); err != nil {
		panic(err)
	}
	s.quirks = o.Quirks.withDefaults()
	apps := o.Apps
	if len(apps) == 0 {
		apps = DemoApps()
	}
	for _, a := range apps {
		s.AddApp(a)
	}
	for id, k := range o.DouyinPublicKeys {
		if err := s.SetPublicKey(id, k); err != nil {
			panic(err)
		}
	}
	s.resetLocked()
	return s
}

// ValidateApp reports what is wrong with an app, if anything.
func ValidateApp(a App) error {
	switch {
	case a.Platform != WeChat && a.Platform != Douyin && a.Platform != QQ && a.Platform != Baidu && a.Platform != Kuaishou && !isFeishuFamily(a.Platform) && a.Platform != Alipay:
		return fmt.Errorf("%w: platform must be %q, %q, %q, %q, %q, %q, %q or %q, not %q", ErrInvalid, WeChat, Douyin, QQ, Baidu, Kuaishou, Feishu, Lark, Alipay, a.Platform)
	case a.AppID == "":
		return fmt.Errorf("%w: appid is empty", ErrInvalid)
	case a.Secret == "" && a.Platform != Alipay: // Alipay's calls are signed, not authenticated by a secret
		return fmt.Errorf("%w: secret is empty", ErrInvalid)
	}
	return nil
}

// AddApp registers an app, replacing one with the same app id. It panics if
// the app is invalid (ValidateApp); the control API answers 400 instead.
func (s *Sim) AddApp(a App) {
	if err := ValidateApp(a); err != nil {
		panic(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.apps[a.AppID] = a
}

// Apps returns the registered apps, sorted by app id.
func (s *Sim) Apps() []App {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]App, 0, len(s.apps))
	for _, a := range s.apps {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].AppID < out[j].AppID })
	return out
}

// Now is the simulated time: the real time shifted by every Advance.
func (s *Sim) Now() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nowLocked()
}

func (s *Sim) nowLocked() time.Time { return time.Now().Add(s.offset) }

// Advance shifts the simulated clock forward by d (d <= 0 does nothing).
func (s *Sim) Advance(d time.Duration) {
	if d <= 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.offset += d
}

// Reset clears counters, faults, users, codes, tokens and the clock offset.
// Registered apps (including those added later), their public keys and the
// quirks are kept.
func (s *Sim) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.resetLocked()
}

func (s *Sim) resetLocked() {
	s.users = map[string]*user{}
	s.codes = map[string]*loginCode{}
	s.anonCodes = map[string]*anonCode{}
	s.phoneCodes = map[string]*phoneCode{}
	s.tokens = map[string]*token{}
	s.appTok = map[string]*appTokens{}
	s.media = map[string]*medium{}
	s.faults = nil
	s.calls = map[string]int{}
	s.offset = 0
	s.lastPrune = time.Time{}
	s.pruneSize = 0
}

// Calls is the number of calls an endpoint received (all outcomes, faulted
// ones included).
func (s *Sim) Calls(endpoint string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[endpoint]
}

// AllCalls returns the call count of every endpoint.
func (s *Sim) AllCalls() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(Endpoints))
	for _, e := range Endpoints {
		out[e] = s.calls[e]
	}
	return out
}

// Inject adds a fault. Faults are tried in the order injected; the first that
// matches a call applies to it (one fault per call).
func (s *Sim) Inject(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ff := f
	s.faults = append(s.faults, &ff)
}

// Faults returns the faults in force.
func (s *Sim) Faults() []Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Fault, 0, len(s.faults))
	for _, f := range s.faults {
		out = append(out, *f)
	}
	return out
}

// ClearFaults removes every fault.
func (s *Sim) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = nil
}

// takeFaultLocked finds the fault for a call and uses one of its Times.
func (s *Sim) takeFaultLocked(endpoint, platform string) (Fault, bool) {
	for i, f := range s.faults {
		if f.Endpoint != endpoint && f.Endpoint != EndpointAll {
			continue
		}
		if f.Platform != "" && f.Platform != platform {
			continue
		}
		got := *f
		if f.Times > 0 {
			f.Times--
			if f.Times == 0 {
				s.faults = append(s.faults[:i:i], s.faults[i+1:]...)
			}
		}
		return got, true
	}
	return Fault{}, false
}

func userKey(appID, name string) string { return appID + "\x00" + name }

func (s *Sim) appLocked(appID string) (App, error) {
	a, ok := s.apps[appID]
	if !ok {
		return App{}, fmt.Errorf("%w %q", ErrUnknownApp, appID)
	}
	return a, nil
}

// userLocked returns the user's record, creating it.
func (s *Sim) userLocked(a App, name string, now time.Time) *user {
	k := userKey(a.AppID, name)
	u := s.users[k]
	if u == nil {
		if len(s.users) >= maxUsers {
			s.evictUsersLocked()
		}
		u = &user{name: name, openID: openID(a, name), keyLen: 16}
		if a.Platform == Baidu {
			u.keyLen = baiduKeyLen
		}
		if a.UnionID {
			u.unionID = unionID(a.Platform, name)
		}
		s.users[k] = u
	}
	u.lastSeen = now
	return u
}

// evictUsersLocked drops the least recently seen tenth of the users.
func (s *Sim) evictUsersLocked() {
	type kv struct {
		k string
		t time.Time
	}
	all := make([]kv, 0, len(s.users))
	for k, u := range s.users {
		all = append(all, kv{k, u.lastSeen})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].t.Before(all[j].t) })
	for _, e := range all[:len(all)/10+1] {
		delete(s.users, e.k)
	}
}

// Quirks returns the quirks in force (defaults filled in).
func (s *Sim) Quirks() Quirks {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.quirks
}

// SetQuirks replaces the quirks (zero fields take their defaults). It
// fails on an invalid quirk.
func (s *Sim) SetQuirks(q Quirks) error {
	if err := q.validate(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.quirks = q.withDefaults()
	return nil
}

// rotateLocked gives u a new session key, keeping the old one as the
// previous one.
func (u *user) rotateLocked(now time.Time) {
	u.prev, u.key = u.key, newSessionKeyN(u.keyLen)
	u.keyUsed = now
}

// liveKeyLocked returns u's current key, and marks it used. A key idle for
// KeyIdleTTL has expired: it is replaced, silently, by one nobody was given.
// A user evicted since its login (see maxUsers) gets a key again.
func (s *Sim) liveKeyLocked(u *user, now time.Time) string {
	ttl := s.quirks.KeyIdleTTL
	if u.key == "" || (ttl > 0 && now.Sub(u.keyUsed) >= ttl) {
		u.rotateLocked(now)
	}
	u.keyUsed = now
	return u.key
}

// RotateKey replaces the user's session key without a login, as WeChat does
// on a data pre-fetch (and as any new login state may): the old key becomes
// the previous one, and the new one is given to nobody until the next
// exchange. It fails with ErrNoSession for a user who never logged in.
func (s *Sim) RotateKey(appID, userName string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.appLocked(appID); err != nil {
		return err
	}
	u := s.users[userKey(appID, userName)]
	if u == nil || u.key == "" {
		return fmt.Errorf("%w: %q", ErrNoSession, userName)
	}
	now := s.nowLocked()
	u.lastSeen = now
	u.rotateLocked(now)
	return nil
}

// rateLocked counts a call by u to endpoint and reports whether it is over
// the limit.
func (u *user) rateLocked(endpoint string, now time.Time) bool {
	if u.rateStart == nil {
		u.rateStart = map[string]time.Time{}
		u.rateCount = map[string]int{}
	}
	if st, ok := u.rateStart[endpoint]; !ok || now.Sub(st) >= RateWindow || now.Before(st) {
		u.rateStart[endpoint] = now
		u.rateCount[endpoint] = 0
	}
	u.rateCount[endpoint]++
	return u.rateCount[endpoint] > RateLimit
}

// pruneLocked forgets expired codes and long-dead tokens, now and then.
func (s *Sim) pruneLocked(now time.Time) {
	size := len(s.codes) + len(s.anonCodes) + len(s.phoneCodes) + len(s.tokens)
	if now.Sub(s.lastPrune) < prunePeriod && size < s.pruneSize+pruneMinGrowth {
		return
	}
	for k, c := range s.codes {
		if !now.Before(c.expires) {
			delete(s.codes, k)
		}
	}
	for k, c := range s.anonCodes {
		if !now.Before(c.expires) {
			delete(s.anonCodes, k)
		}
	}
	for k, c := range s.phoneCodes {
		if !now.Before(c.expires) {
			delete(s.phoneCodes, k)
		}
	}
	var dead []string
	for k, t := range s.tokens {
		switch {
		case now.Sub(t.invalidAt()) >= deadTokenKeep:
			delete(s.tokens, k)
		case t.status(now) != 0:
			dead = append(dead, k)
		}
	}
	if len(s.tokens) > maxTokens {
		sort.Slice(dead, func(i, j int) bool {
			return s.tokens[dead[i]].invalidAt().Before(s.tokens[dead[j]].invalidAt())
		})
		for _, k := range dead {
			if len(s.tokens) <= maxTokens {
				break
			}
			delete(s.tokens, k)
		}
	}
	s.lastPrune = now
	s.pruneSize = len(s.codes) + len(s.anonCodes) + len(s.phoneCodes) + len(s.tokens)
}

// Login does what wx.login / tt.login does on a device: it mints a single-use
// code for (app, user) and rotates the user's session key (the old key
// becomes the previous one).
func (s *Sim) Login(appID, userName string) (LoginResult, error) {
	if userName == "" {
		return LoginResult{}, fmt.Errorf("%w: user is empty", ErrInvalid)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.appLocked(appID)
	if err != nil {
		return LoginResult{}, err
	}
	now := s.nowLocked()
	s.pruneLocked(now)
	u := s.userLocked(a, userName, now)
	u.rotateLocked(now)
	ttl := s.wechatTTL
	switch a.Platform {
	case Douyin:
		ttl = s.douyinTTL
	case QQ:
		ttl = s.qqTTL
	case Baidu:
		ttl = BaiduCodeTTL
	case Kuaishou:
		ttl = KuaishouCodeTTL
	case Feishu, Lark:
		ttl = FeishuCodeTTL
	case Alipay:
		ttl = AlipayCodeTTL
	}
	code := randAlnum(32)
	s.codes[code] = &loginCode{appID: appID, user: userName, expires: now.Add(ttl)}
	return LoginResult{Code: code, OpenID: u.openID, UnionID: u.unionID}, nil
}

// AnonymousLogin mints a Douyin anonymous_code for a device (tt.login of a
// user not logged in to the host app).
func (s *Sim) AnonymousLogin(appID, device string) (string, error) {
	if device == "" {
		return "", fmt.Errorf("%w: device is empty", ErrInvalid)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.appLocked(appID)
	if err != nil {
		return "", err
	}
	if a.Platform != Douyin {
		return "", fmt.Errorf("%w: anonymous login is Douyin's", ErrWrongPlatform)
	}
	now := s.nowLocked()
	s.pruneLocked(now)
	code := randAlnum(32)
	s.anonCodes[code] = &anonCode{appID: appID, device: device, expires: now.Add(s.douyinTTL)}
	return code, nil
}

// AnonymousOpenID is the anonymous_openid the exchange gives for a device.
func AnonymousOpenID(appID, device string) string { return anonymousOpenID(appID, device) }

// Encrypt encrypts data the way the platform does for getPhoneNumber,
// getUserInfo and friends: JSON, AES-128-CBC, PKCS#7, with the user's current
// (or previous) session key and a fresh random iv. A watermark {appid,
// timestamp} is added unless data has one or opt.NoWatermark. A current key
// idle for Quirks.KeyIdleTTL is first replaced by one no exchange returned.
func (s *Sim) Encrypt(appID, userName string, data map[string]any, opt EncryptOptions) (encryptedData, iv string, err error) {
	s.mu.Lock()
	a, err := s.appLocked(appID)
	if err != nil {
		s.mu.Unlock()
		return "", "", err
	}
	if isFeishuFamily(a.Platform) {
		s.mu.Unlock()
		return "", "", fmt.Errorf("%w: Feishu's payload encryption is not published", ErrWrongPlatform)
	}
	if a.Platform == Alipay {
		s.mu.Unlock()
		return "", "", fmt.Errorf("%w: Alipay's payloads are encrypted with the app's key (AlipayPhoneResponse)", ErrWrongPlatform)
	}
	now := s.nowLocked()
	var key string
	if u := s.users[userKey(appID, userName)]; u != nil && u.key != "" {
		u.lastSeen = now
		if opt.Previous {
			key = u.prev
			if key == "" {
				s.mu.Unlock()
				return "", "", fmt.Errorf("%w: %q", ErrNoPrevious, userName)
			}
		} else {
			key = s.liveKeyLocked(u, now)
		}
	}
	s.mu.Unlock()
	if key == "" {
		return "", "", fmt.Errorf("%w: %q", ErrNoSession, userName)
	}
	if a.Platform == Baidu {
		return encryptBaiduJSON(key, a.AppID, data, opt)
	}
	return encryptPayload(key, a.AppID, now, data, opt)
}

// encryptPayload adds the watermark (see Encrypt) and encrypts.
func encryptPayload(key, appID string, now time.Time, data map[string]any, opt EncryptOptions) (encryptedData, iv string, err error) {
	plain := make(map[string]any, len(data)+1)
	for k, v := range data {
		plain[k] = v
	}
	if _, ok := plain["watermark"]; !ok && !opt.NoWatermark {
		wa := appID
		if opt.WatermarkAppID != "" {
			wa = opt.WatermarkAppID
		}
		plain["watermark"] = watermark{Timestamp: now.Unix(), AppID: wa}
	}
	return encryptJSON(key, plain)
}

type watermark struct {
	Timestamp int64  `json:"timestamp"`
	AppID     string `json:"appid"`
}

// EncryptPhone encrypts a phone payload like getPhoneNumber's legacy
// encryptedData: phoneNumber, purePhoneNumber, countryCode "86", watermark.
func (s *Sim) EncryptPhone(appID, userName, phone string) (encryptedData, iv string, err error) {
	if phone == "" {
		return "", "", fmt.Errorf("%w: phone is empty", ErrInvalid)
	}
	s.mu.Lock()
	a, err := s.appLocked(appID)
	s.mu.Unlock()
	if err != nil {
		return "", "", err
	}
	if a.Platform == Baidu {
		return s.Encrypt(appID, userName, baiduPhonePayload(phone), EncryptOptions{})
	}
	return s.Encrypt(appID, userName, phonePayload(phone), EncryptOptions{})
}

// PhoneCode mints the code the getPhoneNumber button gives (PhoneCodeTTL,
// single use), to be exchanged with getuserphonenumber (WeChat) or
// get_phonenumber_info (Douyin).
func (s *Sim) PhoneCode(appID, userName, phone string) (string, error) {
	if userName == "" || phone == "" {
		return "", fmt.Errorf("%w: user and phone are required", ErrInvalid)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.appLocked(appID)
	if err != nil {
		return "", err
	}
	if a.Platform == QQ {
		return "", fmt.Errorf("%w: QQ documents no phone-code exchange", ErrWrongPlatform)
	}
	if a.Platform == Kuaishou {
		return "", fmt.Errorf("%w: Kuaishou has no phone-code exchange here", ErrWrongPlatform)
	}
	if isFeishuFamily(a.Platform) {
		return "", fmt.Errorf("%w: Feishu documents no phone-code exchange", ErrWrongPlatform)
	}
	if a.Platform == Alipay {
		return "", fmt.Errorf("%w: Alipay has no phone-code exchange (AlipayPhoneResponse)", ErrWrongPlatform)
	}
	now := s.nowLocked()
	s.pruneLocked(now)
	s.userLocked(a, userName, now)
	code := randHex(32)
	s.phoneCodes[code] = &phoneCode{appID: appID, user: userName, phone: phone, expires: now.Add(s.phoneTTL)}
	return code, nil
}

func secretOK(got, want string) bool {
	return subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}
