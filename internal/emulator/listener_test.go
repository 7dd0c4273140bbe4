package emulator_test

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/logzio/logzio-jumpcloud/internal/emulator"
)

const listenerTestToken = "listener-test-token"

// listenerPost sends body to the listener at base with the given query and Content-Encoding,
// and returns the status and the answer's body.
func listenerPost(t *testing.T, base, query, encoding string, body []byte) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, base+"/?"+query, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if encoding != "" {
		req.Header.Set("Content-Encoding", encoding)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(answer)
}

func listenerGzip(t testing.TB, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	if _, err := zw.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestListenerAnswers(t *testing.T) {
	const limit = 1024
	valid := "token=" + listenerTestToken + "&type=jumpcloud"
	big := `{"pad":"` + strings.Repeat("x", limit) + `"}`
	tests := map[string]struct {
		query, encoding string
		body            []byte
		lineLimit       int // 256 unless set
		status          int
		answer          string
		accepted        []string
	}{
		"A batch of JSON objects is accepted with an empty 200.": {
			query: valid, body: []byte("{\"a\":1}\n{\"b\":2}"),
			status: 200, accepted: []string{`{"a":1}`, `{"b":2}`},
		},
		"A trailing newline at the very end is not an empty line.": {
			query: valid, body: []byte("{\"a\":1}\n{\"b\":2}\n"),
			status: 200, accepted: []string{`{"a":1}`, `{"b":2}`},
		},
		"A gzipped batch is inflated and accepted.": {
			query: valid, encoding: "gzip", body: listenerGzip(t, []byte("{\"a\":1}\n{\"b\":2}")),
			status: 200, accepted: []string{`{"a":1}`, `{"b":2}`},
		},
		"A request without a token is refused with 401.": {
			query: "type=jumpcloud", body: []byte(`{"a":1}`), status: 401,
		},
		"A request with a wrong token is refused with 401.": {
			query: "token=wrong", body: []byte(`{"a":1}`), status: 401,
		},
		"A body that claims gzip but is not is refused with 400.": {
			query: valid, encoding: "gzip", body: []byte(`{"a":1}`), status: 400,
		},
		"A truncated gzip stream is refused with 400.": {
			query: valid, encoding: "gzip", body: listenerGzip(t, []byte(`{"a":1}`))[:12], status: 400,
		},
		"A body of exactly the size limit is taken.": {
			query: valid, body: []byte(big[:limit-2] + `"}`), lineLimit: 2 * limit, status: 200,
			accepted: []string{big[:limit-2] + `"}`},
		},
		"A body one byte over the size limit on the wire is refused with 413.": {
			query: valid, body: []byte(big[:limit-1] + `"}`), status: 413,
		},
		"A small gzipped body that inflates past the size limit is refused with 413.": {
			query: valid, encoding: "gzip", body: listenerGzip(t, []byte(big)), status: 413,
		},
		"Empty, oversized and malformed lines get 400 with their counts, and the good lines are still accepted.": {
			query:  valid,
			body:   []byte("{\"a\":1}\n\n" + `{"pad":"` + strings.Repeat("y", 300) + "\"}\n   \nnot json\n[1,2]\n\"s\"\n{\"b\":2}\n"),
			status: 400, answer: `{"malformedLines":3,"successfulLines":2,"oversizedLines":1,"emptyLogLines":2}`,
			accepted: []string{`{"a":1}`, `{"b":2}`},
		},
		"An empty body is one empty line.": {
			query: valid, body: nil,
			status: 400, answer: `{"malformedLines":0,"successfulLines":0,"oversizedLines":0,"emptyLogLines":1}`,
		},
		"An unknown Content-Encoding is refused with 415.": {
			query: valid, encoding: "br", body: []byte(`{"a":1}`), status: 415,
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			l := emulator.NewListener(listenerTestToken)
			l.BodyLimit = limit
			l.LineLimit = 256
			if tt.lineLimit > 0 {
				l.LineLimit = tt.lineLimit
			}
			srv := httptest.NewServer(l)
			defer srv.Close()

			status, answer := listenerPost(t, srv.URL, tt.query, tt.encoding, tt.body)
			if status != tt.status {
				t.Fatalf("status = %d (%q), want %d", status, answer, tt.status)
			}
			if (tt.answer != "" || status == 200) && answer != tt.answer {
				t.Errorf("answer = %q, want %q", answer, tt.answer)
			}
			var got []string
			for _, line := range l.Lines() {
				got = append(got, string(line))
			}
			if strings.Join(got, "\n") != strings.Join(tt.accepted, "\n") {
				t.Errorf("accepted lines = %q, want %q", got, tt.accepted)
			}
			stats := l.Stats()
			if stats.Requests != 1 || stats.ByStatus[tt.status] != 1 {
				t.Errorf("stats = %+v, want one request answered %d", stats, tt.status)
			}
			if stats.AcceptedLines != int64(len(tt.accepted)) {
				t.Errorf("stats.AcceptedLines = %d, want %d", stats.AcceptedLines, len(tt.accepted))
			}
		})
	}
}

func TestListenerDefaultLimitIs10MiB(t *testing.T) {
	l := emulator.NewListener(listenerTestToken)
	srv := httptest.NewServer(l)
	defer srv.Close()
	query := "token=" + listenerTestToken

	overByOne := bytes.Repeat([]byte{' '}, emulator.ListenerBodyLimit+1)
	if status, _ := listenerPost(t, srv.URL, query, "", overByOne); status != 413 {
		t.Errorf("raw body of limit+1 bytes: status = %d, want 413", status)
	}
	if status, _ := listenerPost(t, srv.URL, query, "gzip", listenerGzip(t, overByOne)); status != 413 {
		t.Errorf("gzipped body inflating to limit+1 bytes: status = %d, want 413", status)
	}
	// Whitespace inflating to exactly the limit is under it: one empty line, so 400, not 413.
	if status, _ := listenerPost(t, srv.URL, query, "gzip", listenerGzip(t, overByOne[1:])); status != 400 {
		t.Errorf("gzipped body inflating to the limit: status = %d, want 400", status)
	}
	line := []byte(`{"pad":"` + strings.Repeat("z", emulator.ListenerLineLimit-9) + `"}`) // one byte over
	if status, answer := listenerPost(t, srv.URL, query, "", line); status != 400 || !strings.Contains(answer, `"oversizedLines":1`) {
		t.Errorf("line of %d bytes: status = %d %s, want 400 with one oversized line", len(line), status, answer)
	}
	if status, _ := listenerPost(t, srv.URL, query, "", line[1:]); status != 400 {
		t.Errorf("line of %d bytes (not JSON): status = %d, want 400", len(line)-1, status)
	}
	atLimit := append(line[:emulator.ListenerLineLimit-2:emulator.ListenerLineLimit-2], '"', '}')
	if status, answer := listenerPost(t, srv.URL, query, "", atLimit); status != 200 {
		t.Errorf("line of exactly the line limit: status = %d %s, want 200", status, answer)
	}
}

func TestListenerFaultAnswersInItsPlace(t *testing.T) {
	l := emulator.NewListener(listenerTestToken)
	var calls atomic.Int32
	l.Fault = func(w http.ResponseWriter, r *http.Request) bool {
		if calls.Add(1) == 1 {
			w.Header().Set("Retry-After", "3")
			w.WriteHeader(http.StatusServiceUnavailable)
			return true
		}
		return false
	}
	srv := httptest.NewServer(l)
	defer srv.Close()
	query := "token=" + listenerTestToken + "&type=jumpcloud"

	if status, _ := listenerPost(t, srv.URL, query, "", []byte(`{"a":1}`)); status != 503 {
		t.Fatalf("first request: status = %d, want the injected 503", status)
	}
	if len(l.Lines()) != 0 {
		t.Fatalf("a faulted request recorded lines: %q", l.Lines())
	}
	if status, _ := listenerPost(t, srv.URL, query, "", []byte(`{"a":1}`)); status != 200 {
		t.Fatalf("second request: status = %d, want 200", status)
	}
	stats := l.Stats()
	if stats.Requests != 2 || stats.ByStatus[503] != 1 || stats.ByStatus[200] != 1 || l.Requests() != 2 {
		t.Errorf("stats = %+v, want one 503 and one 200", stats)
	}
	if types := l.Types(); types["jumpcloud"] != 1 || len(types) != 1 {
		t.Errorf("types = %v, want the one handled request under jumpcloud", types)
	}
}

func TestListenerFaultCanResetTheConnection(t *testing.T) {
	l := emulator.NewListener(listenerTestToken)
	l.Fault = func(w http.ResponseWriter, r *http.Request) bool {
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Errorf("hijack: %v", err)
			return false
		}
		conn.Close()
		return true
	}
	srv := httptest.NewServer(l)
	defer srv.Close()

	resp, err := http.Post(srv.URL+"/?token="+listenerTestToken, "text/plain", strings.NewReader(`{"a":1}`))
	if err == nil {
		resp.Body.Close()
		t.Fatalf("got status %d, want a broken connection", resp.StatusCode)
	}
	if stats := l.Stats(); stats.Requests != 1 || len(stats.ByStatus) != 0 {
		t.Errorf("stats = %+v, want one request and no answer", stats)
	}
}

func TestListenerOnLineCountsWithoutStoring(t *testing.T) {
	l := emulator.NewListener(listenerTestToken)
	var seen, size atomic.Int64
	l.OnLine = func(line []byte) {
		seen.Add(1)
		size.Add(int64(len(line)))
	}
	srv := httptest.NewServer(l)
	defer srv.Close()

	body := bytes.Repeat([]byte("{\"n\":12345}\n"), 1000)
	for range 3 {
		if status, answer := listenerPost(t, srv.URL, "token="+listenerTestToken, "gzip", listenerGzip(t, body)); status != 200 {
			t.Fatalf("status = %d %s, want 200", status, answer)
		}
	}
	if seen.Load() != 3000 || size.Load() != 3000*11 {
		t.Errorf("OnLine saw %d lines of %d bytes, want 3000 of %d", seen.Load(), size.Load(), 3000*11)
	}
	if n := len(l.Lines()); n != 0 {
		t.Errorf("Lines() holds %d lines, want none when OnLine is set", n)
	}
	if stats := l.Stats(); stats.AcceptedLines != 3000 || stats.AcceptedBytes != 3000*11 {
		t.Errorf("stats = %+v", stats)
	}
}

func TestListenerRefusesOtherMethods(t *testing.T) {
	l := emulator.NewListener(listenerTestToken)
	srv := httptest.NewServer(l)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/?token=" + listenerTestToken)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET: status = %d, want 405", resp.StatusCode)
	}
}
