package sink

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/logzio/logzio-jumpcloud/internal/emulator"
	"github.com/logzio/logzio-jumpcloud/pipeline"
)

// testToken is distinctive so that a leak into any error or log line is easy to spot.
const testToken = "sEcReT-t0ken-7f3a9c1e"

var fastRetry = pipeline.RetryPolicy{Initial: time.Millisecond, Max: 5 * time.Millisecond}

// syncBuffer collects log output written from several goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// harness is a sink posting to an emulated listener over real HTTP.
type harness struct {
	listener *emulator.Listener
	server   *httptest.Server
	sink     *Logzio
	logs     *syncBuffer
}

// newHarness starts a listener that accepts testToken, lets setup adjust it and the sink's
// config before either serves, and checks at the end that no log line holds the token.
func newHarness(t *testing.T, setup func(*emulator.Listener, *Config)) *harness {
	t.Helper()
	h := &harness{listener: emulator.NewListener(testToken), logs: &syncBuffer{}}
	cfg := Config{
		Token: testToken,
		Type:  "jumpcloud",
		Retry: fastRetry,
		Log:   zerolog.New(h.logs),
	}
	if setup != nil {
		setup(h.listener, &cfg)
	}
	h.server = httptest.NewServer(h.listener)
	t.Cleanup(h.server.Close)
	cfg.URL = h.server.URL + cfg.URL // setup may give a path
	sink, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.sink = sink
	t.Cleanup(func() {
		if strings.Contains(h.logs.String(), testToken) {
			t.Errorf("the log holds the token:\n%s", h.logs.String())
		}
	})
	return h
}

// assertNoToken fails when err, or any error it wraps, prints the token.
func assertNoToken(t *testing.T, err error) {
	t.Helper()
	var walk func(error)
	walk = func(e error) {
		if e == nil {
			return
		}
		for _, text := range []string{e.Error(), fmt.Sprintf("%+v", e), fmt.Sprintf("%#v", e)} {
			if strings.Contains(text, testToken) {
				t.Errorf("an error holds the token: %s", text)
			}
		}
		switch u := e.(type) {
		case interface{ Unwrap() error }:
			walk(u.Unwrap())
		case interface{ Unwrap() []error }:
			for _, next := range u.Unwrap() {
				walk(next)
			}
		}
	}
	walk(err)
}

// jsonLines returns n distinct JSON objects of about size bytes each, numbered from first.
func jsonLines(first, n, size int) [][]byte {
	lines := make([][]byte, n)
	for i := range lines {
		head := fmt.Sprintf(`{"id":"%08d","pad":"`, first+i)
		lines[i] = []byte(head + strings.Repeat("x", max(0, size-len(head)-2)) + `"}`)
	}
	return lines
}

func sameLines(t *testing.T, got, want [][]byte) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("the listener got %d lines, want %d", len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("line %d = %.60q…, want %.60q…", i, got[i], want[i])
		}
	}
}

// captured is what a request looked like on the wire.
type captured struct {
	path, query, encoding, contentType string
	body                               []byte
}

func TestSendDeliversABatchIntact(t *testing.T) {
	seen := make(chan captured, 1)
	h := newHarness(t, func(l *emulator.Listener, cfg *Config) {
		cfg.URL = "/bulk/" // a path the user gave is kept
		l.Fault = func(w http.ResponseWriter, r *http.Request) bool {
			body, err := io.ReadAll(r.Body)
			if err != nil {
				t.Errorf("reading the body: %v", err)
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
			seen <- captured{r.URL.Path, r.URL.RawQuery, r.Header.Get("Content-Encoding"), r.Header.Get("Content-Type"), body}
			return false
		}
	})
	lines := [][]byte{[]byte(`{"a":1}`), nil, {}, []byte("   "), []byte("{\"b\":\n2}"), []byte(`{"c":"three"}`)}
	if err := h.sink.Send(context.Background(), lines); err != nil {
		t.Fatalf("Send: %v", err)
	}

	sameLines(t, h.listener.Lines(), [][]byte{[]byte(`{"a":1}`), []byte(`{"b": 2}`), []byte(`{"c":"three"}`)})
	req := <-seen
	if req.path != "/bulk/" || req.query != "token="+testToken+"&type=jumpcloud" {
		t.Errorf("request went to %s?%s, want /bulk/ with the token and type=jumpcloud", req.path, req.query)
	}
	if req.encoding != "gzip" || !strings.HasPrefix(req.contentType, "text/plain") {
		t.Errorf("Content-Encoding %q, Content-Type %q; want gzip and text/plain", req.encoding, req.contentType)
	}
	zr, err := gzip.NewReader(bytes.NewReader(req.body))
	if err != nil {
		t.Fatalf("the body is not gzip: %v", err)
	}
	plain, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("the body is not gzip: %v", err)
	}
	if want := "{\"a\":1}\n{\"b\": 2}\n{\"c\":\"three\"}"; string(plain) != want {
		t.Errorf("body = %q, want %q (no blank lines)", plain, want)
	}
	if types := h.listener.Types(); types["jumpcloud"] != 1 || len(types) != 1 {
		t.Errorf("types = %v, want one request of type jumpcloud", types)
	}
	want := Stats{Requests: 1, BytesSent: int64(len(req.body)), BatchesAccepted: 1, LinesAccepted: 3}
	if got := h.sink.Stats(); got != want {
		t.Errorf("Stats() = %+v, want %+v", got, want)
	}
}

func TestSendOfNothingSendsNothing(t *testing.T) {
	h := newHarness(t, nil)
	if err := h.sink.Send(context.Background(), [][]byte{nil, []byte(" \n ")}); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if n := h.listener.Requests(); n != 0 {
		t.Errorf("the listener got %d requests for a batch of blank lines, want none", n)
	}
}

func TestSendDoesNotResendAPartlyRejectedBatch(t *testing.T) {
	h := newHarness(t, func(l *emulator.Listener, _ *Config) { l.LineLimit = 100 })
	good := jsonLines(0, 3, 50)
	lines := [][]byte{good[0], []byte("not json"), good[1], jsonLines(3, 1, 200)[0], good[2]}

	// As the pipeline would: retry until Send reports success or a permanent failure.
	send := func() error { return h.sink.Send(context.Background(), lines) }
	if err := fastRetry.Retry(context.Background(), send, nil); err != nil {
		t.Fatalf("Send: %v", err)
	}

	if n := h.listener.Requests(); n != 1 {
		t.Errorf("the listener got %d requests, want exactly 1: a 400 must not be resent", n)
	}
	sameLines(t, h.listener.Lines(), good)
	stats := h.sink.Stats()
	if stats.BatchesAccepted != 1 || stats.LinesAccepted != 3 || stats.LinesRejected != 2 {
		t.Errorf("Stats() = %+v, want 1 batch taken, 3 lines accepted and 2 rejected", stats)
	}
	logs := h.logs.String()
	for _, want := range []string{`"level":"warn"`, `"malformed_lines":1`, `"oversized_lines":1`, `"successful_lines":3`} {
		if !strings.Contains(logs, want) {
			t.Errorf("the log lacks %s:\n%s", want, logs)
		}
	}
}

// answer returns a Fault that answers every request with status, headers and body.
func answer(status int, body string, headers ...string) func(http.ResponseWriter, *http.Request) bool {
	return func(w http.ResponseWriter, _ *http.Request) bool {
		for i := 0; i+1 < len(headers); i += 2 {
			w.Header().Set(headers[i], headers[i+1])
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
		return true
	}
}

// waitAskedBy returns the wait pipeline.RetryPolicy.Retry takes after err, by retrying once and
// stopping it at the first wait.
func waitAskedBy(err error) time.Duration {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wait time.Duration
	_ = fastRetry.Retry(ctx, func() error { return err }, func(_ error, w time.Duration) {
		wait = w
		cancel()
	})
	return wait
}

func TestSendClassifiesAnswers(t *testing.T) {
	inAMinute := time.Now().Add(time.Minute).UTC().Format(http.TimeFormat)
	tests := map[string]struct {
		fault     func(http.ResponseWriter, *http.Request) bool
		permanent bool
		transient bool
		says      []string      // in the error message
		wait      time.Duration // the least wait a retry must take
		logs      []string      // in the log
	}{
		"A 200 answer delivers the batch.": {
			fault: answer(200, ""),
		},
		"A 400 answer without the listener's counts is permanent: nobody knows what got in.": {
			fault: answer(400, "Bad Request: something odd"), permanent: true,
			says: []string{"400", "no line counts", "Bad Request: something odd"},
		},
		"A 401 answer is permanent and says the token was rejected.": {
			fault: answer(401, ""), permanent: true,
			says: []string{"token rejected", "check the token and the listener's region", "401"},
		},
		"A 403 answer is permanent and says the token was rejected.": {
			fault: answer(403, ""), permanent: true, says: []string{"token rejected", "403"},
		},
		"A 404 answer is permanent and quotes the answer.": {
			fault: answer(404, "no such endpoint"), permanent: true, says: []string{"404", "no such endpoint"},
		},
		"An answer that echoes the token never shows it.": {
			fault: answer(422, "bad request to /?token="+testToken+"&type=x"), permanent: true,
			says: []string{"422", "token=REDACTED"},
		},
		"A 429 answer with Retry-After in seconds is transient and asks for that wait.": {
			fault: answer(429, "slow down", "Retry-After", "7"), transient: true,
			says: []string{"429", "slow down"}, wait: 7 * time.Second,
		},
		"A 503 answer with Retry-After as an HTTP date is transient and asks for the wait until then.": {
			fault: answer(503, "", "Retry-After", inAMinute), transient: true, wait: 55 * time.Second,
		},
		"A 500 answer is transient.": {fault: answer(500, "oops"), transient: true, says: []string{"500", "oops"}},
		"A 502 answer is transient.": {fault: answer(502, ""), transient: true},
		"A 503 answer is transient.": {fault: answer(503, ""), transient: true},
		"A 504 answer is transient.": {fault: answer(504, ""), transient: true},
		"A 408 answer is transient.": {fault: answer(408, ""), transient: true},
		"A redirect is not followed and is permanent.": {
			fault: answer(307, "", "Location", "https://elsewhere.example/?token="+testToken), permanent: true, says: []string{"307"},
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, func(l *emulator.Listener, _ *Config) { l.Fault = tt.fault })
			err := h.sink.Send(context.Background(), jsonLines(0, 3, 100))
			assertNoToken(t, err)
			switch {
			case tt.permanent:
				if !pipeline.IsPermanent(err) {
					t.Errorf("Send = %v, want a permanent error", err)
				}
			case tt.transient:
				if err == nil || pipeline.IsPermanent(err) {
					t.Errorf("Send = %v, want a transient error", err)
				}
			default:
				if err != nil {
					t.Errorf("Send = %v, want nil", err)
				}
			}
			for _, want := range tt.says {
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Errorf("Send = %v, want it to say %q", err, want)
				}
			}
			if tt.wait > 0 {
				var status *StatusError
				if !errors.As(err, &status) || status.RetryAfter < tt.wait {
					t.Errorf("Send = %#v, want a *StatusError asking for at least %s", err, tt.wait)
				}
				if got := waitAskedBy(err); got < tt.wait || got > pipeline.MaxRetryAfter {
					t.Errorf("pipeline retry waits %s after Send's error, want at least %s", got, tt.wait)
				}
			}
			for _, want := range tt.logs {
				if !strings.Contains(h.logs.String(), want) {
					t.Errorf("the log lacks %s:\n%s", want, h.logs.String())
				}
			}
			if n := h.listener.Requests(); n != 1 {
				t.Errorf("the listener got %d requests, want 1: Send makes one attempt", n)
			}
		})
	}
}

func TestSendWithAWrongTokenIsRejectedForGood(t *testing.T) {
	h := newHarness(t, func(_ *emulator.Listener, cfg *Config) { cfg.Token = testToken + "-but-wrong" })
	err := h.sink.Send(context.Background(), jsonLines(0, 2, 100))
	assertNoToken(t, err)
	if !pipeline.IsPermanent(err) || !errors.Is(err, ErrTokenRejected) {
		t.Fatalf("Send = %v, want a permanent ErrTokenRejected", err)
	}
	if !strings.Contains(err.Error(), "token rejected") || !strings.Contains(err.Error(), "401") {
		t.Errorf("Send = %q, want it to say the token was rejected, with the status", err)
	}
}

func TestSendSplitsABatchTheListenerFindsTooLarge(t *testing.T) {
	tests := map[string]struct {
		lines    int
		fault    bool // fail the second half's first attempt with a 503
		splits   int64
		requests int
	}{
		"A batch twice too large is sent as two halves.": {
			lines: 24, splits: 1, requests: 3,
		},
		"When the second half first fails with a 503, it alone is sent again.": {
			lines: 24, fault: true, splits: 1, requests: 4,
		},
		"A batch many times too large is split until each part fits.": {
			lines: 100, splits: 7, requests: 15,
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, func(l *emulator.Listener, _ *Config) {
				l.BodyLimit = 8 << 10 // the 500-byte lines: 16 fit in a request
				var n atomic.Int32
				l.Fault = func(w http.ResponseWriter, r *http.Request) bool {
					if n.Add(1) == 3 && tt.fault { // 1: the whole batch (413), 2: first half, 3: second half
						return answer(503, "busy")(w, r)
					}
					return false
				}
			})
			lines := jsonLines(0, tt.lines, 500)
			if err := h.sink.Send(context.Background(), lines); err != nil {
				t.Fatalf("Send: %v", err)
			}
			sameLines(t, h.listener.Lines(), lines) // each line exactly once, in order
			if n := h.listener.Requests(); n != tt.requests {
				t.Errorf("the listener got %d requests, want %d", n, tt.requests)
			}
			stats := h.sink.Stats()
			if stats.Splits != tt.splits || stats.LinesAccepted != int64(tt.lines) || stats.LinesDropped != 0 {
				t.Errorf("Stats() = %+v, want %d splits and all %d lines accepted", stats, tt.splits, tt.lines)
			}
			if tt.fault && !strings.Contains(h.logs.String(), "retrying") {
				t.Errorf("the log does not tell of the retried half:\n%s", h.logs.String())
			}
		})
	}
}

func TestSendDropsALineTooLargeEvenAlone(t *testing.T) {
	small := jsonLines(0, 2, 100)
	big := jsonLines(2, 1, 2000)[0]
	tests := map[string]struct {
		lines, arrive [][]byte
		requests      int
	}{
		"A lone oversized line is dropped and Send returns.": {
			lines: [][]byte{big}, requests: 1,
		},
		"An oversized line among others is dropped and the others arrive once each.": {
			lines: [][]byte{small[0], big, small[1]}, arrive: small, requests: 5,
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, func(l *emulator.Listener, _ *Config) { l.BodyLimit = 1024 })
			if err := h.sink.Send(context.Background(), tt.lines); err != nil {
				t.Fatalf("Send: %v", err)
			}
			sameLines(t, h.listener.Lines(), tt.arrive)
			if n := h.listener.Requests(); n != tt.requests {
				t.Errorf("the listener got %d requests, want %d", n, tt.requests)
			}
			if stats := h.sink.Stats(); stats.LinesDropped != 1 {
				t.Errorf("Stats() = %+v, want one line dropped", stats)
			}
			if logs := h.logs.String(); !strings.Contains(logs, `"level":"error"`) || !strings.Contains(logs, "dropping a log line") {
				t.Errorf("the log does not tell of the dropped line:\n%s", logs)
			}
		})
	}
}

func TestSendSplitsBeforeSendingABatchOverTheListenerLimit(t *testing.T) {
	h := newHarness(t, nil) // the real 10 MiB limit
	lines := jsonLines(0, 11<<10, 1024)
	if err := h.sink.Send(context.Background(), lines); err != nil {
		t.Fatalf("Send: %v", err)
	}
	sameLines(t, h.listener.Lines(), lines)
	if got := h.listener.Stats().ByStatus; got[413] != 0 || got[200] != 2 {
		t.Errorf("answers by status = %v, want two 200s and no 413", got)
	}

	huge := jsonLines(0, 1, maxBodyBytes+1)
	if err := h.sink.Send(context.Background(), huge); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if n := h.listener.Requests(); n != 2 {
		t.Errorf("the listener got %d requests, want none for a line over the body limit", n-2)
	}
	if stats := h.sink.Stats(); stats.LinesDropped != 1 || stats.Splits != 1 {
		t.Errorf("Stats() = %+v, want one split and one line dropped", stats)
	}
}

func TestSendNetworkFailuresAreTransient(t *testing.T) {
	tests := map[string]struct {
		fault   func(release <-chan struct{}) func(http.ResponseWriter, *http.Request) bool
		timeout time.Duration
		closed  bool // the listener is gone before Send
		is      error
	}{
		"A connection reset before an answer is transient.": {
			fault: func(<-chan struct{}) func(http.ResponseWriter, *http.Request) bool {
				return func(w http.ResponseWriter, r *http.Request) bool {
					_, _ = io.Copy(io.Discard, r.Body)
					conn, _, err := http.NewResponseController(w).Hijack()
					if err != nil {
						panic(err)
					}
					if tcp, ok := conn.(*net.TCPConn); ok {
						_ = tcp.SetLinger(0) // close with a RST
					}
					_ = conn.Close()
					return true
				}
			},
		},
		"A listener that does not answer in time is transient.": {
			timeout: 50 * time.Millisecond,
			is:      context.DeadlineExceeded,
			fault: func(release <-chan struct{}) func(http.ResponseWriter, *http.Request) bool {
				return func(w http.ResponseWriter, r *http.Request) bool {
					_, _ = io.Copy(io.Discard, r.Body)
					select {
					case <-r.Context().Done():
					case <-release:
					}
					return true
				}
			},
		},
		"A listener that refuses connections is transient.": {closed: true},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			release := make(chan struct{})
			h := newHarness(t, func(l *emulator.Listener, cfg *Config) {
				cfg.Timeout = tt.timeout
				if tt.fault != nil {
					l.Fault = tt.fault(release)
				}
			})
			t.Cleanup(func() { close(release) }) // before the server closes
			if tt.closed {
				h.server.Close()
			}
			err := h.sink.Send(context.Background(), jsonLines(0, 3, 100))
			assertNoToken(t, err)
			if err == nil || pipeline.IsPermanent(err) {
				t.Fatalf("Send = %v, want a transient error", err)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("Send = %v, want it to match %v", err, tt.is)
			}
			if !strings.Contains(err.Error(), "token=REDACTED") {
				t.Errorf("Send = %q, want the URL shown with the token redacted", err)
			}
		})
	}
}

func TestSendStopsRetryingASplitHalfOnCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h := newHarness(t, func(l *emulator.Listener, _ *Config) {
		l.BodyLimit = 8 << 10
		var n atomic.Int32
		l.Fault = func(w http.ResponseWriter, r *http.Request) bool {
			if n.Add(1) >= 3 { // the second half fails until the context ends
				cancel()
				return answer(503, "")(w, r)
			}
			return false
		}
	})
	err := h.sink.Send(ctx, jsonLines(0, 24, 500))
	assertNoToken(t, err)
	if !errors.Is(err, context.Canceled) || pipeline.IsPermanent(err) {
		t.Fatalf("Send = %v, want a transient error matching context.Canceled", err)
	}
}

func TestSendFromManySendersAtOnce(t *testing.T) {
	h := newHarness(t, nil)
	const senders, batches, perBatch = 8, 25, 20
	var wg sync.WaitGroup
	for s := range senders {
		wg.Go(func() {
			for b := range batches {
				first := (s*batches + b) * perBatch
				if err := h.sink.Send(context.Background(), jsonLines(first, perBatch, 300)); err != nil {
					t.Errorf("Send: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	seen := map[string]bool{}
	for _, line := range h.listener.Lines() {
		if seen[string(line)] {
			t.Fatalf("line %.30q arrived twice", line)
		}
		seen[string(line)] = true
	}
	if len(seen) != senders*batches*perBatch {
		t.Errorf("the listener got %d distinct lines, want %d", len(seen), senders*batches*perBatch)
	}
}

func TestConfigValidateNamesEachProblem(t *testing.T) {
	tests := map[string]struct {
		cfg  Config
		says []string
	}{
		"A config without URL or token names both fields.": {
			cfg: Config{}, says: []string{"Config.URL is required", "Config.Token is required"},
		},
		"A URL that is not http or https is refused.": {
			cfg: Config{URL: "listener.logz.io:8071", Token: testToken}, says: []string{"Config.URL"},
		},
		"A URL without a host is refused.": {
			cfg: Config{URL: "https:///path", Token: testToken}, says: []string{"has no host"},
		},
		"A token with white space is refused without being shown.": {
			cfg: Config{URL: "https://listener.logz.io:8071", Token: testToken + "\n"}, says: []string{"Config.Token contains white space"},
		},
		"A gzip level out of range is refused.": {
			cfg: Config{URL: "https://listener.logz.io:8071", Token: testToken, GzipLevel: 12}, says: []string{"Config.GzipLevel 12"},
		},
		"A URL holding the token and a password never shows either.": {
			cfg:  Config{URL: "ftp://user:" + testToken + "@host/?token=" + testToken, Token: testToken},
			says: []string{"Config.URL", "REDACTED"},
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := New(tt.cfg)
			if err == nil {
				t.Fatal("New accepted the config")
			}
			assertNoToken(t, err)
			for _, want := range tt.says {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
		})
	}
}

func TestPrintingTheSinkOrItsConfigHidesTheToken(t *testing.T) {
	cfg := Config{URL: "https://listener.logz.io:8071", Token: testToken, Type: "jumpcloud"}
	sink, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, text := range []string{fmt.Sprint(sink), fmt.Sprintf("%v", cfg), fmt.Sprintf("%+v", cfg)} {
		if strings.Contains(text, testToken) || !strings.Contains(text, "listener.logz.io") {
			t.Errorf("printed as %q: want the host and no token", text)
		}
	}
}

// benchmarkEvent is shaped like a JumpCloud Directory Insights event of about 1 KB.
const benchmarkEvent = `{"id":"%024x","event_type":"user_login_attempt","service":"sso","timestamp":"2025-03-01T12:%02d:%02d.%09dZ",` +
	`"organization":"5f3b2a1c9d8e7f6a5b4c3d2e","initiated_by":{"id":"%024x","type":"user","username":"user%d"},` +
	`"client_ip":"203.0.%d.%d","geoip":{"country_code":"DE","region_code":"BE","region_name":"Berlin","timezone":"Europe/Berlin",` +
	`"continent_code":"EU","latitude":52.52,"longitude":13.405},"useragent":{"name":"Chrome","major":"122","minor":"0",` +
	`"patch":"6261","os":"Mac OS X","os_major":"14","os_minor":"3","device":"Mac","os_full":"Mac OS X 14.3.1","version":"122.0.6261.94"},` +
	`"resource":{"id":"%024x","type":"application","name":"Salesforce"},"success":%t,"error_message":"","auth_method":"password",` +
	`"mfa":true,"mfa_meta":{"type":"TOTP"},"provider":null,"sso_token_success":true,"application":{"id":"%024x",` +
	`"name":"salesforce","display_label":"Salesforce Production"},"@version":"1"}`

// BenchmarkEncode measures the gzip encoding of a 2 MiB batch of about 1 KB JSON lines, the
// pipeline's default batch size, at the default level.
func BenchmarkEncode(b *testing.B) {
	var lines [][]byte
	size := 0
	for i := 0; size < 2<<20; i++ {
		line := fmt.Appendf(nil, benchmarkEvent, i*7919, i/60%60, i%60, i*104729%1e9, i%97, i%500, i/256%256, i%256, i%13, i%3 != 0, i%11)
		lines = append(lines, line)
		size += len(line) + 1
	}
	sink, err := New(Config{URL: "https://listener.logz.io:8071", Token: testToken})
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(size - 1))
	b.ReportAllocs()
	var compressed int
	for b.Loop() {
		buf, err := sink.encode(lines)
		if err != nil {
			b.Fatal(err)
		}
		compressed = buf.Len()
		putBodyBuffer(buf)
	}
	b.ReportMetric(float64(len(lines)), "lines/batch")
	b.ReportMetric(float64(size)/float64(compressed), "ratio")
}

func TestTheDefaultClientRefusesAListenerWithAnUntrustedCertificate(t *testing.T) {
	listener := emulator.NewListener(testToken)
	server := httptest.NewUnstartedServer(listener)
	server.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake is expected
	server.StartTLS()                                   // with a self-signed certificate no system trusts
	t.Cleanup(server.Close)
	send := func(client *http.Client) error {
		s, err := New(Config{URL: server.URL, Token: testToken, Client: client})
		if err != nil {
			t.Fatal(err)
		}
		return s.Send(context.Background(), jsonLines(0, 3, 100))
	}

	err := send(nil) // the default client
	assertNoToken(t, err)
	var unknownAuthority x509.UnknownAuthorityError
	if !errors.As(err, &unknownAuthority) {
		t.Fatalf("Send = %v, want a certificate verification failure", err)
	}
	if !pipeline.IsPermanent(err) || !strings.Contains(err.Error(), "not trusted") {
		t.Errorf("Send = %v, want a permanent error saying the certificate is not trusted", err)
	}
	if got := len(listener.Lines()); got != 0 {
		t.Fatalf("the listener got %d lines over a connection whose certificate was not verified", got)
	}
	// The same listener with a client that trusts its certificate takes the batch: the refusal
	// above came from verification, not from the listener.
	if err := send(server.Client()); err != nil {
		t.Fatalf("a client trusting the certificate: %v", err)
	}
	if got := len(listener.Lines()); got != 3 {
		t.Errorf("the listener got %d lines from a client trusting it, want 3", got)
	}
}
