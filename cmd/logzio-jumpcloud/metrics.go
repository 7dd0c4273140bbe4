package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/logzio/logzio-jumpcloud/pipeline"
	"github.com/logzio/logzio-jumpcloud/sink"
)

// healthMargin is added to 2 × time_interval before a lack of progress counts as unhealthy: it
// covers a slow request (the source allows 60 s for a page) and a retry's backoff.
const healthMargin = time.Minute

// monitor watches the running pipeline from the outside, for whoever operates it. It logs one
// line per poll and, during a catch-up, a progress line on every tick; it serves the counters as
// Prometheus metrics on /metrics and the program's health on /healthz. It learns about polls from
// the JumpCloud requests going by (observeJumpCloud), about delivery from the checkpoints saved
// (observeSaves) and from the pipeline's and the sink's counters: the source and the sink know
// nothing of it.
type monitor struct {
	interval, lag time.Duration
	clock         func() time.Time
	log           zerolog.Logger
	stats         *pipeline.Stats
	sink          interface{ Stats() sink.Stats } // nil when the sink keeps no counters

	mu          sync.Mutex
	started     time.Time
	checkpoint  time.Time        // the last saved resume point
	savedAt     time.Time        // when it was saved
	reading     []*poll          // windows asked of JumpCloud whose end is not saved yet, oldest first
	polls       int64            // windows delivered in full
	lastPageAt  time.Time        // when JumpCloud last answered 200
	lastFailure string           // why the last JumpCloud request failed; "" when it succeeded
	requests    map[string]int64 // JumpCloud requests by outcome: ok, failed
	atLastPoll  counts           // the pipeline's counters when the last poll was delivered
	atLastTick  counts           // and at the last progress tick
	lastTickAt  time.Time
}

// poll is one window [start, end) read from JumpCloud.
type poll struct {
	start, end time.Time
	began      time.Time
	pages      int
}

// counts is a snapshot of the pipeline's counters, for the deltas a poll or a tick reports.
type counts struct{ events, batches, bytes int64 }

func newMonitor(interval, lag time.Duration, clock func() time.Time, log zerolog.Logger) *monitor {
	if clock == nil {
		clock = time.Now
	}
	now := clock()
	return &monitor{
		interval: interval, lag: lag, clock: clock, log: log,
		started: now, lastTickAt: now, requests: map[string]int64{},
	}
}

// watch gives the monitor the running pipeline's counters and, when it keeps them, the sink's.
func (m *monitor) watch(stats *pipeline.Stats, s pipeline.Sink) {
	m.stats = stats
	m.sink, _ = s.(interface{ Stats() sink.Stats })
}

// resumingFrom records where reading starts and when that checkpoint was written.
func (m *monitor) resumingFrom(position, savedAt time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.checkpoint, m.savedAt = position, savedAt
}

func (m *monitor) counts() counts {
	return counts{m.stats.EventsDelivered.Load(), m.stats.BatchesSent.Load(), m.stats.BytesDelivered.Load()}
}

// observeSaves wraps the checkpoint store: each position saved may complete polls.
func (m *monitor) observeSaves(store pipeline.Store) pipeline.Store {
	return pipeline.StoreFunc(func(pos any) error {
		if err := store.Save(pos); err != nil {
			return err
		}
		if at, ok := pos.(time.Time); ok {
			m.saved(at)
		}
		return nil
	})
}

// saved records a new checkpoint, and logs each poll it completes: a window is delivered in full
// once the checkpoint reaches its end.
func (m *monitor) saved(position time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.clock()
	m.checkpoint, m.savedAt = position, now
	for len(m.reading) > 0 && !m.reading[0].end.After(position) {
		m.delivered(m.reading[0], now)
		m.reading = m.reading[1:]
	}
}

// delivered logs the one line of a poll; m.mu is held.
func (m *monitor) delivered(p *poll, now time.Time) {
	current := m.counts()
	since := m.atLastPoll
	m.atLastPoll = current
	m.polls++
	m.log.Info().Time("window_start", p.start).Time("window_end", p.end).Int("pages", p.pages).
		Int64("events", current.events-since.events).Int64("batches", current.batches-since.batches).
		Int64("bytes", current.bytes-since.bytes).Dur("duration", now.Sub(p.began)).Msg("poll")
}

// observeJumpCloud wraps the transport of the JumpCloud client, telling m of every request: the
// window it asks for and whether JumpCloud answered it.
func (m *monitor) observeJumpCloud(next http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(req *http.Request) (*http.Response, error) {
		start, end := windowOf(req)
		resp, err := next.RoundTrip(req)
		switch {
		case err != nil:
			m.requestFailed(start, end, err.Error())
		case resp.StatusCode != http.StatusOK:
			m.requestFailed(start, end, "JumpCloud answered "+resp.Status)
		default:
			m.pageRead(start, end)
		}
		return resp, err
	})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

// windowOf reads the window a JumpCloud query asks for from a copy of its body.
func windowOf(req *http.Request) (start, end time.Time) {
	if req.GetBody == nil {
		return
	}
	body, err := req.GetBody()
	if err != nil {
		return
	}
	defer body.Close()
	var query struct {
		StartTime time.Time `json:"start_time"`
		EndTime   time.Time `json:"end_time"`
	}
	data, _ := io.ReadAll(io.LimitReader(body, 64<<10))
	_ = json.Unmarshal(data, &query)
	return query.StartTime, query.EndTime
}

func (m *monitor) pageRead(start, end time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.lastPageAt, m.lastFailure = m.clock(), ""
	m.requests["ok"]++
	m.pollOf(start, end).pages++
}

func (m *monitor) requestFailed(start, end time.Time, why string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.lastFailure = why
	m.requests["failed"]++
	m.pollOf(start, end)
}

// pollOf returns the poll reading [start, end), starting one if this is its first request; m.mu
// is held. Windows are read one after the other, so only the newest can be asked for again.
func (m *monitor) pollOf(start, end time.Time) *poll {
	if n := len(m.reading); n > 0 && m.reading[n-1].start.Equal(start) && m.reading[n-1].end.Equal(end) {
		return m.reading[n-1]
	}
	p := &poll{start: start, end: end, began: m.clock()}
	m.reading = append(m.reading, p)
	return p
}

// reportProgress logs progress on every tick, as of the time the tick carries, until stop is called.
func (m *monitor) reportProgress(ticks <-chan time.Time) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		for {
			select {
			case <-done:
				return
			case now := <-ticks:
				m.progress(now)
			}
		}
	}()
	return func() { close(done); <-finished }
}

// progress logs how a catch-up is going: events shipped, the rate since the last tick, and how
// far behind now the checkpoint is. It says nothing once caught up: the poll lines say it all.
func (m *monitor) progress(now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	current := m.counts()
	rate := 0.0
	if elapsed := now.Sub(m.lastTickAt).Seconds(); elapsed > 0 {
		rate = float64(current.events-m.atLastTick.events) / elapsed
	}
	m.atLastTick, m.lastTickAt = current, now
	behind := now.Sub(m.checkpoint)
	if behind <= m.lag+m.interval+healthMargin {
		return // caught up: between polls the checkpoint is up to lag + interval behind
	}
	m.log.Info().Int64("events_shipped", current.events).Float64("events_per_second", round(rate)).
		Time("checkpoint", m.checkpoint).Dur("behind", behind).Msg("catching up")
}

func round(x float64) float64 { return math.Round(x*10) / 10 }

// health says whether the program is making progress: JumpCloud answered, or a checkpoint was
// saved, within 2 × time_interval + healthMargin. Polls happen every interval, and a catch-up
// saves checkpoints as batches are delivered, so a longer silence means it is stuck.
func (m *monitor) health() (healthy bool, why string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.clock()
	limit := 2*m.interval + healthMargin
	progress, what := m.started, "started"
	if !m.lastPageAt.Before(progress) {
		progress, what = m.lastPageAt, "JumpCloud last answered"
	}
	if !m.savedAt.Before(progress) {
		progress, what = m.savedAt, "checkpoint last saved"
	}
	quiet := now.Sub(progress)
	state := fmt.Sprintf("%s %s ago; checkpoint %s, %s behind now",
		what, ago(quiet), m.checkpoint.UTC().Format(time.RFC3339), ago(now.Sub(m.checkpoint)))
	if m.lastFailure != "" {
		state += "; the last JumpCloud request failed: " + m.lastFailure
	}
	if quiet > limit {
		return false, fmt.Sprintf("unhealthy: no progress for more than %s (2 × time_interval + %s): %s", ago(limit), ago(healthMargin), state)
	}
	return true, "ok: " + state
}

func ago(d time.Duration) string { return max(d, 0).Round(time.Second).String() }

func (m *monitor) serveHealth(w http.ResponseWriter, _ *http.Request) {
	healthy, why := m.health()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if !healthy {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	fmt.Fprintln(w, why)
}

// serveMetrics writes the Prometheus text exposition format (version 0.0.4).
func (m *monitor) serveMetrics(w http.ResponseWriter, _ *http.Request) {
	var b bytes.Buffer
	m.writeMetrics(&b)
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	_, _ = w.Write(b.Bytes())
}

func (m *monitor) writeMetrics(w io.Writer) {
	p := exposition{w: w}
	s := m.stats
	p.counter("events_read_total", "Events read from JumpCloud.", s.EventsRead.Load())
	p.counter("events_shipped_total", "Events in batches the Logz.io listener took.", s.EventsDelivered.Load())
	p.counter("events_dropped_total", "Events the transform dropped on purpose.", s.EventsDropped.Load())
	p.counter("events_skipped_total", "Events the transform could not process (each logged).", s.EventsSkipped.Load())
	p.counter("shipped_bytes_total", "Bytes of the events shipped, before compression.", s.BytesDelivered.Load())
	batches := []sample{{`outcome="delivered"`, float64(s.BatchesSent.Load())}, {`outcome="retried"`, float64(s.BatchRetries.Load())}}
	if m.sink != nil {
		k := m.sink.Stats()
		batches = append(batches, sample{`outcome="split"`, float64(k.Splits)})
		p.counter("listener_requests_total", "Requests made to the Logz.io listener, retries and halves of split batches included.", k.Requests)
		p.counter("listener_request_bytes_total", "Compressed bytes sent to the Logz.io listener.", k.BytesSent)
		p.counter("lines_rejected_total", "Lines the Logz.io listener rejected as malformed, oversized or empty.", k.LinesRejected)
		p.counter("lines_dropped_total", "Lines dropped as too large for the Logz.io listener even alone.", k.LinesDropped)
		p.counter("lines_truncated_total", "Lines shortened to fit the Logz.io listener's line limit.", k.LinesTruncated)
	}
	p.family("batches_total", "Batches by outcome: delivered (the listener took it), retried (an attempt failed and was retried), split (too large, sent in halves).", "counter", batches...)

	m.mu.Lock()
	now := m.clock()
	requests := []sample{{`outcome="ok"`, float64(m.requests["ok"])}, {`outcome="failed"`, float64(m.requests["failed"])}}
	polls, checkpoint, savedAt, lastPageAt := m.polls, m.checkpoint, m.savedAt, m.lastPageAt
	m.mu.Unlock()
	healthy, _ := m.health()

	p.family("jumpcloud_requests_total", "Requests made to JumpCloud, by outcome.", "counter", requests...)
	p.counter("polls_total", "Windows read from JumpCloud and delivered in full.", polls)
	p.gauge("checkpoint_timestamp_seconds", "The saved resume point, as a Unix time.", unixSeconds(checkpoint))
	p.gauge("checkpoint_lag_seconds", "How far the saved resume point is behind now.", now.Sub(checkpoint).Seconds())
	p.gauge("checkpoint_age_seconds", "Seconds since the checkpoint was last saved.", now.Sub(savedAt).Seconds())
	p.gauge("last_jumpcloud_success_timestamp_seconds", "When JumpCloud last answered a request, as a Unix time (0: never).", unixSeconds(lastPageAt))
	p.gauge("healthy", "1 when /healthz answers 200, 0 when it answers 503.", oneIf(healthy))
}

func oneIf(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func unixSeconds(t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return float64(t.UnixMilli()) / 1000
}

// exposition writes metric families in the Prometheus text format, each with its HELP and TYPE.
type exposition struct{ w io.Writer }

type sample struct {
	labels string // such as outcome="ok", or ""
	value  float64
}

const metricPrefix = "logzio_jumpcloud_"

func (e exposition) counter(name, help string, value int64) {
	e.family(name, help, "counter", sample{value: float64(value)})
}

func (e exposition) gauge(name, help string, value float64) {
	e.family(name, help, "gauge", sample{value: value})
}

func (e exposition) family(name, help, kind string, samples ...sample) {
	name = metricPrefix + name
	fmt.Fprintf(e.w, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, kind)
	for _, s := range samples {
		value := strconv.FormatFloat(s.value, 'g', -1, 64)
		if s.labels == "" {
			fmt.Fprintf(e.w, "%s %s\n", name, value)
		} else {
			fmt.Fprintf(e.w, "%s{%s} %s\n", name, s.labels, value)
		}
	}
}

// serveOps serves /metrics and /healthz on address until the returned stop is called.
func serveOps(address string, m *monitor, log zerolog.Logger) (stop func(), err error) {
	listener, err := net.Listen("tcp", address)
	if err != nil {
		return nil, fmt.Errorf("--listen %s: %w; give a free address, such as --listen :9090", address, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", m.serveMetrics)
	mux.HandleFunc("GET /healthz", m.serveHealth)
	server := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = server.Serve(listener) }()
	log.Info().Str("address", listener.Addr().String()).Msg("serving /metrics and /healthz")
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = server.Shutdown(ctx)
	}, nil
}
