package sink

// Fitting sits between the transform and the batcher:
//
//	transform ──one JSON line──▶ Fit ──a line the listener takes──▶ batcher ▶ senders
//
// The listener refuses a line over 500,000 bytes: it answers 400 with oversizedLines, the batch
// counts as taken (resending it would duplicate the rest), and the event is lost without a
// trace in the index. Fit shrinks such an event before it is batched, by cutting its longest
// string values, and marks it so that a search shows what was cut. A line under the limit is
// returned as it is after one length check.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/logzio/logzio-jumpcloud/pipeline"
)

const (
	// ListenerLineLimit is the listener's documented limit on one log line, in bytes.
	ListenerLineLimit = 500_000
	// MaxLineBytes is the longest line Fit lets through: the listener's limit less a margin,
	// since Logz.io does not say exactly what it counts (the newline? the type it adds?).
	MaxLineBytes = ListenerLineLimit - 10_000

	// TruncatedField, added to a shrunk event, lists the paths of the string values that were
	// cut (such as "resource.description" or "tags[3]"), longest first, at most maxListedPaths.
	TruncatedField = "logzio_jumpcloud_truncated"
	// OriginalBytesField, added to a shrunk event, is the event's size in bytes before cutting.
	OriginalBytesField = "logzio_jumpcloud_original_bytes"

	// maxListedPaths bounds the marker: an event with thousands of cut strings lists the first.
	maxListedPaths = 20
	// minKeptBytes is the least of a string that cutting keeps, so that every cut value still
	// says what it was about. An event that cannot fit with its strings cut this short is skipped.
	minKeptBytes = 64
	// ellipsis ends every cut string, so that a reader of the value sees it is incomplete.
	ellipsis = "…"
)

// ErrEventTooLarge is wrapped by the error Fit returns for an event it cannot bring under the
// listener's line limit; the pipeline skips the event with a counted warning.
var ErrEventTooLarge = errors.New("event too large for the Logz.io listener")

// FitAfter returns transform followed by Fit: the pipeline's Transform for this sink. A nil
// transform is Fit alone. An event the transform drops or fails on is passed on untouched.
func (s *Logzio) FitAfter(transform pipeline.Transform) pipeline.Transform {
	if transform == nil {
		return s.Fit
	}
	return func(data []byte) ([]byte, error) {
		line, err := transform(data)
		if err != nil || line == nil {
			return line, err
		}
		return s.Fit(line)
	}
}

// Fit returns line unchanged when it is at most MaxLineBytes long. A longer line, which must be
// one JSON object, is returned shrunk to fit: its longest string values, at any depth, are cut
// (at a character boundary, never inside a UTF-8 sequence or an escape, and ended with "…") to
// one common length, just short enough, and TruncatedField and OriginalBytesField are added.
// Keys, numbers and short strings are never changed. Each shrunk line is counted in
// Stats.LinesTruncated and logged. When the event's bulk is in its structure (thousands of short
// fields), cutting cannot help: Fit returns an error wrapping ErrEventTooLarge, naming the
// event's id. Fit is safe for concurrent use.
func (s *Logzio) Fit(line []byte) ([]byte, error) {
	if len(line) <= MaxLineBytes {
		return line, nil
	}
	fitted, cut, err := fitLine(line, MaxLineBytes)
	if err != nil {
		return nil, err
	}
	s.counters.linesTruncated.Add(1)
	s.log.Warn().Str("event_id", cut.eventID).Int("original_bytes", len(line)).Int("line_bytes", len(fitted)).
		Int("strings_cut", cut.count).Strs("fields", cut.listed).
		Msg("shortened an event over the listener's line limit by cutting its longest strings")
	return fitted, nil
}

// cutReport says what fitLine cut.
type cutReport struct {
	eventID string   // the event's top-level "id", when it has one, for messages
	count   int      // strings cut
	listed  []string // the paths of the longest ones, as listed in TruncatedField
}

// fitLine shrinks line, one JSON object, to at most limit bytes as Fit documents.
func fitLine(line []byte, limit int) ([]byte, cutReport, error) {
	body := bytes.TrimRight(line, " \t\r\n")
	if len(body) == 0 || !json.Valid(body) || bytes.TrimLeft(body, " \t\r\n")[0] != '{' {
		return nil, cutReport{}, fmt.Errorf("%w: a %d-byte line that is not one JSON object cannot be shortened; skipping it",
			ErrEventTooLarge, len(line))
	}
	scan := spanScanner{data: body, minLen: minKeptBytes + len(ellipsis)}
	scan.value()
	report := cutReport{eventID: scan.eventID}
	plan := newCutPlan(body, scan.found)
	keep, ok := plan.commonLength(limit)
	if !ok {
		return nil, report, fmt.Errorf("%w: event %s is %d bytes, over the listener's %d-byte line limit, and cutting "+
			"each of its long strings to %d bytes would still leave %d bytes, because its bulk lies in many short "+
			"fields or in its structure; skipping it",
			ErrEventTooLarge, describeEvent(scan.eventID), len(line), ListenerLineLimit, minKeptBytes, plan.sizeAt(minKeptBytes))
	}
	fitted := plan.apply(keep)
	report.count, report.listed = plan.cutCount(keep), plan.listed(keep)
	if len(fitted) > limit { // cannot happen: cuts only ever shorten what sizeAt counted
		return nil, report, fmt.Errorf("%w: event %s: shortening left %d bytes, over %d; skipping it",
			ErrEventTooLarge, describeEvent(scan.eventID), len(fitted), limit)
	}
	return fitted, report, nil
}

func describeEvent(id string) string {
	if id == "" {
		return "without an id"
	}
	return strconv.Quote(id)
}

// stringSpan is one string value of the line that is long enough to cut.
type stringSpan struct {
	start, end int    // its contents, between the quotes, as escaped in the line
	path       string // where it is, such as resource.description or tags[3]
}

func (s stringSpan) length() int { return s.end - s.start }

// cutPlan decides how much of each long string to keep so that the line fits.
type cutPlan struct {
	line        []byte
	spans       []stringSpan // in the line's order
	longest     []int        // indices into spans, longest first (ties in the line's order)
	listedPaths [][]byte     // the JSON-encoded paths of the first maxListedPaths of longest
}

func newCutPlan(line []byte, spans []stringSpan) *cutPlan {
	p := &cutPlan{line: line, spans: spans, longest: make([]int, len(spans))}
	for i := range p.longest {
		p.longest[i] = i
	}
	slices.SortStableFunc(p.longest, func(a, b int) int { return spans[b].length() - spans[a].length() })
	for _, i := range p.longest[:min(len(p.longest), maxListedPaths)] {
		encoded, _ := json.Marshal(spans[i].path) // a string always encodes
		p.listedPaths = append(p.listedPaths, encoded)
	}
	return p
}

// cutCount returns how many strings are cut when each keeps at most keep bytes: those for which
// keeping keep bytes and adding the ellipsis saves something.
func (p *cutPlan) cutCount(keep int) int {
	n := 0
	for _, i := range p.longest {
		if p.spans[i].length() <= keep+len(ellipsis) {
			break
		}
		n++
	}
	return n
}

// sizeAt returns the line's length, marker included, when each string keeps at most keep bytes.
// Cutting at a character boundary may keep fewer, so the real line is never longer.
func (p *cutPlan) sizeAt(keep int) int {
	size := len(p.line)
	n := p.cutCount(keep)
	for _, i := range p.longest[:n] {
		size -= p.spans[i].length() - keep - len(ellipsis)
	}
	return size + p.markerLen(n)
}

// commonLength returns the largest length every long string can keep with the line at most
// limit bytes, or false when even minKeptBytes is too long. Keeping one common length cuts the
// longest strings first and spreads the cut evenly when several are equally long.
func (p *cutPlan) commonLength(limit int) (int, bool) {
	if len(p.longest) == 0 || p.sizeAt(minKeptBytes) > limit {
		return 0, false
	}
	lo, hi := minKeptBytes, p.spans[p.longest[0]].length() // sizeAt grows with keep
	for lo < hi {
		mid := lo + (hi-lo+1)/2
		if p.sizeAt(mid) <= limit {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	return lo, true
}

// The marker is added as the object's last members:
//
//	,"logzio_jumpcloud_truncated":["resource.description"],"logzio_jumpcloud_original_bytes":612345
const (
	markerStart  = `,"` + TruncatedField + `":[`
	markerMiddle = `],"` + OriginalBytesField + `":`
)

func (p *cutPlan) markerLen(cut int) int {
	if cut == 0 {
		return 0
	}
	listed := min(cut, len(p.listedPaths))
	size := len(markerStart) + listed - 1 + len(markerMiddle) + len(strconv.Itoa(len(p.line)))
	for _, path := range p.listedPaths[:listed] {
		size += len(path)
	}
	return size
}

func (p *cutPlan) listed(keep int) []string {
	n := min(p.cutCount(keep), len(p.listedPaths))
	paths := make([]string, n)
	for k, i := range p.longest[:n] {
		paths[k] = p.spans[i].path
	}
	return paths
}

// apply writes the line with every string longer than keep+len(ellipsis) cut to at most keep
// bytes, and the marker.
func (p *cutPlan) apply(keep int) []byte {
	n := p.cutCount(keep)
	out := make([]byte, 0, p.sizeAt(keep))
	last := 0
	for _, span := range p.spans {
		if span.length() <= keep+len(ellipsis) {
			continue
		}
		contents := p.line[span.start:span.end]
		out = append(out, p.line[last:span.start]...)
		out = append(out, contents[:cutPoint(contents, keep)]...)
		out = append(out, ellipsis...)
		last = span.end
	}
	closing := bytes.LastIndexByte(p.line, '}')
	out = append(out, p.line[last:closing]...)
	out = append(out, markerStart...)
	for k, path := range p.listedPaths[:min(n, len(p.listedPaths))] {
		if k > 0 {
			out = append(out, ',')
		}
		out = append(out, path...)
	}
	out = append(out, markerMiddle...)
	out = strconv.AppendInt(out, int64(len(p.line)), 10)
	return append(out, '}')
}

// cutPoint returns the longest prefix of the escaped string contents s, at most max bytes, that
// ends between two characters: never inside a UTF-8 sequence, an escape such as \n or \u00e9,
// or a surrogate pair \ud83d\ude00, so the cut value is valid JSON and valid UTF-8.
func cutPoint(s []byte, max int) int {
	at := 0
	for at < len(s) {
		next := at + characterLen(s[at:])
		if next > max {
			break
		}
		at = next
	}
	return at
}

// characterLen returns the length of the character that s, escaped string contents, starts with.
func characterLen(s []byte) int {
	if s[0] != '\\' {
		_, n := utf8.DecodeRune(s)
		return n
	}
	if len(s) < 6 || s[1] != 'u' {
		return 2
	}
	if len(s) >= 12 && isSurrogate(s[2:6], 0xd800) && s[6] == '\\' && s[7] == 'u' && isSurrogate(s[8:12], 0xdc00) {
		return 12
	}
	return 6
}

// isSurrogate reports whether hex, four hex digits, is a surrogate in [base, base+0x400): a
// high surrogate for base 0xd800, a low one for 0xdc00.
func isSurrogate(hex []byte, base uint64) bool {
	v, err := strconv.ParseUint(string(hex), 16, 16)
	return err == nil && v >= base && v < base+0x400
}

// spanScanner walks one valid JSON value and records the string values longer than minLen, with
// their paths. It trusts its input: fitLine has checked it with json.Valid.
type spanScanner struct {
	data    []byte
	pos     int
	minLen  int
	path    []pathStep
	found   []stringSpan
	eventID string
}

// pathStep is one step of a path: an object's key, or an array's index when key is nil.
type pathStep struct {
	key   []byte // as escaped in the line
	index int
}

func (s *spanScanner) skipSpace() {
	for s.pos < len(s.data) && isJSONSpace(s.data[s.pos]) {
		s.pos++
	}
}

func (s *spanScanner) value() {
	s.skipSpace()
	switch s.data[s.pos] {
	case '{':
		s.object()
	case '[':
		s.array()
	case '"':
		start, end := s.str()
		if end-start > s.minLen {
			s.found = append(s.found, stringSpan{start: start, end: end, path: s.pathString()})
		}
	default: // a number, true, false or null runs to the next delimiter
		for s.pos < len(s.data) && !isJSONDelimiter(s.data[s.pos]) {
			s.pos++
		}
	}
}

func (s *spanScanner) object() {
	s.pos++ // {
	s.skipSpace()
	if s.data[s.pos] == '}' {
		s.pos++
		return
	}
	for {
		s.skipSpace()
		keyStart, keyEnd := s.str()
		s.skipSpace()
		s.pos++ // :
		s.skipSpace()
		s.path = append(s.path, pathStep{key: s.data[keyStart:keyEnd]})
		valueStart := s.pos
		s.value()
		if len(s.path) == 1 && string(s.path[0].key) == "id" && s.data[valueStart] == '"' {
			s.eventID = snippet(s.data[valueStart+1 : s.pos-1])
		}
		s.path = s.path[:len(s.path)-1]
		s.skipSpace()
		if s.data[s.pos] == '}' {
			s.pos++
			return
		}
		s.pos++ // ,
	}
}

func (s *spanScanner) array() {
	s.pos++ // [
	s.skipSpace()
	if s.data[s.pos] == ']' {
		s.pos++
		return
	}
	for index := 0; ; index++ {
		s.path = append(s.path, pathStep{index: index})
		s.value()
		s.path = s.path[:len(s.path)-1]
		s.skipSpace()
		if s.data[s.pos] == ']' {
			s.pos++
			return
		}
		s.pos++ // ,
	}
}

// str reads the string at s.pos and returns where its contents start and end.
func (s *spanScanner) str() (start, end int) {
	start = s.pos + 1
	i := start
	for s.data[i] != '"' {
		if s.data[i] == '\\' {
			i++ // the escaped character cannot end the string
		}
		i++
	}
	s.pos = i + 1
	return start, i
}

// pathString writes the current path as resource.description or tags[3].
func (s *spanScanner) pathString() string {
	var b strings.Builder
	for k, step := range s.path {
		if step.key == nil {
			b.WriteByte('[')
			b.WriteString(strconv.Itoa(step.index))
			b.WriteByte(']')
			continue
		}
		if k > 0 {
			b.WriteByte('.')
		}
		b.WriteString(unescapeKey(step.key))
	}
	return b.String()
}

// unescapeKey returns a key's text; only a key with an escape needs decoding.
func unescapeKey(escaped []byte) string {
	if bytes.IndexByte(escaped, '\\') < 0 {
		return string(escaped)
	}
	var key string
	quoted := append(append([]byte{'"'}, escaped...), '"')
	if json.Unmarshal(quoted, &key) != nil {
		return string(escaped)
	}
	return key
}

func isJSONSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func isJSONDelimiter(c byte) bool { return c == ',' || c == '}' || c == ']' || isJSONSpace(c) }
