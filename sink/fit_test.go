package sink

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/rs/zerolog"

	"github.com/logzio/logzio-jumpcloud/pipeline"
)

// newFitter returns a sink that is used only for Fit, never sends, and logs to logs.
func newFitter(t testing.TB, logs *syncBuffer) *Logzio {
	t.Helper()
	s, err := New(Config{URL: "https://listener.example", Token: testToken, Log: zerolog.New(logs)})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// jsonString returns s as the JSON text of a string.
func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// manyFields returns n members "<prefix><i>": value, comma-separated.
func manyFields(prefix string, n int, value string) string {
	members := make([]string, n)
	for i := range members {
		members[i] = fmt.Sprintf("%q:%s", prefix+strconv.Itoa(i), jsonString(value))
	}
	return strings.Join(members, ",")
}

// manyStrings returns a JSON array of n copies of value.
func manyStrings(n int, value string) string {
	return "[" + strings.TrimSuffix(strings.Repeat(jsonString(value)+",", n), ",") + "]"
}

func TestFitShrinksAnOversizedEventToAValidLineUnderTheLimit(t *testing.T) {
	tests := map[string]struct {
		event string
		// wantCut is every path that must be cut, and nothing else; nil when wantCutCount says.
		wantCut      []string
		wantCutCount int
	}{
		"A large string nested deep is the only one cut.": {
			event: `{"id":"e1","service":"directory","resource":{"type":"user","meta":{"description":` +
				jsonString(strings.Repeat("x", 800_000)) + `}},"note":` + jsonString(strings.Repeat("n", 300)) + `}`,
			wantCut: []string{"resource.meta.description"},
		},
		"Of two large strings, only the larger is cut when that is enough.": {
			event: `{"id":"e2","a":` + jsonString(strings.Repeat("a", 700_000)) +
				`,"b":` + jsonString(strings.Repeat("b", 100_000)) + `}`,
			wantCut: []string{"a"},
		},
		"Many medium strings are all cut, to one common length.": {
			event:        `{"id":"e3",` + manyFields("field", 200, strings.Repeat("m", 5_000)) + `}`,
			wantCutCount: 200,
		},
		"A huge array of small strings stays whole; the large string beside it is cut.": {
			event: `{"id":"e4","tags":` + manyStrings(30_000, "tag-abcdef") +
				`,"details":{"log":[` + jsonString(strings.Repeat("L", 300_000)) + `]}}`,
			wantCut: []string{"details.log[0]"},
		},
		"Multi-byte characters, escapes and surrogate pairs are cut between characters.": {
			event:   `{"id":"e5","text":"` + strings.Repeat(`é😀\u00e9\ud83d\ude00\n\"\\a`, 30_000) + `"}`,
			wantCut: []string{"text"},
		},
		"A key with an escape is listed by its text.": {
			event:   `{"id":"e6","a\"b":{"c d":` + jsonString(strings.Repeat("k", 600_000)) + `}}`,
			wantCut: []string{`a"b.c d`},
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			logs := &syncBuffer{}
			s := newFitter(t, logs)
			original := []byte(tt.event)
			if len(original) <= ListenerLineLimit {
				t.Fatalf("the test event is %d bytes: it must exceed the listener's limit", len(original))
			}
			fitted, err := s.Fit(original)
			if err != nil {
				t.Fatal(err)
			}
			cut := checkFitted(t, original, fitted)
			if tt.wantCut != nil && !reflect.DeepEqual(cut, tt.wantCut) {
				t.Errorf("cut %q, want %q", cut, tt.wantCut)
			}
			if tt.wantCutCount != 0 && len(cut) != tt.wantCutCount {
				t.Errorf("cut %d strings, want %d", len(cut), tt.wantCutCount)
			}
			if got := s.Stats().LinesTruncated; got != 1 {
				t.Errorf("Stats().LinesTruncated = %d, want 1", got)
			}
			if !strings.Contains(logs.String(), "shortened an event") {
				t.Errorf("the shortening was not logged:\n%s", logs.String())
			}
		})
	}
}

// checkFitted checks that fitted is original shrunk as Fit documents: valid JSON and UTF-8 at
// most MaxLineBytes long, not needlessly short, with the marker, every string either kept or cut
// to a prefix of itself ended by an ellipsis, and everything else unchanged. It returns the
// paths of the cut strings, sorted.
func checkFitted(t *testing.T, original, fitted []byte) []string {
	t.Helper()
	if len(fitted) > MaxLineBytes {
		t.Fatalf("the line is %d bytes, over %d", len(fitted), MaxLineBytes)
	}
	if len(fitted) < MaxLineBytes-1_000 {
		t.Errorf("the line is %d bytes: cut far more than needed to fit %d", len(fitted), MaxLineBytes)
	}
	if !json.Valid(fitted) || !utf8.Valid(fitted) {
		t.Fatalf("the line is not valid JSON in UTF-8: …%s", fitted[max(0, len(fitted)-200):])
	}
	var before, after map[string]any
	if err := json.Unmarshal(original, &before); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(fitted, &after); err != nil {
		t.Fatal(err)
	}
	listed, _ := after[TruncatedField].([]any)
	if len(listed) == 0 || len(listed) > maxListedPaths {
		t.Fatalf("%s = %v: want 1 to %d paths", TruncatedField, after[TruncatedField], maxListedPaths)
	}
	if got := after[OriginalBytesField]; got != float64(len(original)) {
		t.Errorf("%s = %v, want %d", OriginalBytesField, got, len(original))
	}
	delete(after, TruncatedField)
	delete(after, OriginalBytesField)

	var cut []string
	compareFitted(t, "", before, after, &cut)
	sort.Strings(cut)
	for _, path := range listed {
		if i := sort.SearchStrings(cut, path.(string)); i == len(cut) || cut[i] != path {
			t.Errorf("%s lists %q, which was not cut (cut: %q)", TruncatedField, path, cut)
		}
	}
	if len(cut) <= maxListedPaths && len(listed) != len(cut) {
		t.Errorf("%s lists %v; the cut strings are %q", TruncatedField, listed, cut)
	}
	return cut
}

// compareFitted walks before and after together, appending the path of each cut string to cut.
func compareFitted(t *testing.T, path string, before, after any, cut *[]string) {
	t.Helper()
	switch b := before.(type) {
	case map[string]any:
		a, _ := after.(map[string]any)
		if len(a) != len(b) {
			t.Fatalf("%s: %d members, want %d", path, len(a), len(b))
		}
		for key := range b {
			child := key
			if path != "" {
				child = path + "." + key
			}
			compareFitted(t, child, b[key], a[key], cut)
		}
	case []any:
		a, _ := after.([]any)
		if len(a) != len(b) {
			t.Fatalf("%s: %d elements, want %d", path, len(a), len(b))
		}
		for i := range b {
			compareFitted(t, fmt.Sprintf("%s[%d]", path, i), b[i], a[i], cut)
		}
	case string:
		a, _ := after.(string)
		if a == b {
			return
		}
		kept, ok := strings.CutSuffix(a, ellipsis)
		if !ok || !strings.HasPrefix(b, kept) || len(kept) < minKeptBytes-12 {
			t.Fatalf("%s: %.60q… is not the original (%.60q…) cut at a character and ended by %q", path, a, b, ellipsis)
		}
		*cut = append(*cut, path)
	default:
		if !reflect.DeepEqual(before, after) {
			t.Fatalf("%s: %v, want %v unchanged", path, after, before)
		}
	}
}

func TestFitCutsTheLongestStringsToOneCommonLength(t *testing.T) {
	// Three strings: the two longest must end equally long, the short one untouched.
	event := `{"id":"e7","a":` + jsonString(strings.Repeat("a", 400_000)) + `,"b":` +
		jsonString(strings.Repeat("b", 300_000)) + `,"c":` + jsonString(strings.Repeat("c", 1_000)) + `}`
	fitted, err := newFitter(t, &syncBuffer{}).Fit([]byte(event))
	if err != nil {
		t.Fatal(err)
	}
	var got struct{ A, B, C string }
	if err := json.Unmarshal(fitted, &got); err != nil {
		t.Fatal(err)
	}
	if len(got.A) != len(got.B) || len(got.C) != 1_000 {
		t.Errorf("kept a: %d, b: %d, c: %d bytes; want a and b equal and c whole", len(got.A), len(got.B), len(got.C))
	}
}

func TestFitSkipsAnEventItCannotShrink(t *testing.T) {
	tests := map[string]struct {
		line     string
		wantText string
	}{
		"An event whose bulk is a huge array of small strings cannot be cut to fit.": {
			line:     `{"id":"small-strings","tags":` + manyStrings(60_000, "tag-abcdef") + `}`,
			wantText: `event "small-strings" is`,
		},
		"An event of millions of tiny fields cannot be cut to fit.": {
			line:     `{"id":"tiny-fields",` + manyFields("f", 60_000, "v") + `}`,
			wantText: `event "tiny-fields" is`,
		},
		"A line that is not a JSON object cannot be shortened.": {
			line:     `[` + jsonString(strings.Repeat("x", 600_000)) + `]`,
			wantText: "not one JSON object",
		},
		"A cut-off JSON object cannot be shortened.": {
			line:     `{"id":"broken","text":` + jsonString(strings.Repeat("x", 600_000)),
			wantText: "not one JSON object",
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			s := newFitter(t, &syncBuffer{})
			if len(tt.line) <= ListenerLineLimit {
				t.Fatalf("the test line is %d bytes: it must exceed the listener's limit", len(tt.line))
			}
			line, err := s.Fit([]byte(tt.line))
			if !errors.Is(err, ErrEventTooLarge) || line != nil {
				t.Fatalf("Fit = %d bytes, %v; want nil and ErrEventTooLarge", len(line), err)
			}
			if !strings.Contains(err.Error(), tt.wantText) {
				t.Errorf("the error %q does not say %q", err, tt.wantText)
			}
			if got := s.Stats().LinesTruncated; got != 0 {
				t.Errorf("Stats().LinesTruncated = %d for a skipped event", got)
			}
		})
	}
}

func TestFitLeavesALineUnderTheLimitAsItIsWithoutAllocating(t *testing.T) {
	s := newFitter(t, &syncBuffer{})
	line := []byte(`{"id":"e8","text":` + jsonString(strings.Repeat("x", MaxLineBytes-30)) + `}`)
	if len(line) > MaxLineBytes {
		t.Fatalf("the test line is %d bytes, over %d", len(line), MaxLineBytes)
	}
	fitted, err := s.Fit(line)
	if err != nil || len(fitted) != len(line) || &fitted[0] != &line[0] {
		t.Fatalf("Fit changed a line under the limit (err %v)", err)
	}
	if allocs := testing.AllocsPerRun(100, func() { _, _ = s.Fit(line) }); allocs != 0 {
		t.Errorf("Fit of a line under the limit allocates %v times", allocs)
	}
	if got := s.Stats().LinesTruncated; got != 0 {
		t.Errorf("Stats().LinesTruncated = %d", got)
	}
}

func TestCutPointNeverSplitsACharacter(t *testing.T) {
	tests := map[string]string{
		"Multi-byte UTF-8 characters stay whole.": "aé€😀b😀",
		"Escapes stay whole.":                     `a\n\"\\\/\t\u00e9b\u0000`,
		"Surrogate pairs stay whole.":             `\ud83d\ude00x\ud83d\ude00\ud83d\ude00`,
		"A lone surrogate is one escape.":         `\ud83dx\ude00\ud83d`,
	}
	for name, contents := range tests {
		t.Run(name, func(t *testing.T) {
			var whole string
			if err := json.Unmarshal([]byte(`"`+contents+`"`), &whole); err != nil {
				t.Fatal(err)
			}
			previous := 0
			for limit := 0; limit <= len(contents); limit++ {
				at := cutPoint([]byte(contents), limit)
				var prefix string
				if at > limit || at < previous {
					t.Fatalf("cutPoint(%d) = %d after %d", limit, at, previous)
				}
				if err := json.Unmarshal([]byte(`"`+contents[:at]+`"`), &prefix); err != nil {
					t.Fatalf("cut at %d of %d leaves invalid JSON %q: %v", at, limit, contents[:at], err)
				}
				if !utf8.ValidString(contents[:at]) || !strings.HasPrefix(whole, prefix) {
					t.Fatalf("cut at %d of %d: %q is not a prefix of %q", at, limit, prefix, whole)
				}
				previous = at
			}
			if at := cutPoint([]byte(contents), len(contents)); at != len(contents) {
				t.Errorf("cutPoint(all) = %d, want %d", at, len(contents))
			}
		})
	}
}

func TestFitAfterComposesTheTransformWithFit(t *testing.T) {
	s := newFitter(t, &syncBuffer{})
	big := []byte(`{"id":"e9","text":` + jsonString(strings.Repeat("x", 600_000)) + `}`)
	failure := errors.New("not an event")
	tests := map[string]struct {
		transform pipeline.Transform
		wantLen   func(int) bool
		wantErr   error
	}{
		"An oversized line from the transform is shrunk.": {
			transform: func([]byte) ([]byte, error) { return big, nil },
			wantLen:   func(n int) bool { return n > 0 && n <= MaxLineBytes },
		},
		"An event the transform drops stays dropped.": {
			transform: func([]byte) ([]byte, error) { return nil, nil },
			wantLen:   func(n int) bool { return n == 0 },
		},
		"The transform's error is passed on.": {
			transform: func([]byte) ([]byte, error) { return nil, failure },
			wantLen:   func(n int) bool { return n == 0 },
			wantErr:   failure,
		},
		"Without a transform, the event itself is fitted.": {
			transform: nil,
			wantLen:   func(n int) bool { return n > 0 && n <= MaxLineBytes },
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			line, err := s.FitAfter(tt.transform)(big)
			if !errors.Is(err, tt.wantErr) || !tt.wantLen(len(line)) {
				t.Errorf("got %d bytes, %v", len(line), err)
			}
		})
	}
}

func BenchmarkFit(b *testing.B) {
	s := newFitter(b, &syncBuffer{})
	small := []byte(`{"id":"5f0c1d2e3a4b5c6d7e8f9a0b","service":"directory","event_type":"user_update"}`)
	oversized := []byte(`{"id":"e10","resource":{"description":` + jsonString(strings.Repeat("x", 800_000)) + `},"tags":` +
		manyStrings(1_000, strings.Repeat("t", 100)) + `}`)
	b.Run("a line under the limit", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = s.Fit(small)
		}
	})
	b.Run("a 900 kB event", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(oversized)))
		for b.Loop() {
			if _, err := s.Fit(oversized); err != nil {
				b.Fatal(err)
			}
		}
	})
}
