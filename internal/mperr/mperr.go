// Package mperr holds the error vocabulary of the README's error table: every
// failure the handler answers itself is an *Error with one of these codes,
// written as {"error": code, "message": text[, "platform_errcode": n]}.
//
// Messages are shown to clients and logged: they must never contain a
// session key, code, token, phone number or app secret.
package mperr

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// Code is an "error" value of the README's error table.
type Code string

// The codes of the README's error table.
const (
	MissingCode Code = "missing_code"
	BadRequest  Code = "bad_request"
	// UnknownApp: a handler serving several apps could not tell which
	// one a route request is for (select_app gave no configured app).
	UnknownApp       Code = "unknown_app"
	MalformedPayload Code = "malformed_payload"
	InvalidCode      Code = "invalid_code"
	SessionNotFound  Code = "session_not_found"
	UserBlocked      Code = "user_blocked"
	BodyTooLarge     Code = "body_too_large"
	// UnsupportedMediaType: a route body that is neither JSON, a form nor
	// multipart, carries Content-Encoding, or has two Content-Types.
	UnsupportedMediaType Code = "unsupported_media_type"
	DecryptFailed        Code = "decrypt_failed"
	WatermarkMismatch    Code = "watermark_mismatch"
	// PayloadReused: a phone payload that carries no user (Alipay's) was
	// first presented by another session, to which it stays bound.
	PayloadReused Code = "payload_reused"
	RateLimited   Code = "rate_limited"
	// TooManyFailures: this client's failed code exchanges are over the
	// configured bound (each one costs a platform call).
	TooManyFailures  Code = "too_many_failures"
	PlatformError    Code = "platform_error"
	StoreUnavailable Code = "store_unavailable"
	PlatformTimeout  Code = "platform_timeout"
	// Internal is not in the README's error table: a bug or an impossible state.
	Internal Code = "internal_error"
)

// Status is the HTTP status the README gives the code.
func (c Code) Status() int {
	switch c {
	case MissingCode, BadRequest, MalformedPayload, UnknownApp:
		return http.StatusBadRequest
	case InvalidCode, SessionNotFound:
		return http.StatusUnauthorized
	case UserBlocked:
		return http.StatusForbidden
	case BodyTooLarge:
		return http.StatusRequestEntityTooLarge
	case UnsupportedMediaType:
		return http.StatusUnsupportedMediaType
	case DecryptFailed, WatermarkMismatch:
		return http.StatusUnprocessableEntity
	case PayloadReused:
		return http.StatusConflict
	case RateLimited, TooManyFailures:
		return http.StatusTooManyRequests
	case PlatformError:
		return http.StatusBadGateway
	case StoreUnavailable:
		return http.StatusServiceUnavailable
	case PlatformTimeout:
		return http.StatusGatewayTimeout
	}
	return http.StatusInternalServerError
}

// Error is a failure the handler answers with the README's JSON error body.
type Error struct {
	Code    Code
	Message string
	// HasErrcode tells that the platform gave Errcode (which may be 0 or -1).
	HasErrcode bool
	Errcode    int
	// Err is the cause, for logs; it must not carry secrets either.
	Err error
	// RetryAfter, when positive, is sent as the Retry-After header (whole
	// seconds, rounded up).
	RetryAfter time.Duration
}

// New makes an Error without platform errcode.
func New(code Code, message string) *Error { return &Error{Code: code, Message: message} }

// Newf is New with a format.
func Newf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Wrap makes an Error with a cause.
func Wrap(code Code, message string, cause error) *Error {
	return &Error{Code: code, Message: message, Err: cause}
}

// Platform makes an Error carrying the platform's own error number.
func Platform(code Code, errcode int, message string) *Error {
	return &Error{Code: code, Message: message, HasErrcode: true, Errcode: errcode}
}

func (e *Error) Error() string {
	s := string(e.Code) + ": " + e.Message
	if e.HasErrcode {
		s += " (platform errcode " + strconv.Itoa(e.Errcode) + ")"
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// Status is e.Code.Status().
func (e *Error) Status() int { return e.Code.Status() }

// As finds an *Error in err's chain.
func As(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}

// From returns err as an *Error, or an Internal one when it is not.
func From(err error) *Error {
	if e, ok := As(err); ok {
		return e
	}
	return Wrap(Internal, "internal error", err)
}

// Body is the JSON body of an error answer.
type Body struct {
	Error           Code   `json:"error"`
	Message         string `json:"message"`
	PlatformErrcode *int   `json:"platform_errcode,omitempty"`
}

// Body returns the JSON body for e.
func (e *Error) Body() Body {
	b := Body{Error: e.Code, Message: e.Message}
	if e.HasErrcode {
		n := e.Errcode
		b.PlatformErrcode = &n
	}
	return b
}

// Write answers the request with err as the README's JSON error.
func Write(w http.ResponseWriter, err error) {
	e := From(err)
	buf, _ := json.Marshal(e.Body())
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(len(buf)))
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	if e.RetryAfter > 0 {
		h.Set("Retry-After", strconv.FormatInt(int64((e.RetryAfter+time.Second-1)/time.Second), 10))
	}
	w.WriteHeader(e.Status())
	_, _ = w.Write(buf)
}
