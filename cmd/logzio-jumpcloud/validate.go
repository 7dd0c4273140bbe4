package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/logzio/logzio-jumpcloud/checkpoint"
	"github.com/logzio/logzio-jumpcloud/config"
	"github.com/logzio/logzio-jumpcloud/source"
)

// validate checks what a run would start from, the config file and the checkpoint, and prints
// the effective settings with secrets masked. It reads no events and ships nothing. It returns 0
// when a run would start, and 1, with the problems on stderr, when it would stop at once.
func validate(args []string, stdout, stderr io.Writer) int {
	flags := flag.NewFlagSet("logzio-jumpcloud validate", flag.ContinueOnError)
	flags.SetOutput(stderr)
	configPath := flags.String("config", "config.yaml", "the configuration `file`")
	lastTime := flags.String("last-time", "", "the checkpoint `file` (default: lastTime.txt beside the config file)")
	if err := flags.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if flags.NArg() > 0 {
		fmt.Fprintf(stderr, "logzio-jumpcloud validate: unexpected argument %q (flags: --config, --last-time)\n", flags.Arg(0))
		return 2
	}

	cfg, err := config.Load(*configPath)
	if err != nil {
		fmt.Fprintf(stderr, "%s is not valid:\n%s", *configPath, indent(err.Error()+"\n"))
		return 1
	}
	fmt.Fprintf(stdout, "%s is valid. Effective settings (secrets masked):\n%s", *configPath, indent(cfg.String()))
	for _, warning := range cfg.Warnings {
		fmt.Fprintln(stdout, "warning:", warning)
	}

	state, err := checkpointState(cfg, checkpoint.Open(lastTimePath(*configPath, *lastTime)), time.Now())
	fmt.Fprint(stdout, state)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	return 0
}

// checkpointState describes the checkpoint a run would resume from, and proves that it can be
// written: a run stops at start otherwise. The proof writes and removes a temporary file beside
// it; the checkpoint itself is left as it is.
func checkpointState(cfg *config.Config, store *checkpoint.File, now time.Time) (string, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "checkpoint %s:\n", store.Path())
	_, statErr := os.Stat(store.Path())
	fmt.Fprintf(&b, "  exists: %s\n", yesNo(statErr == nil))

	at, found, err := store.Load()
	switch {
	case err != nil:
		return b.String(), err
	case found:
		fmt.Fprintf(&b, "  resumes from: %s (%s behind now)\n", at.Format(checkpoint.Layout), ago(now.Sub(at)))
		if now.Sub(at) > source.Retention {
			fmt.Fprintf(&b, "  note: older than JumpCloud keeps events (%s): reading starts at the oldest kept\n", ago(source.Retention))
		}
	case cfg.JumpCloud.StartDate.IsZero():
		fmt.Fprintf(&b, "  resumes from: nothing yet; the first run starts from now (jumpcloud_api.start_date is not set)\n")
	default:
		fmt.Fprintf(&b, "  resumes from: nothing yet; the first run starts from jumpcloud_api.start_date, %s\n",
			cfg.JumpCloud.StartDate.Format(checkpoint.Layout))
	}

	if err := store.CheckWritable(); err != nil {
		fmt.Fprintf(&b, "  writable: no\n")
		return b.String(), err
	}
	fmt.Fprintf(&b, "  writable: yes\n")
	return b.String(), nil
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
