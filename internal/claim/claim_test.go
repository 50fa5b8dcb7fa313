package claim_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-miniprogram/caddy-miniprogram/internal/claim"
	"github.com/caddy-miniprogram/caddy-miniprogram/internal/store"
)

// Many callers at once on a real (memory) store: exactly one does the
// work, every other one gets its result.
func TestOneWorkerManyWaiters(t *testing.T) {
	st := store.NewMemory(store.MemoryOptions{})
	defer st.Close()
	ctx := context.Background()
	var works atomic.Int32
	steps := claim.Steps[string]{
		Claim: func(ctx context.Context) (bool, error) {
			won, failure, err := st.Claim(ctx, "ref", time.Minute)
			if failure != nil {
				return false, errors.New(string(failure))
			}
			return won, err
		},
		Work: func(ctx context.Context) (string, error) {
			works.Add(1)
			time.Sleep(30 * time.Millisecond) // the platform call
			return "result", st.Set(ctx, "result", []byte("result"), time.Minute)
		},
		Result: func(ctx context.Context) (string, bool, error) {
			b, err := st.Get(ctx, "result")
			if errors.Is(err, store.ErrNotFound) {
				return "", false, nil
			}
			return string(b), err == nil, err
		},
	}
	const n = 32
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, err := claim.Run(ctx, 5*time.Second, steps)
			if err == nil && v != "result" {
				err = errors.New("got " + v)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if w := works.Load(); w != 1 {
		t.Fatalf("the work ran %d times, want once", w)
	}
}

// The claim holder's failure, as Claim reports it, ends every wait.
func TestFailureEndsWait(t *testing.T) {
	boom := errors.New("recorded failure")
	calls := 0
	_, err := claim.Run(context.Background(), time.Second, claim.Steps[int]{
		Claim: func(context.Context) (bool, error) {
			calls++
			if calls == 3 {
				return false, boom
			}
			return false, nil
		},
		Work:   func(context.Context) (int, error) { t.Fatal("work without the claim"); return 0, nil },
		Result: func(context.Context) (int, bool, error) { return 0, false, nil },
	})
	if !errors.Is(err, boom) || calls != 3 {
		t.Fatalf("err %v after %d claims; want the recorded failure at the third", err, calls)
	}
}

// A claim that never ends: ErrWaitTimeout after the wait, with polls
// that back off (not one per First), and a last claim attempt at the end.
func TestWaitTimeoutBacksOff(t *testing.T) {
	claims := 0
	wait := 500 * time.Millisecond
	start := time.Now()
	_, err := claim.Run(context.Background(), wait, claim.Steps[int]{
		Claim:  func(context.Context) (bool, error) { claims++; return false, nil },
		Work:   func(context.Context) (int, error) { t.Fatal("work without the claim"); return 0, nil },
		Result: func(context.Context) (int, bool, error) { return 0, false, nil },
	})
	if !errors.Is(err, claim.ErrWaitTimeout) {
		t.Fatalf("err %v, want ErrWaitTimeout", err)
	}
	if took := time.Since(start); took < wait {
		t.Fatalf("gave up after %v, before the wait of %v", took, wait)
	}
	// 10+20+40+80 ms, then every 100 ms: about 8 claims in 500 ms; without
	// backoff at First it would be 50.
	if claims < 3 || claims > int(wait/claim.First)/2 {
		t.Fatalf("%d claims in %v", claims, wait)
	}
}

// The claim lapses while waiting (its holder died): the waiter claims it
// and does the work itself.
func TestLapsedClaimIsTaken(t *testing.T) {
	claims := 0
	v, err := claim.Run(context.Background(), time.Second, claim.Steps[string]{
		Claim:  func(context.Context) (bool, error) { claims++; return claims == 4, nil },
		Work:   func(context.Context) (string, error) { return "mine", nil },
		Result: func(context.Context) (string, bool, error) { return "", false, nil },
	})
	if err != nil || v != "mine" {
		t.Fatalf("%q, %v", v, err)
	}
}

// The caller's context ends: its error, not ErrWaitTimeout, promptly.
func TestContextEndsWait(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := claim.Run(ctx, time.Minute, claim.Steps[int]{
		Claim:  func(context.Context) (bool, error) { return false, nil },
		Work:   func(context.Context) (int, error) { return 0, nil },
		Result: func(context.Context) (int, bool, error) { return 0, false, nil },
	})
	if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, claim.ErrWaitTimeout) {
		t.Fatalf("err %v", err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("took %v", took)
	}
}

// Busy serves a value at once when the first claim is lost, and is asked
// only once.
func TestBusyServesMeanwhile(t *testing.T) {
	busy := 0
	steps := claim.Steps[string]{
		Claim:  func(context.Context) (bool, error) { return false, nil },
		Work:   func(context.Context) (string, error) { return "", nil },
		Result: func(context.Context) (string, bool, error) { return "", false, nil },
		Busy:   func() (string, bool) { busy++; return "old", true },
	}
	if v, err := claim.Run(context.Background(), time.Second, steps); err != nil || v != "old" || busy != 1 {
		t.Fatalf("%q, %v, busy asked %d times", v, err, busy)
	}
	steps.Busy = func() (string, bool) { busy++; return "", false }
	busy = 0
	if _, err := claim.Run(context.Background(), 100*time.Millisecond, steps); !errors.Is(err, claim.ErrWaitTimeout) || busy != 1 {
		t.Fatalf("%v, busy asked %d times", err, busy)
	}
}
