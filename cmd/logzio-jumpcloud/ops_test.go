package main

// These tests cover what an operator sees: the poll and progress log lines, /metrics and
// /healthz over real HTTP, the validate command, and the deployment examples. They run the
// program against the emulators and decide when to look from what it has logged, never from
// elapsed time.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/logzio/logzio-jumpcloud/checkpoint"
	"github.com/logzio/logzio-jumpcloud/config"
)

// waitLimit bounds every wait for a log line: far above what a healthy run needs.
const waitLimit = 60 * time.Second

// jsonLog collects the program's JSON log lines; a test can wait for a line with a message.
// It is safe for concurrent use.
type jsonLog struct {
	mu      sync.Mutex
	partial []byte
	lines   []map[string]any
	changed chan struct{} // closed and replaced on every new line
}

func newJSONLog() *jsonLog { return &jsonLog{changed: make(chan struct{})} }

func (l *jsonLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.partial = append(l.partial, p...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			return len(p), nil
		}
		line := map[string]any{}
		if err := json.Unmarshal(l.partial[:i], &line); err != nil {
			line = map[string]any{"not_json": string(l.partial[:i])}
		}
		l.lines = append(l.lines, line)
		l.partial = l.partial[i+1:]
		close(l.changed)
		l.changed = make(chan struct{})
	}
}

// withMessage returns the lines logged so far with the message msg.
func (l *jsonLog) withMessage(msg string) []map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	var found []map[string]any
	for _, line := range l.lines {
		if line["message"] == msg {
			found = append(found, line)
		}
	}
	return found
}

// waitFor returns the nth line (from 1) with the message msg, once it is logged.
func (l *jsonLog) waitFor(t *testing.T, msg string, nth int) map[string]any {
	t.Helper()
	limit := time.NewTimer(waitLimit)
	defer limit.Stop()
	for {
		l.mu.Lock()
		changed := l.changed
		l.mu.Unlock()
		if found := l.withMessage(msg); len(found) >= nth {
			return found[nth-1]
		}
		select {
		case <-changed:
		case <-limit.C:
			t.Fatalf("no %s line #%d was logged within %s:\n%s", msg, nth, waitLimit, l)
		}
	}
}

func (l *jsonLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var b strings.Builder
	for _, line := range l.lines {
		data, _ := json.Marshal(line)
		b.Write(append(data, '\n'))
	}
	return b.String()
}

// testClock is a clock a test moves by hand.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// shipInBackground calls ship with opts, as run would, until the returned stop is called: a
// graceful stop, after which stop returns ship's error.
func (w *world) shipInBackground(t *testing.T, opts *options) (log *jsonLog, stop func() error) {
	t.Helper()
	cfg, err := config.Load(w.configPath())
	if err != nil {
		t.Fatal(err)
	}
	opts.lastTimePath = filepath.Join(w.dir, "lastTime.txt")
	log = newJSONLog()
	logger, err := newLogger(log, "json", "info")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ship(ctx, cfg, opts, logger) }()
	stop = sync.OnceValue(func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(waitLimit):
			t.Errorf("ship did not return after a graceful stop:\n%s", log)
			return nil
		}
	})
	t.Cleanup(func() { _ = stop() })
	return log, stop
}

// timeField reads a time a log line holds.
func timeField(t *testing.T, line map[string]any, key string) time.Time {
	t.Helper()
	s, _ := line[key].(string)
	at, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("field %s of %v is not a time: %v", key, line, err)
	}
	return at
}

func numberField(t *testing.T, line map[string]any, key string) float64 {
	t.Helper()
	n, ok := line[key].(float64)
	if !ok {
		t.Fatalf("field %s of %v is not a number", key, line)
	}
	return n
}

func TestEachPollLogsOneLineWithItsWindowPagesEventsBatchesBytesAndDuration(t *testing.T) {
	w := newWorld(t, "    page_size: 500\n")
	now := time.Now()
	w.jumpcloud.AddGenerated(21, 2200, now.Add(-2*time.Hour), now.Add(-2*time.Minute))
	cfg, err := config.Load(w.configPath())
	if err != nil {
		t.Fatal(err)
	}

	began := time.Now()
	var stderr bytes.Buffer
	if code := run(context.Background(), []string{"--config", w.configPath(), "--once"}, io.Discard, &stderr); code != 0 {
		t.Fatalf("exit code %d:\n%s", code, stderr.String())
	}
	took := time.Since(began)
	log := newJSONLog()
	_, _ = log.Write(stderr.Bytes())

	polls := log.withMessage("poll")
	if len(polls) != 1 {
		t.Fatalf("--once reads one window, so one poll line; got %d:\n%s", len(polls), log)
	}
	poll := polls[0]
	if start := timeField(t, poll, "window_start"); !start.Equal(cfg.JumpCloud.StartDate) {
		t.Errorf("window_start %s, want start_date %s", start, cfg.JumpCloud.StartDate)
	}
	if end := timeField(t, poll, "window_end"); end.Before(began.Add(-time.Minute-time.Millisecond)) || end.After(time.Now().Add(-time.Minute)) {
		t.Errorf("window_end %s, want now - lag", end)
	}
	listener := w.listener.Stats()
	want := map[string]float64{
		"pages":   float64(w.jumpcloud.QueryCount()), // every request was answered: no faults
		"events":  2200,
		"batches": float64(listener.Requests),
		"bytes":   float64(listener.AcceptedBytes + listener.AcceptedLines), // a newline each
	}
	for field, value := range want {
		if got := numberField(t, poll, field); got != value {
			t.Errorf("%s = %v, want %v", field, got, value)
		}
	}
	if pages := numberField(t, poll, "pages"); pages < 5 {
		t.Errorf("pages = %v for 2200 events at 500 a page", pages)
	}
	if d := numberField(t, poll, "duration"); d <= 0 || d > float64(took.Milliseconds()) {
		t.Errorf("duration = %vms, want more than 0 and at most the run's %s", d, took)
	}
}

func TestACatchUpLogsProgressOnEveryTickWithTheEventsShippedTheRateAndHowFarBehindTheCheckpointIs(t *testing.T) {
	w := newWorld(t, "    time_interval: \"1h\"\n")
	now := time.Now()
	w.jumpcloud.AddGenerated(22, 2000, now.Add(-2*time.Hour), now.Add(-2*time.Minute))
	released := make(chan struct{})
	w.jumpcloud.Fault = func(http.ResponseWriter, *http.Request) bool { <-released; return false }
	cfg, err := config.Load(w.configPath())
	if err != nil {
		t.Fatal(err)
	}

	clock := &testClock{now: now}
	ticks := make(chan time.Time)
	log, stop := w.shipInBackground(t, &options{clock: clock.Now, progressTicks: ticks})

	// Nothing is read yet: the checkpoint is start_date, three hours behind.
	ticks <- clock.Now()
	first := log.waitFor(t, "catching up", 1)
	if shipped := numberField(t, first, "events_shipped"); shipped != 0 {
		t.Errorf("events_shipped = %v before JumpCloud answered", shipped)
	}
	if behind, want := numberField(t, first, "behind"), float64(now.Sub(cfg.JumpCloud.StartDate).Milliseconds()); math.Abs(behind-want) > 1 {
		t.Errorf("behind = %vms, want now - start_date = %vms", behind, want)
	}

	// The backlog is delivered; two hours later by the clock, the checkpoint is still where the
	// window ended, and 2000 events in two hours is 0.28 a second.
	close(released)
	windowEnd := timeField(t, log.waitFor(t, "poll", 1), "window_end")
	clock.Set(now.Add(2 * time.Hour))
	ticks <- clock.Now()
	second := log.waitFor(t, "catching up", 2)
	if shipped := numberField(t, second, "events_shipped"); shipped != 2000 {
		t.Errorf("events_shipped = %v, want 2000", shipped)
	}
	if rate := numberField(t, second, "events_per_second"); rate != 0.3 {
		t.Errorf("events_per_second = %v, want 2000/7200 rounded to 0.3", rate)
	}
	if behind, want := numberField(t, second, "behind"), float64(clock.Now().Sub(windowEnd).Milliseconds()); math.Abs(behind-want) > 1 {
		t.Errorf("behind = %vms, want %vms", behind, want)
	}
	if checkpoint := timeField(t, second, "checkpoint"); !checkpoint.Equal(windowEnd) {
		t.Errorf("checkpoint = %s, want the window's end %s", checkpoint, windowEnd)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

func TestNoProgressIsLoggedOnceCaughtUp(t *testing.T) {
	w := newWorld(t, "    time_interval: \"1h\"\n")
	now := time.Now()
	w.jumpcloud.AddGenerated(23, 300, now.Add(-2*time.Hour), now.Add(-2*time.Minute))
	clock := &testClock{now: now}
	ticks := make(chan time.Time)
	log, stop := w.shipInBackground(t, &options{clock: clock.Now, progressTicks: ticks})

	log.waitFor(t, "poll", 1)
	ticks <- clock.Now() // caught up: the checkpoint is the window's end, about a minute behind
	clock.Set(now.Add(3 * time.Hour))
	ticks <- clock.Now() // three hours later, with no poll since: behind
	log.waitFor(t, "catching up", 1)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	// Ticks are handled in order, so a line from the first would have come before this one.
	if lines := log.withMessage("catching up"); len(lines) != 1 {
		t.Errorf("%d progress lines, want only the one three hours later:\n%s", len(lines), log)
	}
}

// metricsAddress waits for the program to say where it serves /metrics and /healthz.
func metricsAddress(t *testing.T, log *jsonLog) string {
	t.Helper()
	address, _ := log.waitFor(t, "serving /metrics and /healthz", 1)["address"].(string)
	return address
}

// scrape fetches /metrics and returns every sample's value by its name and labels as written,
// after checking the format: a HELP and a TYPE line before each family's samples, the prefix,
// and counters ending in _total.
func scrape(t *testing.T, address string) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + address + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain; version=0.0.4") {
		t.Fatalf("/metrics answered %s with Content-Type %q", resp.Status, resp.Header.Get("Content-Type"))
	}
	help, kind := map[string]bool{}, map[string]string{}
	samples := map[string]float64{}
	lines := bufio.NewScanner(resp.Body)
	for lines.Scan() {
		line := lines.Text()
		if fields := strings.Fields(line); len(fields) >= 3 && fields[0] == "#" {
			switch fields[1] {
			case "HELP":
				help[fields[2]] = len(fields) > 3
			case "TYPE":
				kind[fields[2]] = fields[3]
			}
			continue
		}
		key, value, ok := strings.Cut(line, " ")
		name, _, _ := strings.Cut(key, "{")
		number, err := strconv.ParseFloat(value, 64)
		switch {
		case !ok || err != nil:
			t.Fatalf("not a sample line: %q", line)
		case !help[name] || kind[name] == "":
			t.Errorf("%s has no HELP or TYPE line before its samples", name)
		case !strings.HasPrefix(name, "logzio_jumpcloud_"):
			t.Errorf("%s lacks the logzio_jumpcloud_ prefix", name)
		case kind[name] == "counter" && !strings.HasSuffix(name, "_total"):
			t.Errorf("counter %s does not end in _total", name)
		}
		samples[key] = number
	}
	return samples
}

func health(t *testing.T, address string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + address + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func TestMetricsCountWhatWasShippedAndAreServedWhileItRuns(t *testing.T) {
	w := newWorld(t, "    time_interval: \"1h\"\n    page_size: 500\n")
	now := time.Now()
	w.jumpcloud.AddGenerated(24, 2000, now.Add(-2*time.Hour), now.Add(-2*time.Minute))
	var requests atomic.Int64
	w.listener.Fault = func(rw http.ResponseWriter, _ *http.Request) bool {
		if requests.Add(1) == 1 {
			rw.WriteHeader(http.StatusServiceUnavailable) // one retried batch
			return true
		}
		return false
	}

	log := newJSONLog()
	ctx, cancel := context.WithCancel(context.Background())
	exited := make(chan int, 1)
	go func() {
		exited <- run(ctx, []string{"--config", w.configPath(), "--listen", "127.0.0.1:0"}, io.Discard, log)
	}()
	stop := sync.OnceValue(func() int { cancel(); return <-exited })
	t.Cleanup(func() { stop() })
	address := metricsAddress(t, log)
	poll := log.waitFor(t, "poll", 1)
	scraped := time.Now()
	m := scrape(t, address)

	listener := w.listener.Stats()
	want := map[string]float64{
		"logzio_jumpcloud_events_read_total":                          2000,
		"logzio_jumpcloud_events_shipped_total":                       2000,
		"logzio_jumpcloud_events_dropped_total":                       0,
		"logzio_jumpcloud_events_skipped_total":                       0,
		`logzio_jumpcloud_batches_total{outcome="delivered"}`:         float64(listener.ByStatus[http.StatusOK]),
		`logzio_jumpcloud_batches_total{outcome="retried"}`:           1,
		`logzio_jumpcloud_batches_total{outcome="split"}`:             0,
		"logzio_jumpcloud_listener_requests_total":                    float64(listener.Requests),
		"logzio_jumpcloud_shipped_bytes_total":                        float64(listener.AcceptedBytes + listener.AcceptedLines),
		"logzio_jumpcloud_lines_rejected_total":                       0,
		"logzio_jumpcloud_lines_dropped_total":                        0,
		"logzio_jumpcloud_lines_truncated_total":                      0,
		`logzio_jumpcloud_jumpcloud_requests_total{outcome="ok"}`:     float64(w.jumpcloud.QueryCount()),
		`logzio_jumpcloud_jumpcloud_requests_total{outcome="failed"}`: 0,
		"logzio_jumpcloud_polls_total":                                1,
		"logzio_jumpcloud_checkpoint_timestamp_seconds":               float64(timeField(t, poll, "window_end").UnixMilli()) / 1000,
		"logzio_jumpcloud_healthy":                                    1,
	}
	for key, value := range want {
		if got, ok := m[key]; !ok || got != value {
			t.Errorf("%s = %v (present: %v), want %v", key, got, ok, value)
		}
	}
	if sent := m["logzio_jumpcloud_listener_request_bytes_total"]; sent <= 0 || sent >= m["logzio_jumpcloud_shipped_bytes_total"] {
		t.Errorf("listener_request_bytes_total = %v: gzip should make it smaller than the %v bytes shipped", sent, m["logzio_jumpcloud_shipped_bytes_total"])
	}
	// The window ended a minute (the lag) before it was read, and was saved just before the scrape.
	if lag := m["logzio_jumpcloud_checkpoint_lag_seconds"]; lag < 60 || lag > 60+time.Since(now).Seconds() {
		t.Errorf("checkpoint_lag_seconds = %v, want about the 60 s lag", lag)
	}
	if age := m["logzio_jumpcloud_checkpoint_age_seconds"]; age < 0 || age > time.Since(scraped).Seconds()+time.Since(now).Seconds() {
		t.Errorf("checkpoint_age_seconds = %v, want the few seconds since the poll was saved", age)
	}
	if code, body := health(t, address); code != http.StatusOK || !strings.HasPrefix(body, "ok: ") {
		t.Errorf("/healthz answered %d %q after a good poll", code, body)
	}

	if code := stop(); code != 0 {
		t.Fatalf("exit code %d after a graceful stop:\n%s", code, log)
	}
}

func TestHealthTurns503WhenJumpCloudKeepsFailingForLongerThanTwoIntervalsAndAMargin(t *testing.T) {
	w := newWorld(t, "    time_interval: \"100ms\"\n")
	now := time.Now()
	w.jumpcloud.AddGenerated(25, 500, now.Add(-2*time.Hour), now.Add(-2*time.Minute))
	var failing atomic.Bool
	failures := make(chan string, 1000) // the start_time of each failed query
	w.jumpcloud.Fault = func(rw http.ResponseWriter, r *http.Request) bool {
		if !failing.Load() {
			return false
		}
		var query struct {
			StartTime string `json:"start_time"`
		}
		_ = json.NewDecoder(r.Body).Decode(&query)
		rw.WriteHeader(http.StatusServiceUnavailable)
		select {
		case failures <- query.StartTime:
		default:
		}
		return true
	}
	clock := &testClock{now: now}
	log, stop := w.shipInBackground(t, &options{clock: clock.Now, listen: "127.0.0.1:0"})
	address := metricsAddress(t, log)

	log.waitFor(t, "poll", 1)
	if code, body := health(t, address); code != http.StatusOK {
		t.Fatalf("/healthz answered %d %q after a good poll", code, body)
	}

	failing.Store(true)
	failedFrom, _ := time.Parse(time.RFC3339Nano, <-failures)
	<-failures // the source retried, so the first failure has been seen and recorded
	// The last good window, which ended where the failing one starts, is saved: no progress can
	// come after this.
	for n := 1; ; n++ {
		poll := log.waitFor(t, "poll", n)
		if n > 1 && (numberField(t, poll, "events") != 0 || numberField(t, poll, "batches") != 0) {
			t.Errorf("poll %d read an empty window but logged %v events in %v batches", n, poll["events"], poll["batches"])
		}
		if timeField(t, poll, "window_end").Equal(failedFrom) {
			break
		}
	}

	code, body := health(t, address)
	if code != http.StatusOK || !strings.Contains(body, "503 Service Unavailable") {
		t.Errorf("/healthz answered %d %q: a recent good poll is healthy, and the body should say JumpCloud now fails", code, body)
	}
	clock.Set(now.Add(2*100*time.Millisecond + healthMargin + time.Second))
	code, body = health(t, address)
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "no progress") || !strings.Contains(body, "JumpCloud answered 503 Service Unavailable") {
		t.Errorf("/healthz answered %d %q after JumpCloud failed for longer than 2 × time_interval + %s", code, body, healthMargin)
	}
	if m := scrape(t, address); m["logzio_jumpcloud_healthy"] != 0 || m[`logzio_jumpcloud_jumpcloud_requests_total{outcome="failed"}`] < 2 {
		t.Errorf("healthy = %v, failed JumpCloud requests = %v", m["logzio_jumpcloud_healthy"], m[`logzio_jumpcloud_jumpcloud_requests_total{outcome="failed"}`])
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

func TestAListenAddressInUseStopsTheProgramNamingTheFlag(t *testing.T) {
	w := newWorld(t, "")
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	var out bytes.Buffer
	code := run(context.Background(), []string{"--config", w.configPath(), "--once", "--listen", taken.Addr().String()}, &out, &out)
	if code != 1 || !strings.Contains(out.String(), "--listen "+taken.Addr().String()) {
		t.Errorf("exit code %d, output %s", code, out.String())
	}
}

func TestValidate(t *testing.T) {
	const (
		fileToken = "fileLOGZIOtoken1234abcd"
		envToken  = "envJUMPCLOUDkey5678wxyz"
	)
	goodConfig := "logzio:\n  url: https://listener.logz.io:8071\n  token: " + fileToken + "\n"
	type outcome struct {
		code      int
		shows     []string // in the output
		withholds []string // nowhere in the output
	}
	cases := map[string]struct {
		config     string
		env        map[string]string
		checkpoint string // lastTime.txt, or "" for none
		want       outcome
	}{
		"A valid config prints the settings with defaults, tokens from the file and from the environment masked, and a missing checkpoint": {
			config: goodConfig,
			env:    map[string]string{config.EnvJumpCloudToken: envToken},
			want: outcome{code: 0, shows: []string{
				"is valid",
				"logzio.token: ****abcd",
				"jumpcloud_api.credentials.token: ****wxyz (from JUMPCLOUD_API_TOKEN)",
				"jumpcloud_api.settings.time_interval: 5m0s",
				"jumpcloud_api.settings.page_size: 10000",
				"jumpcloud_api.url: https://api.jumpcloud.com/insights/directory/v1/events",
				"lastTime.txt:\n  exists: no\n  resumes from: nothing yet; the first run starts from now",
				"writable: yes",
			}, withholds: []string{fileToken, envToken}},
		},
		"An existing checkpoint is shown with its position": {
			config:     goodConfig,
			env:        map[string]string{config.EnvJumpCloudToken: envToken},
			checkpoint: "jumpcloud: 2026-01-02T03:04:05.678901Z\n",
			want: outcome{code: 0, shows: []string{
				"exists: yes", "resumes from: 2026-01-02T03:04:05.678901Z",
			}, withholds: []string{fileToken, envToken}},
		},
		"A bad value exits 1 naming the file, the line and the key, and prints no settings": {
			config: goodConfig + "jumpcloud_api:\n  settings:\n    page_size: 0\n",
			env:    map[string]string{config.EnvJumpCloudToken: envToken},
			want: outcome{code: 1, shows: []string{
				"is not valid", "config.yaml:6: jumpcloud_api.settings.page_size",
			}, withholds: []string{fileToken, envToken, "is valid", "logzio.url:"}},
		},
		"A missing token exits 1 naming the key and the environment variable": {
			config: goodConfig,
			want: outcome{code: 1, shows: []string{
				"jumpcloud_api.credentials.token: missing", config.EnvJumpCloudToken,
			}, withholds: []string{fileToken}},
		},
		"A corrupt checkpoint exits 1 naming its line": {
			config:     goodConfig,
			env:        map[string]string{config.EnvJumpCloudToken: envToken},
			checkpoint: "jumpcloud: yesterday\n",
			want: outcome{code: 1, shows: []string{
				"lastTime.txt:1",
			}, withholds: []string{fileToken, envToken}},
		},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			for _, key := range []string{config.EnvLogzioToken, config.EnvJumpCloudToken, config.EnvOrgID} {
				t.Setenv(key, c.env[key])
			}
			dir := t.TempDir()
			path := filepath.Join(dir, "config.yaml")
			if err := os.WriteFile(path, []byte(c.config), 0o600); err != nil {
				t.Fatal(err)
			}
			lastTime := filepath.Join(dir, "lastTime.txt")
			if c.checkpoint != "" {
				if err := os.WriteFile(lastTime, []byte(c.checkpoint), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			var out bytes.Buffer
			code := run(context.Background(), []string{"validate", "--config", path}, &out, &out)
			if code != c.want.code {
				t.Errorf("exit code %d, want %d", code, c.want.code)
			}
			for _, s := range c.want.shows {
				if !strings.Contains(out.String(), s) {
					t.Errorf("the output lacks %q:\n%s", s, out.String())
				}
			}
			for _, s := range c.want.withholds {
				if strings.Contains(out.String(), s) {
					t.Errorf("the output shows %q:\n%s", s, out.String())
				}
			}
			// Validating ships nothing and writes no checkpoint.
			if _, err := os.Stat(lastTime); c.checkpoint == "" && err == nil {
				t.Errorf("validate created %s", lastTime)
			}
			entries, _ := os.ReadDir(dir)
			if len(entries) > 2 {
				t.Errorf("validate left files behind: %v", entries)
			}
		})
	}
}

// deployDocuments decodes every YAML document of every file under deploy/, by file.
func deployDocuments(t *testing.T) map[string][]map[string]any {
	t.Helper()
	root := filepath.Join("..", "..", "deploy")
	docs := map[string][]map[string]any{}
	err := filepath.WalkDir(root, func(path string, entry os.DirEntry, err error) error {
		if err != nil || entry.IsDir() {
			return err
		}
		if ext := filepath.Ext(path); ext != ".yaml" && ext != ".yml" {
			t.Errorf("%s: only YAML files belong in deploy/", path)
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		dec := yaml.NewDecoder(bytes.NewReader(data))
		for {
			var doc map[string]any
			err := dec.Decode(&doc)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Errorf("%s: %v", path, err)
				break
			}
			if doc != nil {
				rel, _ := filepath.Rel(root, path)
				docs[filepath.ToSlash(rel)] = append(docs[filepath.ToSlash(rel)], doc)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return docs
}

// dig follows keys (strings for mappings, ints for sequences) into a decoded document.
func dig(doc any, keys ...any) any {
	for _, key := range keys {
		switch k := key.(type) {
		case string:
			m, _ := doc.(map[string]any)
			doc = m[k]
		case int:
			s, _ := doc.([]any)
			if k >= len(s) {
				return nil
			}
			doc = s[k]
		}
	}
	return doc
}

func ofKind(docs []map[string]any, kind string) map[string]any {
	for _, doc := range docs {
		if doc["kind"] == kind {
			return doc
		}
	}
	return nil
}

func TestTheDeploymentExamplesParseAndRunTheProgramAsDocumented(t *testing.T) {
	docs := deployDocuments(t)
	for _, file := range []string{"docker-compose.yaml", "kubernetes/deployment.yaml", "kubernetes/cronjob.yaml"} {
		if len(docs[file]) == 0 {
			t.Fatalf("deploy/%s is missing or empty", file)
		}
	}

	compose := dig(docs["docker-compose.yaml"][0], "services", "logzio-jumpcloud")
	for key, want := range map[string]any{"read_only": true, "stop_grace_period": "40s"} {
		if got := dig(compose, key); got != want {
			t.Errorf("docker-compose: %s = %v, want %v", key, got, want)
		}
	}
	if dig(compose, "user") == nil || !slices.Contains(asStrings(dig(compose, "volumes")), "./shared:/app/src/shared") {
		t.Errorf("docker-compose: the service needs a user: and the folder mounted at /app/src/shared")
	}

	deployment := ofKind(docs["kubernetes/deployment.yaml"], "Deployment")
	pod := dig(deployment, "spec", "template", "spec")
	container := dig(pod, "containers", 0)
	checks := map[string]struct{ got, want any }{
		"one replica":                    {dig(deployment, "spec", "replicas"), 1},
		"the Recreate strategy":          {dig(deployment, "spec", "strategy", "type"), "Recreate"},
		"a liveness probe on /healthz":   {dig(container, "livenessProbe", "httpGet", "path"), "/healthz"},
		"a readiness probe on /healthz":  {dig(container, "readinessProbe", "httpGet", "path"), "/healthz"},
		"a non-root pod":                 {dig(pod, "securityContext", "runAsNonRoot"), true},
		"a read-only root file system":   {dig(container, "securityContext", "readOnlyRootFilesystem"), true},
		"40 s to stop":                   {dig(pod, "terminationGracePeriodSeconds"), 40},
		"the state volume at the folder": {dig(container, "volumeMounts", 0, "mountPath"), "/app/src/shared"},
		"the forbid policy of the cron":  {dig(ofKind(docs["kubernetes/cronjob.yaml"], "CronJob"), "spec", "concurrencyPolicy"), "Forbid"},
	}
	for what, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %v, want %v", what, c.got, c.want)
		}
	}
	if dig(pod, "securityContext", "fsGroup") == nil {
		t.Errorf("the Deployment sets no fsGroup, so the volume may not be writable")
	}
	if args := strings.Join(asStrings(dig(container, "args")), " "); !strings.Contains(args, "--listen :9090") {
		t.Errorf("the Deployment's probes need --listen :9090; args: %s", args)
	}
	cron := dig(ofKind(docs["kubernetes/cronjob.yaml"], "CronJob"), "spec", "jobTemplate", "spec", "template", "spec", "containers", 0)
	if args := asStrings(dig(cron, "args")); !slices.Contains(args, "--once") {
		t.Errorf("the CronJob must run with --once; args: %v", args)
	}

	// The config.yaml each example ships is one the program accepts, with the tokens from the
	// Secret's environment variables.
	env := map[string]string{config.EnvLogzioToken: "a-shipping-token-0000", config.EnvJumpCloudToken: "an-api-key-00000000"}
	for _, file := range []string{"kubernetes/deployment.yaml", "kubernetes/cronjob.yaml"} {
		configMap := ofKind(docs[file], "ConfigMap")
		text, _ := dig(configMap, "data", "config.yaml").(string)
		if _, err := config.Parse([]byte(text), file+": config.yaml", func(k string) string { return env[k] }); err != nil {
			t.Errorf("the config.yaml in %s is refused: %v", file, err)
		}
		for _, key := range []string{config.EnvLogzioToken, config.EnvJumpCloudToken} {
			if !strings.Contains(strings.Join(secretEnvNames(docs[file]), " "), key) {
				t.Errorf("%s does not take %s from a Secret", file, key)
			}
		}
	}
}

func asStrings(v any) []string {
	list, _ := v.([]any)
	var out []string
	for _, item := range list {
		if s, ok := item.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// secretEnvNames lists the environment variables the workloads in docs read from a Secret.
func secretEnvNames(docs []map[string]any) []string {
	var names []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if name, ok := v["name"].(string); ok && dig(v, "valueFrom", "secretKeyRef") != nil {
				names = append(names, name)
			}
			for _, child := range v {
				walk(child)
			}
		case []any:
			for _, child := range v {
				walk(child)
			}
		}
	}
	for _, doc := range docs {
		walk(doc)
	}
	return names
}

// A checkpoint written by a run is what validate then reports.
func TestValidateReportsTheCheckpointARunLeft(t *testing.T) {
	w := newWorld(t, "")
	now := time.Now()
	w.jumpcloud.AddGenerated(26, 100, now.Add(-time.Hour), now.Add(-2*time.Minute))
	if code, logs := w.ship(t, context.Background(), "--once"); code != 0 {
		t.Fatalf("exit code %d:\n%s", code, logs)
	}
	saved := w.checkpoint(t)
	var out bytes.Buffer
	if code := run(context.Background(), []string{"validate", "--config", w.configPath()}, &out, &out); code != 0 {
		t.Fatalf("validate exited %d:\n%s", code, out.String())
	}
	if want := "resumes from: " + saved.Format(checkpoint.Layout); !strings.Contains(out.String(), want) {
		t.Errorf("the output lacks %q:\n%s", want, out.String())
	}
}
