package mpsim

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
	"time"
)

// Quirks make the simulator as unkind as the real platforms: the ways their
// answers and session keys differ from the documentation's examples. The
// zero value is the unkind default; every choice that varies is a pure
// function of Seed, the endpoint and the call's index (the endpoint's call
// count, see Calls), so a test that makes the same calls after New or Reset
// sees the same answers.
//
// What each quirk reproduces, and why it is the default:
//
//   - WeChatContentType: WeChat labels its JSON answers text/plain (seen on
//     jscode2session; no source names an endpoint that labels them
//     application/json, so the simulator labels every WeChat answer, errors
//     included, the same way). Douyin answers are labelled JSON.
//   - SuccessErrcode: a real jscode2session (and token) success carries no
//     errcode at all, while the documentation's examples (and
//     getuserphonenumber) carry "errcode":0,"errmsg":"ok". A client must take
//     both as success; by default the simulator mixes them per call.
//   - StringErrcode: no platform documents an error number sent as a JSON
//     string, but SDKs disagree on the type (some declare errcode a string,
//     Douyin declares err_no Int64 and shows 19-digit examples), so a client
//     must not depend on it. By default some answers (per call) carry
//     "errcode":"40029" / "err_no":"40018" instead of the number.
//   - WeRunWatermark: whether WeRun payloads carry a watermark. The sources
//     disagree: the wx.getWeRunData documentation's "decrypted JSON" shows
//     only stepInfoList, while the general encrypted-data page says the
//     platform adds a watermark to sensitive data and one SDK's WeRun type
//     has a watermark field. The simulator takes the unkinder reading: no
//     watermark, unless WeRunWatermark is set.
//   - KeyIdleTTL: a session key unused this long expires silently: the
//     next payload the device produces is encrypted with a fresh key that
//     no exchange ever returned (the platform does not disclose the real
//     lifetime; a community answer says 3 days, which is the default).
//     Negative: keys never expire.
//
// Independently of Quirks, every Login rotates the user's session key, and
// RotateKey rotates it without a login (WeChat does on data pre-fetch).
type Quirks struct {
	Seed              uint64
	WeChatContentType string        // default "text/plain"
	SuccessErrcode    Shape         // WeChat successes carry "errcode":0,"errmsg":"ok"
	StringErrcode     Shape         // error numbers (and a success's 0) as JSON strings
	WeRunWatermark    bool          // WeRun payloads carry a watermark
	KeyIdleTTL        time.Duration // default DefaultKeyIdleTTL; negative = never
}

// DefaultKeyIdleTTL is the default Quirks.KeyIdleTTL.
const DefaultKeyIdleTTL = 72 * time.Hour

// DefaultWeChatContentType is the default Quirks.WeChatContentType.
const DefaultWeChatContentType = "text/plain"

// Shape chooses between two forms of an answer.
type Shape int

// Shapes.
const (
	ShapeMixed  Shape = iota // per call, from Quirks.Seed, the endpoint and the call's index
	ShapeAlways              // every answer
	ShapeNever               // no answer
)

var shapeNames = []string{"mixed", "always", "never"}

func (s Shape) String() string {
	if s >= 0 && int(s) < len(shapeNames) {
		return shapeNames[s]
	}
	return "Shape(" + strconv.Itoa(int(s)) + ")"
}

// ParseShape reads "mixed", "always" or "never" ("" is mixed).
func ParseShape(text string) (Shape, error) {
	if text == "" {
		return ShapeMixed, nil
	}
	for i, n := range shapeNames {
		if strings.EqualFold(text, n) {
			return Shape(i), nil
		}
	}
	return 0, fmt.Errorf("%w: shape must be %q, %q or %q, not %q", ErrInvalid, "mixed", "always", "never", text)
}

// MarshalText writes the shape's name.
func (s Shape) MarshalText() ([]byte, error) {
	if s < 0 || int(s) >= len(shapeNames) {
		return nil, fmt.Errorf("%w: shape %d", ErrInvalid, int(s))
	}
	return []byte(s.String()), nil
}

// UnmarshalText reads a name (see ParseShape).
func (s *Shape) UnmarshalText(b []byte) error {
	v, err := ParseShape(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// withDefaults fills in the defaults of the zero fields.
func (q Quirks) withDefaults() Quirks {
	if q.WeChatContentType == "" {
		q.WeChatContentType = DefaultWeChatContentType
	}
	if q.KeyIdleTTL == 0 {
		q.KeyIdleTTL = DefaultKeyIdleTTL
	}
	return q
}

// validate reports a quirk that cannot be used.
func (q Quirks) validate() error {
	for _, s := range []Shape{q.SuccessErrcode, q.StringErrcode} {
		if s < ShapeMixed || s > ShapeNever {
			return fmt.Errorf("%w: shape %d", ErrInvalid, int(s))
		}
	}
	if strings.ContainsAny(q.WeChatContentType, "\r\n") {
		return fmt.Errorf("%w: content type holds a line break", ErrInvalid)
	}
	return nil
}

// pick decides a Shape for call number n of endpoint; salt tells the
// quirks apart so that they do not vary in step.
func (q Quirks) pick(s Shape, salt, endpoint string, n int) bool {
	switch s {
	case ShapeAlways:
		return true
	case ShapeNever:
		return false
	}
	h := fnv.New64a()
	h.Write([]byte(salt + "\x00" + endpoint))
	return splitmix64(q.Seed^h.Sum64()^uint64(n))&1 == 1
}

// splitmix64 is a well-mixing 64-bit hash (SplitMix64's finaliser).
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// QuirksJSON is Quirks as the control API reads and writes it: durations as
// Go duration strings, shapes as "mixed", "always" or "never". Omitted
// fields take their defaults.
type QuirksJSON struct {
	Seed              uint64 `json:"seed"`
	WeChatContentType string `json:"wechat_content_type,omitempty"`
	SuccessErrcode    Shape  `json:"success_errcode"`
	StringErrcode     Shape  `json:"string_errcode"`
	WeRunWatermark    bool   `json:"werun_watermark"`
	KeyIdleTTL        string `json:"key_idle_ttl,omitempty"` // "72h"; "never" or a negative duration: keys never expire
}

// ParseQuirks validates a QuirksJSON.
func ParseQuirks(j QuirksJSON) (Quirks, error) {
	q := Quirks{Seed: j.Seed, WeChatContentType: j.WeChatContentType, SuccessErrcode: j.SuccessErrcode,
		StringErrcode: j.StringErrcode, WeRunWatermark: j.WeRunWatermark}
	switch j.KeyIdleTTL {
	case "":
	case "never":
		q.KeyIdleTTL = -1
	default:
		d, err := time.ParseDuration(j.KeyIdleTTL)
		if err != nil {
			return Quirks{}, fmt.Errorf("%w: key_idle_ttl must be a Go duration such as \"72h\" or \"never\"", ErrInvalid)
		}
		q.KeyIdleTTL = d
	}
	if err := q.validate(); err != nil {
		return Quirks{}, err
	}
	return q.withDefaults(), nil
}

// QuirksToJSON is the control API's form of q.
func QuirksToJSON(q Quirks) QuirksJSON {
	q = q.withDefaults()
	j := QuirksJSON{Seed: q.Seed, WeChatContentType: q.WeChatContentType, SuccessErrcode: q.SuccessErrcode,
		StringErrcode: q.StringErrcode, WeRunWatermark: q.WeRunWatermark, KeyIdleTTL: q.KeyIdleTTL.String()}
	if q.KeyIdleTTL < 0 {
		j.KeyIdleTTL = "never"
	}
	return j
}

var _ json.Marshaler = (*jsonNumber)(nil)

// jsonNumber is an error number as an answer writes it: a JSON number, or
// a JSON string holding the number.
type jsonNumber struct {
	n   int
	str bool
}

// MarshalJSON writes 40029 or "40029".
func (v jsonNumber) MarshalJSON() ([]byte, error) {
	s := strconv.Itoa(v.n)
	if v.str {
		return []byte(`"` + s + `"`), nil
	}
	return []byte(s), nil
}
