package source

// The transform stage turns one raw JumpCloud Directory Insights event into one line for the
// Logz.io listener. It sits between the JumpCloud reader and the batcher:
//
//	JumpCloud reader ──raw event──▶ Transform ──one JSON line──▶ batcher ▶ senders
//
// A 90-day backlog is millions of events, so the event is never decoded into maps: it is
// validated and minified in one pass by json.Compact, then a small scanner that can trust that
// output walks the top-level members once, and the line is assembled by copying their value
// spans. Only `changes` is taken apart further.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"unicode/utf8"

	"github.com/logzio/logzio-jumpcloud/pipeline"
)

// TransformConfig says what the transform writes into every event.
type TransformConfig struct {
	// Type is the value of every event's `type` field, which picks the Logz.io parsing
	// pipeline. It is written as given, even when empty: defaults belong to the config layer.
	Type string
	// OrgID, when not empty, fills `organization` in events where it is null or missing.
	OrgID string
}

// ErrInvalidEvent is wrapped by every error the transform returns: the event is not a single
// JSON object, and the pipeline skips it with a counted warning.
var ErrInvalidEvent = errors.New("invalid JumpCloud event")

// NewTransform returns the pipeline.Transform that turns one raw JumpCloud event (a JSON object,
// possibly pretty-printed) into one minified JSON line. The line keeps every field of the event,
// in order and with its value's text unchanged, except that:
//
//   - `@timestamp` is set to the event's `timestamp` when that is a string (an `@timestamp` the
//     event already has is kept only when `timestamp` is not a string);
//   - `type` is set to cfg.Type;
//   - `organization` is set to cfg.OrgID when it is null or missing and cfg.OrgID is not empty;
//   - a `changes` array becomes a string holding one flat JSON object (see flattenChanges),
//     because its from/to values change type from event to event, which breaks the index
//     mapping on the Logz.io side.
//
// A field that replaces an existing one keeps its place; one that is new goes at the end.
// Duplicate keys would break indexing, so the line has each top-level key once: when the event
// repeats a key, the last value wins (as in most JSON readers), at the place of the first.
// Invalid UTF-8 bytes are replaced with U+FFFD, one for each byte, as encoding/json does.
//
// It returns an error wrapping ErrInvalidEvent when data is not exactly one JSON object (empty,
// truncated, an array or other value, or followed by anything but white space).
// The returned function is safe for concurrent use.
func NewTransform(cfg TransformConfig) pipeline.Transform {
	t := &transformer{typeJSON: marshalString(cfg.Type)}
	if cfg.OrgID != "" {
		t.orgJSON = marshalString(cfg.OrgID)
	}
	return t.transform
}

// transformer holds the configured values, already encoded as JSON.
type transformer struct {
	typeJSON []byte
	orgJSON  []byte // nil: do not fill organization
}

// transform is the pipeline.Transform that NewTransform documents.
func (t *transformer) transform(data []byte) ([]byte, error) {
	if !utf8.Valid(data) {
		// Rare, and only ever inside strings (anywhere else the JSON is invalid anyway):
		// repair a copy so the rest of the work can assume valid UTF-8.
		data = replaceInvalidUTF8(data)
	}
	s := scratchPool.Get().(*transformScratch)
	defer s.release()

	event, err := s.compactEvent(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidEvent, err)
	}
	if event[0] != '{' {
		return nil, fmt.Errorf("%w: a JSON %s, not an object", ErrInvalidEvent, jsonKind(event[0]))
	}
	s.fields = dedupe(appendMembers(s.fields[:0], event))
	s.line = t.appendLine(s.line[:0], s)
	// The line outlives this call (it waits in a batch), the scratch buffer does not: hand out
	// an exact-size copy, which is also the only allocation for a typical event.
	return bytes.Clone(s.line), nil
}

// appendLine writes the output object, built from s.fields, to dst.
func (t *transformer) appendLine(dst []byte, s *transformScratch) []byte {
	var timestamp []byte // the event's `timestamp`, when it is a string
	var hasStamp, hasType, hasOrg bool
	for _, f := range s.fields {
		if f.dup {
			continue
		}
		switch string(f.name) {
		case "timestamp":
			if f.value[0] == '"' {
				timestamp = f.value
			}
		case "@timestamp":
			hasStamp = true
		case "type":
			hasType = true
		case "organization":
			hasOrg = true
		}
	}

	dst = append(dst, '{')
	for _, f := range s.fields {
		if f.dup {
			continue
		}
		switch string(f.name) {
		case "@timestamp":
			if timestamp != nil {
				f.value = timestamp
			}
		case "type":
			f.value = t.typeJSON
		case "organization":
			if t.orgJSON != nil && string(f.value) == "null" {
				f.value = t.orgJSON
			}
		case "changes":
			if f.value[0] == '[' {
				dst = appendKey(dst, f)
				dst = appendJSONString(dst, s.flattenChanges(f.value))
				continue
			}
		}
		dst = appendMember(dst, f)
	}
	if timestamp != nil && !hasStamp {
		dst = appendMember(dst, member{key: stampKey, value: timestamp})
	}
	if !hasType {
		dst = appendMember(dst, member{key: typeKey, value: t.typeJSON})
	}
	if t.orgJSON != nil && !hasOrg {
		dst = appendMember(dst, member{key: orgKey, value: t.orgJSON})
	}
	return append(dst, '}')
}

// Keys of the fields appendLine adds.
var (
	stampKey = []byte("@timestamp")
	typeKey  = []byte("type")
	orgKey   = []byte("organization")
)

// Suffixes of the keys flattenChanges makes.
const (
	changedToSuffix = "_changed_to"
	wasSuffix       = "_was"
)

// changesItemPrefix starts the key under which flattenChanges keeps an item it cannot read.
var changesItemPrefix = []byte("changes_item_")

// flattenChanges turns a compact `changes` array into one compact JSON object, the form the
// existing shipper sends, so that every value lives under a key named after its field and the
// index mapping stays stable even though from/to change type between events. For each item, in
// order:
//
//   - {"field":"f","to":T,"from":F} gives "f_changed_to":T and "f_was":F, each only when present;
//   - an item with a string field but neither to nor from gives "f":null;
//   - an item that is not an object, or has no string field, is kept whole, as its JSON, under
//     "changes_item_<index>" (index counted from 0): it is never a reason to drop the event.
//
// Other keys of an item are ignored: JumpCloud sends none. Keys that come out twice (the same
// field changed twice) are made unique like top-level keys: the last value wins.
// The result lives in s and is valid until the next call.
func (s *transformScratch) flattenChanges(changes []byte) []byte {
	s.items = appendElements(s.items[:0], changes)
	s.flat = s.flat[:0]
	for i, item := range s.items {
		s.flat = s.appendChange(s.flat, i, item)
	}
	s.flat = dedupe(s.flat)

	s.flatJSON = append(s.flatJSON[:0], '{')
	for _, m := range s.flat {
		if !m.dup {
			s.flatJSON = appendMember(s.flatJSON, m)
		}
	}
	s.flatJSON = append(s.flatJSON, '}')
	return s.flatJSON
}

// appendChange appends the keys that one item of `changes` flattens to.
func (s *transformScratch) appendChange(dst []member, index int, item []byte) []member {
	field, from, to, ok := s.readChange(item)
	if !ok {
		// strconv.Itoa does not allocate below 100, which is more items than JumpCloud sends.
		return append(dst, member{
			key: changesItemPrefix, name: changesItemPrefix, suffix: strconv.Itoa(index), value: item,
		})
	}
	// The field's string content, still escaped, is already valid inside a JSON key.
	name := unescapedContent(field)
	key := field[1 : len(field)-1]
	if to != nil {
		dst = append(dst, member{key: key, name: name, suffix: changedToSuffix, value: to})
	}
	if from != nil {
		dst = append(dst, member{key: key, name: name, suffix: wasSuffix, value: from})
	}
	if to == nil && from == nil {
		dst = append(dst, member{key: key, name: name, value: jsonNull})
	}
	return dst
}

var jsonNull = []byte("null")

// readChange reads one item of `changes`. ok is false when the item is not an object with a
// string `field`; from and to are nil when absent.
func (s *transformScratch) readChange(item []byte) (field, from, to []byte, ok bool) {
	if item[0] != '{' {
		return nil, nil, nil, false
	}
	s.itemFields = appendMembers(s.itemFields[:0], item)
	// Plain assignment in order makes the last of repeated keys win, as at the top level.
	for _, m := range s.itemFields {
		switch string(m.name) {
		case "field":
			field = m.value
		case "from":
			from = m.value
		case "to":
			to = m.value
		}
	}
	if field == nil || field[0] != '"' {
		return nil, nil, nil, false
	}
	return field, from, to, true
}

// member is one key/value pair of a JSON object being rewritten.
type member struct {
	key    []byte // the key's JSON string content, still escaped, without quotes
	name   []byte // key unescaped: what duplicates are found by
	suffix string // added to the key (and its name) when flattenChanges derives it from a field
	value  []byte // compact JSON
	dup    bool   // a repeated key, whose value has moved to the first occurrence
}

// sameName tells whether m and o have the same unescaped key, suffix included.
func (m *member) sameName(o *member) bool {
	if len(m.name)+len(m.suffix) != len(o.name)+len(o.suffix) {
		return false
	}
	if m.suffix == o.suffix {
		return bytes.Equal(m.name, o.name)
	}
	for i := range len(m.name) + len(m.suffix) {
		if m.nameByte(i) != o.nameByte(i) {
			return false
		}
	}
	return true
}

func (m *member) nameByte(i int) byte {
	if i < len(m.name) {
		return m.name[i]
	}
	return m.suffix[i-len(m.name)]
}

// dedupeScanLimit is the number of members up to which dedupe compares every pair, which is
// faster than a map for the 15–30 fields of a JumpCloud event.
const dedupeScanLimit = 48

// dedupe marks repeated keys in members as dup and moves the last value of each key to its first
// occurrence, so the last value wins and the order of first appearance is kept.
func dedupe(members []member) []member {
	if len(members) > dedupeScanLimit {
		return dedupeWithMap(members)
	}
	for i := 1; i < len(members); i++ {
		for j := range i {
			if !members[j].dup && members[j].sameName(&members[i]) {
				members[j].value = members[i].value
				members[i].dup = true
				break
			}
		}
	}
	return members
}

// dedupeWithMap is dedupe for objects too large to compare every pair; they are not JumpCloud
// events, but an odd input must not cost quadratic time.
func dedupeWithMap(members []member) []member {
	first := make(map[string]int, len(members))
	for i := range members {
		name := string(members[i].name) + members[i].suffix
		if j, ok := first[name]; ok {
			members[j].value = members[i].value
			members[i].dup = true
			continue
		}
		first[name] = i
	}
	return members
}

// appendMember appends `"key":value` to the object being written in dst, after a comma unless
// it is the object's first member.
func appendMember(dst []byte, m member) []byte {
	return append(appendKey(dst, m), m.value...)
}

// appendKey appends `"key":`, after a comma unless it starts the object being written in dst.
func appendKey(dst []byte, m member) []byte {
	if dst[len(dst)-1] != '{' {
		dst = append(dst, ',')
	}
	dst = append(dst, '"')
	dst = append(dst, m.key...)
	dst = append(dst, m.suffix...)
	return append(dst, '"', ':')
}

// appendJSONString appends compact JSON text as a JSON string. Compact JSON has no raw control
// characters (they can only appear escaped, inside strings), so only quotes and backslashes
// need escaping.
func appendJSONString(dst, compact []byte) []byte {
	dst = append(dst, '"')
	for {
		i := bytes.IndexAny(compact, `"\`)
		if i < 0 {
			break
		}
		dst = append(dst, compact[:i]...)
		dst = append(dst, '\\', compact[i])
		compact = compact[i+1:]
	}
	dst = append(dst, compact...)
	return append(dst, '"')
}

// The functions below walk JSON that json.Compact has accepted and written: valid, with no
// white space outside strings. They do not check anything, and must not be given other input.

// appendMembers appends the members of a compact object to dst.
func appendMembers(dst []member, object []byte) []member {
	if object[1] == '}' {
		return dst
	}
	for i := 1; ; {
		keyEnd := skipString(object, i)
		valueStart := keyEnd + 1 // past the colon
		valueEnd := skipValue(object, valueStart)
		dst = append(dst, member{
			key:   object[i+1 : keyEnd-1],
			name:  unescapedContent(object[i:keyEnd]),
			value: object[valueStart:valueEnd],
		})
		if object[valueEnd] == '}' {
			return dst
		}
		i = valueEnd + 1 // past the comma
	}
}

// appendElements appends the elements of a compact array to dst.
func appendElements(dst [][]byte, array []byte) [][]byte {
	if array[1] == ']' {
		return dst
	}
	for i := 1; ; {
		end := skipValue(array, i)
		dst = append(dst, array[i:end])
		if array[end] == ']' {
			return dst
		}
		i = end + 1 // past the comma
	}
}

// skipValue returns the index just past the compact value that starts at b[i]: valueEnd, for
// input known to be valid, where a number, true, false or null may also run to the end of b.
func skipValue(b []byte, i int) int {
	if end, ok := valueEnd(b, i); ok {
		return end
	}
	return len(b)
}

// skipString returns the index just past the string that starts at b[i], which valid input
// always closes: stringEnd, for input known to be valid.
func skipString(b []byte, i int) int {
	end, _ := stringEnd(b, i)
	return end
}

// unescapedContent returns what the JSON string s (quotes included) stands for. Without a
// backslash, that is its content as is; escaped keys are rare enough to decode the slow way.
func unescapedContent(s []byte) []byte {
	content := s[1 : len(s)-1]
	if bytes.IndexByte(content, '\\') < 0 {
		return content
	}
	var decoded string
	if err := json.Unmarshal(s, &decoded); err != nil {
		return content // cannot happen for a string json.Compact accepted
	}
	return []byte(decoded)
}

// jsonKind names the kind of the JSON value whose first byte is c.
func jsonKind(c byte) string {
	switch c {
	case '[':
		return "array"
	case '"':
		return "string"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	default:
		return "number"
	}
}

// marshalString encodes s as a JSON string; invalid UTF-8 becomes U+FFFD.
func marshalString(s string) []byte {
	b, _ := json.Marshal(s) // a string always encodes
	return b
}

// replaceInvalidUTF8 returns a copy of b with each byte that is not part of valid UTF-8
// replaced by U+FFFD, as encoding/json does when it decodes a string.
func replaceInvalidUTF8(b []byte) []byte {
	out := make([]byte, 0, len(b)+len(b)/2)
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		if r == utf8.RuneError && size == 1 {
			out = utf8.AppendRune(out, utf8.RuneError)
		} else {
			out = append(out, b[:size]...)
		}
		b = b[size:]
	}
	return out
}

// transformScratch holds the buffers one transform call works in. They are pooled, so that a
// steady stream of events reuses them instead of allocating.
type transformScratch struct {
	compact    bytes.Buffer
	fields     []member // the event's top-level members
	line       []byte   // the output line being built
	items      [][]byte // elements of `changes`
	itemFields []member // members of one element of `changes`
	flat       []member // keys of the flattened `changes`
	flatJSON   []byte   // the flattened `changes` as JSON
}

var scratchPool = sync.Pool{New: func() any { return new(transformScratch) }}

// A scratch whose buffers grew past these sizes is dropped rather than pooled, so that one huge
// event does not pin its memory for the life of the process.
const (
	maxPooledBytes   = 1 << 20
	maxPooledMembers = 4096
)

// compactEvent validates data as one JSON value and returns it minified, in s.
func (s *transformScratch) compactEvent(data []byte) ([]byte, error) {
	s.compact.Reset()
	if err := json.Compact(&s.compact, data); err != nil {
		return nil, err
	}
	return s.compact.Bytes(), nil
}

func (s *transformScratch) release() {
	if s.compact.Cap()+cap(s.line)+cap(s.flatJSON) > maxPooledBytes ||
		cap(s.fields)+cap(s.items)+cap(s.itemFields)+cap(s.flat) > maxPooledMembers {
		return
	}
	scratchPool.Put(s)
}
