package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/logzio/logzio-jumpcloud/checkpoint"
	"github.com/logzio/logzio-jumpcloud/internal/emulator"
)

const (
	shippingToken = "shipTOKENz9q8w7e6r5t4"
	apiKey        = "apiKEYx1c2v3b4n5m6"
)

// world is a local JumpCloud and Logz.io listener, and a folder holding config.yaml.
type world struct {
	jumpcloud *emulator.JumpCloud
	listener  *emulator.Listener
	dir       string
}

// newWorld starts the emulators and writes config.yaml with settings under settings:. Each setup
// runs before the emulators serve: the race detector sees no order between setting a hook later
// and a handler reading it when the request comes from another process.
func newWorld(t *testing.T, settings string, setup ...func(*world)) *world {
	t.Helper()
	w := &world{jumpcloud: emulator.NewJumpCloud(apiKey), listener: emulator.NewListener(shippingToken), dir: t.TempDir()}
	for _, f := range setup {
		f(w)
	}
	jc, listener := httptest.NewServer(w.jumpcloud), httptest.NewServer(w.listener)
	t.Cleanup(jc.Close)
	t.Cleanup(listener.Close)
	config := fmt.Sprintf(`logzio:
  url: %q
  token: %q
jumpcloud_api:
  url: %q
  start_date: %q
  credentials:
    token: %q
    org_id: "5f0c1d2e3a4b5c6d7e8f9a0b"
  settings:
%s`, listener.URL, shippingToken, jc.URL+emulator.EventsPath,
		time.Now().Add(-3*time.Hour).UTC().Format(checkpoint.Layout), apiKey, settings)
	if err := os.WriteFile(w.configPath(), []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	return w
}

func (w *world) configPath() string { return filepath.Join(w.dir, "config.yaml") }

// ship runs the program with --once and returns its exit code and what it logged.
func (w *world) ship(t *testing.T, ctx context.Context, extra ...string) (int, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(ctx, append([]string{"--config", w.configPath()}, extra...), &stdout, &stderr)
	return code, stdout.String() + stderr.String()
}

func (w *world) checkpoint(t *testing.T) time.Time {
	t.Helper()
	at, found, err := checkpoint.Open(filepath.Join(w.dir, "lastTime.txt")).Load()
	if err != nil || !found {
		t.Fatalf("lastTime.txt: found=%v err=%v", found, err)
	}
	return at
}

// shipped decodes what the listener accepted, by event id, failing on a duplicate.
func (w *world) shipped(t *testing.T) map[string]map[string]any {
	t.Helper()
	byID := map[string]map[string]any{}
	for _, line := range w.listener.Lines() {
		var event map[string]any
		if err := json.Unmarshal(line, &event); err != nil {
			t.Fatalf("the listener holds a line that is not JSON: %s", line)
		}
		id, _ := event["id"].(string)
		if _, dup := byID[id]; dup {
			t.Fatalf("event %s was shipped twice", id)
		}
		byID[id] = event
	}
	return byID
}

func TestABacklogOfManyPagesIsShippedOnceWithTheTransformApplied(t *testing.T) {
	w := newWorld(t, "    page_size: 500\n")
	now := time.Now()
	w.jumpcloud.AddGenerated(11, 5000, now.Add(-2*time.Hour), now.Add(-2*time.Minute))

	code, logs := w.ship(t, context.Background(), "--once")
	if code != 0 {
		t.Fatalf("exit code %d:\n%s", code, logs)
	}
	shipped := w.shipped(t)
	if len(shipped) != 5000 {
		t.Fatalf("shipped %d distinct events, want 5000", len(shipped))
	}
	if w.jumpcloud.QueryCount() < 10 {
		t.Errorf("%d queries for 5000 events at 500 a page", w.jumpcloud.QueryCount())
	}
	for id, event := range shipped {
		if event["type"] != "jumpcloud" || event["@timestamp"] != event["timestamp"] {
			t.Fatalf("event %s lacks the transform: type=%v @timestamp=%v", id, event["type"], event["@timestamp"])
		}
		if _, isArray := event["changes"].([]any); isArray {
			t.Fatalf("event %s still has a changes array", id)
		}
		if event["organization"] == nil {
			t.Fatalf("event %s has no organization although org_id is configured", id)
		}
	}
	if got := w.checkpoint(t); got.After(time.Now().Add(-time.Minute)) || got.Before(now.Add(-time.Minute-time.Second)) {
		t.Errorf("checkpoint %s, want about now - lag", got)
	}
}

func TestARestartShipsOnlyNewEventsIncludingThoseSharingTheBoundaryMillisecond(t *testing.T) {
	w := newWorld(t, "    lag: 0s\n")
	now := time.Now()
	w.jumpcloud.AddGenerated(12, 2000, now.Add(-time.Hour), now.Add(-time.Second))
	if code, logs := w.ship(t, context.Background(), "--once"); code != 0 {
		t.Fatalf("first run: exit code %d:\n%s", code, logs)
	}
	first := len(w.shipped(t))
	boundary := w.checkpoint(t)

	// New events: one exactly at the saved boundary, and a burst after it up to a millisecond the
	// second run's window is sure to pass, many sharing milliseconds. None may be lost, and no old
	// one shipped again.
	until := time.Now().Truncate(time.Millisecond)
	for !until.After(boundary) { // at most a millisecond of spinning, so the burst has room
		until = time.Now().Truncate(time.Millisecond)
	}
	fresh := emulator.Generate(13, 300, boundary, until)
	atBoundary := fmt.Sprintf(`{"id":"at-the-boundary","service":"directory","event_type":"user_update","timestamp":%q}`,
		boundary.Format(time.RFC3339Nano))
	if err := w.jumpcloud.Add(append(fresh, []byte(atBoundary))...); err != nil {
		t.Fatal(err)
	}
	if code, logs := w.ship(t, context.Background(), "--once"); code != 0 {
		t.Fatalf("second run: exit code %d:\n%s", code, logs)
	}
	shipped := w.shipped(t)
	if got := len(shipped) - first; got != 301 {
		t.Errorf("the second run shipped %d events, want the 301 new ones", got)
	}
	if _, ok := shipped["at-the-boundary"]; !ok {
		t.Errorf("the event at the boundary timestamp was lost")
	}
}

func TestTheCheckpointNeverPassesAnUnacknowledgedEvent(t *testing.T) {
	w := newWorld(t, "    page_size: 1000\n")
	now := time.Now()
	w.jumpcloud.AddGenerated(14, 8000, now.Add(-2*time.Hour), now.Add(-2*time.Minute))
	// The listener takes some batches, then starts rejecting the token: a fatal stop part-way.
	var requests atomic.Int64
	w.listener.Fault = func(rw http.ResponseWriter, r *http.Request) bool {
		if requests.Add(1) <= 2 {
			return false
		}
		rw.WriteHeader(http.StatusUnauthorized)
		return true
	}
	code, logs := w.ship(t, context.Background(), "--once")
	if code == 0 {
		t.Fatalf("a rejected token must be fatal; exit code 0:\n%s", logs)
	}
	if !strings.Contains(logs, "token rejected") {
		t.Errorf("the fatal message does not say the token was rejected:\n%s", logs)
	}
	saved := w.checkpoint(t)
	shipped := w.shipped(t)
	// Every generated event before the checkpoint must have reached the listener.
	for _, raw := range emulator.Generate(14, 8000, now.Add(-2*time.Hour), now.Add(-2*time.Minute)) {
		var e struct{ ID, Timestamp string }
		_ = json.Unmarshal(raw, &e)
		ts, _ := time.Parse(time.RFC3339Nano, e.Timestamp)
		if _, ok := shipped[e.ID]; ts.Before(saved) && !ok {
			t.Fatalf("checkpoint %s passed event %s at %s, which the listener never acknowledged", saved, e.ID, ts)
		}
	}
	if len(shipped) == 0 || len(shipped) == 8000 {
		t.Errorf("shipped %d of 8000: the test should stop part-way", len(shipped))
	}
}

func TestWithoutOnceItPollsUntilStoppedThenExitsZeroWithTheCheckpointWritten(t *testing.T) {
	w := newWorld(t, "    time_interval: \"1h\"\n")
	now := time.Now()
	w.jumpcloud.AddGenerated(15, 3000, now.Add(-2*time.Hour), now.Add(-2*time.Minute))
	ctx, stop := context.WithCancel(context.Background())
	var delivered atomic.Int64
	var once sync.Once
	w.listener.OnLine = func([]byte) {
		if delivered.Add(1) == 3000 {
			once.Do(stop) // everything is in: stop as a SIGTERM would
		}
	}
	code, logs := w.ship(t, ctx)
	if code != 0 {
		t.Fatalf("exit code %d after a graceful stop:\n%s", code, logs)
	}
	if got := w.checkpoint(t); got.Before(now.Add(-time.Minute - time.Second)) {
		t.Errorf("checkpoint %s: the delivered window's end was not saved", got)
	}
}

func TestTokensNeverAppearInOutput(t *testing.T) {
	w := newWorld(t, "")
	now := time.Now()
	w.jumpcloud.AddGenerated(16, 500, now.Add(-time.Hour), now.Add(-2*time.Minute))
	var requests atomic.Int64
	w.listener.Fault = func(rw http.ResponseWriter, r *http.Request) bool {
		switch requests.Add(1) {
		case 1:
			rw.WriteHeader(http.StatusServiceUnavailable) // a logged retry
		case 2:
			// a reset connection: Go's *url.Error prints the whole URL, token and all
			conn, _, _ := rw.(http.Hijacker).Hijack()
			_ = conn.Close()
		default:
			rw.WriteHeader(http.StatusUnauthorized) // a fatal error
		}
		return true
	}
	_, logs := w.ship(t, context.Background(), "--once", "--log-level", "debug")
	for _, secret := range []string{shippingToken, apiKey} {
		if strings.Contains(logs, secret) {
			t.Errorf("the output shows a token:\n%s", logs)
		}
	}
	if !strings.Contains(logs, "retrying") {
		t.Errorf("expected logged retries in the output, got:\n%s", logs)
	}
}

func TestConfigErrorsAreFatalAndNameTheKey(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, []byte("logzzio:\n  url: x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if code := run(context.Background(), []string{"--config", path}, &out, &out); code == 0 {
		t.Fatal("a bad config exited 0")
	}
	if !strings.Contains(out.String(), "config.yaml:1") || !strings.Contains(out.String(), "logzzio") {
		t.Errorf("the message does not name the file, line and key: %s", out.String())
	}
}
