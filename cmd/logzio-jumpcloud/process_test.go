package main

// These tests run the built binary as a real child process against the emulators served by the
// test process, and stop it the ways production does: SIGKILL (a crash, an OOM kill), SIGTERM
// (docker stop), SIGINT (Ctrl-C) and a second signal. They decide when to act from what the
// listener has accepted or what the child has logged, never from elapsed time.

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/logzio/logzio-jumpcloud/checkpoint"
	"github.com/logzio/logzio-jumpcloud/internal/emulator"
)

// Safety limits, far above what a healthy run needs: they only keep a broken build from hanging
// the test run.
const (
	childLimit = 60 * time.Second // the longest any child may live
	// stopLimit is well within docker stop's 30 s, and within the pipeline's own 30 s stop
	// timeout, so a stop that only ended because that timeout fired fails the test.
	stopLimit   = 20 * time.Second
	promptLimit = 10 * time.Second // "at once", with room for a loaded machine
)

var (
	binaryDir string
	// builtBinary builds the program once per test run, and only if a test here needs it.
	builtBinary = sync.OnceValues(func() (string, error) {
		goTool, err := exec.LookPath("go")
		if err != nil {
			goTool = filepath.Join(os.Getenv("GOROOT"), "bin", "go")
		}
		path := filepath.Join(binaryDir, "logzio-jumpcloud")
		out, err := exec.Command(goTool, "build", "-o", path, ".").CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("go build: %v\n%s", err, out)
		}
		return path, nil
	})
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "logzio-jumpcloud-binary-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "creating a folder for the test binary:", err)
		os.Exit(1)
	}
	binaryDir = dir
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

func TestKilledAtRandomMomentsOfACatchUpThenRestartedNothingIsLost(t *testing.T) {
	const total, kills = 30_000, 5
	// Every third request gets a 503, so that a batch waits for its retry while later ones are
	// acknowledged: the out-of-order acks a checkpoint must not run ahead of. A retry carries the
	// same body, so keying on its length fails each batch once at most and keeps backoffs short.
	var requests atomic.Int64
	var failedOnce sync.Map
	w, received := newChildWorld(t, "    page_size: 1000\n", func(rw http.ResponseWriter, r *http.Request) bool {
		if requests.Add(1)%3 != 0 {
			return false
		}
		if _, again := failedOnce.LoadOrStore(r.ContentLength, true); again {
			return false
		}
		rw.WriteHeader(http.StatusServiceUnavailable)
		return true
	})
	backlog := w.addBacklog(31, total)
	rng := rand.New(rand.NewPCG(31, 0)) // the same kill points every run

	// Kill points by progress, spread over the backlog: once the listener holds that many
	// distinct events. A point already passed means a kill during start-up.
	killPoints := make([]int, kills)
	for i := range killPoints {
		killPoints[i] = rng.IntN(total)
	}
	slices.Sort(killPoints)
	for trial, point := range killPoints {
		left := backlog.eventsFrom(w.savedPosition())
		before := received.lines()
		c := w.startChild(t, "--once")
		reached := received.reached(point)
		select {
		case <-reached:
			c.kill(t)
		case <-c.exited:
			select {
			case <-reached: // the last lines and the exit came together: nothing to kill
			default:
				// A run delivers everything from its resume point, so it cannot end short of it.
				t.Fatalf("trial %d: the run ended (exit code %d) with %d distinct events delivered, short of its kill point %d: it skipped events or failed:\n%s",
					trial, c.code(), len(received.byID()), point, c.output)
			}
		}
		t.Logf("trial %d: killed once the listener held %d distinct events, %d lines after the start of this run (%d events from its resume point)",
			trial, point, received.lines()-before, left)
	}

	c := w.startChild(t, "--once")
	runStart := time.Now()
	if code := c.wait(t, childLimit); code != 0 {
		t.Fatalf("the final run exited %d:\n%s", code, c.output)
	}
	runEnd := time.Now()

	byID := received.byID()
	for _, id := range backlog.ids() {
		if byID[id] == 0 {
			t.Fatalf("event %s was never delivered across %d kills and restarts", id, kills)
		}
	}
	if len(byID) != total {
		t.Errorf("the listener holds %d distinct events, want the %d generated", len(byID), total)
	}
	t.Logf("%d lines delivered for %d events: %d duplicates after %d kills", received.lines(), total, received.lines()-total, kills)

	// The final run caught up to its window's end, now - lag.
	lag := time.Minute
	saved := w.checkpoint(t)
	if earliest, latest := runStart.Add(-lag).Truncate(time.Millisecond), runEnd.Add(-lag); saved.Before(earliest) || saved.After(latest) {
		t.Errorf("lastTime.txt holds %s, want the final window's end, between %s and %s", saved, earliest, latest)
	}
}

func TestAGracefulStopThenARestartShipsEveryEventExactlyOnce(t *testing.T) {
	signals := map[string]syscall.Signal{
		"SIGTERM, as docker stop sends, stops gracefully":         syscall.SIGTERM,
		"SIGINT, as Ctrl-C in a terminal sends, stops gracefully": syscall.SIGINT,
	}
	for name, sig := range signals {
		t.Run(name, func(t *testing.T) {
			const total = 20_000
			w, received := newChildWorld(t, "    time_interval: \"1h\"\n    page_size: 1000\n", nil)
			backlog := w.addBacklog(32, total)

			c := w.startChild(t) // polling, as in production
			select {
			case <-received.reached(1):
			case <-c.exited:
				t.Fatalf("the child exited (code %d) before delivering anything:\n%s", c.code(), c.output)
			}
			c.signal(t, sig)
			if code := c.wait(t, stopLimit); code != 0 {
				t.Fatalf("exit code %d after %v, want 0:\n%s", code, sig, c.output)
			}
			firstRun := received.lines()
			if saved := w.checkpoint(t); !saved.After(backlog.From) {
				t.Errorf("lastTime.txt still holds %s after %d lines were delivered", saved, firstRun)
			}
			if firstRun >= total {
				t.Fatalf("the stop came after all %d events were shipped: the test proves nothing", total)
			}

			if code, logs := w.runChild(t, "--once"); code != 0 {
				t.Fatalf("the restart exited %d:\n%s", code, logs)
			}
			byID := received.byID()
			for _, id := range backlog.ids() {
				if n := byID[id]; n != 1 {
					t.Fatalf("event %s was delivered %d times across a graceful stop and a restart, want once", id, n)
				}
			}
			if received.lines() != total {
				t.Errorf("%d lines delivered for %d events", received.lines(), total)
			}
			t.Logf("%d events before the stop, %d after the restart", firstRun, total-firstRun)
		})
	}
}

func TestASecondSignalExitsAtOnceAndARestartLosesNothing(t *testing.T) {
	const total = 10_000
	// The listener takes two requests, then hangs until the client gives up, so that a graceful
	// stop would wait for its whole stop timeout.
	var requests atomic.Int64
	var hanging atomic.Bool
	hanging.Store(true)
	hangs := make(chan struct{})
	var firstHang sync.Once
	release := make(chan struct{})
	w, received := newChildWorld(t, "    time_interval: \"1h\"\n    page_size: 1000\n", func(rw http.ResponseWriter, r *http.Request) bool {
		if requests.Add(1) <= 2 || !hanging.Load() {
			return false
		}
		firstHang.Do(func() { close(hangs) })
		select {
		case <-r.Context().Done():
		case <-release:
		}
		rw.WriteHeader(http.StatusServiceUnavailable) // never a 200 for lines not taken
		return true
	})
	t.Cleanup(func() { close(release) }) // runs before the servers close, which waits for handlers
	backlog := w.addBacklog(33, total)

	c := w.startChild(t)
	select {
	case <-hangs:
	case <-c.exited:
		t.Fatalf("the child exited (code %d) before the listener hung:\n%s", c.code(), c.output)
	}
	c.signal(t, syscall.SIGTERM)
	select {
	case <-c.output.appeared("stopping gracefully"):
	case <-c.exited:
		t.Fatalf("the first SIGTERM ended the child (code %d) although delivery was still in flight:\n%s", c.code(), c.output)
	case <-time.After(promptLimit):
		t.Fatalf("the child did not say it was stopping within %s of SIGTERM:\n%s", promptLimit, c.output)
	}
	c.signal(t, syscall.SIGTERM)
	if code := c.wait(t, promptLimit); code == 0 {
		t.Errorf("exit code 0 after a second SIGTERM: it must say the stop was not clean:\n%s", c.output)
	}
	firstRun := received.lines()

	hanging.Store(false)
	if code, logs := w.runChild(t, "--once"); code != 0 {
		t.Fatalf("the restart exited %d:\n%s", code, logs)
	}
	byID := received.byID()
	for _, id := range backlog.ids() {
		if byID[id] == 0 {
			t.Fatalf("event %s was lost by the hard stop and the restart", id)
		}
	}
	t.Logf("%d lines before the hard stop, %d after the restart", firstRun, received.lines()-firstRun)
}

// newChildWorld is newWorld for a child process, recording what the listener accepts; fault,
// when not nil, is the listener's Fault.
func newChildWorld(t *testing.T, settings string, fault func(http.ResponseWriter, *http.Request) bool) (*world, *deliveries) {
	t.Helper()
	received := &deliveries{counts: map[string]int{}}
	w := newWorld(t, settings, func(w *world) {
		w.listener.OnLine = received.add
		w.listener.Fault = fault
	})
	return w, received
}

// generated is a backlog added to the world's JumpCloud.
type generated struct{ emulator.Backlog }

// addBacklog fills JumpCloud with n events, all of them older than now - lag.
func (w *world) addBacklog(seed int64, n int) generated {
	now := time.Now()
	b := emulator.Backlog{Seed: seed, N: n, From: now.Add(-2 * time.Hour), To: now.Add(-2 * time.Minute)}
	w.jumpcloud.AddGenerated(b.Seed, b.N, b.From, b.To)
	return generated{b}
}

// eventsFrom counts the events at or after start: what a run resuming there has to ship.
func (g generated) eventsFrom(start time.Time) int {
	return g.N - sort.Search(g.N, func(i int) bool { return !g.Timestamp(i).Before(start) })
}

func (g generated) ids() []string {
	ids := make([]string, g.N)
	for i := range ids {
		ids[i] = eventID(g.Event(i))
	}
	return ids
}

func eventID(line []byte) string {
	var e struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(line, &e)
	return e.ID
}

// savedPosition is where the next run starts: lastTime.txt, or the zero time when there is none
// yet (the configured start_date lies before the backlog).
func (w *world) savedPosition() time.Time {
	at, found, err := checkpoint.Open(filepath.Join(w.dir, "lastTime.txt")).Load()
	if err != nil || !found {
		return time.Time{}
	}
	return at
}

// deliveries counts, by event id, every line the listener accepted, across every run of a test.
type deliveries struct {
	mu      sync.Mutex
	counts  map[string]int
	total   int // lines, duplicates included
	waiters []eventsWaiter
}

type eventsWaiter struct {
	events  int
	reached chan struct{}
}

func (d *deliveries) add(line []byte) {
	id := eventID(line)
	d.mu.Lock()
	defer d.mu.Unlock()
	d.counts[id]++
	d.total++
	d.waiters = slices.DeleteFunc(d.waiters, func(w eventsWaiter) bool {
		if len(d.counts) >= w.events {
			close(w.reached)
			return true
		}
		return false
	})
}

// reached is closed once the listener has accepted n distinct events.
func (d *deliveries) reached(n int) <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	w := eventsWaiter{events: n, reached: make(chan struct{})}
	if len(d.counts) >= n {
		close(w.reached)
	} else {
		d.waiters = append(d.waiters, w)
	}
	return w.reached
}

func (d *deliveries) lines() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.total
}

func (d *deliveries) byID() map[string]int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return maps.Clone(d.counts)
}

// child is the program running as a separate process on the world's config.yaml.
type child struct {
	cmd    *exec.Cmd
	output *childOutput
	exited chan struct{} // closed once the process has exited and its output is read
}

// startChild starts the built binary; the test fails if it outlives childLimit.
func (w *world) startChild(t *testing.T, args ...string) *child {
	t.Helper()
	binary, err := builtBinary()
	if err != nil {
		t.Skipf("cannot build the binary to run as a child process: %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), childLimit)
	cmd := exec.CommandContext(ctx, binary, append([]string{"--config", w.configPath()}, args...)...)
	cmd.Env = []string{"LOG_FORMAT=json", "LOG_LEVEL=info"} // no token or setting from the test's environment
	c := &child{cmd: cmd, output: &childOutput{}, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = c.output, c.output
	cmd.WaitDelay = promptLimit
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("starting %s: %v", binary, err)
	}
	go func() {
		_ = cmd.Wait()
		cancel()
		close(c.exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-c.exited
	})
	return c
}

// runChild runs the binary to its end and returns its exit code and output.
func (w *world) runChild(t *testing.T, args ...string) (int, string) {
	t.Helper()
	c := w.startChild(t, args...)
	code := c.wait(t, childLimit)
	return code, c.output.String()
}

func (c *child) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := c.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("sending %v: %v\n%s", sig, err, c.output)
	}
}

// kill is a crash: SIGKILL gives the program no chance to save anything.
func (c *child) kill(t *testing.T) {
	t.Helper()
	c.signal(t, syscall.SIGKILL)
	<-c.exited
}

// wait returns the exit code, failing the test if the child is still running after limit.
func (c *child) wait(t *testing.T, limit time.Duration) int {
	t.Helper()
	select {
	case <-c.exited:
		return c.code()
	case <-time.After(limit):
		_ = c.cmd.Process.Kill()
		<-c.exited
		t.Fatalf("the child was still running after %s:\n%s", limit, c.output)
		return 0
	}
}

// code is the exit code of an exited child: -1 when a signal ended it.
func (c *child) code() int { return c.cmd.ProcessState.ExitCode() }

// childOutput collects what a child writes, and lets a test wait for a phrase in it.
type childOutput struct {
	mu      sync.Mutex
	text    strings.Builder
	waiters []phraseWaiter
}

type phraseWaiter struct {
	phrase string
	seen   chan struct{}
}

func (o *childOutput) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.text.Write(p)
	o.waiters = slices.DeleteFunc(o.waiters, func(w phraseWaiter) bool {
		if strings.Contains(o.text.String(), w.phrase) {
			close(w.seen)
			return true
		}
		return false
	})
	return len(p), nil
}

// appeared is closed once the child has written phrase.
func (o *childOutput) appeared(phrase string) <-chan struct{} {
	o.mu.Lock()
	defer o.mu.Unlock()
	w := phraseWaiter{phrase: phrase, seen: make(chan struct{})}
	if strings.Contains(o.text.String(), phrase) {
		close(w.seen)
	} else {
		o.waiters = append(o.waiters, w)
	}
	return w.seen
}

func (o *childOutput) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.text.String()
}
