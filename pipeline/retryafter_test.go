package pipeline_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/logzio/logzio-jumpcloud/pipeline"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := map[string]struct {
		header string
		wait   time.Duration
		ok     bool
	}{
		"A number of seconds is that wait.":           {"7", 7 * time.Second, true},
		"Surrounding white space is ignored.":         {" 2 ", 2 * time.Second, true},
		"An HTTP date is the wait until then.":        {now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second, true},
		"A huge number of seconds is capped.":         {"99999999999999", pipeline.MaxRetryAfter, true},
		"A date far ahead is capped.":                 {now.Add(48 * time.Hour).Format(http.TimeFormat), pipeline.MaxRetryAfter, true},
		"Zero asks for no wait.":                      {"0", 0, false},
		"A negative number asks for no wait.":         {"-5", 0, false},
		"A date in the past asks for no wait.":        {now.Add(-time.Minute).Format(http.TimeFormat), 0, false},
		"Something that is neither asks for no wait.": {"soon", 0, false},
		"No header asks for no wait.":                 {"", 0, false},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			wait, ok := pipeline.ParseRetryAfter(tt.header, now)
			if wait != tt.wait || ok != tt.ok {
				t.Errorf("pipeline.ParseRetryAfter(%q) = %s, %v; want %s, %v", tt.header, wait, ok, tt.wait, tt.ok)
			}
		})
	}
}
