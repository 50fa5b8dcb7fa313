package platform

import "context"

// QQ's mini programs copy WeChat's login: the same path, query, answer
// shape and errcodes (QQ documents -1, 40029 and 45011), on another
// origin. What is shared is WeChat's code (core.wxCode2Session and its
// errcode table); what is QQ's is the origin and the name. QQ documents no
// server-side phone-code exchange and no server token use here, so its
// client is a login client only; its encrypted payloads are WeChat's
// (AES-128-CBC, PKCS#7, watermark {appid, timestamp}) and go through the
// handler's one decryption path.

// DefaultQQAPIBase is QQ's real API origin.
const DefaultQQAPIBase = "https://api.q.qq.com"

// qqPlatform is QQ's descriptor: no anonymous code, no identity fields
// beyond openid and unionid, no phone-code exchange, no compatibility
// endpoints.
var qqPlatform = Descriptor{
	Name:     QQ,
	Title:    "QQ",
	APIBases: []string{DefaultQQAPIBase},
	New:      func(cfg Config) Client { return NewQQ(cfg) },
}

// QQClient talks to QQ's server API (login only). It is safe for
// concurrent use.
type QQClient struct {
	core
}

var _ Client = (*QQClient)(nil)

// NewQQ returns a QQ client. An unusable cfg.APIBase (New refuses it)
// makes every call fail with a platform_error.
func NewQQ(cfg Config) *QQClient {
	return &QQClient{core: newCore(QQ, DefaultQQAPIBase, cfg)}
}

// Name is QQ.
func (c *QQClient) Name() string { return QQ }

// Code2Session calls GET /sns/jscode2session on QQ's origin, exactly as
// WeChat's client does on WeChat's. QQ has no anonymous code.
func (c *QQClient) Code2Session(ctx context.Context, in LoginCodes) (Session, error) {
	return c.wxCode2Session(ctx, in.Code)
}
