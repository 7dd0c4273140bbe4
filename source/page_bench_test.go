package source_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/logzio/logzio-jumpcloud/internal/emulator"
	"github.com/logzio/logzio-jumpcloud/source"
)

// BenchmarkDecodePage measures the reader's share of the work: splitting a full page of 10,000
// events into minified events and reading each one's timestamp.
func BenchmarkDecodePage(b *testing.B) {
	from := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	events := emulator.Generate(1, 10000, from, from.Add(time.Hour))
	page := append(append([]byte("["), bytes.Join(events, []byte(","))...), ']')
	b.SetBytes(int64(len(page)))
	b.ReportAllocs()
	for b.Loop() {
		decoded, err := source.DecodePage(page)
		if err != nil || len(decoded) != len(events) {
			b.Fatalf("decoded %d events: %v", len(decoded), err)
		}
		for _, e := range decoded {
			if _, ok := source.Timestamp(e); !ok {
				b.Fatal("an event without a timestamp")
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(events)), "ns/event")
}
