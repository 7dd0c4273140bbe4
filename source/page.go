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
// element, validated and minified into its own copy (so that an event waiting in the pipeline
// pins no page). It returns the number of elements read, and an error when the body is not one
// complete, valid JSON array or when each returns one (errStopDecoding ends early, cleanly).
func decodeElements(r io.Reader, each func(element []byte) error) (int, error) {
	s := splitter{r: io.LimitReader(r, maxPageBytes), buf: make([]byte, 0, 64<<10)}
	if c, err := s.next(); err != nil || c != '[' {
		return 0, s.unexpected(c, err, "the start of a JSON array")
	}
	s.pos++
	n := 0
	for {
		c, err := s.next()
		if err != nil {
			return n, s.unexpected(c, err, "an element or ]")
		}
		if c == ']' && n == 0 {
			s.pos++
			break
		}
		element, err := s.element()
		if err != nil {
			return n, err
		}
		if !json.Valid(element) {
			return n, fmt.Errorf("element %d of the page is not valid JSON", n+1)
		}
		n++
		if err := each(minified(element)); err != nil {
			if errors.Is(err, errStopDecoding) {
				return n, nil
			}
			return n, err
		}
		if c, err = s.next(); err != nil || (c != ',' && c != ']') {
			return n, s.unexpected(c, err, ", or ]")
		}
		s.pos++
		if c == ']' {
			break
		}
	}
	if c, err := s.next(); err != io.EOF {
		return n, s.unexpected(c, err, "the end of the page")
	}
	return n, nil
}

// splitter finds the elements of a JSON array in a stream without decoding them: it only tracks
// strings and nesting, reading more as an element runs past what is buffered.
type splitter struct {
	r   io.Reader
	buf []byte // buf[pos:] is read but not yet used
	pos int
	err error // the read error that ended the stream, once it has
}

// fill reads more input, keeping buf[pos:]. It returns false once the stream has ended.
func (s *splitter) fill() bool {
	if s.err != nil {
		return false
	}
	if s.pos > 0 { // move what is left to the front, to reuse the buffer
		s.buf = s.buf[:copy(s.buf, s.buf[s.pos:])]
		s.pos = 0
	}
	if len(s.buf) == cap(s.buf) {
		s.buf = append(s.buf, make([]byte, len(s.buf))...)[:len(s.buf)]
	}
	n, err := s.r.Read(s.buf[len(s.buf):cap(s.buf)])
	s.buf = s.buf[:len(s.buf)+n]
	if err != nil {
		s.err = err
	}
	return n > 0 || err == nil
}

// next skips white space and returns the next byte without using it.
func (s *splitter) next() (byte, error) {
	for {
		for ; s.pos < len(s.buf); s.pos++ {
			if c := s.buf[s.pos]; c != ' ' && c != '\t' && c != '\n' && c != '\r' {
				return c, nil
			}
		}
		if !s.fill() {
			return 0, s.err
		}
	}
}

// element returns the element starting at pos, and moves past it. The slice is valid until the
// next call.
func (s *splitter) element() ([]byte, error) {
	for {
		if end, ok := valueEnd(s.buf, s.pos); ok {
			element := s.buf[s.pos:end]
			s.pos = end
			return element, nil
		}
		if s.err == io.EOF {
			return nil, io.ErrUnexpectedEOF
		} else if s.err != nil {
			return nil, s.err
		}
		// Read until twice as much is buffered, so that a huge element is scanned again a
		// logarithmic number of times, not once per read.
		for want := 2 * (len(s.buf) - s.pos); len(s.buf)-s.pos < want && s.fill(); {
		}
	}
}

// unexpected explains what stands where want was expected.
func (s *splitter) unexpected(c byte, err error, want string) error {
	switch {
	case err == io.EOF:
		return fmt.Errorf("the page ends where %s should be: %w", want, io.ErrUnexpectedEOF)
	case err != nil:
		return err
	default:
		return fmt.Errorf("the page has %q where %s should be", c, want)
	}
}

// valueEnd returns the index just past the JSON value starting at b[i], or false when b ends
// before it does. It follows only strings and nesting; json.Valid checks the rest.
func valueEnd(b []byte, i int) (int, bool) {
	depth := 0
	for i < len(b) {
		switch b[i] {
		case '"':
			end, ok := stringEnd(b, i)
			if !ok {
				return 0, false
			}
			i = end
			if depth == 0 {
				return i, true
			}
			continue
		case '{', '[':
			depth++
		case '}', ']':
			if depth == 0 { // the end of the enclosing array: a scalar ended here
				return i, true
			}
			if depth--; depth == 0 {
				return i + 1, true
			}
		case ',', ' ', '\t', '\n', '\r':
			if depth == 0 {
				return i, true
			}
		}
		i++
	}
	return 0, false
}

// stringEnd returns the index just past the string starting at b[i], or false when b ends first.
func stringEnd(b []byte, i int) (int, bool) {
	for i++; ; i++ {
		quote := bytes.IndexByte(b[i:], '"')
		if quote < 0 {
			return 0, false
		}
		i += quote
		backslashes := 0 // the quote is escaped when an odd number of backslashes comes before it
		for b[i-1-backslashes] == '\\' {
			backslashes++
		}
		if backslashes%2 == 0 {
			return i + 1, true
		}
	}
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
