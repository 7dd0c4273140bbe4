package emulator

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/subtle"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
)

// The limits a Logz.io listener enforces.
const (
	// ListenerBodyLimit is the largest request body a listener takes, in bytes. It is checked
	// both on the wire and after decompression, since Logz.io does not say which it means.
	ListenerBodyLimit = 10_485_760
	// ListenerLineLimit is the largest log line a listener takes, in bytes.
	ListenerLineLimit = 500_000
)

// Listener is a fake Logz.io log listener (the HTTP bulk endpoint on ports 8070/8071). It
// answers as the real one is documented to, and records what it accepted, for tests and
// benchmarks of a sender:
//
//   - POST /?token=T[&type=X]; a missing or wrong token gets 401.
//   - The body may be gzipped (Content-Encoding: gzip); a bad gzip stream gets 400.
//   - A body over BodyLimit bytes, on the wire or once decompressed, gets 413.
//   - The body is split into lines on '\n' (one final newline is allowed). A line that is empty
//     or only whitespace, over LineLimit bytes, or not a JSON object is rejected; every other
//     line is accepted. When all lines are accepted the answer is 200 with an empty body;
//     otherwise it is 400 with {"malformedLines":N,"successfulLines":N,"oversizedLines":N,
//     "emptyLogLines":N}, and the good lines are accepted all the same.
//
// Set the exported fields before serving; they must not change afterwards. A Listener is safe
// for concurrent requests, and its accessors may be called while it serves.
type Listener struct {
	// Fault, when not nil, is called first for every request. When it returns true it has
	// answered the request itself (an injected fault: a 503, a Retry-After, a hijacked and reset
	// connection) and the listener does nothing more. When it returns false the request is
	// handled normally, so Fault must then leave r.Body unread or put back an equivalent one.
	Fault func(w http.ResponseWriter, r *http.Request) bool
	// OnLine, when not nil, is called with each accepted line instead of storing it, so that a
	// benchmark can ship millions of lines in flat memory; Lines then stays empty. It is called
	// from several goroutines at once, in order within one request, and line is valid only
	// during the call.
	OnLine func(line []byte)
	// BodyLimit overrides ListenerBodyLimit when positive, so tests can reach it cheaply.
	BodyLimit int
	// LineLimit overrides ListenerLineLimit when positive.
	LineLimit int

	token string

	mu    sync.Mutex
	lines [][]byte
	types map[string]int
	stats ListenerStats
}

// ListenerStats counts what a Listener has seen.
type ListenerStats struct {
	Requests       int         // every request, including those Fault answered
	ByStatus       map[int]int // answers by status code (a request whose connection Fault hijacked has none)
	WireBytes      int64       // request body bytes read from the network, as sent
	AcceptedLines  int64       // lines accepted
	AcceptedBytes  int64       // bytes of accepted lines, without their newlines
	MalformedLines int64       // lines that were not a JSON object
	OversizedLines int64       // lines over the line limit
	EmptyLines     int64       // lines that were empty or only whitespace
}

// NewListener returns a Listener that accepts token.
func NewListener(token string) *Listener {
	return &Listener{token: token, types: map[string]int{}}
}

// Lines returns the accepted lines in the order they arrived (the lines of one request stay
// together). It is empty when OnLine is set. The caller must not modify the lines.
func (l *Listener) Lines() [][]byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([][]byte(nil), l.lines...)
}

// Requests returns the number of requests received, including those Fault answered.
func (l *Listener) Requests() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.stats.Requests
}

// Types returns, for each value of the type query parameter, how many requests carrying a valid
// token were sent with it; requests without one count under "".
func (l *Listener) Types() map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	types := make(map[string]int, len(l.types))
	for k, v := range l.types {
		types[k] = v
	}
	return types
}

// Stats returns a snapshot of the listener's counters.
func (l *Listener) Stats() ListenerStats {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.stats
	s.ByStatus = make(map[int]int, len(l.stats.ByStatus))
	for k, v := range l.stats.ByStatus {
		s.ByStatus[k] = v
	}
	return s
}

// ServeHTTP answers one bulk request.
func (l *Listener) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	l.mu.Lock()
	l.stats.Requests++
	l.mu.Unlock()

	if l.Fault != nil {
		rec := &listenerRecorder{ResponseWriter: w}
		if l.Fault(rec, r) {
			l.recordStatus(rec.status)
			return
		}
	}

	status, body := l.handle(r)
	l.recordStatus(status)
	switch {
	case status == http.StatusMethodNotAllowed:
		w.Header().Set("Allow", http.MethodPost)
	case len(body) > 0 && body[0] == '{':
		w.Header().Set("Content-Type", "application/json")
	case len(body) > 0:
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	}
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// listenerCounts is the body of a 400 answer. Field order is the listener's.
type listenerCounts struct {
	MalformedLines  int64 `json:"malformedLines"`
	SuccessfulLines int64 `json:"successfulLines"`
	OversizedLines  int64 `json:"oversizedLines"`
	EmptyLogLines   int64 `json:"emptyLogLines"`
}

var (
	listenerBuffers     = sync.Pool{New: func() any { return new(bytes.Buffer) }}
	listenerGzipReaders sync.Pool // of *gzip.Reader
)

// handle reads and judges one request, recording what it accepts, and returns the answer.
func (l *Listener) handle(r *http.Request) (status int, body []byte) {
	if r.Method != http.MethodPost {
		return http.StatusMethodNotAllowed, []byte("only POST is supported\n")
	}
	query := r.URL.Query()
	if token := query.Get("token"); token == "" || subtle.ConstantTimeCompare([]byte(token), []byte(l.token)) != 1 {
		return http.StatusUnauthorized, []byte("token missing or invalid\n")
	}
	l.mu.Lock()
	l.types[query.Get("type")]++
	l.mu.Unlock()

	limit := int64(l.BodyLimit)
	if limit <= 0 {
		limit = ListenerBodyLimit
	}

	wire := listenerBuffers.Get().(*bytes.Buffer)
	defer listenerPutBuffer(wire)
	n, err := wire.ReadFrom(io.LimitReader(r.Body, limit+1))
	l.mu.Lock()
	l.stats.WireBytes += n
	l.mu.Unlock()
	if err != nil {
		return http.StatusBadRequest, []byte("reading the body: " + err.Error() + "\n")
	}
	if n > limit {
		return http.StatusRequestEntityTooLarge, []byte("request body over the size limit\n")
	}

	data := wire.Bytes()
	switch enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
	case "gzip":
		plain := listenerBuffers.Get().(*bytes.Buffer)
		defer listenerPutBuffer(plain)
		tooBig, err := listenerGunzip(plain, data, limit)
		if err != nil {
			return http.StatusBadRequest, []byte("bad gzip stream: " + err.Error() + "\n")
		}
		if tooBig {
			return http.StatusRequestEntityTooLarge, []byte("request body over the size limit once decompressed\n")
		}
		data = plain.Bytes()
	default:
		return http.StatusUnsupportedMediaType, []byte("unsupported Content-Encoding " + enc + "\n")
	}

	counts := l.accept(data)
	if counts.MalformedLines == 0 && counts.OversizedLines == 0 && counts.EmptyLogLines == 0 {
		return http.StatusOK, nil
	}
	body, _ = json.Marshal(counts)
	return http.StatusBadRequest, body
}

// listenerGunzip inflates data into out, reading at most limit+1 bytes; tooBig reports that
// the stream holds more than limit bytes.
func listenerGunzip(out *bytes.Buffer, data []byte, limit int64) (tooBig bool, err error) {
	zr, _ := listenerGzipReaders.Get().(*gzip.Reader)
	if zr == nil {
		zr, err = gzip.NewReader(bytes.NewReader(data))
	} else {
		err = zr.Reset(bytes.NewReader(data))
	}
	if err != nil {
		return false, err
	}
	defer listenerGzipReaders.Put(zr)
	n, err := out.ReadFrom(io.LimitReader(zr, limit+1))
	if err != nil {
		return false, err
	}
	return n > limit, nil
}

// accept judges each line of data, records the good ones and the counts, and returns the counts.
func (l *Listener) accept(data []byte) listenerCounts {
	lineLimit := l.LineLimit
	if lineLimit <= 0 {
		lineLimit = ListenerLineLimit
	}
	if l.OnLine == nil {
		// Stored lines outlive the pooled buffer: give them one copy of their own.
		data = bytes.Clone(data)
	}
	data = bytes.TrimSuffix(data, []byte("\n")) // one final newline ends the last line

	var (
		counts   listenerCounts
		accepted [][]byte
		bytesIn  int64
	)
	for rest, more := data, true; more; {
		var line []byte
		line, rest, more = bytes.Cut(rest, []byte("\n"))
		switch {
		case len(line) > lineLimit:
			counts.OversizedLines++
		case len(bytes.TrimSpace(line)) == 0:
			counts.EmptyLogLines++
		case !listenerIsObject(line):
			counts.MalformedLines++
		default:
			counts.SuccessfulLines++
			bytesIn += int64(len(line))
			if l.OnLine != nil {
				l.OnLine(line)
			} else {
				accepted = append(accepted, line[:len(line):len(line)])
			}
		}
	}

	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, accepted...)
	l.stats.AcceptedLines += counts.SuccessfulLines
	l.stats.AcceptedBytes += bytesIn
	l.stats.MalformedLines += counts.MalformedLines
	l.stats.OversizedLines += counts.OversizedLines
	l.stats.EmptyLines += counts.EmptyLogLines
	return counts
}

// listenerIsObject reports whether line is one JSON object.
func listenerIsObject(line []byte) bool {
	trimmed := bytes.TrimLeft(line, " \t\r")
	return len(trimmed) > 0 && trimmed[0] == '{' && json.Valid(line)
}

func (l *Listener) recordStatus(status int) {
	if status == 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stats.ByStatus == nil {
		l.stats.ByStatus = map[int]int{}
	}
	l.stats.ByStatus[status]++
}

func listenerPutBuffer(b *bytes.Buffer) {
	if b.Cap() > 4*ListenerBodyLimit {
		return // let an outsized buffer go rather than pin it
	}
	b.Reset()
	listenerBuffers.Put(b)
}

// listenerRecorder notes the status a Fault answers with. It still lets Fault hijack the
// connection, directly or through http.ResponseController.
type listenerRecorder struct {
	http.ResponseWriter
	status int
}

func (r *listenerRecorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
	r.ResponseWriter.WriteHeader(status)
}

func (r *listenerRecorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(p)
}

func (r *listenerRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (r *listenerRecorder) Flush() { _ = http.NewResponseController(r.ResponseWriter).Flush() }

func (r *listenerRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return http.NewResponseController(r.ResponseWriter).Hijack()
}
