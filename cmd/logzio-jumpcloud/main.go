// Command logzio-jumpcloud ships JumpCloud Directory Insights events to a Logz.io listener,
// resuming where it left off from lastTime.txt.
//
//	logzio-jumpcloud [--config PATH] [--last-time PATH] [--once] [--listen ADDRESS]
//	logzio-jumpcloud validate [--config PATH] [--last-time PATH]
//	logzio-jumpcloud demo
//
// The first form ships; with --listen it also serves Prometheus metrics on /metrics and its
// health on /healthz. validate checks the configuration and the checkpoint, prints the
// effective settings with secrets masked, and ships nothing. demo ships a generated backlog
// between local emulators.
//
// main only parses flags, loads the config, handles signals and calls ship.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/logzio/logzio-jumpcloud/config"
)

func main() {
	ctx, cancel := context.WithCancel(context.Background())
	go stopOnSignals(cancel)
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// stopOnSignals makes the first SIGTERM or SIGINT a graceful stop, and a second one an
// immediate exit: whatever was not acknowledged is read again on the next start.
func stopOnSignals(gracefulStop context.CancelFunc) {
	signals := make(chan os.Signal, 2)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	first := <-signals
	// Said at once, so an operator (and a test) knows the next signal is the hard stop.
	fmt.Fprintf(os.Stderr, "%v: stopping gracefully: delivering what is in flight, then saving the checkpoint; a second signal exits at once\n", first)
	gracefulStop()
	<-signals
	fmt.Fprintln(os.Stderr, "second signal: exiting now; undelivered events will be read again on the next start")
	os.Exit(130)
}

// options are the command-line flags.
type options struct {
	configPath   string
	lastTimePath string
	once         bool
	logFormat    string
	logLevel     string
	listen       string // address for /metrics and /healthz; "" serves nothing

	// Set by tests only.
	clock         func() time.Time // the monitor's clock (default time.Now)
	progressTicks <-chan time.Time // when a catch-up logs its progress (default every 10s)
}

const usage = `usage:
  logzio-jumpcloud [flags]                                      ship, until SIGTERM (or with --once, until caught up)
  logzio-jumpcloud validate [--config PATH] [--last-time PATH]  check the config and checkpoint, ship nothing
  logzio-jumpcloud demo                                         ship a generated backlog between local emulators

flags:
`

func parseFlags(name string, args []string, stderr io.Writer) (*options, error) {
	var o options
	flags := flag.NewFlagSet(name, flag.ContinueOnError)
	flags.SetOutput(stderr)
	flags.StringVar(&o.configPath, "config", "config.yaml", "the configuration `file`")
	flags.StringVar(&o.lastTimePath, "last-time", "", "the checkpoint `file` (default: lastTime.txt beside the config file)")
	flags.BoolVar(&o.once, "once", false, "catch up to now minus the lag, deliver everything, and exit")
	flags.StringVar(&o.logFormat, "log-format", envOr("LOG_FORMAT", "json"), "log `format`: json or console (env LOG_FORMAT)")
	flags.StringVar(&o.logLevel, "log-level", envOr("LOG_LEVEL", "info"), "log `level`: debug, info, warn or error (env LOG_LEVEL)")
	flags.StringVar(&o.listen, "listen", "", "serve /metrics and /healthz on this `address`, such as :9090 (default: off)")
	flags.Usage = func() {
		fmt.Fprint(stderr, usage)
		flags.PrintDefaults()
	}
	if err := flags.Parse(args); err != nil {
		return nil, err
	}
	if flags.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q (commands: validate, demo; see --help)", flags.Arg(0))
	}
	o.lastTimePath = lastTimePath(o.configPath, o.lastTimePath)
	return &o, nil
}

// lastTimePath is the checkpoint file: the one given, or lastTime.txt beside the config file.
func lastTimePath(configPath, given string) string {
	if given != "" {
		return given
	}
	return filepath.Join(filepath.Dir(configPath), "lastTime.txt")
}

func envOr(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}

// newLogger writes JSON lines, or human-readable lines with format "console".
func newLogger(w io.Writer, format, level string) (zerolog.Logger, error) {
	lvl, err := zerolog.ParseLevel(level)
	if err != nil || level == "" {
		return zerolog.Nop(), fmt.Errorf("--log-level %q: use debug, info, warn or error", level)
	}
	// Stages log from several goroutines at once: one line at a time reaches w.
	synced := zerolog.SyncWriter(w)
	switch format {
	case "json":
		w = synced
	case "console":
		w = zerolog.ConsoleWriter{Out: synced, TimeFormat: "15:04:05.000", NoColor: !isTerminal(w)}
	default:
		return zerolog.Nop(), fmt.Errorf("--log-format %q: use json or console", format)
	}
	zerolog.TimeFieldFormat = "2006-01-02T15:04:05.000000Z07:00" // the precision of lastTime.txt
	zerolog.DurationFieldUnit = time.Millisecond
	return zerolog.New(w).Level(lvl).With().Timestamp().Logger(), nil
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	info, err := f.Stat()
	return err == nil && info.Mode()&os.ModeCharDevice != 0 && os.Getenv("NO_COLOR") == ""
}

// run is the whole program; it returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "demo":
			return demo(ctx, args[1:], stdout, stderr)
		case "validate":
			return validate(args[1:], stdout, stderr)
		}
	}
	opts, err := parseFlags("logzio-jumpcloud", args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "logzio-jumpcloud:", err)
		return 2
	}
	log, err := newLogger(stderr, opts.logFormat, opts.logLevel)
	if err != nil {
		fmt.Fprintln(stderr, "logzio-jumpcloud:", err)
		return 2
	}
	cfg, err := config.Load(opts.configPath)
	if err != nil {
		log.Error().Msg(err.Error())
		return 1
	}
	for _, warning := range cfg.Warnings {
		log.Warn().Msg(warning)
	}
	if err := ship(ctx, cfg, opts, log); err != nil {
		log.Error().Msg(err.Error())
		return 1
	}
	return 0
}
