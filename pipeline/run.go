package pipeline

import (
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/sync/errgroup"
)

// errStopTimeout is the cause of a hard stop once a graceful stop has run out of time.
var errStopTimeout = errors.New("graceful stop took longer than the stop timeout")

// batch is a run of lines delivered in one Send, and the resume point it makes safe.
type batch struct {
	seq      uint64 // dispatch order: the checkpoint advances through these without gaps
	lines    [][]byte
	size     int // bytes of lines, counting a newline each
	position any // the last Position among the batch's events, or nil
}

// Run moves events from the source to the sink until the source has nothing more to read or ctx
// is done, saving positions as delivery allows. Cancelling ctx is a graceful stop (see the
// package doc); Run then returns nil once the stages have drained, or once StopTimeout has passed
// and the rest is abandoned for the next run to read again. Run returns the first fatal error: the
// source's, a permanent error from the sink, or the store's. In every case the Store is given the
// last safe Position before Run returns.
func (p *Pipeline) Run(ctx context.Context) error {
	p.applyDefaults()

	// run ends every stage: a fatal error cancels it at once; a graceful stop cancels it only
	// when StopTimeout has passed. It does not inherit ctx's cancellation on purpose.
	run, fail := context.WithCancelCause(context.WithoutCancel(ctx))
	defer fail(context.Canceled)
	go p.enforceStopTimeout(ctx, run, fail)

	// The source stops reading on a graceful stop as well as on a fatal error.
	stop, stopSource := context.WithCancel(ctx)
	defer stopSource()
	context.AfterFunc(run, stopSource)

	events := make(chan Event, p.Buffer)
	transformed := make(chan Event, p.Buffer)
	batches := make(chan *batch) // unbuffered: a batch is built only when a sender is free for it
	acks := make(chan *batch, p.MaxPending)
	// pending holds one token per batch that is dispatched but not yet in the acknowledged
	// prefix: its capacity is the back-pressure on the batcher when an early batch is stuck.
	pending := make(chan struct{}, p.MaxPending)

	// Each stage closes the channel it writes, so shutdown flows downstream; the checkpoint runs
	// until acks is closed so that it always saves what was delivered, even after a fatal error.
	var g errgroup.Group
	stage := func(f func() error) {
		g.Go(func() error {
			err := f()
			if err != nil {
				fail(err)
			}
			return err
		})
	}
	stage(func() error { defer close(events); return p.read(ctx, stop, run, events) })
	stage(func() error { defer close(transformed); return p.transform(run, events, transformed) })
	stage(func() error { defer close(batches); return p.batch(run, transformed, batches, pending) })
	stage(func() error { defer close(acks); return p.sendAll(run, fail, batches, acks) })
	stage(func() error { return p.checkpoint(acks, pending, fail) })
	_ = g.Wait()

	if run.Err() == nil {
		return nil
	}
	cause := context.Cause(run)
	if errors.Is(cause, errStopTimeout) {
		p.Log.Warn().Int("abandoned_batches", len(pending)).Dur("stop_timeout", p.StopTimeout).
			Msg("stop timeout reached; undelivered batches will be read again on the next run")
		return nil
	}
	return cause
}

func (p *Pipeline) applyDefaults() {
	if p.Transform == nil {
		p.Transform = func(data []byte) ([]byte, error) { return data, nil }
	}
	if p.Store == nil {
		p.Store = StoreFunc(func(any) error { return nil })
	}
	if p.BatchBytes <= 0 {
		p.BatchBytes = 2 << 20
	}
	if p.BatchAge <= 0 {
		p.BatchAge = time.Second
	}
	if p.Senders <= 0 {
		p.Senders = 4
	}
	if p.MaxPending <= 0 {
		p.MaxPending = 4 * p.Senders
	}
	if p.MaxPending < p.Senders {
		p.MaxPending = p.Senders
	}
	if p.StopTimeout <= 0 {
		p.StopTimeout = 30 * time.Second
	}
	if p.Buffer <= 0 {
		p.Buffer = 1024
	}
}

// enforceStopTimeout turns a graceful stop into a hard one after StopTimeout.
func (p *Pipeline) enforceStopTimeout(ctx, run context.Context, fail context.CancelCauseFunc) {
	select {
	case <-run.Done():
		return
	case <-ctx.Done():
	}
	deadline := time.NewTimer(p.StopTimeout)
	defer deadline.Stop()
	select {
	case <-run.Done():
	case <-deadline.C:
		fail(errStopTimeout)
	}
}

// read runs the source. A source that returns the graceful stop's own cancellation has stopped
// gracefully.
func (p *Pipeline) read(ctx, stop, run context.Context, out chan<- Event) error {
	emit := func(e Event) error {
		select {
		case out <- e:
			if e.Data != nil {
				p.stats.EventsRead.Add(1)
			}
			return nil
		case <-run.Done():
			return context.Cause(run)
		}
	}
	err := p.Source.Read(stop, emit)
	if err != nil && run.Err() == nil && ctx.Err() != nil && errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// transform applies the Transform. An event it drops or cannot process still carries its
// Position on, or the checkpoint would stall behind it.
func (p *Pipeline) transform(run context.Context, in <-chan Event, out chan<- Event) error {
	for e := range in {
		if e.Data != nil {
			data, err := p.Transform(e.Data)
			switch {
			case err != nil:
				p.stats.EventsSkipped.Add(1)
				p.Log.Warn().Err(err).Int64("skipped_total", p.stats.EventsSkipped.Load()).
					Msg("skipping an event the transform cannot process")
				data = nil
			case data == nil:
				p.stats.EventsDropped.Add(1)
			}
			e.Data = data
		}
		if e.Data == nil && e.Position == nil {
			continue
		}
		select {
		case out <- e:
		case <-run.Done():
			return context.Cause(run)
		}
	}
	return nil
}

// batch groups events into batches of at most BatchBytes, flushed when full, when BatchAge has
// passed since their first event, and when the input ends.
func (p *Pipeline) batch(run context.Context, in <-chan Event, out chan<- *batch, pending chan<- struct{}) error {
	var (
		current *batch
		seq     uint64
		age     = time.NewTimer(p.BatchAge)
	)
	age.Stop()
	defer age.Stop()

	flush := func() error {
		if current == nil {
			return nil
		}
		age.Stop()
		b := current
		current = nil
		select {
		case pending <- struct{}{}:
		case <-run.Done():
			return context.Cause(run)
		}
		select {
		case out <- b:
			return nil
		case <-run.Done():
			return context.Cause(run)
		}
	}

	for {
		select {
		case e, ok := <-in:
			if !ok {
				return flush()
			}
			if current != nil && len(current.lines) > 0 && current.size+len(e.Data)+1 > p.BatchBytes {
				if err := flush(); err != nil {
					return err
				}
			}
			if current == nil {
				current = &batch{seq: seq}
				seq++
				age.Reset(p.BatchAge)
			}
			if e.Data != nil {
				current.lines = append(current.lines, e.Data)
				current.size += len(e.Data) + 1
			}
			if e.Position != nil {
				current.position = e.Position
			}
		case <-age.C:
			if err := flush(); err != nil {
				return err
			}
		case <-run.Done():
			return context.Cause(run)
		}
	}
}

// sendAll runs Senders goroutines that deliver batches, retrying transient failures, and report
// each delivered batch on acks.
func (p *Pipeline) sendAll(run context.Context, fail context.CancelCauseFunc, in <-chan *batch, acks chan<- *batch) error {
	var g errgroup.Group
	for range p.Senders {
		g.Go(func() error {
			for b := range in {
				if err := p.deliver(run, b); err != nil {
					fail(err) // stop every stage now, not once every sender has failed
					return err
				}
				b.lines = nil // delivered: the checkpoint needs only the position, not the data
				acks <- b     // the checkpoint reads acks until it is closed: this never blocks for long
			}
			return nil
		})
	}
	return g.Wait()
}

func (p *Pipeline) deliver(run context.Context, b *batch) error {
	if len(b.lines) == 0 {
		return nil // a batch that only carries a position has nothing to send
	}
	send := func() error { return p.Sink.Send(run, b.lines) }
	onRetry := func(err error, wait time.Duration) {
		p.stats.BatchRetries.Add(1)
		p.Log.Warn().Err(err).Int("lines", len(b.lines)).Dur("retry_in", wait).Msg("batch delivery failed; retrying")
	}
	if err := p.Retry.Retry(run, send, onRetry); err != nil {
		return err
	}
	p.stats.BatchesSent.Add(1)
	p.stats.EventsDelivered.Add(int64(len(b.lines)))
	p.stats.BytesDelivered.Add(int64(b.size))
	return nil
}

// checkpoint is the one owner of the resume point. It advances only through the contiguous
// prefix of acknowledged batches, so a batch acknowledged early never moves the position past an
// earlier one still in flight, and it saves the newest safe position once the acks queued so far
// are handled, and once more at the end.
func (p *Pipeline) checkpoint(acks <-chan *batch, pending <-chan struct{}, fail context.CancelCauseFunc) error {
	var (
		acked      = map[uint64]*batch{}
		next       uint64
		safe       any
		unsaved    bool
		saveFailed error
	)
	save := func() {
		if !unsaved || saveFailed != nil {
			return
		}
		if err := p.Store.Save(safe); err != nil {
			saveFailed = fmt.Errorf("saving the resume point: %w", err)
			fail(saveFailed) // stop reading now; keep draining acks so senders can finish
			return
		}
		unsaved = false
		p.stats.PositionsSaved.Add(1)
	}
	for b := range acks {
		acked[b.seq] = b
		for {
			done, ok := acked[next]
			if !ok {
				break
			}
			delete(acked, next)
			next++
			<-pending
			if done.position != nil {
				safe, unsaved = done.position, true
			}
		}
		if len(acks) == 0 {
			save()
		}
	}
	save()
	return saveFailed
}
