// Package claim is the one "claim or wait" loop of the plugin. Several
// instances (and several requests in one instance) may want the same
// one-shot work at once: exchanging a login code, exchanging a phone code,
// refreshing the access token. One of them takes a claim in the shared
// store and does the work; the others poll for its result, for a bounded
// time, instead of repeating work the platform allows only once.
//
// The loop owns the timing rules, so they are the same everywhere: polls
// start at First and double up to Max; waiting ends when the result is
// there, when the claim holder reports a failure (Claim returns an error),
// when the wait budget is spent (ErrWaitTimeout) or when the caller's
// context ends (its error, wrapped).
package claim

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Poll intervals while another caller holds the claim.
const (
	First = 10 * time.Millisecond
	Max   = 100 * time.Millisecond
)

// ErrWaitTimeout: another caller held the claim for the whole wait and its
// result did not appear.
var ErrWaitTimeout = errors.New("claim: timed out waiting for another caller's result")

// Steps are the three things a claim-or-wait needs from its caller.
type Steps[T any] struct {
	// Claim tries to take the work. won reports that this caller does it;
	// an error ends the wait (the store cannot be reached, or the claim
	// holder recorded a failure that every waiter shares).
	Claim func(ctx context.Context) (won bool, err error)
	// Work is done by the caller that won the claim; its result is the
	// result of Run.
	Work func(ctx context.Context) (T, error)
	// Result reads the claim holder's result: ok is false while there is
	// none yet.
	Result func(ctx context.Context) (v T, ok bool, err error)
	// Busy, optional, is asked once, when the first claim is lost: a value
	// that serves while another caller works (a token that is still
	// valid). ok false: wait.
	Busy func() (v T, ok bool)
}

// Run claims the work or waits, at most wait, for whoever holds the claim.
// The work itself is not bounded by wait: Work gets ctx.
func Run[T any](ctx context.Context, wait time.Duration, s Steps[T]) (T, error) {
	var zero T
	deadline := time.Now().Add(wait)
	interval := First
	for first := true; ; first = false {
		won, err := s.Claim(ctx)
		if err != nil {
			return zero, err
		}
		if won {
			return s.Work(ctx)
		}
		if first && s.Busy != nil {
			if v, ok := s.Busy(); ok {
				return v, nil
			}
		}
		left := time.Until(deadline)
		if left <= 0 {
			return zero, ErrWaitTimeout
		}
		t := time.NewTimer(min(interval, left))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return zero, fmt.Errorf("claim: waiting for another caller's result: %w", ctx.Err())
		}
		interval = min(2*interval, Max)
		v, ok, err := s.Result(ctx)
		if err != nil {
			return zero, err
		}
		if ok {
			return v, nil
		}
	}
}
