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
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
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

	Client         *http.Client         // default: a client with no overall timeout
	RequestTimeout time.Duration        // for one page, body included (default 60s)
	Retry          pipeline.RetryPolicy // for failed pages
	Log            zerolog.Logger
	Now            func() time.Time // default time.Now
}

// JumpCloud is a pipeline.Source reading Directory Insights events.
type JumpCloud struct {
	cfg Config
}

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
	if cfg.Client == nil {
		cfg.Client = &http.Client{}
	}
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

// readWindow emits every event with start <= timestamp < end.
func (j *JumpCloud) readWindow(stop context.Context, emit func(pipeline.Event) error, start, end time.Time) error {
	began := time.Now() // durations use the real clock, whatever Now says
	var (
		held        unit
		searchAfter json.RawMessage
		pages       int
		events      int
	)
	// flush emits the held unit; its last event makes resumeAt safe.
	flush := func(resumeAt time.Time) error {
		if len(held.events) == 0 {
			return emit(pipeline.Event{Position: resumeAt})
		}
		last := len(held.events) - 1
		for i, data := range held.events {
			e := pipeline.Event{Data: data}
			if i == last {
				e.Position = resumeAt
			}
			if err := emit(e); err != nil {
				return err
			}
		}
		events += len(held.events)
		held = unit{events: held.events[:0]}
		return nil
	}

	for {
		if stop.Err() != nil {
			return stop.Err() // the held unit is dropped: it is read again from the last resume point
		}
		page, err := j.fetchPage(stop, start, end, searchAfter)
		if err != nil {
			return err
		}
		pages++
		for _, data := range page.events {
			ts, ok := timestampOf(data)
			if !ok {
				// Still shipped, inside the current unit: an audit record is never dropped for
				// a missing field.
				j.cfg.Log.Warn().Msg("event without a readable timestamp; shipping it with its neighbours")
				held.events = append(held.events, data)
				continue
			}
			if ts.Before(start) {
				continue // already covered by an earlier window (the server may compare coarsely)
			}
			if !ts.Before(end) {
				page.more = false // ordered by millisecond, so every later event is past end too
				break
			}
			ms := ts.UnixMilli()
			if held.hasMs && ms != held.ms {
				if err := flush(time.UnixMilli(ms).UTC()); err != nil {
					return err
				}
			}
			held.events = append(held.events, data)
			held.ms, held.hasMs = ms, true
		}
		if !page.more {
			break
		}
		searchAfter = page.searchAfter
	}
	if err := flush(end); err != nil {
		return err
	}
	j.cfg.Log.Info().Time("window_start", start).Time("window_end", end).Int("pages", pages).
		Int("events", events).Dur("duration", time.Since(began)).Msg("read window")
	return nil
}

// timestampOf reads an event's timestamp, at any precision JumpCloud emits.
func timestampOf(event []byte) (time.Time, bool) {
	var fields struct {
		Timestamp string `json:"timestamp"`
	}
	if json.Unmarshal(event, &fields) != nil {
		return time.Time{}, false
	}
	ts, err := time.Parse(time.RFC3339Nano, fields.Timestamp)
	return ts, err == nil
}

// page is one answer of the events endpoint.
type page struct {
	events      [][]byte
	more        bool            // another page may follow
	searchAfter json.RawMessage // the cursor for the next page
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

// fetchPage reads one page, retrying transient failures from the same cursor. A page is used
// only once it has been read and decoded in full, so a failure part-way never emits anything.
func (j *JumpCloud) fetchPage(stop context.Context, start, end time.Time, searchAfter json.RawMessage) (*page, error) {
	body, err := json.Marshal(query{
		Service:     j.cfg.Services,
		StartTime:   start.Format(time.RFC3339Nano),
		EndTime:     end.Format(time.RFC3339Nano),
		Limit:       j.cfg.PageSize,
		Sort:        "ASC",
		SearchAfter: searchAfter,
	})
	if err != nil {
		return nil, err
	}
	var result *page
	attempt := func() error {
		p, err := j.request(stop, body)
		result = p
		return err
	}
	onRetry := func(err error, wait time.Duration) {
		j.cfg.Log.Warn().Err(err).Dur("retry_in", wait).Msg("reading a JumpCloud page failed; retrying")
	}
	if err := j.cfg.Retry.Retry(stop, attempt, onRetry); err != nil {
		return nil, err
	}
	return result, nil
}

func (j *JumpCloud) request(stop context.Context, body []byte) (*page, error) {
	ctx, cancel := context.WithTimeout(stop, j.cfg.RequestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, j.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return nil, pipeline.Permanent(fmt.Errorf("jumpcloud: %w", err))
	}
	req.Header.Set("x-api-key", j.cfg.APIKey)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if j.cfg.OrgID != "" {
		req.Header.Set("x-org-id", j.cfg.OrgID)
	}
	resp, err := j.cfg.Client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("jumpcloud: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, classify(resp)
	}
	events, err := decodeEvents(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("jumpcloud: reading a page: %w", err)
	}
	limit := j.cfg.PageSize
	if n, err := strconv.Atoi(resp.Header.Get("X-Limit")); err == nil && n > 0 {
		limit = n // the page size the server actually used
	}
	count := len(events)
	if n, err := strconv.Atoi(resp.Header.Get("X-Result-Count")); err == nil {
		count = n
	}
	p := &page{events: events, more: count >= limit && len(events) > 0}
	if p.more {
		p.searchAfter = json.RawMessage(resp.Header.Get("X-Search_after"))
		if !json.Valid(p.searchAfter) {
			return nil, fmt.Errorf("jumpcloud: a full page came without a valid X-Search_after header (%q)", p.searchAfter)
		}
	}
	return p, nil
}

// decodeEvents reads a JSON array, keeping each element's raw JSON.
func decodeEvents(r io.Reader) ([][]byte, error) {
	dec := json.NewDecoder(r)
	if tok, err := dec.Token(); err != nil || tok != json.Delim('[') {
		if err == nil {
			err = fmt.Errorf("expected a JSON array, got %v", tok)
		}
		return nil, err
	}
	var events [][]byte
	for dec.More() {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, err
		}
		events = append(events, raw)
	}
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	return events, nil
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
		if wait, ok := retryAfter(resp.Header.Get("Retry-After")); ok {
			return pipeline.RetryAfter(err, wait)
		}
		return err
	default:
		return pipeline.Permanent(err)
	}
}

// retryAfter parses a Retry-After header: seconds or an HTTP date.
func retryAfter(value string) (time.Duration, bool) {
	if value == "" {
		return 0, false
	}
	if s, err := strconv.Atoi(value); err == nil && s >= 0 {
		return time.Duration(s) * time.Second, true
	}
	if at, err := http.ParseTime(value); err == nil {
		return max(time.Until(at), 0), true
	}
	return 0, false
}
