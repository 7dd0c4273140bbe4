package pipeline

import "sync/atomic"

// Stats counts what a pipeline has done. Every field is safe to read while the pipeline runs.
type Stats struct {
	EventsRead      atomic.Int64 // events emitted by the source that carry data
	EventsDropped   atomic.Int64 // events the transform dropped on purpose
	EventsSkipped   atomic.Int64 // events the transform could not process (each logged)
	EventsDelivered atomic.Int64 // lines in batches the sink has taken
	BatchesSent     atomic.Int64 // batches the sink has taken
	BatchRetries    atomic.Int64 // failed Send attempts that were retried
	BytesDelivered  atomic.Int64 // bytes of lines (before any encoding) in batches taken
	PositionsSaved  atomic.Int64 // successful Store.Save calls
}

// Stats returns the pipeline's live counters.
func (p *Pipeline) Stats() *Stats { return &p.stats }
