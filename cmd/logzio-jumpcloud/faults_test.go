package main

// These tests run the whole program, through run, against a listener that misbehaves (error
// storms, resets, slow answers, partial rejections, a rejected token), a JumpCloud backlog holding
// an event too large for the listener, a checkpoint folder that cannot be written, and check what
// the program shows about its secrets and its security.

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/logzio/logzio-jumpcloud/config"
	"github.com/logzio/logzio-jumpcloud/internal/emulator"
	"github.com/logzio/logzio-jumpcloud/sink"
)

// faultLimit bounds how long a test waits for the program to reach a state; a healthy run takes
// a fraction of it.
const faultLimit = 60 * time.Second

// resetConnection answers a request by closing its connection with a TCP reset.
func resetConnection(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(err)
	}
	if tcp, ok := conn.(*net.TCPConn); ok {
		_ = tcp.SetLinger(0)
	}
	_ = conn.Close()
}

// readBulkBody reads a bulk request's gzipped body, puts an identical one back so that the
// listener can still handle the request, and returns its lines.
func readBulkBody(t *testing.T, r *http.Request) [][]byte {
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		t.Errorf("reading a request body: %v", err)
		return nil
	}
	r.Body = io.NopCloser(bytes.NewReader(raw))
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		t.Errorf("a request body is not gzip: %v", err)
		return nil
	}
	plain, err := io.ReadAll(zr)
	if err != nil {
		t.Errorf("a request body is not gzip: %v", err)
		return nil
	}
	return bytes.Split(plain, []byte("\n"))
}

// generatedIDs returns the ids of the events AddGenerated(seed, n, from, to) adds.
func generatedIDs(seed int64, n int, from, to time.Time) map[string]bool {
	ids := make(map[string]bool, n)
	for _, raw := range emulator.Generate(seed, n, from, to) {
		var e struct{ ID string }
		_ = json.Unmarshal(raw, &e)
		ids[e.ID] = true
	}
	return ids
}

func TestAStormOfListenerErrorsThenRecoveryDeliversEveryEventOnce(t *testing.T) {
	w := newWorld(t, "")
	now := time.Now()
	w.jumpcloud.AddGenerated(21, 6000, now.Add(-2*time.Hour), now.Add(-2*time.Minute))
	// Each failed attempt costs the program's real backoff (half a second, growing), so the storm
	// is twelve answers: four each of 503, 429 with Retry-After: 0, and a reset connection.
	const storm = 12
	var requests atomic.Int64
	w.listener.Fault = func(rw http.ResponseWriter, r *http.Request) bool {
		switch n := requests.Add(1); {
		case n > storm:
			return false
		case n%3 == 0:
			rw.WriteHeader(http.StatusServiceUnavailable)
		case n%3 == 1:
			rw.Header().Set("Retry-After", "0")
			rw.WriteHeader(http.StatusTooManyRequests)
		default:
			resetConnection(rw, r)
		}
		return true
	}

	code, logs := w.ship(t, context.Background(), "--once")
	if code != 0 {
		t.Fatalf("exit code %d after the listener recovered:\n%s", code, logs)
	}
	if shipped := w.shipped(t); len(shipped) != 6000 { // shipped fails on a duplicate
		t.Errorf("shipped %d distinct events, want 6000", len(shipped))
	}
	stats := w.listener.Stats()
	if stats.ByStatus[http.StatusServiceUnavailable] != 4 || stats.ByStatus[http.StatusTooManyRequests] != 4 || stats.Requests < storm+3 {
		t.Errorf("the listener answered %v to %d requests: the storm did not happen as planned", stats.ByStatus, stats.Requests)
	}
	if got := w.checkpoint(t); got.Before(now.Add(-time.Minute - time.Second)) {
		t.Errorf("checkpoint %s: the delivered window's end was not saved", got)
	}
}

func TestSlowListenerAnswersStillDeliverEverything(t *testing.T) {
	w := newWorld(t, "")
	now := time.Now()
	// About six batches of 2 MiB: enough to keep all four senders waiting at once.
	w.jumpcloud.AddGenerated(22, 12000, now.Add(-2*time.Hour), now.Add(-2*time.Minute))
	const senders = 4
	held, gate := make(chan struct{}, senders), make(chan struct{})
	var opened sync.Once
	openGate := func() { opened.Do(func() { close(gate) }) }
	t.Cleanup(openGate) // before the listener closes, which waits for held answers
	var requests atomic.Int64
	w.listener.Fault = func(rw http.ResponseWriter, r *http.Request) bool {
		if requests.Add(1) > senders {
			return false
		}
		held <- struct{}{}
		select { // the answer is slow: it waits until every sender has a request waiting
		case <-gate:
		case <-r.Context().Done():
			return true // the client is gone: no one reads this answer
		}
		return false
	}

	result := make(chan struct {
		code int
		logs string
	}, 1)
	go func() {
		code, logs := w.ship(t, context.Background(), "--once")
		result <- struct {
			code int
			logs string
		}{code, logs}
	}()
	limit := time.NewTimer(faultLimit)
	defer limit.Stop()
	for range senders {
		select {
		case <-held:
		case r := <-result:
			t.Fatalf("the program ended (exit code %d) before %d requests were waiting:\n%s", r.code, senders, r.logs)
		case <-limit.C:
			t.Fatalf("fewer than %d requests were ever waiting at once", senders)
		}
	}
	if got := len(w.listener.Lines()); got != 0 {
		t.Fatalf("the listener accepted %d lines while every answer was held", got)
	}
	openGate()

	select {
	case r := <-result:
		if r.code != 0 {
			t.Fatalf("exit code %d:\n%s", r.code, r.logs)
		}
	case <-limit.C:
		t.Fatal("the program did not finish after the slow answers came")
	}
	if shipped := w.shipped(t); len(shipped) != 12000 {
		t.Errorf("shipped %d distinct events, want 12000", len(shipped))
	}
}

func TestABatchPartlyRejectedWithCountsIsLoggedAndNeverResent(t *testing.T) {
	w := newWorld(t, "")
	now := time.Now()
	from, to := now.Add(-2*time.Hour), now.Add(-2*time.Minute)
	w.jumpcloud.AddGenerated(23, 5000, from, to)
	var (
		mu       sync.Mutex
		bodies   = map[[sha256.Size]byte]int{} // every request body the listener saw, by digest
		rejected = map[string]bool{}           // ids in the batch answered 400
		answered bool
	)
	w.listener.Fault = func(rw http.ResponseWriter, r *http.Request) bool {
		lines := readBulkBody(t, r)
		mu.Lock()
		defer mu.Unlock()
		bodies[sha256.Sum256(bytes.Join(lines, []byte("\n")))]++
		if answered {
			return false
		}
		answered = true
		for _, line := range lines {
			var e struct{ ID string }
			_ = json.Unmarshal(line, &e)
			rejected[e.ID] = true
		}
		rw.Header().Set("Content-Type", "application/json")
		rw.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(rw, `{"malformedLines":1,"successfulLines":%d,"oversizedLines":0,"emptyLogLines":0}`, len(lines)-1)
		return true
	}

	code, logs := w.ship(t, context.Background(), "--once")
	if code != 0 {
		t.Fatalf("exit code %d:\n%s", code, logs)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(rejected) == 0 || len(rejected) == 5000 {
		t.Fatalf("the partly rejected batch held %d of 5000 events: the test needs several batches", len(rejected))
	}
	for digest, n := range bodies {
		if n > 1 {
			t.Errorf("the listener received one request body %d times (%x…)", n, digest[:4])
		}
	}
	shipped := w.shipped(t)
	for id := range generatedIDs(23, 5000, from, to) {
		if _, got := shipped[id]; got == rejected[id] {
			t.Fatalf("event %s: accepted %v, in the partly rejected batch %v: that batch was resent or another lost", id, got, rejected[id])
		}
	}
	want := fmt.Sprintf(`"successful_lines":%d,"malformed_lines":1`, len(rejected)-1)
	if !strings.Contains(logs, want) {
		t.Errorf("the log does not give the counts %s:\n%s", want, logs)
	}
}

func TestAnEventOverTheListenerLineLimitArrivesShortenedAndTheRestFlows(t *testing.T) {
	w := newWorld(t, "")
	now := time.Now()
	w.jumpcloud.AddGenerated(24, 2000, now.Add(-2*time.Hour), now.Add(-2*time.Minute))
	description := strings.Repeat("Imported from the HR system; ", 25_000) // 725,000 bytes
	huge := fmt.Sprintf(`{"id":"huge-event","service":"directory","event_type":"group_update","timestamp":%q,`+
		`"resource":{"type":"user_group","name":"everyone","description":%q},"changes":[{"field":"members","from":1,"to":2}]}`,
		now.Add(-time.Hour).UTC().Format(time.RFC3339Nano), description)
	if err := w.jumpcloud.Add([]byte(huge)); err != nil {
		t.Fatal(err)
	}

	code, logs := w.ship(t, context.Background(), "--once")
	if code != 0 {
		t.Fatalf("exit code %d:\n%s", code, logs)
	}
	shipped := w.shipped(t)
	if len(shipped) != 2001 {
		t.Errorf("shipped %d distinct events, want 2001", len(shipped))
	}
	event, ok := shipped["huge-event"]
	if !ok {
		t.Fatalf("the oversized event never arrived (the listener counted %d oversized lines):\n%s",
			w.listener.Stats().OversizedLines, logs)
	}
	cut, _ := event[sink.TruncatedField].([]any)
	if len(cut) != 1 || cut[0] != "resource.description" {
		t.Errorf("%s = %v, want [resource.description]", sink.TruncatedField, event[sink.TruncatedField])
	}
	if got := event[sink.OriginalBytesField].(float64); got <= emulator.ListenerLineLimit {
		t.Errorf("%s = %v, want the size over the limit", sink.OriginalBytesField, got)
	}
	kept := event["resource"].(map[string]any)["description"].(string)
	if !strings.HasPrefix(description, strings.TrimSuffix(kept, "…")) || len(kept) < 400_000 {
		t.Errorf("the description kept %d bytes, not a prefix of the original cut near the limit", len(kept))
	}
	for _, line := range w.listener.Lines() {
		if len(line) > emulator.ListenerLineLimit {
			t.Errorf("a %d-byte line reached the listener", len(line))
		}
	}
}

func TestARejectedTokenIsFatalAndSaysWhatToCheck(t *testing.T) {
	const wording = "token rejected — check the token and the listener's region"
	if !strings.Contains(sink.ErrTokenRejected.Error(), wording) {
		t.Fatalf("sink.ErrTokenRejected %q no longer says %q", sink.ErrTokenRejected, wording)
	}
	w := newWorld(t, "")
	now := time.Now()
	w.jumpcloud.AddGenerated(25, 100, now.Add(-time.Hour), now.Add(-2*time.Minute))
	w.listener.Fault = func(rw http.ResponseWriter, r *http.Request) bool {
		rw.WriteHeader(http.StatusUnauthorized)
		return true
	}
	code, logs := w.ship(t, context.Background(), "--once")
	if code == 0 {
		t.Fatalf("a rejected token exited 0:\n%s", logs)
	}
	if !strings.Contains(logs, wording) {
		t.Errorf("the output does not say %q:\n%s", wording, logs)
	}
}

func TestAnUnusableCheckpointFolderStopsTheProgramBeforeAnythingIsShipped(t *testing.T) {
	tests := map[string]struct {
		rootless bool // root writes anywhere, so the case means nothing when run as root
		setup    func(t *testing.T, dir string) (lastTime string)
	}{
		"A checkpoint path whose folder is a regular file stops the program.": {
			setup: func(t *testing.T, dir string) string {
				notAFolder := filepath.Join(dir, "not-a-folder")
				if err := os.WriteFile(notAFolder, []byte("a file\n"), 0o600); err != nil {
					t.Fatal(err)
				}
				return filepath.Join(notAFolder, "lastTime.txt")
			},
		},
		"A read-only checkpoint folder stops the program.": {
			rootless: true,
			setup: func(t *testing.T, dir string) string {
				readOnly := filepath.Join(dir, "read-only")
				if err := os.Mkdir(readOnly, 0o500); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = os.Chmod(readOnly, 0o700) }) // so that TempDir can remove it
				return filepath.Join(readOnly, "lastTime.txt")
			},
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			if tt.rootless && os.Geteuid() == 0 {
				t.Skip("running as root, which may write into a read-only folder")
			}
			w := newWorld(t, "")
			now := time.Now()
			w.jumpcloud.AddGenerated(26, 500, now.Add(-time.Hour), now.Add(-2*time.Minute))
			lastTime := tt.setup(t, w.dir)

			code, logs := w.ship(t, context.Background(), "--once", "--last-time", lastTime)
			if code == 0 {
				t.Fatalf("exit code 0 with an unusable checkpoint folder:\n%s", logs)
			}
			if !strings.Contains(logs, lastTime) {
				t.Errorf("the output does not name %s:\n%s", lastTime, logs)
			}
			if n := w.listener.Requests(); n != 0 {
				t.Errorf("the listener received %d requests before the checkpoint was found unusable", n)
			}
			if n := w.jumpcloud.QueryCount(); n != 0 {
				t.Errorf("JumpCloud was queried %d times before the checkpoint was found unusable", n)
			}
		})
	}
}

func TestACheckpointSaveFailingMidRunStopsTheProgramAndLeavesNoTemporaryFile(t *testing.T) {
	w := newWorld(t, "")
	now := time.Now()
	w.jumpcloud.AddGenerated(27, 3000, now.Add(-2*time.Hour), now.Add(-2*time.Minute))
	lastTime := filepath.Join(w.dir, "lastTime.txt")
	// Once shipping has begun, lastTime.txt becomes a folder: the start point is saved, but
	// the next save's rename fails, even for root.
	var swap sync.Once
	w.listener.Fault = func(http.ResponseWriter, *http.Request) bool {
		swap.Do(func() {
			if err := os.Remove(lastTime); err != nil {
				t.Errorf("lastTime.txt was not written before shipping: %v", err)
			}
			if err := os.MkdirAll(filepath.Join(lastTime, "in-the-way"), 0o700); err != nil {
				t.Error(err)
			}
		})
		return false
	}

	code, logs := w.ship(t, context.Background(), "--once")
	if code == 0 {
		t.Fatalf("exit code 0 although the checkpoint could not be saved:\n%s", logs)
	}
	if !strings.Contains(logs, "cannot save the checkpoint "+lastTime) {
		t.Errorf("the output does not say the checkpoint %s could not be saved:\n%s", lastTime, logs)
	}
	temporary, err := filepath.Glob(filepath.Join(w.dir, ".lastTime.txt.*"))
	if err != nil || len(temporary) != 0 {
		t.Errorf("temporary files left beside the checkpoint: %q (%v)", temporary, err)
	}
}

func TestHelpShowsNoTokenEvenWhenTokensAreSet(t *testing.T) {
	w := newWorld(t, "")
	t.Setenv(config.EnvLogzioToken, shippingToken)
	t.Setenv(config.EnvJumpCloudToken, apiKey)
	tests := map[string][]string{
		"--help alone prints the flags without a token.":          {"--help"},
		"--help after --config prints the flags without a token.": {"--config", w.configPath(), "--help"},
	}
	for name, args := range tests {
		t.Run(name, func(t *testing.T) {
			var out bytes.Buffer
			if code := run(context.Background(), args, &out, &out); code != 0 {
				t.Errorf("exit code %d for --help", code)
			}
			if !strings.Contains(out.String(), "-last-time") {
				t.Errorf("--help does not describe the flags:\n%s", out.String())
			}
			for _, secret := range []string{shippingToken, apiKey} {
				if strings.Contains(out.String(), secret) {
					t.Errorf("--help shows a token:\n%s", out.String())
				}
			}
		})
	}
}

func TestTheProgramWarnsOfATokenOthersCanReadAndOfPlainHTTP(t *testing.T) {
	tests := map[string]struct {
		mode os.FileMode
		want string
	}{
		"A config file others can read warns that it holds a token.": {
			mode: 0o644,
			want: "config.yaml is readable by other users and holds a token; chmod 600 it",
		},
		"A plain http:// listener URL warns that the token and logs cross the network unencrypted.": {
			mode: 0o600,
			want: "logzio.url uses http://, so the token and the logs cross the network unencrypted",
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			w := newWorld(t, "") // its listener URL is http://
			if err := os.Chmod(w.configPath(), tt.mode); err != nil {
				t.Fatal(err)
			}
			code, logs := w.ship(t, context.Background(), "--once")
			if code != 0 {
				t.Fatalf("exit code %d:\n%s", code, logs)
			}
			if !strings.Contains(logs, tt.want) {
				t.Errorf("the output does not warn %q:\n%s", tt.want, logs)
			}
			for _, secret := range []string{shippingToken, apiKey} {
				if strings.Contains(logs, secret) {
					t.Errorf("the output shows a token:\n%s", logs)
				}
			}
		})
	}
}
