package pipeline_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/logzio/logzio-jumpcloud/pipeline"
)

// numbered emits events "0", "1", … each making its own count a resume point, n of them, or
// until stop when n < 0.
func numbered(n int) pipeline.Source {
	return pipeline.SourceFunc(func(stop context.Context, emit func(pipeline.Event) error) error {
		for i := 0; n < 0 || i < n; i++ {
			if stop.Err() != nil {
				return nil
			}
			if err := emit(pipeline.Event{Data: []byte(strconv.Itoa(i)), Position: i + 1}); err != nil {
				return err
			}
		}
		return nil
	})
}

// recorder is a Store and a Sink that remember what they were given.
type recorder struct {
	mu    sync.Mutex
	saved []any
	lines []string
}

func (r *recorder) Save(pos any) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.saved = append(r.saved, pos)
	return nil
}

func (r *recorder) take(lines [][]byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, l := range lines {
		r.lines = append(r.lines, string(l))
	}
}

func (r *recorder) lastSaved() any {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.saved) == 0 {
		return nil
	}
	return r.saved[len(r.saved)-1]
}

func fastRetry() pipeline.RetryPolicy {
	return pipeline.RetryPolicy{Initial: time.Millisecond, Max: 2 * time.Millisecond}
}

func TestRun(t *testing.T) {
	errRejected := errors.New("rejected for good")
	tests := map[string]struct {
		source    pipeline.Source
		senders   int
		send      func(r *recorder, attempts map[string]int, lines [][]byte) error
		wantErr   error
		wantLines int
		wantSaved any
	}{
		"every event is delivered once and the last position is saved": {
			source:    numbered(1000),
			send:      func(r *recorder, _ map[string]int, lines [][]byte) error { r.take(lines); return nil },
			wantLines: 1000,
			wantSaved: 1000,
		},
		"transient failures are retried until every event is delivered once": {
			source: numbered(200),
			send: func(r *recorder, attempts map[string]int, lines [][]byte) error {
				key := string(lines[0])
				if attempts[key]++; attempts[key] < 3 {
					return errors.New("503 from the receiver")
				}
				r.take(lines)
				return nil
			},
			wantLines: 200,
			wantSaved: 200,
		},
		"a permanent failure stops the pipeline and the saved position stays before it": {
			source:  numbered(10),
			senders: 1,
			send: func(r *recorder, _ map[string]int, lines [][]byte) error {
				if string(lines[0]) == "5" {
					return pipeline.Permanent(errRejected)
				}
				r.take(lines)
				return nil
			},
			wantErr:   errRejected,
			wantLines: 5,
			wantSaved: 5,
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			r := &recorder{}
			var mu sync.Mutex
			attempts := map[string]int{}
			p := pipeline.Pipeline{
				Source: tt.source,
				Sink: pipeline.SinkFunc(func(_ context.Context, lines [][]byte) error {
					mu.Lock()
					defer mu.Unlock()
					return tt.send(r, attempts, lines)
				}),
				Store:      r,
				BatchBytes: 1, // one event per batch: the most batches, the most reordering
				Senders:    tt.senders,
				Retry:      fastRetry(),
			}
			err := p.Run(context.Background())
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Run returned %v, want %v", err, tt.wantErr)
			}
			if len(r.lines) != tt.wantLines {
				t.Errorf("delivered %d lines, want %d", len(r.lines), tt.wantLines)
			}
			slices.Sort(r.lines)
			if len(slices.Compact(r.lines)) != len(r.lines) {
				t.Errorf("some lines were delivered twice")
			}
			if got := r.lastSaved(); got != tt.wantSaved {
				t.Errorf("last saved position %v, want %v", got, tt.wantSaved)
			}
		})
	}
}

func TestGracefulStopDeliversEverythingReadAndSavesThePositionAfterIt(t *testing.T) {
	r := &recorder{}
	ctx, stop := context.WithCancel(context.Background())
	var once sync.Once
	p := pipeline.Pipeline{
		Source: numbered(-1),
		Sink: pipeline.SinkFunc(func(_ context.Context, lines [][]byte) error {
			r.take(lines)
			r.mu.Lock()
			if len(r.lines) >= 500 {
				once.Do(stop)
			}
			r.mu.Unlock()
			return nil
		}),
		Store:      r,
		BatchBytes: 64,
	}
	if err := p.Run(ctx); err != nil {
		t.Fatalf("a graceful stop returned %v", err)
	}
	// Every line read was delivered, and the saved position is right after the last of them:
	// a restart from it neither repeats nor skips an event.
	if got, want := r.lastSaved(), len(r.lines); got != want {
		t.Errorf("saved position %v after delivering %d events", got, want)
	}
	if got := int(p.Stats().EventsRead.Load()); got != len(r.lines) {
		t.Errorf("read %d events but delivered %d", got, len(r.lines))
	}
}

func TestStopTimeoutAbandonsStuckBatchesAndSavesOnlyWhatWasDelivered(t *testing.T) {
	r := &recorder{}
	ctx, stop := context.WithCancel(context.Background())
	stuck := make(chan struct{})
	p := pipeline.Pipeline{
		Source: pipeline.SourceFunc(func(stopped context.Context, emit func(pipeline.Event) error) error {
			for i, line := range []string{"delivered", "stuck", "after"} {
				if err := emit(pipeline.Event{Data: []byte(line), Position: i + 1}); err != nil {
					return err
				}
			}
			<-stopped.Done()
			return nil
		}),
		Sink: pipeline.SinkFunc(func(ctx context.Context, lines [][]byte) error {
			if string(lines[0]) == "stuck" {
				close(stuck)
				<-ctx.Done() // the receiver never answers
				return ctx.Err()
			}
			r.take(lines)
			return nil
		}),
		Store:       r,
		BatchBytes:  1,
		StopTimeout: 20 * time.Millisecond,
	}
	go func() { <-stuck; stop() }()
	if err := p.Run(ctx); err != nil {
		t.Fatalf("a stop that timed out returned %v; it should abandon and return nil", err)
	}
	if got := r.lastSaved(); got != 1 {
		t.Errorf("saved position %v, want 1: nothing after the stuck batch may be marked safe", got)
	}
}

func TestTransformSkipsAndDropsStillMoveThePosition(t *testing.T) {
	r := &recorder{}
	p := pipeline.Pipeline{
		Source: pipeline.SourceFunc(func(_ context.Context, emit func(pipeline.Event) error) error {
			for i, line := range []string{"keep", "broken", "drop"} {
				if err := emit(pipeline.Event{Data: []byte(line), Position: i + 1}); err != nil {
					return err
				}
			}
			return nil
		}),
		Transform: func(data []byte) ([]byte, error) {
			switch string(data) {
			case "broken":
				return nil, fmt.Errorf("not a JSON object")
			case "drop":
				return nil, nil
			}
			return data, nil
		},
		Sink:  pipeline.SinkFunc(func(_ context.Context, lines [][]byte) error { r.take(lines); return nil }),
		Store: r,
	}
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(r.lines, []string{"keep"}) {
		t.Errorf("delivered %q, want only \"keep\"", r.lines)
	}
	if got := r.lastSaved(); got != 3 {
		t.Errorf("saved %v, want 3: skipped and dropped events must not stall the position", got)
	}
	if s := p.Stats(); s.EventsSkipped.Load() != 1 || s.EventsDropped.Load() != 1 {
		t.Errorf("skipped %d, dropped %d; want 1 and 1", s.EventsSkipped.Load(), s.EventsDropped.Load())
	}
}

func TestAFailingStoreStopsAnEndlessSource(t *testing.T) {
	p := pipeline.Pipeline{
		Source: numbered(-1),
		Sink:   pipeline.SinkFunc(func(context.Context, [][]byte) error { return nil }),
		Store:  pipeline.StoreFunc(func(any) error { return errors.New("disk full") }),
	}
	err := p.Run(context.Background())
	if err == nil || err.Error() != "saving the resume point: disk full" {
		t.Fatalf("Run returned %v", err)
	}
}

func TestAPositionOnlyEventIsSavedWithoutCallingTheSink(t *testing.T) {
	r := &recorder{}
	p := pipeline.Pipeline{
		Source: pipeline.SourceFunc(func(_ context.Context, emit func(pipeline.Event) error) error {
			return emit(pipeline.Event{Position: "end of an empty window"})
		}),
		Sink: pipeline.SinkFunc(func(context.Context, [][]byte) error {
			t.Error("the sink was called for a batch with no lines")
			return nil
		}),
		Store: r,
	}
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := r.lastSaved(); got != "end of an empty window" {
		t.Errorf("saved %v", got)
	}
}

func TestOneSendersPermanentFailureStopsThePipelineAtOnce(t *testing.T) {
	// The source is idle between polls and three other senders are free: the failure must still
	// end Run with that error, not wait for every sender to fail or for a stop.
	errRejected := errors.New("token rejected")
	p := pipeline.Pipeline{
		Source: pipeline.SourceFunc(func(stop context.Context, emit func(pipeline.Event) error) error {
			if err := emit(pipeline.Event{Data: []byte("a"), Position: 1}); err != nil {
				return err
			}
			<-stop.Done() // waiting for the next poll
			return nil
		}),
		Sink:    pipeline.SinkFunc(func(context.Context, [][]byte) error { return pipeline.Permanent(errRejected) }),
		Senders: 4,
		Retry:   fastRetry(),
	}
	done := make(chan error, 1)
	go func() { done <- p.Run(context.Background()) }()
	select {
	case err := <-done:
		if !errors.Is(err, errRejected) {
			t.Fatalf("Run returned %v, want %v", err, errRejected)
		}
	case <-time.After(20 * time.Second): // a safety limit: the fix returns in milliseconds
		t.Fatal("Run was still running long after a permanent failure")
	}
}
