// Package pipeline moves records from a source to a sink through concurrent stages joined by
// bounded channels, and tells a checkpoint store how far delivery has safely got.
//
//	Source ──Event──▶ Transform ──Event──▶ batcher ──Batch──▶ N senders (Sink) ──ack──▶ Store
//
// It knows nothing about where records come from or go to. An embedder supplies:
//
//   - a Source that reads events in order, each carrying the resume Position it makes safe;
//   - an optional Transform that rewrites or drops one event's data;
//   - a Sink that delivers one batch of lines per call, reporting success or an error;
//   - an optional Store that saves a Position.
//
// Bounded channels give back-pressure: a slow sink slows the source and memory stays flat.
// Batches may be acknowledged out of order; the Store only ever sees the Position at the end of
// the contiguous acknowledged prefix, so nothing before a saved Position is undelivered.
//
// Stopping: cancelling the context given to Run is a graceful stop. The source stops at its next
// Position, the stages drain, in-flight batches are delivered (for at most StopTimeout), and the
// last safe Position is saved. Whatever was not acknowledged by then is simply read again on the
// next run.
package pipeline

import (
	"context"
	"time"

	"github.com/rs/zerolog"
)

// Event is one record on its way from the source to the sink.
type Event struct {
	// Data is the record as the sink writes it (for a JSON-lines sink, one JSON object).
	// An event with nil Data carries only a Position, for example the end of an empty read window.
	Data []byte
	// Position, when not nil, is a resume point that becomes safe once this event and every event
	// before it have been delivered. The pipeline hands it to the Store unchanged.
	Position any
}

// Source reads events, in order.
type Source interface {
	// Read calls emit for each event, in order, and returns nil when it has nothing more to read.
	//
	// When stop is done, Read should return nil promptly, right after an event that carries a
	// Position, so that nothing is emitted beyond the last resume point (a graceful stop).
	// emit blocks while the pipeline is full; it returns an error only when the pipeline is
	// shutting down hard, and Read should then return that error.
	Read(stop context.Context, emit func(Event) error) error
}

// Transform rewrites one event's Data. It returns nil to drop the event (its Position still
// counts), or an error to skip it with a counted warning.
type Transform func(data []byte) ([]byte, error)

// Sink delivers batches of lines.
type Sink interface {
	// Send makes one attempt to deliver lines, and is called from several goroutines at once.
	// It returns nil when the receiver has taken the batch, including when the receiver accepted
	// some lines and rejected others for good (a resend would duplicate the accepted ones).
	// It returns an error wrapped by Permanent when retrying cannot help, which stops the
	// pipeline; any other error is transient and the pipeline retries the batch with backoff.
	Send(ctx context.Context, lines [][]byte) error
}

// Store saves resume points.
type Store interface {
	// Save records pos as the point from which the next run should resume. It is called from a
	// single goroutine, with positions in the order the source emitted them. An error stops the
	// pipeline.
	Save(pos any) error
}

// Pipeline wires a Source, a Transform, a Sink and a Store. The zero value of every optional
// field picks the default given in its comment.
type Pipeline struct {
	Source    Source
	Transform Transform // optional: events pass unchanged
	Sink      Sink
	Store     Store // optional: positions are not saved
	Log       zerolog.Logger

	BatchBytes  int           // flush before a batch's lines exceed this many bytes (default 2 MiB)
	BatchAge    time.Duration // flush a batch this long after its first event (default 1s)
	Senders     int           // concurrent Send calls (default 4)
	MaxPending  int           // batches sent but not yet in the acknowledged prefix (default 4×Senders)
	StopTimeout time.Duration // after a graceful stop begins, how long delivery may go on (default 30s)
	Retry       RetryPolicy   // how Send is retried
	Buffer      int           // events held in each channel between stages (default 1024)

	stats Stats
}

// StoreFunc adapts a function to the Store interface.
type StoreFunc func(pos any) error

// Save calls f(pos).
func (f StoreFunc) Save(pos any) error { return f(pos) }

// SourceFunc adapts a function to the Source interface.
type SourceFunc func(stop context.Context, emit func(Event) error) error

// Read calls f(stop, emit).
func (f SourceFunc) Read(stop context.Context, emit func(Event) error) error { return f(stop, emit) }

// SinkFunc adapts a function to the Sink interface.
type SinkFunc func(ctx context.Context, lines [][]byte) error

// Send calls f(ctx, lines).
func (f SinkFunc) Send(ctx context.Context, lines [][]byte) error { return f(ctx, lines) }
