package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/logzio/logzio-jumpcloud/checkpoint"
	"github.com/logzio/logzio-jumpcloud/config"
	"github.com/logzio/logzio-jumpcloud/internal/emulator"
)

// demoConfig is the config.yaml the demo writes: the same file a user writes, pointed at the
// local emulators.
const demoConfig = `logzio:
  url: %q
  token: "demo-shipping-token"
jumpcloud_api:
  url: %q
  start_date: %q
  credentials:
    token: "demo-api-key"
  settings:
    time_interval: 5
`

// demo starts a local JumpCloud holding a backlog and a local Logz.io listener, ships the backlog
// with the real pipeline, then adds new events, moves the clock on and ships again from the
// checkpoint, printing what arrived.
func demo(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	flags := flag.NewFlagSet("logzio-jumpcloud demo", flag.ContinueOnError)
	flags.SetOutput(stderr)
	backlog := flags.Int("events", 20000, "events in the generated backlog")
	dir := flags.String("dir", "", "the folder for config.yaml and lastTime.txt (default: a new temporary folder)")
	if err := flags.Parse(args); err != nil {
		return 2
	}
	fail := func(err error) int {
		fmt.Fprintln(stderr, "demo:", err)
		return 1
	}
	if *dir == "" {
		tmp, err := os.MkdirTemp("", "logzio-jumpcloud-demo-")
		if err != nil {
			return fail(err)
		}
		*dir = tmp
	}
	log, _ := newLogger(stderr, "console", "info")

	// One clock for both sides, so the demo can move time on between the two runs.
	var clockMu sync.Mutex
	clock := time.Now().UTC().Truncate(time.Millisecond)
	now := func() time.Time { clockMu.Lock(); defer clockMu.Unlock(); return clock }

	jumpcloud := emulator.NewJumpCloud("demo-api-key")
	jumpcloud.Now = now
	start := clock.Add(-72 * time.Hour)
	jumpcloud.AddGenerated(2026, *backlog, start, clock.Add(-2*time.Minute))
	listener := emulator.NewListener("demo-shipping-token")
	jumpcloudServer, listenerServer := httptest.NewServer(jumpcloud), httptest.NewServer(listener)
	defer jumpcloudServer.Close()
	defer listenerServer.Close()

	configPath := filepath.Join(*dir, "config.yaml")
	yaml := fmt.Sprintf(demoConfig, listenerServer.URL, jumpcloudServer.URL+"/insights/directory/v1/events",
		start.Format("2006-01-02T15:04:05.000000Z"))
	if err := os.WriteFile(configPath, []byte(yaml), 0o600); err != nil {
		return fail(err)
	}
	cfg, err := config.Load(configPath)
	if err != nil {
		return fail(err)
	}
	store := checkpoint.Open(lastTimePath(configPath, ""))
	fmt.Fprintf(stdout, "A local JumpCloud holds %d events from the last 3 days; a local Logz.io listener waits.\n", *backlog)
	fmt.Fprintf(stdout, "Config %s:\n%s\n", configPath, indent(yaml))

	runOnce := func() (time.Duration, error) {
		began := time.Now()
		p, err := newPipeline(cfg, store, true, log, now)
		if err != nil {
			return 0, err
		}
		err = p.Run(ctx)
		return time.Since(began), err
	}
	took, err := runOnce()
	if err != nil {
		return fail(err)
	}
	firstRun := len(listener.Lines())
	fmt.Fprintf(stdout, "\nRun 1 shipped %d events in %s, in %d requests.\n", firstRun, took.Round(time.Millisecond), listener.Requests())

	// Ten minutes later, 500 new events have happened: a second run ships just those.
	if err := jumpcloud.Add(emulator.Generate(7, 500, clock.Add(-time.Minute), clock.Add(8*time.Minute))...); err != nil {
		return fail(err)
	}
	clockMu.Lock()
	clock = clock.Add(10 * time.Minute)
	clockMu.Unlock()
	if _, err := runOnce(); err != nil {
		return fail(err)
	}
	lines := listener.Lines()
	fmt.Fprintf(stdout, "Run 2, ten minutes later, resumed from lastTime.txt and shipped %d new events.\n", len(lines)-firstRun)

	ids := map[string]bool{}
	for _, line := range lines {
		var event struct{ ID string }
		_ = json.Unmarshal(line, &event)
		ids[event.ID] = true
	}
	fmt.Fprintf(stdout, "The listener holds %d events, %d distinct: every event once.\n", len(lines), len(ids))
	if len(lines) > 0 {
		var pretty bytes.Buffer
		_ = json.Indent(&pretty, lines[len(lines)/2], "  ", "  ")
		fmt.Fprintf(stdout, "\nOne shipped event, as the listener received it:\n  %s\n", pretty.String())
	}
	if saved, err := os.ReadFile(store.Path()); err == nil {
		fmt.Fprintf(stdout, "\n%s:\n%s", store.Path(), indent(string(saved)))
	}
	return 0
}

func indent(text string) string {
	var b bytes.Buffer
	for _, line := range bytes.SplitAfter([]byte(text), []byte("\n")) {
		if len(line) > 0 {
			b.WriteString("  ")
			b.Write(line)
		}
	}
	return b.String()
}
