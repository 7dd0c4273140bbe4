package pipeline

import (
	"context"
	"slices"
	"testing"
)

func TestCheckpointAdvancesOnlyThroughTheContiguousAcknowledgedPrefix(t *testing.T) {
	var saved []any
	p := &Pipeline{Store: StoreFunc(func(pos any) error { saved = append(saved, pos); return nil })}
	p.applyDefaults()

	// Unbuffered: each send returns only once the previous ack has been handled in full.
	acks := make(chan *batch)
	pending := make(chan struct{}, 8)
	for range 4 {
		pending <- struct{}{}
	}
	done := make(chan error)
	go func() { done <- p.checkpoint(acks, pending, func(error) {}) }()

	acks <- &batch{seq: 2, position: "after-2"}
	acks <- &batch{seq: 1, position: "after-1"}
	acks <- &batch{seq: 3} // carries no position of its own
	if len(saved) != 0 {
		t.Fatalf("saved %v while batch 0 was still unacknowledged", saved)
	}
	acks <- &batch{seq: 0, position: "after-0"}
	close(acks)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if want := []any{"after-2"}; !slices.Equal(saved, want) {
		t.Errorf("saved %v, want %v", saved, want)
	}
	if len(pending) != 0 {
		t.Errorf("%d pending tokens not released after the prefix advanced", len(pending))
	}
}

func TestCheckpointFailureStopsThePipelineButKeepsDraining(t *testing.T) {
	p := &Pipeline{Store: StoreFunc(func(any) error { return context.DeadlineExceeded })}
	p.applyDefaults()
	acks := make(chan *batch)
	pending := make(chan struct{}, 8)
	pending <- struct{}{}
	pending <- struct{}{}
	var failedWith error
	done := make(chan error)
	go func() { done <- p.checkpoint(acks, pending, func(err error) { failedWith = err }) }()
	acks <- &batch{seq: 0, position: 1}
	acks <- &batch{seq: 1, position: 2} // still received: senders must never block on acks
	close(acks)
	err := <-done
	if err == nil || failedWith == nil {
		t.Fatalf("a failed save must fail the pipeline; got %v", err)
	}
}
