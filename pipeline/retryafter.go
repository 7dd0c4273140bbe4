package pipeline

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// MaxRetryAfter caps the wait a Retry-After header can ask for: a server or proxy asking for
// hours would otherwise stall delivery without a word, where capped retries keep logging.
const MaxRetryAfter = 10 * time.Minute

// ParseRetryAfter reads a Retry-After header, in seconds or as an HTTP date, as a wait from
// now, for RetryAfter. It reports false when there is no positive wait to honour.
func ParseRetryAfter(value string, now time.Time) (time.Duration, bool) {
	value = strings.TrimSpace(value)
	if value == "" {
		return 0, false
	}
	var wait time.Duration
	if seconds, err := strconv.ParseInt(value, 10, 64); err == nil {
		if seconds > int64(MaxRetryAfter/time.Second) {
			seconds = int64(MaxRetryAfter / time.Second)
		}
		wait = time.Duration(seconds) * time.Second
	} else if at, err := http.ParseTime(value); err == nil {
		wait = at.Sub(now)
	}
	if wait <= 0 {
		return 0, false
	}
	return min(wait, MaxRetryAfter), true
}
