package bench

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/logzio/logzio-jumpcloud/internal/emulator"
	"github.com/logzio/logzio-jumpcloud/source"
)

var backlog = flag.Int("backlog", 200_000, "events in the generated JumpCloud backlog")

const (
	apiKey        = "bench-api-key"
	shippingToken = "bench-shipping-token"
)

// BenchmarkEndToEnd ships the backlog with the real binary and reports, from the same run:
// events/s and MB/s shipped, peak RSS, and the ratio to the single-goroutine limit.
// Each iteration ships the whole backlog: run it with -benchtime 1x.
func BenchmarkEndToEnd(b *testing.B) {
	binary := buildBinary(b)
	now := time.Now().UTC()
	from, to := now.Add(-72*time.Hour), now.Add(-2*time.Minute)
	jumpcloud := emulator.NewJumpCloud(apiKey)
	jumpcloud.AddGenerated(1, *backlog, from, to)
	var lines, lineBytes atomic.Int64
	listener := emulator.NewListener(shippingToken)
	listener.OnLine = func(line []byte) { lines.Add(1); lineBytes.Add(int64(len(line))) }
	jc, lst := httptest.NewServer(jumpcloud), httptest.NewServer(listener)
	defer jc.Close()
	defer lst.Close()

	var elapsed time.Duration
	var peakRSS, allocs int64
	for b.Loop() {
		lines.Store(0)
		lineBytes.Store(0)
		dir := b.TempDir()
		writeConfig(b, dir, lst.URL, jc.URL+emulator.EventsPath, from)
		cmd := exec.Command(binary, "--once", "--config", filepath.Join(dir, "config.yaml"))
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		began := time.Now()
		if err := cmd.Run(); err != nil {
			b.Fatalf("the shipper failed: %v\n%s", err, tail(stderr.String()))
		}
		elapsed = time.Since(began)
		if os.Getenv("BENCH_SHOW_STDERR") != "" {
			b.Log(tail(stderr.String()))
		}
		peakRSS = cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss * 1024
		allocs = stoppedLineField(b, stderr.String(), "heap_allocs")
		if got := lines.Load(); got != int64(*backlog) {
			b.Fatalf("the listener received %d events, want %d", got, *backlog)
		}
	}
	events := float64(*backlog)
	endToEnd := events / elapsed.Seconds()
	limit := singleGoroutineLimit(b, jc.URL+emulator.EventsPath, from, to)
	b.ReportMetric(endToEnd, "events/s")
	b.ReportMetric(float64(lineBytes.Load())/elapsed.Seconds()/1e6, "MB/s")
	b.ReportMetric(float64(peakRSS)/(1<<20), "peak-RSS-MiB")
	b.ReportMetric(float64(allocs)/events, "allocs/event")
	b.ReportMetric(limit, "limit-events/s")
	b.ReportMetric(endToEnd/limit, "ratio")
}

// stoppedLineField reads a number from the shipper's last log line, "stopped".
func stoppedLineField(b *testing.B, logs, field string) int64 {
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		var fields map[string]any
		if json.Unmarshal([]byte(line), &fields) == nil && fields["message"] == "stopped" {
			if v, ok := fields[field].(float64); ok {
				return int64(v)
			}
		}
	}
	b.Fatalf("no %q on the shipper's \"stopped\" line:\n%s", field, tail(logs))
	return 0
}

// singleGoroutineLimit fetches the same pages, then times one goroutine that only decodes them,
// applies the transform and gzips the output: the rate the pipeline's stages would reach with no
// overlap and no network.
func singleGoroutineLimit(b *testing.B, url string, from, to time.Time) float64 {
	pages := fetchPages(b, url, from, to)
	transform := source.NewTransform(source.TransformConfig{Type: "jumpcloud", OrgID: "bench-org"})
	zw, _ := gzip.NewWriterLevel(io.Discard, gzip.BestSpeed)
	began := time.Now()
	n := 0
	for _, page := range pages {
		events, err := source.DecodePage(page)
		if err != nil {
			b.Fatal(err)
		}
		for _, e := range events {
			if _, ok := source.Timestamp(e); !ok {
				b.Fatal("an event without a timestamp")
			}
			line, err := transform(e)
			if err != nil {
				b.Fatal(err)
			}
			_, _ = zw.Write(line)
			_, _ = zw.Write([]byte{'\n'})
			n++
		}
	}
	_ = zw.Close()
	return float64(n) / time.Since(began).Seconds()
}

// fetchPages reads the whole backlog as raw page bodies, 10,000 events a page.
func fetchPages(b *testing.B, url string, from, to time.Time) [][]byte {
	var pages [][]byte
	var searchAfter json.RawMessage
	for {
		query, _ := json.Marshal(map[string]any{
			"service": []string{"all"}, "start_time": from.Format(time.RFC3339Nano),
			"end_time": to.Format(time.RFC3339Nano), "limit": 10000, "sort": "ASC",
			"search_after": searchAfter,
		})
		req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(query))
		req.Header.Set("x-api-key", apiKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			b.Fatalf("fetching a page: %v %s", err, resp.Status)
		}
		pages = append(pages, body)
		if resp.Header.Get("X-Result-Count") != resp.Header.Get("X-Limit") {
			return pages
		}
		searchAfter = json.RawMessage(resp.Header.Get("X-Search_after"))
	}
}

func writeConfig(b *testing.B, dir, listenerURL, jumpcloudURL string, start time.Time) {
	config := fmt.Sprintf("logzio:\n  url: %q\n  token: %q\njumpcloud_api:\n  url: %q\n  start_date: %q\n"+
		"  credentials:\n    token: %q\n", listenerURL, shippingToken, jumpcloudURL,
		start.Format("2006-01-02T15:04:05.000000Z"), apiKey)
	if err := os.WriteFile(filepath.Join(dir, "config.yaml"), []byte(config), 0o600); err != nil {
		b.Fatal(err)
	}
}

// buildBinary builds the shipper the way the release does.
func buildBinary(b *testing.B) string {
	b.Helper()
	out := filepath.Join(b.TempDir(), "logzio-jumpcloud")
	cmd := exec.CommandContext(context.Background(), "go", "build", "-trimpath", "-o", out, "../../cmd/logzio-jumpcloud")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if msg, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("building the binary: %v\n%s", err, msg)
	}
	return out
}

func tail(s string) string {
	var last []string
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		last = append(last, sc.Text())
		if len(last) > 20 {
			last = last[1:]
		}
	}
	return strings.Join(last, "\n")
}
