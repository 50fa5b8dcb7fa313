package platform

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"unicode"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/mperr"
)

// The platforms' answers are decoded leniently: unknown fields are ignored,
// a string field may come as a number (countryCode, ids) and a number field
// as a numeric string (errcode, expires_in); null means absent. But the
// answer as a whole must be one JSON object, so that HTML, plain text,
// truncated JSON or a JSON array is a platform_error.

// lenientString is a JSON string, or a number taken as its literal text, or
// null (empty). Booleans, objects and arrays are refused.
type lenientString string

func (s *lenientString) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return errors.New("empty value")
	}
	switch c := b[0]; {
	case string(b) == "null":
		*s = ""
	case c == '"':
		var v string
		if err := json.Unmarshal(b, &v); err != nil {
			return err
		}
		*s = lenientString(v)
	case c == '-' || (c >= '0' && c <= '9'):
		*s = lenientString(b)
	default:
		return fmt.Errorf("want a string, got %.10s", b)
	}
	return nil
}

// lenientInt is a JSON integer (or a float with an integral value), or a
// string holding one, or null (not set).
type lenientInt struct {
	Set   bool
	Value int
}

func (n *lenientInt) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if string(b) == "null" {
		*n = lenientInt{}
		return nil
	}
	text := string(b)
	if len(b) > 0 && b[0] == '"' {
		if err := json.Unmarshal(b, &text); err != nil {
			return err
		}
		text = strings.TrimSpace(text)
		if text == "" {
			*n = lenientInt{}
			return nil
		}
	}
	v, err := parseInt(text)
	if err != nil {
		return err
	}
	*n = lenientInt{Set: true, Value: v}
	return nil
}

func parseInt(s string) (int, error) {
	if v, err := strconv.ParseInt(s, 10, 0); err == nil {
		return int(v), nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
		return 0, fmt.Errorf("want an integer, got %.20q", s)
	}
	return int(f), nil
}

// decodeObject decodes body, which must be one JSON object, into v.
func decodeObject(body []byte, v any) error {
	body = bytes.TrimPrefix(body, []byte("\xef\xbb\xbf")) // a UTF-8 BOM
	body = bytes.TrimSpace(body)
	if len(body) == 0 || body[0] != '{' {
		return errors.New("the answer is not a JSON object")
	}
	if err := json.Unmarshal(body, v); err != nil {
		return errors.New("the answer is not valid JSON of the expected shape")
	}
	return nil
}

// unreadable is the platform_error for an answer that cannot be decoded.
// The cause is ours, never the body (which may hold a session key).
func unreadable(cause error) verdict {
	return verdict{err: mperr.Wrap(mperr.PlatformError, "the platform's answer could not be read", cause)}
}

// incomplete is the platform_error for a success answer lacking a field.
func incomplete(field string) verdict {
	return verdict{err: mperr.Wrap(mperr.PlatformError, "the platform's answer is incomplete",
		fmt.Errorf("no %s in a success answer", field))}
}

// httpStatusVerdict handles a non-2xx status when the body carried no
// platform errcode: 5xx is transient, 429 is a rate limit, anything else a
// platform_error. ok is false for a 2xx status.
func httpStatusVerdict(status int) (v verdict, ok bool) {
	switch {
	case status >= 200 && status < 300:
		return verdict{}, false
	case status >= 500:
		return verdict{
			err:       mperr.New(mperr.PlatformError, "the platform failed (HTTP "+strconv.Itoa(status)+")"),
			transient: true,
		}, true
	case status == http.StatusTooManyRequests:
		return verdict{err: mperr.New(mperr.RateLimited, "the platform's rate limit was reached (HTTP 429)")}, true
	}
	return verdict{err: mperr.New(mperr.PlatformError, "the platform answered with HTTP "+strconv.Itoa(status))}, true
}

// platformMessage returns the platform's errmsg for the logs (in Err, never
// in Message): without its "rid:"/"hints:" request-id suffix, printable,
// short. The call loop further withholds it entirely if it quotes a secret.
func platformMessage(msg string) error {
	for _, cut := range []string{", rid:", " rid:", "rid:", ", hints:", " hints:", "hints:"} {
		if i := strings.Index(msg, cut); i >= 0 {
			msg = msg[:i]
		}
	}
	msg = strings.Map(func(r rune) rune {
		if unicode.IsPrint(r) {
			return r
		}
		return -1
	}, msg)
	msg = strings.TrimSpace(msg)
	// Not shortened here: the call loop first checks the whole text for
	// secrets (a secret cut in half would escape the check), then shortens
	// it (see safeCause).
	if msg == "" {
		return nil
	}
	return &platformSaid{msg: msg}
}

// platformSaid is the (cleaned) text the platform gave with an error.
type platformSaid struct{ msg string }

// Error gives the text as is (not quoted: quoting would escape characters
// of a secret the text may quote and defeat the call loop's check).
func (e *platformSaid) Error() string { return "platform said: " + e.msg }

// envelope decodes an answer into v (one JSON object) and sorts it out:
// a platform error (errOf reports the platform's number and text, set when
// the number was present at all) is mapped by mapErr; without one, a
// non-2xx status is an error; an undecodable body is an error. ok tells the
// caller to go on with the success fields of v. errcode is the platform's
// number when it gave one, for logs.
func envelope(status int, body []byte, v any, errOf func() (lenientInt, string), mapErr func(int, string) verdict) (errcode *int, vd verdict, ok bool) {
	if status >= 500 {
		vd, _ := httpStatusVerdict(status)
		return nil, vd, false
	}
	derr := decodeObject(body, v)
	if derr == nil {
		n, msg := errOf()
		if n.Set {
			errcode = &n.Value
			if n.Value != 0 {
				return errcode, mapErr(n.Value, msg), false
			}
		}
	}
	if hv, bad := httpStatusVerdict(status); bad {
		return errcode, hv, false
	}
	if derr != nil {
		return nil, unreadable(derr), false
	}
	return errcode, verdict{}, true
}

// platformErr makes the *mperr.Error of a platform error number.
func platformErr(code mperr.Code, errcode int, message string, cause error) *mperr.Error {
	e := mperr.Platform(code, errcode, message)
	e.Err = cause
	return e
}
