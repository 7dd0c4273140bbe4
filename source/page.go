package source

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
)

// maxPageBytes bounds one page's body: 10,000 events of JumpCloud's usual 1 KB fit many times
// over, and a broken server cannot make the reader hold an unbounded element.
const maxPageBytes = 256 << 20

// errStopDecoding, returned by a decodeElements callback, ends decoding early without an error.
var errStopDecoding = errors.New("stop decoding")

// decodeElements reads a page body, a JSON array, as it streams in, and calls each with every
// element, minified into its own copy (so that an event waiting in the pipeline pins no page).
// It returns the number of elements read, and an error when the body is not one complete, valid
// JSON array or when each returns one (errStopDecoding ends early, cleanly).
func decodeElements(r io.Reader, each func(element []byte) error) (int, error) {
	dec := json.NewDecoder(io.LimitReader(r, maxPageBytes))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('[') {
		if err == nil {
			err = fmt.Errorf("the page is %v, not a JSON array", tok)
		}
		return 0, err
	}
	var raw json.RawMessage // reused: Decode appends into its capacity
	n := 0
	for dec.More() {
		if err := dec.Decode(&raw); err != nil {
			return n, err
		}
		n++
		if err := each(minified(raw)); err != nil {
			if errors.Is(err, errStopDecoding) {
				return n, nil
			}
			return n, err
		}
	}
	if _, err := dec.Token(); err != nil {
		return n, err
	}
	if extra, err := dec.Token(); err != io.EOF {
		return n, fmt.Errorf("unexpected %v after the page's array", extra)
	}
	return n, nil
}

// DecodePage splits a page of the events endpoint, a JSON array, into its elements, each the
// element's JSON minified, exactly as the reader does.
func DecodePage(body []byte) ([][]byte, error) {
	var events [][]byte
	_, err := decodeElements(bytes.NewReader(body), func(e []byte) error {
		events = append(events, e)
		return nil
	})
	return events, err
}

// Timestamp reads the top-level "timestamp" of an event as DecodePage returned it (minified),
// at any precision JumpCloud writes (0 to 9 fractional digits).
func Timestamp(event []byte) (time.Time, bool) {
	value, ok := topLevelValue(event, "timestamp")
	if !ok || value[0] != '"' {
		return time.Time{}, false
	}
	ts, err := time.Parse(time.RFC3339Nano, string(unescapedContent(value)))
	return ts, err == nil
}

// topLevelValue finds the value of key among a compact object's own members (not nested ones),
// without allocating. The last one wins, as in the transform.
func topLevelValue(object []byte, key string) (value []byte, found bool) {
	if len(object) < 2 || object[0] != '{' || object[1] == '}' {
		return nil, false
	}
	for i := 1; ; {
		keyEnd := skipString(object, i)
		valueStart := keyEnd + 1 // past the colon
		valueEnd := skipValue(object, valueStart)
		if string(unescapedContent(object[i:keyEnd])) == key {
			value, found = object[valueStart:valueEnd], true
		}
		if object[valueEnd] == '}' {
			return value, found
		}
		i = valueEnd + 1 // past the comma
	}
}

// minified returns a copy of valid JSON without white space outside its strings: what
// json.Compact writes, without checking again what the decoder already checked.
func minified(value []byte) []byte {
	out := make([]byte, 0, len(value))
	for i := 0; i < len(value); {
		switch c := value[i]; c {
		case ' ', '\t', '\n', '\r':
			i++
		case '"':
			end := skipString(value, i)
			out = append(out, value[i:end]...)
			i = end
		default:
			out = append(out, c)
			i++
		}
	}
	return out
}
