package source_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/logzio/logzio-jumpcloud/internal/emulator"
	"github.com/logzio/logzio-jumpcloud/pipeline"
	"github.com/logzio/logzio-jumpcloud/sink"
	"github.com/logzio/logzio-jumpcloud/source"
)

// The fault tests read a backlog of faultBacklog events, faultPageSize a page, and break the
// page asked for by request number faultyRequest: by then the source holds a search_after
// cursor and a unit that continues on the next page, so a wrong retry skips or doubles events.
const (
	faultBacklog  = 250
	faultPageSize = 50
	faultyRequest = 3
)

// newFaultBacklog returns an emulator holding the fault tests' backlog. Two calls hold the same
// events in the same order, so one can answer what the other would have.
func newFaultBacklog() *emulator.JumpCloud {
	jc := emulator.NewJumpCloud(apiKey)
	jc.AddGenerated(7, faultBacklog, epoch, epoch.Add(time.Minute))
	return jc
}

// faultSource returns a reader of the fault backlog served at url, from start, in one window.
func faultSource(url string, start time.Time, log zerolog.Logger, requestTimeout time.Duration) *source.JumpCloud {
	return source.New(source.Config{
		URL: url, APIKey: apiKey, PageSize: faultPageSize, Start: start, Lag: time.Minute, Once: true,
		Now:            func() time.Time { return epoch.Add(time.Hour) },
		Retry:          pipeline.RetryPolicy{Initial: time.Millisecond, Max: 10 * time.Millisecond},
		RequestTimeout: requestTimeout,
		Log:            log,
	})
}

// readWithoutFaults reads the fault backlog from start and returns what was emitted.
func readWithoutFaults(t *testing.T, start time.Time) *emitted {
	t.Helper()
	var got emitted
	var log bytes.Buffer
	src := faultSource(newServer(t, newFaultBacklog()), start, zerolog.New(&log), 0)
	if err := src.Read(withDeadline(t), got.emit); err != nil {
		t.Fatalf("a read without faults returned %v; log:\n%s", err, log.String())
	}
	return &got
}

// wholeBacklog returns the ids of the fault backlog in the order a read without faults emits them.
func wholeBacklog(t *testing.T) []string {
	t.Helper()
	got := readWithoutFaults(t, epoch)
	if len(got.ids) != faultBacklog {
		t.Fatalf("a read without faults emitted %d events, want %d", len(got.ids), faultBacklog)
	}
	return got.ids
}

// withDeadline returns a stop context that ends a read after a minute: a reader retrying for
// ever then fails the test (with what it read so far) instead of hanging it.
func withDeadline(t *testing.T) context.Context {
	stop, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return stop
}

// realAnswer records the answer the emulator gives to r when nothing goes wrong.
func realAnswer(r *http.Request) *httptest.ResponseRecorder {
	answer := httptest.NewRecorder()
	newFaultBacklog().ServeHTTP(answer, r)
	return answer
}

// writeHalfOf writes the status and headers of answer and the first half of its body.
func writeHalfOf(w http.ResponseWriter, answer *httptest.ResponseRecorder) {
	for key, values := range answer.Header() {
		w.Header()[key] = values
	}
	w.WriteHeader(answer.Code)
	body := answer.Body.Bytes()
	_, _ = w.Write(body[:len(body)/2])
	w.(http.Flusher).Flush()
}

// resetConnection drops the client's connection with a TCP reset, without an HTTP answer.
func resetConnection(w http.ResponseWriter) {
	conn, _, err := w.(http.Hijacker).Hijack()
	if err != nil {
		panic(err) // the test server speaks HTTP/1.1, which can always be hijacked
	}
	_ = conn.(*net.TCPConn).SetLinger(0)
	_ = conn.Close()
}

func TestAFailedPageIsReadAgainFromTheSameCursorWithNothingSkippedOrDoubled(t *testing.T) {
	tests := map[string]func(w http.ResponseWriter, r *http.Request){
		"a 429 without Retry-After is retried with backoff": func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusTooManyRequests)
		},
		"a 429 with a Retry-After that is not a number or a date is retried with backoff": func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Retry-After", "soon")
			w.WriteHeader(http.StatusTooManyRequests)
		},
		"a 500 for an overly complex search is retried": func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = w.Write([]byte(`{"message":"search too complex"}`))
		},
		"a 502 from a proxy, with an HTML body, is retried": func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(http.StatusBadGateway)
			_, _ = w.Write([]byte("<html><body>502 Bad Gateway</body></html>"))
		},
		"a 503 with Retry-After 0 is retried": func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(http.StatusServiceUnavailable)
		},
		"a 504 is retried": func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusGatewayTimeout)
		},
		"a connection reset before any answer is retried": func(w http.ResponseWriter, _ *http.Request) {
			resetConnection(w)
		},
		"a connection reset after half the page is retried": func(w http.ResponseWriter, r *http.Request) {
			answer := realAnswer(r)
			w.Header().Set("Content-Length", strconv.Itoa(answer.Body.Len()))
			writeHalfOf(w, answer)
			resetConnection(w)
		},
		"a server that stops answering in the middle of the page is cut by the request timeout": func(w http.ResponseWriter, r *http.Request) {
			writeHalfOf(w, realAnswer(r))
			select {
			case <-r.Context().Done(): // the client gave up and closed the connection
			case <-time.After(time.Minute): // a safety limit, should the client never give up
			}
		},
		"a page whose JSON is cut off in the middle is read again": func(w http.ResponseWriter, r *http.Request) {
			writeHalfOf(w, realAnswer(r)) // and the handler returns: the body simply ends
		},
		"a page missing only its closing bracket is read again": func(w http.ResponseWriter, r *http.Request) {
			answer := realAnswer(r)
			for key, values := range answer.Header() {
				w.Header()[key] = values
			}
			_, _ = w.Write(bytes.TrimSuffix(answer.Body.Bytes(), []byte("]")))
		},
		"a 200 holding an error object instead of a page is read again": func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"message":"internal error"}`))
		},
		"a full page without its X-Search_after header is read again": func(w http.ResponseWriter, r *http.Request) {
			answer := realAnswer(r)
			answer.Header().Del("X-Search_after")
			for key, values := range answer.Header() {
				w.Header()[key] = values
			}
			_, _ = w.Write(answer.Body.Bytes())
		},
	}
	want := wholeBacklog(t)
	for name, fault := range tests {
		t.Run(name, func(t *testing.T) {
			jc := newFaultBacklog()
			var requests atomic.Int64
			jc.Fault = func(w http.ResponseWriter, r *http.Request) bool {
				// The same page fails twice in a row, then is answered.
				if n := requests.Add(1); n != faultyRequest && n != faultyRequest+1 {
					return false
				}
				fault(w, r)
				return true
			}
			// Only the stalled answer should ever reach the request timeout.
			var got emitted
			var log bytes.Buffer
			src := faultSource(newServer(t, jc), epoch, zerolog.New(&log), 500*time.Millisecond)
			if err := src.Read(withDeadline(t), got.emit); err != nil {
				t.Fatalf("Read returned %v; every one of these faults is transient", err)
			}
			if !slices.Equal(got.ids, want) {
				t.Fatalf("read %d events, want the %d of the backlog, once each, in order%s; log:\n%s",
					len(got.ids), len(want), firstDifference(got.ids, want), log.String())
			}
			queries := jc.Queries()
			if len(queries) <= faultyRequest+1 {
				t.Fatalf("made %d requests; the faulty page was never asked for again", len(queries))
			}
			failed := queries[faultyRequest-1]
			for _, retry := range queries[faultyRequest : faultyRequest+2] {
				if !sameCursor(failed, retry) {
					t.Errorf("the failed page asked for %s; a retry asked for %s", describe(failed), describe(retry))
				}
			}
		})
	}
}

func TestA429RetryAfterIsWaitedBeforeTheNextAttempt(t *testing.T) {
	jc := newFaultBacklog()
	var (
		mu    sync.Mutex
		times []time.Time // of each request's arrival
	)
	jc.Fault = func(w http.ResponseWriter, _ *http.Request) bool {
		mu.Lock()
		defer mu.Unlock()
		if times = append(times, time.Now()); len(times) != faultyRequest {
			return false
		}
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusTooManyRequests)
		return true
	}
	var log bytes.Buffer
	var got emitted
	if err := faultSource(newServer(t, jc), epoch, zerolog.New(&log), 0).Read(withDeadline(t), got.emit); err != nil {
		t.Fatal(err)
	}
	if want := wholeBacklog(t); !slices.Equal(got.ids, want) {
		t.Fatalf("read %d events, want the %d of the backlog once each%s", len(got.ids), len(want), firstDifference(got.ids, want))
	}
	// The backoff alone would wait about a millisecond (RetryPolicy.Initial).
	mu.Lock()
	defer mu.Unlock()
	if waited := times[faultyRequest].Sub(times[faultyRequest-1]); waited < time.Second {
		t.Errorf("the next attempt came %s after a 429 with Retry-After: 1", waited)
	}
	if !strings.Contains(log.String(), `"retry_in":1000`) {
		t.Errorf("the retry was not logged with retry_in 1000 ms:\n%s", log.String())
	}
}

func TestAStopWhileBackingOffEndsTheReadPromptlyAtTheLastResumePoint(t *testing.T) {
	jc := newFaultBacklog()
	jc.Fault = func(w http.ResponseWriter, _ *http.Request) bool {
		if jc.QueryCount() < faultyRequest {
			return false
		}
		w.Header().Set("Retry-After", "600")
		w.WriteHeader(http.StatusTooManyRequests)
		return true
	}
	backingOff := make(chan struct{})
	var once sync.Once
	log := zerolog.New(writerFunc(func(line []byte) {
		if bytes.Contains(line, []byte(`"retry_in":600000`)) {
			once.Do(func() { close(backingOff) })
		}
	}))
	stop, cancel := context.WithCancel(context.Background())
	defer cancel()
	var got emitted
	var last pipeline.Event
	done := make(chan error, 1)
	go func() {
		done <- faultSource(newServer(t, jc), epoch, log, 0).Read(stop, func(e pipeline.Event) error {
			last = e
			return got.emit(e)
		})
	}()

	select {
	case <-backingOff:
	case err := <-done:
		t.Fatalf("Read returned %v before backing off", err)
	case <-time.After(time.Minute): // a safety limit
		t.Fatal("the reader never logged that it waits ten minutes before retrying")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("a stop while backing off returned %v; it is a graceful stop", err)
		}
	case <-time.After(30 * time.Second): // a safety limit, far below the ten minutes asked for
		t.Fatal("Read was still waiting out Retry-After: 600 thirty seconds after the stop")
	}

	if len(got.ids) == 0 || last.Position == nil {
		t.Fatalf("emitted %d events, the last with position %v: the stop must fall after a resume point", len(got.ids), last.Position)
	}
	if n := jc.QueryCount(); n != faultyRequest {
		t.Errorf("made %d requests; none may follow the stop", n)
	}
	want := wholeBacklog(t)
	if !slices.Equal(got.ids, want[:len(got.ids)]) {
		t.Fatalf("emitted events are not the start of the backlog%s", firstDifference(got.ids, want))
	}
	rest := readWithoutFaults(t, got.final)
	if !slices.Equal(rest.ids, want[len(got.ids):]) {
		t.Errorf("resuming at %s read %d events, want the %d not yet emitted%s",
			got.final, len(rest.ids), len(want)-len(got.ids), firstDifference(rest.ids, want[len(got.ids):]))
	}
}

// oddPage is a page of things JumpCloud should never send, and of events that are odd but real:
// every timestamp precision it writes, events missing fields, and awkward unicode. The events
// that have a timestamp are in the API's millisecond order.
var oddPage = []string{
	`{"id":"no-fraction","service":"directory","timestamp":"2026-11-20T12:00:01Z"}`,
	`"a string"`,
	`{"id":"three-digits","timestamp":"2026-11-20T12:00:01.250Z"}`,
	`42`,
	`{"id":"no-timestamp","service":"sso"}`,
	`{"id":"eight-digits","timestamp":"2026-11-20T12:00:01.25000001Z"}`, // the millisecond of three-digits
	`null`,
	`{"id":"nine-digits","timestamp":"2026-11-20T12:00:01.999999999Z","message":"locked 🔐, then\u2028a line separator"}`,
	`["an","array"]`,
	`{"timestamp":"2026-11-20T12:00:02.000Z","message":"no id"}`,
	`{"id":"lone-surrogate","timestamp":"2026-11-20T12:00:02.000000001Z","username":"\ud800"}`,
	"{\"id\":\"invalid-utf8\",\"timestamp\":\"2026-11-20T12:00:03.5Z\",\"username\":\"\xff\xfe\"}",
	"{\"id\":\"raw-line-separator\",\"timestamp\":\"2026-11-20T12:00:03.500Z\",\"message\":\"a\u2028b\"}",
	`{"id":"numeric-timestamp","timestamp":1795176003000}`,
	`{"id":"unreadable-timestamp","timestamp":"yesterday"}`,
	`{"id":"last","timestamp":"2026-11-20T12:00:04.001Z"}`,
}

// Of oddPage: the elements that are not JSON objects, and those without a readable timestamp.
const oddNonObjects, oddUntimed = 4, 7

// serveOddPage answers every query with oddPage, as the last page of its window.
func serveOddPage(w http.ResponseWriter, _ *http.Request) bool {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Result-Count", strconv.Itoa(len(oddPage)))
	w.Header().Set("X-Limit", "1000")
	w.Header().Set("X-Search_after", `[1795176004001,"zzzz"]`)
	_, _ = w.Write([]byte("[" + strings.Join(oddPage, ",\n") + "]"))
	return true
}

func TestOddEventsAreAllShippedAndTheResumePointsStayClean(t *testing.T) {
	jc := emulator.NewJumpCloud(apiKey)
	jc.Fault = serveOddPage
	var log bytes.Buffer
	now := epoch.Add(time.Hour)
	src := source.New(source.Config{URL: newServer(t, jc), APIKey: apiKey, PageSize: 1000, Start: epoch,
		Lag: time.Minute, Once: true, Now: func() time.Time { return now }, Log: zerolog.New(&log)})
	var events []pipeline.Event
	err := src.Read(context.Background(), func(e pipeline.Event) error {
		events = append(events, e)
		return nil
	})
	if err != nil {
		t.Fatalf("Read returned %v", err)
	}

	var data []string
	for _, e := range events {
		if e.Data != nil {
			data = append(data, string(e.Data))
		}
	}
	if !slices.Equal(data, oddPage) {
		t.Fatalf("emitted %d events, want the page's %d elements, unchanged, in order:\n%s",
			len(data), len(oddPage), strings.Join(data, "\n"))
	}
	checkResumePoints(t, events, now.Add(-time.Minute))
	if s := src.Stats(); s.Pages.Load() != 1 || s.Events.Load() != int64(len(oddPage)) || s.Untimed.Load() != oddUntimed {
		t.Errorf("stats: %d pages, %d events, %d untimed; want 1, %d, %d",
			s.Pages.Load(), s.Events.Load(), s.Untimed.Load(), len(oddPage), oddUntimed)
	}
	if warnings := strings.Count(log.String(), "without a readable timestamp"); warnings != oddUntimed {
		t.Errorf("logged %d warnings about untimed events, want %d", warnings, oddUntimed)
	}
	if !strings.Contains(log.String(), `"untimed_total":7`) {
		t.Errorf("the warnings do not count untimed events:\n%s", log.String())
	}
}

// checkResumePoints fails the test unless every position in events is a clean border between the
// timed events before it and those after it, the last being the window's end.
func checkResumePoints(t *testing.T, events []pipeline.Event, end time.Time) {
	t.Helper()
	stamps := make([]time.Time, len(events)) // zero where there is none
	for i, e := range events {
		stamps[i] = timestampOrZero(e.Data)
	}
	for i, e := range events {
		if e.Position == nil {
			continue
		}
		resume := e.Position.(time.Time)
		if resume.Truncate(time.Millisecond) != resume {
			t.Errorf("position %s after element %d is not a millisecond border", resume, i)
		}
		for k, ts := range stamps {
			if ts.IsZero() {
				continue
			}
			if before := k <= i; before != ts.Before(resume) {
				t.Errorf("position %s after element %d: element %d at %s is on the wrong side of it", resume, i, k, ts)
			}
		}
	}
	if last := events[len(events)-1].Position; !isTime(last, end) {
		t.Errorf("the last position is %v, want the window's end %s", last, end)
	}
}

func timestampOrZero(data []byte) time.Time {
	var fields struct{ Timestamp string }
	if json.Unmarshal(data, &fields) != nil {
		return time.Time{}
	}
	ts, _ := time.Parse(time.RFC3339Nano, fields.Timestamp)
	return ts
}

func TestOddEventsThroughThePipelineSkipOnlyTheNonObjects(t *testing.T) {
	jc := emulator.NewJumpCloud(apiKey)
	jc.Fault = serveOddPage
	listener := emulator.NewListener("listener-token-5c1d")
	listenerURL := httptest.NewServer(listener)
	t.Cleanup(listenerURL.Close)
	logzio, err := sink.New(sink.Config{URL: listenerURL.URL, Token: "listener-token-5c1d", Type: "jumpcloud"})
	if err != nil {
		t.Fatal(err)
	}
	now := epoch.Add(time.Hour)
	var saved []any
	var log bytes.Buffer
	p := pipeline.Pipeline{
		Source: source.New(source.Config{URL: newServer(t, jc), APIKey: apiKey, PageSize: 1000, Start: epoch,
			Lag: time.Minute, Once: true, Now: func() time.Time { return now }}),
		Transform: source.NewTransform(source.TransformConfig{Type: "jumpcloud"}),
		Sink:      logzio,
		Store:     pipeline.StoreFunc(func(pos any) error { saved = append(saved, pos); return nil }),
		Log:       zerolog.New(&log),
	}
	if err := p.Run(context.Background()); err != nil {
		t.Fatalf("Run returned %v", err)
	}

	objects := len(oddPage) - oddNonObjects
	if s := p.Stats(); s.EventsSkipped.Load() != oddNonObjects || s.EventsDelivered.Load() != int64(objects) {
		t.Errorf("skipped %d and delivered %d events; want the %d non-objects skipped and the %d objects delivered",
			s.EventsSkipped.Load(), s.EventsDelivered.Load(), oddNonObjects, objects)
	}
	if skips := strings.Count(log.String(), "skipping an event the transform cannot process"); skips != oddNonObjects {
		t.Errorf("logged %d skipped events, want %d:\n%s", skips, oddNonObjects, log.String())
	}
	if s := listener.Stats(); s.AcceptedLines != int64(objects) || s.MalformedLines != 0 {
		t.Errorf("the listener accepted %d lines and found %d malformed; want %d and 0", s.AcceptedLines, s.MalformedLines, objects)
	}
	if len(saved) == 0 || !isTime(saved[len(saved)-1], now.Add(-time.Minute)) {
		t.Errorf("saved %v; the last saved position must be the window's end %s", saved, now.Add(-time.Minute))
	}
}

// isTime reports whether position is the time want.
func isTime(position any, want time.Time) bool {
	t, ok := position.(time.Time)
	return ok && t.Equal(want)
}

// sameCursor reports whether two queries ask for the same page.
func sameCursor(a, b emulator.Query) bool {
	return a.StartTime == b.StartTime && a.EndTime == b.EndTime && a.Limit == b.Limit &&
		bytes.Equal(a.SearchAfter, b.SearchAfter)
}

func describe(q emulator.Query) string {
	return fmt.Sprintf("[%s, %s) after %s", q.StartTime, q.EndTime, q.SearchAfter)
}

// firstDifference says where got first differs from want, or nothing when it does not.
func firstDifference(got, want []string) string {
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			return fmt.Sprintf(": event %d is %s, want %s", i, got[i], want[i])
		}
	}
	return ""
}

// writerFunc is an io.Writer that hands each write (one log line, for zerolog) to a function.
type writerFunc func(line []byte)

func (f writerFunc) Write(line []byte) (int, error) {
	f(line)
	return len(line), nil
}

func TestAnEventWithoutATimestampIsShippedOnceWhenItsPageIsReadAgain(t *testing.T) {
	// The page's untimed event goes out with the unit it joined; the page is then cut off and
	// read again from the same cursor. The resume point cannot place an untimed event: the
	// reader must remember it was shipped.
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ts := func(ms int) string { return base.Add(time.Duration(ms) * time.Millisecond).Format(time.RFC3339Nano) }
	page := fmt.Sprintf(`[{"id":"a","timestamp":%q},{"id":"untimed"},{"id":"b","timestamp":%q},{"id":"c","timestamp":%q}]`,
		ts(1), ts(2), ts(3))
	jc := emulator.NewJumpCloud(apiKey)
	var attempts atomic.Int64
	jc.Fault = func(w http.ResponseWriter, r *http.Request) bool {
		w.Header().Set("X-Result-Count", "4")
		w.Header().Set("X-Limit", "100")
		if attempts.Add(1) == 1 {
			w.Header().Set("Content-Length", strconv.Itoa(len(page)))
			_, _ = w.Write([]byte(page[:len(page)-20])) // cut off after "b"
			return true
		}
		_, _ = w.Write([]byte(page))
		return true
	}
	srv := httptest.NewServer(jc)
	t.Cleanup(srv.Close)
	src := source.New(source.Config{URL: srv.URL + emulator.EventsPath, APIKey: apiKey, PageSize: 100, Start: base, Once: true,
		Now: func() time.Time { return base.Add(time.Hour) }, Retry: pipeline.RetryPolicy{Initial: time.Millisecond}})
	shipped := map[string]int{}
	err := src.Read(context.Background(), func(e pipeline.Event) error {
		if e.Data != nil {
			shipped[string(e.Data)]++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if attempts.Load() < 2 || len(shipped) != 4 {
		t.Fatalf("%d attempts shipped %v; want the page read twice and its 4 events", attempts.Load(), shipped)
	}
	for event, n := range shipped {
		if n != 1 {
			t.Errorf("shipped %d times: %s", n, event)
		}
	}
}
