// Package source reads JumpCloud Directory Insights events for the pipeline, and holds the
// transform that shapes them for Logz.io.
//
// The reader pages through time windows [start, now-lag) in ascending order. JumpCloud orders
// events by timestamp only to the millisecond, so the reader emits events in units that share a
// millisecond; the last event of a unit carries the start of the next unit's millisecond as its
// resume point, and the last event of a window carries the window's end. A resume point R thus
// always means: every event before R was emitted, none at or after R was.
package source

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/logzio/logzio-jumpcloud/pipeline"
)

// Retention is how far back JumpCloud keeps events on most plans.
const Retention = 90 * 24 * time.Hour

// DefaultURL is the Directory Insights events endpoint of JumpCloud's US data centre.
const DefaultURL = "https://api.jumpcloud.com/insights/directory/v1/events"

// Config says what to read and from where.
type Config struct {
	URL      string   // the events endpoint (default DefaultURL)
	APIKey   string   // sent as x-api-key
	OrgID    string   // sent as x-org-id when set (multi-tenant admin keys)
	Services []string // default ["all"]
	PageSize int      // rows per page, 1..10000 (default 10000)

	Start    time.Time     // the first window starts here (the checkpoint, or start_date, or now)
	Lag      time.Duration // never read events newer than now - Lag: they may not all be visible yet
	Interval time.Duration // between polls (default 5m)
	Once     bool          // read up to now - Lag once, then return

	Client         *http.Client         // default: a client with no overall timeout; redirects are not followed
	RequestTimeout time.Duration        // how long JumpCloud may send nothing, waiting for an answer or within it (default 60s)
	Retry          pipeline.RetryPolicy // for failed pages
	Log            zerolog.Logger
	Now            func() time.Time // default time.Now
}

// JumpCloud is a pipeline.Source reading Directory Insights events.
type JumpCloud struct {
	cfg   Config
	stats Stats
}

// Stats counts what a JumpCloud reader has done. Every field is safe to read while it runs.
type Stats struct {
	Pages   atomic.Int64 // pages read and decoded in full
	Events  atomic.Int64 // events emitted
	Untimed atomic.Int64 // events read without a readable timestamp (each logged, and shipped)
}

// Stats returns the reader's live counters.
func (j *JumpCloud) Stats() *Stats { return &j.stats }

// New returns a reader for cfg, with defaults filled in.
func New(cfg Config) *JumpCloud {
	if cfg.URL == "" {
		cfg.URL = DefaultURL
	}
	if len(cfg.Services) == 0 {
		cfg.Services = []string{"all"}
	}
	if cfg.PageSize <= 0 || cfg.PageSize > 10000 {
		cfg.PageSize = 10000
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 5 * time.Minute
	}
	client := http.Client{}
	if cfg.Client != nil {
		client = *cfg.Client
	}
	if client.CheckRedirect == nil {
		// Go re-sends custom headers, x-api-key among them, to wherever a redirect points: a
		// redirect is answered as it is (a clear error) instead.
		client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	}
	cfg.Client = &client
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 60 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &JumpCloud{cfg: cfg}
}

// Read polls window after window until stop is done (or, with Once, until it has caught up),
// emitting every event once, in order. See pipeline.Source.
func (j *JumpCloud) Read(stop context.Context, emit func(pipeline.Event) error) error {
	start := j.cfg.Start.UTC()
	if oldest := j.cfg.Now().Add(-Retention); start.Before(oldest) {
		j.cfg.Log.Warn().Time("start", start).Time("oldest_available", oldest).
			Msg("start is older than JumpCloud keeps events; starting at the oldest available")
		start = oldest.Truncate(time.Millisecond)
	}
	for {
		// The window's end is a whole millisecond, so it is exactly representable in lastTime.txt.
		end := j.cfg.Now().Add(-j.cfg.Lag).UTC().Truncate(time.Millisecond)
		if end.After(start) {
			if err := j.readWindow(stop, emit, start, end); err != nil {
				if stop.Err() != nil && errors.Is(err, context.Canceled) {
					return nil
				}
				return err
			}
			start = end
		} else {
			// An empty or inverted window would get a 400; JumpCloud must never see one.
			j.cfg.Log.Debug().Time("start", start).Time("end", end).Msg("nothing to read yet")
		}
		if j.cfg.Once {
			return nil
		}
		wait := time.NewTimer(j.cfg.Interval)
		select {
		case <-stop.Done():
			wait.Stop()
			return nil
		case <-wait.C:
		}
	}
}

// unit holds the events read but not yet emitted: those of the newest millisecond, which may
// continue on the next page.
type unit struct {
	events [][]byte
	ms     int64 // the millisecond they share
	hasMs  bool  // false while the unit holds only events without a readable timestamp
}

// window is the state of reading one window [start, end).
type window struct {
	j          *JumpCloud
	emit       func(pipeline.Event) error
	start, end time.Time
	floor      time.Time // every event before floor has been emitted, or lies before the window
	held       unit
	pageStart  unit // held as the current page began, or empty once a unit was emitted since
	// element counts the current attempt's elements; every element of the page before
	// emittedBefore was emitted (or skipped) by an earlier attempt, which is how a retry knows an
	// event without a timestamp, that floor cannot place, was already shipped.
	element, emittedBefore int
	events                 int
	pages                  int
}

// readWindow emits every event with start <= timestamp < end, page by page, as each page
// streams in.
func (j *JumpCloud) readWindow(stop context.Context, emit func(pipeline.Event) error, start, end time.Time) error {
	began := time.Now() // durations use the real clock, whatever Now says
	w := &window{j: j, emit: emit, start: start, end: end, floor: start}
	var cursor json.RawMessage
	for {
		if stop.Err() != nil {
			return stop.Err() // the held unit is dropped: it is read again from the last resume point
		}
		next, last, err := w.readPage(stop, cursor)
		if err != nil {
			return err
		}
		if last {
			break
		}
		cursor = next
	}
	if err := w.flush(end); err != nil {
		return err
	}
	j.cfg.Log.Debug().Time("window_start", start).Time("window_end", end).Int("pages", w.pages).
		Int("events", w.events).Dur("duration", time.Since(began)).Msg("read window")
	return nil
}

// readPage reads the page after cursor, retrying a failed attempt from the same cursor. A retry
// skips the events before the last resume point emitted and drops what the failed attempt added
// to the held unit, so that nothing is doubled or skipped.
func (w *window) readPage(stop context.Context, cursor json.RawMessage) (next json.RawMessage, last bool, err error) {
	body, err := json.Marshal(query{
		Service:     w.j.cfg.Services,
		StartTime:   w.start.Format(time.RFC3339Nano),
		EndTime:     w.end.Format(time.RFC3339Nano),
		Limit:       w.j.cfg.PageSize,
		Sort:        "ASC",
		SearchAfter: cursor,
	})
	if err != nil {
		return nil, false, err
	}
	w.pageStart, w.emittedBefore = w.held, 0
	attempt := func() error {
		w.held.events = w.held.events[:len(w.pageStart.events)]
		w.held.ms, w.held.hasMs = w.pageStart.ms, w.pageStart.hasMs
		w.element = 0
		next, last, err = w.j.readAnswer(stop, body, w.take)
		return err
	}
	onRetry := func(err error, wait time.Duration) {
		w.j.cfg.Log.Warn().Err(err).Dur("retry_in", wait).Msg("reading a JumpCloud page failed; retrying")
	}
	if err := w.j.cfg.Retry.Retry(stop, attempt, onRetry); err != nil {
		return nil, false, err
	}
	w.pages++
	w.j.stats.Pages.Add(1)
	return next, last, nil
}

// take handles one event of a page: it joins the held unit, or, when it starts a later
// millisecond, the held unit is emitted first with that millisecond as its resume point.
func (w *window) take(data []byte) error {
	index := w.element
	w.element++
	ts, ok := Timestamp(data)
	if !ok {
		if index < w.emittedBefore {
			return nil // shipped by an earlier attempt at this page
		}
		// Still shipped, inside the current unit: an audit record is never dropped for a
		// missing field.
		w.j.cfg.Log.Warn().Int64("untimed_total", w.j.stats.Untimed.Add(1)).
			Msg("event without a readable timestamp; shipping it with its neighbours")
		w.held.events = append(w.held.events, data)
		return nil
	}
	if ts.Before(w.floor) {
		return nil // emitted already, or before the window (the server may compare coarsely)
	}
	if !ts.Before(w.end) {
		return errPastEnd // ordered by millisecond, so every later event is past the end too
	}
	ms := ts.UnixMilli()
	if w.held.hasMs && ms < w.held.ms {
		// JumpCloud orders by millisecond, so this breaks its contract; joining the unit keeps
		// resume points moving forward, and the event is shipped all the same.
		w.j.cfg.Log.Warn().Time("timestamp", ts).Msg("event out of millisecond order; shipping it with its neighbours")
		ms = w.held.ms
	}
	if w.held.hasMs && ms != w.held.ms {
		if err := w.flush(time.UnixMilli(ms).UTC()); err != nil {
			return pipeline.Permanent(err) // the pipeline is stopping hard: no retry
		}
		w.emittedBefore = index
	}
	w.held.events = append(w.held.events, data)
	w.held.ms, w.held.hasMs = ms, true
	return nil
}

// errPastEnd ends a page at the first event at or after the window's end.
var errPastEnd = fmt.Errorf("past the window's end: %w", errStopDecoding)

// flush emits the held unit; its last event makes resumeAt safe.
func (w *window) flush(resumeAt time.Time) error {
	if len(w.held.events) == 0 {
		return w.emit(pipeline.Event{Position: resumeAt})
	}
	last := len(w.held.events) - 1
	for i, data := range w.held.events {
		e := pipeline.Event{Data: data}
		if i == last {
			e.Position = resumeAt
		}
		if err := w.emit(e); err != nil {
			return err
		}
	}
	w.events += len(w.held.events)
	w.j.stats.Events.Add(int64(len(w.held.events)))
	w.held = unit{events: w.held.events[:0]}
	w.pageStart = unit{}
	w.floor = resumeAt
	return nil
}

// query is the body of an events request.
type query struct {
	Service     []string        `json:"service"`
	StartTime   string          `json:"start_time"`
	EndTime     string          `json:"end_time"`
	Limit       int             `json:"limit"`
	Sort        string          `json:"sort"`
	SearchAfter json.RawMessage `json:"search_after,omitempty"`
}

// errIdle is why a request is cut when JumpCloud stops sending.
var errIdle = errors.New("JumpCloud sent nothing for too long")

// readAnswer posts one query and hands each event of the answer, as it streams in, to take. It
// returns the cursor of the next page, or last when there is none.
func (j *JumpCloud) readAnswer(stop context.Context, query []byte, take func([]byte) error) (next json.RawMessage, last bool, err error) {
	// The timeout covers waiting for JumpCloud, not the time spent handing events on to a
	// pipeline that is holding the reader back.
	ctx, cancel := context.WithCancelCause(stop)
	defer cancel(nil)
	idle := time.AfterFunc(j.cfg.RequestTimeout, func() { cancel(errIdle) })
	defer idle.Stop()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, j.cfg.URL, bytes.NewReader(query))
	if err != nil {
		return nil, false, pipeline.Permanent(fmt.Errorf("jumpcloud: %w", err))
	}
	req.Header.Set("x-api-key", j.cfg.APIKey)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if j.cfg.OrgID != "" {
		req.Header.Set("x-org-id", j.cfg.OrgID)
	}
	resp, err := j.cfg.Client.Do(req)
	if err != nil {
		var untrusted *tls.CertificateVerificationError
		if errors.As(err, &untrusted) { // a wrong host or an interception: retrying cannot help
			return nil, false, pipeline.Permanent(fmt.Errorf("jumpcloud: %w — the server's certificate is not trusted; check jumpcloud_api.url", err))
		}
		return nil, false, fmt.Errorf("jumpcloud: %w", causeOf(ctx, err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, false, classify(resp)
	}
	idle.Stop()
	body := &idleReader{r: resp.Body, timer: idle, timeout: j.cfg.RequestTimeout}
	n, err := decodeElements(body, take)
	if err != nil {
		if pipeline.IsPermanent(err) {
			return nil, false, err
		}
		return nil, false, fmt.Errorf("jumpcloud: reading a page: %w", causeOf(ctx, err))
	}
	limit := j.cfg.PageSize
	if v, err := strconv.Atoi(resp.Header.Get("X-Limit")); err == nil && v > 0 {
		limit = v // the page size the server actually used
	}
	count := n
	if v, err := strconv.Atoi(resp.Header.Get("X-Result-Count")); err == nil {
		count = v
	}
	if count < limit || n == 0 || n < count {
		return nil, true, nil // a short page is the last; n < count means take stopped at the end
	}
	next = json.RawMessage(resp.Header.Get("X-Search_after"))
	if !json.Valid(next) {
		return nil, false, fmt.Errorf("jumpcloud: a full page came without a valid X-Search_after header (%q)", next)
	}
	return next, false, nil
}

// causeOf says why a request failed when its context was cancelled on purpose.
func causeOf(ctx context.Context, err error) error {
	if cause := context.Cause(ctx); errors.Is(cause, errIdle) {
		return fmt.Errorf("%w (%v)", errIdle, err)
	}
	return err
}

// idleReader runs timer only while a Read waits, so that time spent between reads (the reader
// held back by the pipeline) is never taken for a silent server.
type idleReader struct {
	r       io.Reader
	timer   *time.Timer
	timeout time.Duration
}

func (r *idleReader) Read(p []byte) (int, error) {
	r.timer.Reset(r.timeout)
	n, err := r.r.Read(p)
	r.timer.Stop()
	return n, err
}

// classify turns a JumpCloud error answer into a transient or permanent error.
func classify(resp *http.Response) error {
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	var body struct {
		Message string `json:"message"`
	}
	message := string(bytes.TrimSpace(snippet))
	if json.Unmarshal(snippet, &body) == nil && body.Message != "" {
		message = body.Message
	}
	err := fmt.Errorf("jumpcloud: %s: %s", resp.Status, message)
	switch code := resp.StatusCode; {
	case code == http.StatusUnauthorized:
		return pipeline.Permanent(fmt.Errorf("jumpcloud: API key rejected (%s) — check jumpcloud_api.credentials.token or JUMPCLOUD_API_TOKEN", resp.Status))
	case code == http.StatusPaymentRequired:
		return pipeline.Permanent(fmt.Errorf("jumpcloud: Directory Insights is not enabled for this organisation (%s)", resp.Status))
	case code == http.StatusForbidden:
		return pipeline.Permanent(fmt.Errorf("jumpcloud: access denied (%s) — check the admin's role and jumpcloud_api.credentials.org_id: %s", resp.Status, message))
	case code == http.StatusTooManyRequests, code >= 500:
		if wait, ok := pipeline.ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now()); ok {
			return pipeline.RetryAfter(err, wait)
		}
		return err
	default:
		return pipeline.Permanent(err)
	}
}
