package pipeline_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/logzio/logzio-jumpcloud/pipeline"
)

// A sink that never answers must stop an endless source after a bounded number of events: the
// stages' buffers fill, then everything waits. synctest makes "everything waits" observable
// (synctest.Wait returns once every goroutine of the pipeline is blocked) and runs the batch-age
// timers on a fake clock, so the test neither sleeps nor races.
func TestASinkThatNeverAnswersHoldsTheSourceBackAfterABoundedNumberOfEvents(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const lineBytes = 8 // every line is an 8-digit number, so batches hold a known count
		p := pipeline.Pipeline{
			Buffer:     4,
			Senders:    2,
			MaxPending: 3,
			BatchBytes: 3 * (lineBytes + 1), // a batch holds 3 lines, each counted with its newline
		}
		perBatch := p.BatchBytes / (lineBytes + 1)
		// Where emitted events can wait while the sink holds every sender: the two channels
		// around the transform, one event in the transform's hands and one in the batcher's
		// (the one that did not fit the batch it is flushing), the batches dispatched but not
		// acknowledged (at most MaxPending), and the one batch the batcher holds while it waits
		// for room among them.
		bound := 2*p.Buffer + 2 + (p.MaxPending+1)*perBatch

		var emitted atomic.Int64
		p.Source = pipeline.SourceFunc(func(stop context.Context, emit func(pipeline.Event) error) error {
			// Endless, but for a limit far past the bound, so that broken back-pressure fails
			// the test instead of hanging it.
			for i := 0; i < 1000*bound; i++ {
				if stop.Err() != nil {
					return nil
				}
				line := fmt.Appendf(nil, "%0*d", lineBytes, i)
				if err := emit(pipeline.Event{Data: line, Position: i + 1}); err != nil {
					return err
				}
				emitted.Add(1)
			}
			<-stop.Done()
			return nil
		})

		release := make(chan struct{})
		var sends atomic.Int64 // Send calls begun
		var mu sync.Mutex
		var delivered []string
		p.Sink = pipeline.SinkFunc(func(ctx context.Context, lines [][]byte) error {
			sends.Add(1)
			select {
			case <-release:
			case <-ctx.Done():
				return ctx.Err()
			}
			mu.Lock()
			defer mu.Unlock()
			for _, l := range lines {
				delivered = append(delivered, string(l))
			}
			return nil
		})
		var saved atomic.Value
		p.Store = pipeline.StoreFunc(func(pos any) error { saved.Store(pos); return nil })

		ctx, stop := context.WithCancel(context.Background())
		defer stop()
		done := make(chan error, 1)
		go func() { done <- p.Run(ctx) }()

		// The checks below use Errorf, not Fatalf, until the sink is released: goroutines left
		// blocked in the bubble would turn a clear failure into a deadlock panic.
		synctest.Wait() // every stage is blocked behind the sink
		held := emitted.Load()
		t.Logf("the source emitted %d events before the pipeline held it back; the bound is %d", held, bound)
		if held > int64(bound) {
			t.Errorf("the source emitted %d events while the sink answered nothing; the buffers hold at most %d", held, bound)
		}
		if got := sends.Load(); got != int64(p.Senders) {
			t.Errorf("%d Send calls are waiting, want one per sender (%d)", got, p.Senders)
		}
		time.Sleep(time.Hour) // on the fake clock: every batch-age timer fires
		synctest.Wait()
		if later := emitted.Load(); later != held {
			t.Errorf("an hour later the source had emitted %d events, not %d: memory grows while the sink is stuck", later, held)
		}

		stop()         // a graceful stop: the stages drain once the sink answers
		close(release) // the sink answers everything it holds and everything after
		if err := <-done; err != nil {
			t.Fatalf("Run returned %v", err)
		}
		total := int(emitted.Load())
		want := make([]string, total)
		for i := range want {
			want[i] = fmt.Sprintf("%0*d", lineBytes, i)
		}
		slices.Sort(delivered) // fixed width: the text order is the numeric order
		if !slices.Equal(delivered, want) {
			t.Fatalf("delivered %d lines, want each of the %d emitted exactly once", len(delivered), total)
		}
		if got := saved.Load(); got != total {
			t.Errorf("saved position %v, want %d: the position after the last event emitted", got, total)
		}
	})
}
