package pipeline

import (
	"context"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// RetryPolicy shapes the jittered exponential backoff between attempts. Attempts go on until
// one succeeds, fails permanently, or the context ends: a transient failure never loses data.
type RetryPolicy struct {
	Initial time.Duration // first wait (default 500ms)
	Max     time.Duration // longest wait between attempts (default 30s)
}

func (p RetryPolicy) newBackOff() backoff.BackOff {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = p.Initial
	if b.InitialInterval <= 0 {
		b.InitialInterval = 500 * time.Millisecond
	}
	b.MaxInterval = p.Max
	if b.MaxInterval <= 0 {
		b.MaxInterval = 30 * time.Second
	}
	b.MaxElapsedTime = 0 // never give up on a transient failure
	b.Reset()
	return b
}

// Retry calls op until it returns nil or a Permanent error, or ctx is done, waiting between
// attempts as p says, and at least as long as a RetryAfter error asks. onRetry, when not nil,
// is told of each failed attempt and the wait before the next. Retry returns nil, the permanent
// error (unwrapped from its mark only by errors.As), or the last error joined with ctx's.
func (p RetryPolicy) Retry(ctx context.Context, op func() error, onRetry func(err error, wait time.Duration)) error {
	b := p.newBackOff()
	for {
		err := op()
		if err == nil || IsPermanent(err) {
			return err
		}
		if ctx.Err() != nil {
			return &stoppedError{last: err, cause: context.Cause(ctx)}
		}
		wait := b.NextBackOff()
		if asked, ok := retryAfter(err); ok && asked > wait {
			wait = asked
		}
		if onRetry != nil {
			onRetry(err, wait)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return &stoppedError{last: err, cause: context.Cause(ctx)}
		case <-t.C:
		}
	}
}

// stoppedError is a retry cut short by its context: it reads as the last failure, and matches
// the context's error with errors.Is.
type stoppedError struct{ last, cause error }

func (e *stoppedError) Error() string   { return "gave up retrying on stop: " + e.last.Error() }
func (e *stoppedError) Unwrap() []error { return []error{e.cause, e.last} }
