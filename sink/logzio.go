// Package sink delivers the pipeline's batches to a Logz.io log listener.
//
// Logzio is a pipeline.Sink: each Send posts one batch as gzipped newline-delimited JSON to
// POST <URL>/?token=<token>&type=<type>, and turns the listener's answer, in one place
// (classify), into one of: taken (200, or 400 when only some lines were rejected: resending
// would duplicate the accepted ones), too large (413: the batch is split in halves), transient
// (429, 5xx, network errors and timeouts: the pipeline retries) or permanent (a rejected token
// and any other answer: the pipeline stops). The token travels in the URL; redact.go keeps it
// out of every error and log line. Before batching, Fit (fit.go) shrinks a line over the
// listener's line limit, which the listener would otherwise drop.
package sink

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"

	"github.com/rs/zerolog"

	"github.com/logzio/logzio-jumpcloud/pipeline"
)

// DefaultTimeout bounds one request, from connecting to reading the answer, when
// Config.Timeout is zero.
const DefaultTimeout = 60 * time.Second

const (
	// maxBodyBytes is the listener's limit on a request body. Logz.io does not say whether it
	// applies before or after compression, so a batch whose lines exceed it is split before it
	// is sent rather than after a 413 (see CONTRACTS.md).
	maxBodyBytes = 10_485_760
	// answerLimit is the most of an answer read to classify it; drainLimit is how much more is
	// read and discarded so that the connection can be reused.
	answerLimit = 64 << 10
	drainLimit  = 256 << 10
	// snippetBytes is the most of an answer's body quoted in an error or a log line.
	snippetBytes = 200
	// maxPooledBody is the largest body buffer kept for reuse; a rare larger one is let go.
	maxPooledBody = 4 << 20
)

// ErrTokenRejected is the permanent error for a 401 or 403 answer. A valid token sent to
// another region's listener gets the same answer as a wrong one.
var ErrTokenRejected = errors.New("logz.io listener: token rejected — check the token and the listener's region")

// errTooLarge is classify's verdict on a 413: the batch must be split.
var errTooLarge = errors.New("logz.io listener: request body too large")

// StatusError is an answer from the listener that did not deliver the batch: a transient one
// (429, 408, 5xx), or, marked pipeline.Permanent, any answer the sink does not otherwise handle.
type StatusError struct {
	StatusCode int
	Snippet    string        // the start of the answer's body, redacted
	RetryAfter time.Duration // the wait the answer asked for with Retry-After, or 0
}

func (e *StatusError) Error() string {
	msg := fmt.Sprintf("logz.io listener answered %d %s", e.StatusCode, http.StatusText(e.StatusCode))
	if e.RetryAfter > 0 {
		msg += fmt.Sprintf(" (retry after %s)", e.RetryAfter)
	}
	if e.Snippet != "" {
		msg += ": " + e.Snippet
	}
	return msg
}

// Config configures a Logzio sink. The zero value of every optional field picks the default
// given in its comment.
type Config struct {
	// URL is the listener's base URL, such as https://listener.logz.io:8071 (or the listener of
	// the account's region). A path in it is kept; token and type are added to its query.
	URL string
	// Token is the account's log shipping token.
	Token string
	// Type is the log type, which picks the parsing pipeline (optional: the listener's default,
	// http-bulk).
	Type string
	// Client sends the requests (optional: a client with a connection pool sized for several
	// concurrent senders, which does not follow redirects, so that the token in the URL never
	// goes to another host).
	Client *http.Client
	// Timeout bounds each request, including reading its answer (default DefaultTimeout).
	Timeout time.Duration
	// GzipLevel is the compression level, from gzip.HuffmanOnly to gzip.BestCompression
	// (default gzip.BestSpeed; gzip.NoCompression cannot be chosen).
	GzipLevel int
	// Retry shapes the retries of each half of a batch split after a 413. The batch as a whole
	// is retried by the pipeline.
	Retry pipeline.RetryPolicy
	// Log receives the sink's warnings and errors (optional: none).
	Log zerolog.Logger
}

// Validate reports every problem with c, each naming its field. No message holds the token.
func (c Config) Validate() error {
	var errs []error
	if c.URL == "" {
		errs = append(errs, errors.New("sink: Config.URL is required: the listener's base URL, such as https://listener.logz.io:8071"))
	} else if u, err := url.Parse(c.URL); err != nil {
		errs = append(errs, fmt.Errorf("sink: Config.URL does not parse: %w", redactError(err)))
	} else {
		if u.Scheme != "http" && u.Scheme != "https" {
			errs = append(errs, fmt.Errorf("sink: Config.URL %q must start with https:// or http://", RedactURL(c.URL)))
		}
		if u.Host == "" {
			errs = append(errs, fmt.Errorf("sink: Config.URL %q has no host", RedactURL(c.URL)))
		}
	}
	if c.Token == "" {
		errs = append(errs, errors.New("sink: Config.Token is required: the Logz.io log shipping token"))
	} else if strings.IndexFunc(c.Token, unicode.IsSpace) >= 0 {
		errs = append(errs, errors.New("sink: Config.Token contains white space; check how it was copied"))
	}
	if c.GzipLevel != 0 && (c.GzipLevel < gzip.HuffmanOnly || c.GzipLevel > gzip.BestCompression) {
		errs = append(errs, fmt.Errorf("sink: Config.GzipLevel %d is not a gzip level (%d to %d)", c.GzipLevel, gzip.HuffmanOnly, gzip.BestCompression))
	}
	if c.Timeout < 0 {
		errs = append(errs, fmt.Errorf("sink: Config.Timeout %s is negative", c.Timeout))
	}
	return errors.Join(errs...)
}

// String describes c without its token.
func (c Config) String() string {
	token := ""
	if c.Token != "" {
		token = redacted
	}
	return fmt.Sprintf("{URL:%s Token:%s Type:%s}", RedactURL(c.URL), token, c.Type)
}

// Logzio posts batches of lines to a Logz.io listener. It is safe for concurrent use.
type Logzio struct {
	endpoint string // the full request URL, token included: never printed
	redacted string // endpoint as logs may show it
	client   *http.Client
	timeout  time.Duration
	retry    pipeline.RetryPolicy
	log      zerolog.Logger

	gzipWriters sync.Pool // of *gzip.Writer at the configured level
	counters    counters
}

var _ pipeline.Sink = (*Logzio)(nil)

// New returns a sink for cfg, or cfg's problems.
func New(cfg Config) (*Logzio, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	u, _ := url.Parse(cfg.URL) // Validate parsed it
	if u.Path == "" {
		u.Path = "/"
	}
	u.Fragment = ""
	query := u.Query()
	query.Set("token", cfg.Token)
	if cfg.Type != "" {
		query.Set("type", cfg.Type)
	}
	u.RawQuery = query.Encode()

	s := &Logzio{
		endpoint: u.String(),
		redacted: RedactURL(u.String()),
		client:   cfg.Client,
		timeout:  cfg.Timeout,
		retry:    cfg.Retry,
		log:      cfg.Log,
	}
	if s.client == nil {
		s.client = defaultClient()
	}
	if s.timeout == 0 {
		s.timeout = DefaultTimeout
	}
	// BestSpeed by default: the sink's hardest job is catching up a backlog, where compression
	// is the CPU cost on the hot path and level 1 runs several times faster than the default
	// level, while JSON log lines, being repetitive text, still shrink to a fraction of their
	// size. A higher level saves some bandwidth at a large cost in throughput.
	level := cfg.GzipLevel
	if level == 0 {
		level = gzip.BestSpeed
	}
	s.gzipWriters.New = func() any {
		zw, _ := gzip.NewWriterLevel(io.Discard, level) // Validate checked the level
		return zw
	}
	return s, nil
}

func defaultClient() *http.Client {
	transport := http.DefaultTransport.(*http.Transport).Clone()
	// Several senders post to the one listener host at once; the default of 2 idle
	// connections per host would close and reopen TLS connections all the time.
	transport.MaxIdleConnsPerHost = 32
	return &http.Client{
		Transport: transport,
		// A listener does not redirect; following a redirect would carry the token elsewhere.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// String describes the sink without its token.
func (s *Logzio) String() string { return "logz.io sink to " + s.redacted }

// Send makes one attempt to deliver lines, as pipeline.Sink asks. Empty and blank lines are
// skipped. It returns nil when the listener has taken the batch, even if it rejected some
// lines; a permanent error when the token is rejected or the answer cannot be acted on; and a
// transient error, carrying any Retry-After wait, when a retry may succeed. A batch the listener
// finds too large is split in halves, each retried on its own; a single line it still refuses
// is dropped and logged.
func (s *Logzio) Send(ctx context.Context, lines [][]byte) error {
	lines = sendable(lines)
	if len(lines) == 0 {
		return nil
	}
	return s.deliver(ctx, lines)
}

// deliver posts lines, or splits them first when they are sure to be too large.
func (s *Logzio) deliver(ctx context.Context, lines [][]byte) error {
	size := len(lines) - 1 // newlines between lines
	for _, line := range lines {
		size += len(line)
	}
	if size > maxBodyBytes {
		return s.split(ctx, lines, "over the listener's 10 MB body limit")
	}
	return s.post(ctx, lines)
}

// post makes one request with lines, and acts on the answer.
func (s *Logzio) post(ctx context.Context, lines [][]byte) error {
	buf, err := s.encode(lines)
	if err != nil {
		return pipeline.Permanent(fmt.Errorf("sink: compressing a batch: %w", err))
	}
	size := buf.Len()
	body := newRequestBody(buf)

	reqCtx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(reqCtx, http.MethodPost, s.endpoint, body)
	if err != nil {
		_ = body.Close()
		return pipeline.Permanent(fmt.Errorf("sink: building a request: %w", redactError(err)))
	}
	req.ContentLength = int64(size)
	// text/plain as Logz.io's own senders label the body; the listener reads it as NDJSON.
	req.Header.Set("Content-Type", "text/plain; charset=utf-8")
	req.Header.Set("Content-Encoding", "gzip")

	s.counters.requests.Add(1)
	s.counters.bytesSent.Add(int64(size))
	resp, err := s.client.Do(req)
	if err != nil {
		err = fmt.Errorf("logz.io listener: sending %d lines: %w", len(lines), redactError(err))
		var untrusted *tls.CertificateVerificationError
		if errors.As(err, &untrusted) { // a wrong host or an interception: retrying cannot help
			return pipeline.Permanent(fmt.Errorf("%w — the listener's certificate is not trusted; check logzio.url", err))
		}
		return err
	}
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, answerLimit)) // a cut-short answer is judged by its status
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, drainLimit))
	_ = resp.Body.Close()

	err = s.classify(resp.StatusCode, resp.Header, answer, len(lines))
	if errors.Is(err, errTooLarge) {
		return s.split(ctx, lines, "the listener answered 413")
	}
	return err
}

// classify is the one place that judges the listener's answer to a batch of n lines. It
// returns nil when the listener has taken the batch, errTooLarge when the batch must be split,
// an error marked pipeline.Permanent when retrying cannot help, and any other error when a
// retry may.
func (s *Logzio) classify(status int, header http.Header, answer []byte, n int) error {
	switch {
	case status >= 200 && status < 300:
		s.counters.batchesAccepted.Add(1)
		s.counters.linesAccepted.Add(int64(n))
		return nil
	case status == http.StatusBadRequest:
		// Some lines were rejected and the rest accepted: a resend would duplicate the
		// accepted ones, so the batch counts as taken. A 400 without the listener's line counts
		// came from something else (a proxy?): nobody knows what got in, so nothing is dropped
		// and the pipeline stops with the checkpoint before this batch.
		if !s.partlyRejected(answer, n) {
			return pipeline.Permanent(fmt.Errorf("%w; it is not the listener's answer (no line counts): check logzio.url and any proxy in between",
				&StatusError{StatusCode: status, Snippet: snippet(answer)}))
		}
		s.counters.batchesAccepted.Add(1)
		return nil
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return pipeline.Permanent(fmt.Errorf("%w (HTTP %d)", ErrTokenRejected, status))
	case status == http.StatusRequestEntityTooLarge:
		return errTooLarge
	case status == http.StatusTooManyRequests || status == http.StatusRequestTimeout || status >= 500 && status < 600:
		err := &StatusError{StatusCode: status, Snippet: snippet(answer)}
		if wait, ok := pipeline.ParseRetryAfter(header.Get("Retry-After"), time.Now()); ok {
			err.RetryAfter = wait
			return pipeline.RetryAfter(err, wait)
		}
		return err
	default:
		return pipeline.Permanent(&StatusError{StatusCode: status, Snippet: snippet(answer)})
	}
}

// partlyRejected records and logs a 400 answer to a batch of n lines, and reports false when
// the answer does not carry the listener's line counts.
func (s *Logzio) partlyRejected(answer []byte, n int) bool {
	var counts struct {
		Malformed  *int64 `json:"malformedLines"`
		Successful *int64 `json:"successfulLines"`
		Oversized  *int64 `json:"oversizedLines"`
		Empty      *int64 `json:"emptyLogLines"`
	}
	if json.Unmarshal(answer, &counts) != nil ||
		counts.Malformed == nil && counts.Successful == nil && counts.Oversized == nil && counts.Empty == nil {
		return false
	}
	value := func(p *int64) int64 {
		if p == nil {
			return 0
		}
		return *p
	}
	malformed, oversized, empty := value(counts.Malformed), value(counts.Oversized), value(counts.Empty)
	s.counters.linesAccepted.Add(value(counts.Successful))
	s.counters.linesRejected.Add(malformed + oversized + empty)
	s.log.Warn().Int("lines", n).Int64("successful_lines", value(counts.Successful)).
		Int64("malformed_lines", malformed).Int64("oversized_lines", oversized).Int64("empty_lines", empty).
		Msg("logz.io listener rejected some lines of a batch and accepted the rest; not resending it")
	return true
}

// split delivers lines as two halves, each retried on its own, so that a failure of the second
// half never resends the first. A single line cannot be split: it is dropped and logged, so
// that it never blocks the stream.
func (s *Logzio) split(ctx context.Context, lines [][]byte, why string) error {
	if len(lines) == 1 {
		s.counters.linesDropped.Add(1)
		s.log.Error().Int("line_bytes", len(lines[0])).Str("reason", why).Str("line_start", snippet(lines[0])).
			Msg("dropping a log line too large for the listener")
		return nil
	}
	s.counters.splits.Add(1)
	mid := len(lines) / 2
	for _, half := range [2][][]byte{lines[:mid], lines[mid:]} {
		onRetry := func(err error, wait time.Duration) {
			s.log.Warn().Err(err).Int("lines", len(half)).Dur("retry_in", wait).
				Msg("sending half of a split batch failed; retrying")
		}
		if err := s.retry.Retry(ctx, func() error { return s.deliver(ctx, half) }, onRetry); err != nil {
			return err
		}
	}
	return nil
}

// newline separates lines in a request body.
var newline = []byte{'\n'}

// encode gzips lines, joined by newlines, into a pooled buffer.
func (s *Logzio) encode(lines [][]byte) (*bytes.Buffer, error) {
	buf := bodyBuffers.Get().(*bytes.Buffer)
	zw := s.gzipWriters.Get().(*gzip.Writer)
	defer s.gzipWriters.Put(zw)
	zw.Reset(buf)
	for i, line := range lines {
		if i > 0 {
			if _, err := zw.Write(newline); err != nil {
				putBodyBuffer(buf)
				return nil, err
			}
		}
		if _, err := zw.Write(line); err != nil {
			putBodyBuffer(buf)
			return nil, err
		}
	}
	if err := zw.Close(); err != nil {
		putBodyBuffer(buf)
		return nil, err
	}
	return buf, nil
}

var bodyBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func putBodyBuffer(buf *bytes.Buffer) {
	if buf.Cap() > maxPooledBody {
		return
	}
	buf.Reset()
	bodyBuffers.Put(buf)
}

// requestBody is an encoded body whose buffer returns to the pool when the transport closes it.
// The transport may close a request body from another goroutine, even after Do has returned
// (see http.RoundTripper), so the buffer can be reused only from Close; the lock keeps a Read
// from running during or after it.
type requestBody struct {
	mu     sync.Mutex
	buf    *bytes.Buffer // nil once closed
	reader bytes.Reader
}

var errBodyClosed = errors.New("sink: request body read after close")

func newRequestBody(buf *bytes.Buffer) *requestBody {
	b := &requestBody{buf: buf}
	b.reader.Reset(buf.Bytes())
	return b
}

func (b *requestBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf == nil {
		return 0, errBodyClosed
	}
	return b.reader.Read(p)
}

func (b *requestBody) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf != nil {
		b.reader.Reset(nil)
		putBodyBuffer(b.buf)
		b.buf = nil
	}
	return nil
}

// sendable returns lines without the empty or blank ones, with any newline inside a line made a
// space: the listener would read it as the end of the line, and in a JSON object a raw newline
// can only be white space between tokens. It copies only when it has something to change.
func sendable(lines [][]byte) [][]byte {
	clean := true
	for _, line := range lines {
		if isBlank(line) || bytes.IndexByte(line, '\n') >= 0 {
			clean = false
			break
		}
	}
	if clean {
		return lines
	}
	out := make([][]byte, 0, len(lines))
	for _, line := range lines {
		if isBlank(line) {
			continue
		}
		if bytes.IndexByte(line, '\n') >= 0 {
			line = bytes.ReplaceAll(line, newline, []byte{' '})
		}
		out = append(out, line)
	}
	return out
}

func isBlank(line []byte) bool { return len(bytes.TrimSpace(line)) == 0 }

// snippet returns the start of an answer's body (or of a line), on one line and redacted, for
// an error or a log line.
func snippet(b []byte) string {
	b = bytes.TrimSpace(b)
	cut := len(b) > snippetBytes
	if cut {
		b = b[:snippetBytes]
	}
	s := strings.ToValidUTF8(string(b), "")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	if cut {
		s += "…"
	}
	return redactText(s)
}

// Stats counts what a Logzio sink has done.
type Stats struct {
	Requests        int64 // POST requests made: attempts, and halves of split batches, included
	BytesSent       int64 // compressed body bytes of those requests
	BatchesAccepted int64 // requests the listener took: 200, or 400 with some lines rejected
	LinesAccepted   int64 // lines the listener accepted (all of a 200; successfulLines of a 400)
	LinesRejected   int64 // lines the listener rejected as malformed, oversized or empty (all of a 400 without counts)
	LinesDropped    int64 // single lines dropped as too large even alone
	Splits          int64 // batches split in halves as too large
	LinesTruncated  int64 // lines Fit shortened to fit the listener's line limit
}

type counters struct {
	requests, bytesSent, batchesAccepted, linesAccepted, linesRejected, linesDropped, splits, linesTruncated atomic.Int64
}

// Stats returns a snapshot of the sink's counters. It is safe to call while the sink sends.
func (s *Logzio) Stats() Stats {
	return Stats{
		Requests:        s.counters.requests.Load(),
		BytesSent:       s.counters.bytesSent.Load(),
		BatchesAccepted: s.counters.batchesAccepted.Load(),
		LinesAccepted:   s.counters.linesAccepted.Load(),
		LinesRejected:   s.counters.linesRejected.Load(),
		LinesDropped:    s.counters.linesDropped.Load(),
		Splits:          s.counters.splits.Load(),
		LinesTruncated:  s.counters.linesTruncated.Load(),
	}
}
