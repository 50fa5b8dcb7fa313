package module

import (
	"sync"
	"time"

	"go.uber.org/zap"
)

// Log levels follow Caddy's own server: a refusal the handler answers (a
// 4xx: a bad code, an expired session, a malformed body) is logged at
// DEBUG, one line per request, like Caddy's 4xx handler errors; an
// internal, platform or store failure (a 5xx) at ERROR. So that a flood of
// refusals stays visible at the default INFO level without a line per
// request, refusalSummary writes at most one WARN line per minute per
// error code, with the number of refusals since the previous one. (The
// metrics count every request: requests_total by result.)

// refusalEvery is how often, at most, a summary line is written per code.
const refusalEvery = time.Minute

type refusalSummary struct {
	logger *zap.Logger
	msg    string // the summary line's message
	key    string // the field naming what is counted
	now    func() time.Time
	mu     sync.Mutex
	// codes is bounded by the error codes the handler answers.
	codes map[string]*refusalCount
}

type refusalCount struct {
	last time.Time // of the last summary line; zero before the first
	n    int       // refusals not yet reported
}

func newRefusalSummary(logger *zap.Logger) *refusalSummary {
	return newSummary(logger, "requests refused (at most one line per minute per error code; each is logged at DEBUG)", "error")
}

// newSummary is a once-a-minute WARN summary of other per-request events
// worth seeing at INFO (msg, with the event's kind as field key).
func newSummary(logger *zap.Logger, msg, key string) *refusalSummary {
	return &refusalSummary{logger: logger, msg: msg, key: key, now: time.Now, codes: make(map[string]*refusalCount)}
}

// note counts one refusal with code (on route, the route label) and writes
// the code's summary line when one is due: at the first refusal, then at
// the first one at least refusalEvery after the previous line.
func (s *refusalSummary) note(code, route string) {
	now := s.now()
	s.mu.Lock()
	c := s.codes[code]
	if c == nil {
		c = new(refusalCount)
		s.codes[code] = c
	}
	c.n++
	if !c.last.IsZero() && now.Sub(c.last) < refusalEvery {
		s.mu.Unlock()
		return
	}
	n, last := c.n, c.last
	c.n, c.last = 0, now
	s.mu.Unlock()

	fields := []zap.Field{
		zap.String(s.key, code),
		zap.Int("count", n),
		zap.String("route", route),
	}
	if !last.IsZero() {
		fields = append(fields, zap.Duration("since", now.Sub(last)))
	}
	s.logger.Warn(s.msg, fields...)
}
