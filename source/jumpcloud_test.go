package source_test

import (
	"context"
	"encoding/json"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/logzio/logzio-jumpcloud/internal/emulator"
	"github.com/logzio/logzio-jumpcloud/pipeline"
	"github.com/logzio/logzio-jumpcloud/source"
)

const apiKey = "test-api-key-3f9a"

var epoch = time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)

// emitted is what a source run emitted, in order.
type emitted struct {
	ids       []string
	stamps    []time.Time
	positions map[int]time.Time // index of the event carrying it → position
	final     time.Time         // the last position emitted
}

func (e *emitted) emit(ev pipeline.Event) error {
	if ev.Data != nil {
		var fields struct {
			ID        string `json:"id"`
			Timestamp string `json:"timestamp"`
		}
		if err := json.Unmarshal(ev.Data, &fields); err != nil {
			return err
		}
		ts, err := time.Parse(time.RFC3339Nano, fields.Timestamp)
		if err != nil {
			return err
		}
		e.ids = append(e.ids, fields.ID)
		e.stamps = append(e.stamps, ts)
	}
	if ev.Position != nil {
		if e.positions == nil {
			e.positions = map[int]time.Time{}
		}
		e.positions[len(e.ids)-1] = ev.Position.(time.Time)
		e.final = ev.Position.(time.Time)
	}
	return nil
}

func newServer(t *testing.T, jc *emulator.JumpCloud) string {
	t.Helper()
	srv := httptest.NewServer(jc)
	t.Cleanup(srv.Close)
	return srv.URL + "/insights/directory/v1/events"
}

func readOnce(t *testing.T, url string, start, now time.Time, pageSize int) *emitted {
	t.Helper()
	var got emitted
	src := source.New(source.Config{
		URL: url, APIKey: apiKey, PageSize: pageSize, Start: start, Lag: time.Minute, Once: true,
		Now: func() time.Time { return now }, Retry: pipeline.RetryPolicy{Initial: time.Millisecond},
	})
	if err := src.Read(context.Background(), got.emit); err != nil {
		t.Fatalf("Read: %v", err)
	}
	return &got
}

func TestABacklogIsReadOnceInOrderWithResumePointsOnlyAtMillisecondBorders(t *testing.T) {
	jc := emulator.NewJumpCloud(apiKey)
	jc.AddGenerated(1, 2500, epoch, epoch.Add(time.Second)) // dense: many events share a millisecond
	now := epoch.Add(time.Hour)
	got := readOnce(t, newServer(t, jc), epoch, now, 100)

	if len(got.ids) != 2500 {
		t.Fatalf("read %d events, want 2500", len(got.ids))
	}
	seen := map[string]bool{}
	for _, id := range got.ids {
		if seen[id] {
			t.Fatalf("event %s read twice", id)
		}
		seen[id] = true
	}
	if jc.QueryCount() < 25 {
		t.Errorf("made %d queries; 2500 events at 100 a page need at least 25", jc.QueryCount())
	}
	// A resume point R after event i means: every event so far is before R, every later one is not.
	latestSoFar := make([]time.Time, len(got.stamps))
	earliestFrom := make([]time.Time, len(got.stamps)+1)
	earliestFrom[len(got.stamps)] = time.Unix(1<<40, 0)
	for i, ts := range got.stamps {
		latestSoFar[i] = ts
		if i > 0 && latestSoFar[i-1].After(ts) {
			latestSoFar[i] = latestSoFar[i-1]
		}
	}
	for i := len(got.stamps) - 1; i >= 0; i-- {
		earliestFrom[i] = got.stamps[i]
		if earliestFrom[i+1].Before(got.stamps[i]) {
			earliestFrom[i] = earliestFrom[i+1]
		}
	}
	for i, r := range got.positions {
		if !latestSoFar[i].Before(r) || earliestFrom[i+1].Before(r) {
			t.Fatalf("position %s after event %d is not a clean border (latest so far %s, earliest after %s)",
				r, i, latestSoFar[i], earliestFrom[i+1])
		}
	}
	if want := now.Add(-time.Minute); !got.final.Equal(want) {
		t.Errorf("the window ended at %s, want now - lag = %s", got.final, want)
	}
}

func TestARestartFromAnySavedPositionReadsExactlyTheEventsAfterIt(t *testing.T) {
	jc := emulator.NewJumpCloud(apiKey)
	jc.AddGenerated(2, 600, epoch, epoch.Add(200*time.Millisecond))
	url, now := newServer(t, jc), epoch.Add(time.Hour)
	all := readOnce(t, url, epoch, now, 50)

	checked := 0
	for i, position := range all.positions {
		if checked++; checked > 10 {
			break
		}
		rest := readOnce(t, url, position, now, 50)
		want := all.ids[i+1:]
		if strings.Join(rest.ids, ",") != strings.Join(want, ",") {
			t.Fatalf("resuming at %s after event %d read %d events, want the %d after it", position, i, len(rest.ids), len(want))
		}
	}
}

func TestEventsAtOrAfterTheWindowEndWaitForTheNextWindow(t *testing.T) {
	jc := emulator.NewJumpCloud(apiKey)
	now := epoch.Add(time.Hour)
	end := now.Add(-time.Minute)
	event := func(id string, ts time.Time) []byte {
		return []byte(`{"id":"` + id + `","service":"directory","timestamp":"` + ts.Format(time.RFC3339Nano) + `"}`)
	}
	if err := jc.Add(event("before", end.Add(-time.Nanosecond)), event("at-end", end)); err != nil {
		t.Fatal(err)
	}
	url := newServer(t, jc)
	first := readOnce(t, url, epoch, now, 100)
	if strings.Join(first.ids, ",") != "before" {
		t.Fatalf("first window read %v; the event at its end belongs to the next window", first.ids)
	}
	second := readOnce(t, url, first.final, now.Add(time.Minute), 100)
	if strings.Join(second.ids, ",") != "at-end" {
		t.Fatalf("second window read %v, want [at-end]", second.ids)
	}
}

func TestLateEventsInsideTheLagAreReadOnALaterPoll(t *testing.T) {
	jc := emulator.NewJumpCloud(apiKey)
	happened := epoch.Add(10 * time.Minute)
	late := []byte(`{"id":"late","service":"sso","timestamp":"` + happened.Format(time.RFC3339Nano) + `"}`)
	if err := jc.AddLate(happened.Add(30*time.Second), late); err != nil { // visible 30 s after it happened
		t.Fatal(err)
	}
	var clock atomic.Pointer[time.Time]
	jc.Now = func() time.Time { return *clock.Load() }
	url := newServer(t, jc)

	poll := func(start, now time.Time) *emitted {
		clock.Store(&now)
		return readOnce(t, url, start, now, 100)
	}
	first := poll(epoch, happened.Add(20*time.Second)) // not yet visible, but also past the window end
	second := poll(first.final, happened.Add(2*time.Minute))
	if len(first.ids) != 0 || strings.Join(second.ids, ",") != "late" {
		t.Fatalf("first poll read %v, second %v; want the late event once, on the second", first.ids, second.ids)
	}
}

func TestAnEmptyOrInvertedWindowNeverReachesJumpCloud(t *testing.T) {
	tests := map[string]time.Time{
		"the start is within the lag of now":        epoch.Add(-30 * time.Second),
		"the checkpoint is ahead of the clock":      epoch.Add(time.Hour),
		"the start is exactly at now minus the lag": epoch.Add(-time.Minute),
	}
	for name, start := range tests {
		t.Run(name, func(t *testing.T) {
			jc := emulator.NewJumpCloud(apiKey)
			got := readOnce(t, newServer(t, jc), start, epoch, 100)
			if jc.QueryCount() != 0 || len(got.ids) != 0 {
				t.Errorf("sent %d queries, read %d events", jc.QueryCount(), len(got.ids))
			}
		})
	}
}

func TestAStopEndsReadingAfterAWholeUnit(t *testing.T) {
	jc := emulator.NewJumpCloud(apiKey)
	jc.AddGenerated(3, 3000, epoch, epoch.Add(time.Second))
	url := newServer(t, jc)
	stop, cancel := context.WithCancel(context.Background())
	var got emitted
	src := source.New(source.Config{URL: url, APIKey: apiKey, PageSize: 100, Start: epoch, Once: true,
		Now: func() time.Time { return epoch.Add(time.Hour) }})
	var last pipeline.Event
	err := src.Read(stop, func(ev pipeline.Event) error {
		last = ev
		if len(got.ids) == 150 {
			cancel()
		}
		return got.emit(ev)
	})
	if err != nil {
		t.Fatalf("a graceful stop returned %v", err)
	}
	if len(got.ids) >= 3000 {
		t.Fatalf("read all %d events despite the stop", len(got.ids))
	}
	if last.Position == nil {
		t.Errorf("the last event emitted before the stop carries no resume point: half a unit was emitted")
	}
}

func TestJumpCloudAnswers(t *testing.T) {
	tests := map[string]struct {
		answer        func(w http.ResponseWriter, attempt int) bool
		wantPermanent string // "" means the read succeeds after retries
	}{
		"a wrong API key is fatal and says what to check": {
			answer: func(w http.ResponseWriter, _ int) bool {
				w.WriteHeader(http.StatusUnauthorized)
				return true
			},
			wantPermanent: "API key rejected",
		},
		"Directory Insights not enabled is fatal": {
			answer: func(w http.ResponseWriter, _ int) bool {
				w.WriteHeader(http.StatusPaymentRequired)
				return true
			},
			wantPermanent: "not enabled",
		},
		"throttling is retried": {
			answer: func(w http.ResponseWriter, attempt int) bool {
				if attempt > 2 {
					return false
				}
				w.Header().Set("Retry-After", "0")
				w.WriteHeader(http.StatusTooManyRequests)
				return true
			},
		},
		"a 503 is retried": {
			answer: func(w http.ResponseWriter, attempt int) bool {
				if attempt > 2 {
					return false
				}
				w.WriteHeader(http.StatusServiceUnavailable)
				return true
			},
		},
		"a page cut off mid-body is read again from the same cursor": {
			answer: func(w http.ResponseWriter, attempt int) bool {
				if attempt != 2 {
					return false
				}
				w.Header().Set("Content-Type", "application/json")
				_, _ = w.Write([]byte(`[{"id":"cut","timestamp":"2026-11-20T12:00:00Z"},{"id":`))
				return true
			},
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			jc := emulator.NewJumpCloud(apiKey)
			jc.AddGenerated(4, 250, epoch, epoch.Add(time.Minute))
			var attempts atomic.Int64
			jc.Fault = func(w http.ResponseWriter, r *http.Request) bool {
				return tt.answer(w, int(attempts.Add(1)))
			}
			var got emitted
			src := source.New(source.Config{URL: newServer(t, jc), APIKey: apiKey, PageSize: 100, Start: epoch, Once: true,
				Now: func() time.Time { return epoch.Add(time.Hour) }, Retry: pipeline.RetryPolicy{Initial: time.Millisecond}})
			err := src.Read(context.Background(), got.emit)
			if tt.wantPermanent != "" {
				if !pipeline.IsPermanent(err) || !strings.Contains(err.Error(), tt.wantPermanent) {
					t.Fatalf("Read returned %v, want a permanent error saying %q", err, tt.wantPermanent)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			seen := map[string]bool{}
			for _, id := range got.ids {
				if seen[id] {
					t.Fatalf("event %s read twice", id)
				}
				seen[id] = true
			}
			if len(seen) != 250 {
				t.Fatalf("read %d distinct events, want 250", len(seen))
			}
		})
	}
}

func TestAStartOlderThanRetentionStartsAtTheOldestAvailable(t *testing.T) {
	jc := emulator.NewJumpCloud(apiKey)
	now := epoch
	jc.Now = func() time.Time { return now }
	readOnce(t, newServer(t, jc), now.Add(-200*24*time.Hour), now, 100)
	q := jc.Queries()
	if len(q) == 0 {
		t.Fatal("no query was sent")
	}
	start, err := time.Parse(time.RFC3339Nano, q[0].StartTime)
	if err != nil || start.Before(now.Add(-source.Retention)) {
		t.Errorf("first query started at %s (%v); want no earlier than %s", q[0].StartTime, err, now.Add(-source.Retention))
	}
}

func TestAnUntrustedCertificateIsFatalNotRetried(t *testing.T) {
	jc := emulator.NewJumpCloud(apiKey)
	server := httptest.NewUnstartedServer(jc)
	server.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake is expected
	server.StartTLS()                                   // a self-signed certificate no system trusts
	t.Cleanup(server.Close)
	src := source.New(source.Config{URL: server.URL + emulator.EventsPath, APIKey: apiKey, Start: epoch, Once: true,
		Now: func() time.Time { return epoch.Add(time.Hour) }, Retry: pipeline.RetryPolicy{Initial: time.Millisecond}})
	err := src.Read(context.Background(), func(pipeline.Event) error { return nil })
	if !pipeline.IsPermanent(err) || !strings.Contains(err.Error(), "not trusted") {
		t.Fatalf("Read = %v, want a permanent error saying the certificate is not trusted", err)
	}
	if jc.QueryCount() != 0 {
		t.Errorf("JumpCloud answered %d queries over an unverified connection", jc.QueryCount())
	}
}

func TestARedirectNeverCarriesTheAPIKeyElsewhere(t *testing.T) {
	var keySeenElsewhere atomic.Value
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		keySeenElsewhere.Store(r.Header.Get("x-api-key"))
		_, _ = w.Write([]byte("[]"))
	}))
	t.Cleanup(elsewhere.Close)
	jc := emulator.NewJumpCloud(apiKey)
	jc.Fault = func(w http.ResponseWriter, r *http.Request) bool {
		http.Redirect(w, r, elsewhere.URL, http.StatusTemporaryRedirect)
		return true
	}
	src := source.New(source.Config{URL: newServer(t, jc), APIKey: apiKey, Start: epoch, Once: true,
		Client: &http.Client{}, Now: func() time.Time { return epoch.Add(time.Hour) }})
	err := src.Read(context.Background(), func(pipeline.Event) error { return nil })
	if !pipeline.IsPermanent(err) {
		t.Errorf("Read = %v, want a permanent error for a redirect", err)
	}
	if key, _ := keySeenElsewhere.Load().(string); key != "" {
		t.Fatalf("the redirect target received the API key %q", key)
	}
}
