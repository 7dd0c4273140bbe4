package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"runtime/metrics"
	"time"

	"github.com/rs/zerolog"

	"github.com/logzio/logzio-jumpcloud/checkpoint"
	"github.com/logzio/logzio-jumpcloud/config"
	"github.com/logzio/logzio-jumpcloud/pipeline"
	"github.com/logzio/logzio-jumpcloud/sink"
	"github.com/logzio/logzio-jumpcloud/source"
)

// ship runs the pipeline until ctx is done or, with opts.once, until it has caught up. A monitor
// watches it: it logs each poll and the progress of a catch-up, and, with opts.listen, serves
// /metrics and /healthz.
func ship(ctx context.Context, cfg *config.Config, opts *options, log zerolog.Logger) error {
	store := checkpoint.Open(opts.lastTimePath)
	start, err := resumePoint(cfg, store, log, time.Now)
	if err != nil {
		return err
	}
	mon := newMonitor(cfg.JumpCloud.Interval, cfg.JumpCloud.Lag, opts.clock, log)
	mon.resumingFrom(start, modTime(store.Path()))
	jumpcloud := &http.Client{Transport: mon.observeJumpCloud(http.DefaultTransport)}
	p, err := wirePipeline(cfg, store, start, opts.once, log, time.Now, jumpcloud)
	if err != nil {
		return err
	}
	mon.watch(p.Stats(), p.Sink)
	p.Store = mon.observeSaves(p.Store)

	if opts.listen != "" {
		stopServing, err := serveOps(opts.listen, mon, log)
		if err != nil {
			return err
		}
		defer stopServing()
	}
	ticks := opts.progressTicks
	if ticks == nil {
		ticker := time.NewTicker(progressEvery)
		defer ticker.Stop()
		ticks = ticker.C
	}
	stopProgress := mon.reportProgress(ticks)
	err = p.Run(ctx)
	stopProgress()
	if err != nil {
		return err
	}
	s := p.Stats()
	log.Info().Int64("events_shipped", s.EventsDelivered.Load()).Int64("batches", s.BatchesSent.Load()).
		Int64("skipped", s.EventsSkipped.Load()).Uint64("heap_allocs", heapAllocs()).Msg("stopped")
	return nil
}

// heapAllocs counts the heap objects allocated since the program started (benchmarks divide it
// by the events shipped).
func heapAllocs() uint64 {
	sample := []metrics.Sample{{Name: "/gc/heap/allocs:objects"}}
	metrics.Read(sample)
	return sample[0].Value.Uint64()
}

// stopDeliveryFor is how long in-flight batches may take to deliver after a stop signal.
const stopDeliveryFor = 25 * time.Second

// progressEvery is how often a catch-up logs its progress.
const progressEvery = 10 * time.Second

// modTime returns when the file at path was last written, or now if it cannot tell.
func modTime(path string) time.Time {
	if info, err := os.Stat(path); err == nil {
		return info.ModTime()
	}
	return time.Now()
}

// newPipeline wires the stages, in the order data flows: where to start comes from the
// checkpoint, the source reads JumpCloud from there, the transform shapes each event, the sink
// posts batches to the listener, and the checkpoint store records how far delivery got.
func newPipeline(cfg *config.Config, store *checkpoint.File, once bool, log zerolog.Logger, now func() time.Time) (*pipeline.Pipeline, error) {
	start, err := resumePoint(cfg, store, log, now)
	if err != nil {
		return nil, err
	}
	return wirePipeline(cfg, store, start, once, log, now, nil)
}

// wirePipeline is newPipeline once the start is known; jumpcloudClient is the source's HTTP
// client (nil: the source's default).
func wirePipeline(cfg *config.Config, store *checkpoint.File, start time.Time, once bool, log zerolog.Logger,
	now func() time.Time, jumpcloudClient *http.Client) (*pipeline.Pipeline, error) {
	retry := pipeline.RetryPolicy{}
	jumpcloud := source.New(source.Config{
		URL:      cfg.JumpCloud.URL,
		APIKey:   string(cfg.JumpCloud.Token),
		OrgID:    cfg.JumpCloud.OrgID,
		Services: cfg.JumpCloud.Services,
		PageSize: cfg.JumpCloud.PageSize,
		Start:    start,
		Lag:      cfg.JumpCloud.Lag,
		Interval: cfg.JumpCloud.Interval,
		Once:     once,
		Retry:    retry,
		Client:   jumpcloudClient,
		Log:      log.With().Str("stage", "source").Logger(),
		Now:      now,
	})
	logzio, err := sink.New(sink.Config{
		URL:   cfg.Logzio.URL,
		Token: string(cfg.Logzio.Token),
		Type:  cfg.Logzio.Type,
		Retry: retry,
		Log:   log.With().Str("stage", "sink").Logger(),
	})
	if err != nil {
		return nil, err
	}
	return &pipeline.Pipeline{
		Source:    jumpcloud,
		Transform: logzio.FitAfter(source.NewTransform(source.TransformConfig{Type: cfg.Logzio.Type, OrgID: cfg.JumpCloud.OrgID})),
		Sink:      logzio,
		Store:     pipeline.StoreFunc(func(pos any) error { return store.Save(pos.(time.Time)) }),
		Log:       log,
		Retry:     retry,
		// Delivery after a stop signal gets 25 s, so that saving the checkpoint and exiting fit
		// inside the 30 s a `docker stop -t 30` or a default Kubernetes grace period allows.
		StopTimeout: stopDeliveryFor,
	}, nil
}

// resumePoint decides where reading starts: the checkpoint wins over start_date, which wins over
// now. It first proves the checkpoint can be written, so a read-only or full disk stops the
// program before anything is shipped.
func resumePoint(cfg *config.Config, store *checkpoint.File, log zerolog.Logger, now func() time.Time) (time.Time, error) {
	if err := store.CheckWritable(); err != nil {
		return time.Time{}, err
	}
	start, found, err := store.Load()
	if err != nil {
		return time.Time{}, err
	}
	if found {
		log.Info().Time("start", start).Str("file", store.Path()).Msg("resuming from the checkpoint")
		return start, nil
	}
	start, from := cfg.JumpCloud.StartDate, "start_date"
	if start.IsZero() {
		start, from = now().UTC().Truncate(time.Millisecond), "now"
	}
	// Record it at once: a restart before the first delivery must resume here, not at a new now.
	if err := store.Save(start); err != nil {
		return time.Time{}, fmt.Errorf("recording the start point: %w", err)
	}
	log.Info().Time("start", start).Str("from", from).Msg("starting without a checkpoint")
	return start, nil
}
