package emulator

import (
	"bytes"
	"cmp"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// EventsPath is the Directory Insights endpoint the emulator serves.
const EventsPath = "/insights/directory/v1/events"

// The API's page sizes.
const (
	DefaultLimit = 1000
	MaxLimit     = 10000
)

// Services are the values JumpCloud accepts in a query's service list; "all" matches every event.
var Services = []string{
	"access_management", "alerts", "all", "asset_management", "directory", "ldap", "mdm",
	"notifications", "object_storage", "password_manager", "radius", "reports",
	"saas_app_management", "software", "sso", "systems",
}

// JumpCloud emulates the Directory Insights API: POST EventsPath with an x-api-key, a JSON query in
// the body, a JSON array of events back, paged with search_after. It is an http.Handler.
//
// Set the exported fields before serving. Events can be added at any time, from any goroutine.
type JumpCloud struct {
	// OrgIDs, when not empty, are the organisations the key administers (a multi-tenant key): every
	// request must carry x-org-id headers, each one of these, or it gets 403. When empty, x-org-id
	// is ignored.
	OrgIDs []string
	// Now is the emulator's clock (default time.Now): a start_time after Now is refused, and late
	// events become visible when Now reaches their time.
	Now func() time.Time
	// Fault, when set, sees every request first. When it returns true it has answered the request
	// itself; this is how tests inject throttling, server errors, cut bodies and hangs. The body
	// has been read, and r.Body replays it.
	Fault func(w http.ResponseWriter, r *http.Request) bool

	apiKey string

	mu       sync.RWMutex
	stored   []storedEvent // ordered by sortKey
	inserted uint64        // events ever stored: the next one's insertion number
	backlogs []*generatedBacklog

	queriesMu sync.Mutex
	queries   []Query
}

// Query is one request the emulator received on EventsPath, as far as its body decoded.
type Query struct {
	OrgIDs      []string // the x-org-id header values, in order
	Service     []string
	StartTime   string
	EndTime     string
	Limit       int // as requested; 0 when absent or not an integer
	Sort        string
	SearchAfter json.RawMessage
}

// NewJumpCloud returns an emulator with no events that accepts apiKey.
func NewJumpCloud(apiKey string) *JumpCloud {
	return &JumpCloud{apiKey: apiKey, Now: time.Now}
}

// sortKey is where an event sits in the API's order: its epoch millisecond, then a tie-break.
type sortKey struct {
	millisecond int64
	tieBreak    string
}

func (k sortKey) compare(other sortKey) int {
	return cmp.Or(cmp.Compare(k.millisecond, other.millisecond), strings.Compare(k.tieBreak, other.tieBreak))
}

// headerValue writes the key as the API's X-Search_after header does: [1576181718000,"DZrPyW8BNsa9iKWoOm7h"].
func (k sortKey) headerValue() string {
	b := strconv.AppendInt([]byte{'['}, k.millisecond, 10)
	b = append(b, ',')
	b = appendQuoted(b, k.tieBreak)
	return string(append(b, ']'))
}

// tieBreakFrom renders two hash values as a 20-character tie-break in the style of the API's
// (Elasticsearch document ids). Derived from a hash, its order is unrelated to timestamps.
func tieBreakFrom(a, b uint64) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	var out [20]byte
	for k := range 10 {
		out[k] = alphabet[a>>(6*k)&63]
		out[10+k] = alphabet[b>>(6*k)&63]
	}
	return string(out[:])
}

// storedEvent is an event added with Add or AddLate.
type storedEvent struct {
	key       sortKey
	timestamp time.Time
	service   string
	visibleAt time.Time // zero: visible at once
	raw       []byte
}

// storedTieBreak is the tie-break of the n-th event ever stored.
func storedTieBreak(n uint64) string {
	const domain = 0x5702ed // keeps stored tie-breaks apart from generated ones
	return tieBreakFrom(mix64(n^domain<<40), mix64(mix64(n)+domain))
}

// Add stores raw JSON events, visible at once. Each must be an object with a string timestamp in
// RFC 3339 (0 to 9 fractional digits). On error nothing is stored.
func (j *JumpCloud) Add(events ...[]byte) error {
	return j.AddLate(time.Time{}, events...)
}

// AddLate stores events that exist but that queries do not see until Now() reaches visibleAt, as
// the real API shows some events a while after their timestamp.
func (j *JumpCloud) AddLate(visibleAt time.Time, events ...[]byte) error {
	parsed := make([]storedEvent, len(events))
	for k, raw := range events {
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(raw, &fields); err != nil || fields == nil {
			return fmt.Errorf("emulator: event %d is not a JSON object", k)
		}
		var stamp, service string
		if json.Unmarshal(fields["timestamp"], &stamp) != nil {
			return fmt.Errorf("emulator: event %d has no string timestamp", k)
		}
		timestamp, err := time.Parse(time.RFC3339Nano, stamp)
		if err != nil || fractionalDigits(stamp) > 9 {
			return fmt.Errorf("emulator: event %d: timestamp %q is not RFC 3339 with at most 9 fractional digits", k, stamp)
		}
		_ = json.Unmarshal(fields["service"], &service) // an event without one matches only "all"
		parsed[k] = storedEvent{
			key:       sortKey{millisecond: timestamp.UnixMilli()},
			timestamp: timestamp,
			service:   service,
			visibleAt: visibleAt,
			raw:       bytes.Clone(raw),
		}
	}

	j.mu.Lock()
	defer j.mu.Unlock()
	for k := range parsed {
		parsed[k].key.tieBreak = storedTieBreak(j.inserted)
		j.inserted++
	}
	slices.SortFunc(parsed, func(a, b storedEvent) int { return a.key.compare(b.key) })
	// Merge into a new slice: queries in flight keep reading the old one.
	merged := make([]storedEvent, 0, len(j.stored)+len(parsed))
	old := j.stored
	for len(old) > 0 && len(parsed) > 0 {
		if old[0].key.compare(parsed[0].key) <= 0 {
			merged, old = append(merged, old[0]), old[1:]
		} else {
			merged, parsed = append(merged, parsed[0]), parsed[1:]
		}
	}
	j.stored = append(append(merged, old...), parsed...)
	return nil
}

// fractionalDigits counts the digits after the seconds of an RFC 3339 time; time.Parse accepts
// more than the nine that JumpCloud ever writes.
func fractionalDigits(stamp string) int {
	dot := strings.IndexByte(stamp, '.')
	if dot < 0 {
		return 0
	}
	digits := 0
	for _, c := range stamp[dot+1:] {
		if c < '0' || c > '9' {
			break
		}
		digits++
	}
	return digits
}

// generatedBacklog is a Backlog added with AddGenerated: always visible, synthesised on demand.
type generatedBacklog struct {
	Backlog
	number uint64 // which AddGenerated call: keeps two backlogs with one seed distinct
}

// tieBreak is event i's tie-break: a hash of its index, so unrelated to its sub-millisecond order.
func (g *generatedBacklog) tieBreak(i int) string {
	h := g.hash(saltTieBreak+g.number<<8, i)
	return tieBreakFrom(h, mix64(h))
}

// AddGenerated adds n events generated from seed over [from, to) (see Backlog) without holding
// them in memory: a query synthesises only the events it returns. Queries see them merged with
// stored events in the API's order.
func (j *JumpCloud) AddGenerated(seed int64, n int, from, to time.Time) {
	if n <= 0 {
		return
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	j.backlogs = append(j.backlogs, &generatedBacklog{
		Backlog: Backlog{Seed: seed, N: n, From: from, To: to},
		number:  uint64(len(j.backlogs)),
	})
}

// Len returns how many events the emulator holds, generated and not yet visible ones included.
func (j *JumpCloud) Len() int {
	j.mu.RLock()
	defer j.mu.RUnlock()
	n := len(j.stored)
	for _, b := range j.backlogs {
		n += b.N
	}
	return n
}

// Queries returns the requests received on EventsPath so far, whatever the answer, in order.
func (j *JumpCloud) Queries() []Query {
	j.queriesMu.Lock()
	defer j.queriesMu.Unlock()
	return slices.Clone(j.queries)
}

// QueryCount returns how many requests EventsPath has received.
func (j *JumpCloud) QueryCount() int {
	j.queriesMu.Lock()
	defer j.queriesMu.Unlock()
	return len(j.queries)
}

func (j *JumpCloud) now() time.Time {
	if j.Now == nil {
		return time.Now()
	}
	return j.Now()
}

// queryBody is the JSON body of a query. Fields the API accepts but the emulator does not
// implement (search_term, fields, q) are ignored.
type queryBody struct {
	Service     []string        `json:"service"`
	StartTime   *string         `json:"start_time"`
	EndTime     *string         `json:"end_time"`
	Limit       json.RawMessage `json:"limit"`
	Sort        json.RawMessage `json:"sort"`
	SearchAfter json.RawMessage `json:"search_after"`
}

// ServeHTTP answers one request the way the Directory Insights API does.
func (j *JumpCloud) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, readErr := io.ReadAll(io.LimitReader(r.Body, 1<<20)) // a query is a few hundred bytes
	r.Body = io.NopCloser(bytes.NewReader(body))

	var decoded queryBody
	decodeErr := json.Unmarshal(body, &decoded)
	if r.URL.Path == EventsPath && r.Method == http.MethodPost {
		j.record(r, decoded)
	}
	if j.Fault != nil && j.Fault(w, r) {
		return
	}

	w.Header().Set("X-Request-Id", newRequestID())
	switch {
	case r.URL.Path != EventsPath:
		writeMessage(w, http.StatusNotFound, "Not Found")
	case r.Method != http.MethodPost:
		w.Header().Set("Allow", http.MethodPost)
		writeMessage(w, http.StatusMethodNotAllowed, "Method Not Allowed")
	case r.Header.Get("x-api-key") != j.apiKey:
		writeMessage(w, http.StatusUnauthorized, "Unauthorized")
	case !j.orgAllowed(r.Header.Values("x-org-id")):
		writeMessage(w, http.StatusForbidden, "Forbidden: x-org-id must name an organization this key administers")
	case readErr != nil:
		writeMessage(w, http.StatusBadRequest, "could not read the request body: "+readErr.Error())
	case decodeErr != nil:
		writeMessage(w, http.StatusBadRequest, "invalid JSON body: "+decodeErr.Error())
	default:
		now := j.now()
		query, err := parseQuery(decoded, now)
		if err != nil {
			writeMessage(w, http.StatusBadRequest, err.Error())
			return
		}
		j.answer(w, query, now)
	}
}

func (j *JumpCloud) record(r *http.Request, body queryBody) {
	q := Query{
		OrgIDs:      slices.Clone(r.Header.Values("x-org-id")),
		Service:     body.Service,
		Limit:       requestedLimit(body.Limit),
		SearchAfter: body.SearchAfter,
	}
	if body.StartTime != nil {
		q.StartTime = *body.StartTime
	}
	if body.EndTime != nil {
		q.EndTime = *body.EndTime
	}
	_ = json.Unmarshal(body.Sort, &q.Sort)
	j.queriesMu.Lock()
	defer j.queriesMu.Unlock()
	j.queries = append(j.queries, q)
}

func (j *JumpCloud) orgAllowed(requested []string) bool {
	if len(j.OrgIDs) == 0 {
		return true
	}
	if len(requested) == 0 {
		return false
	}
	for _, id := range requested {
		if !slices.Contains(j.OrgIDs, id) {
			return false
		}
	}
	return true
}

// eventQuery is a validated query.
type eventQuery struct {
	services    []string // nil: all
	start       time.Time
	end         time.Time // zero: no end
	limit       int
	descending  bool
	searchAfter *sortKey
	rawAfter    json.RawMessage // echoed on an empty page
}

var errBadSearchAfter = errors.New(`search_after must be the X-Search_after array of the previous page: [<epoch milliseconds>, "<tie-break>"]`)

func parseQuery(body queryBody, now time.Time) (eventQuery, error) {
	q := eventQuery{limit: requestedLimit(body.Limit)}
	if q.limit < 1 || q.limit > MaxLimit {
		q.limit = DefaultLimit // as the API does, silently
	}
	var sortOrder string
	_ = json.Unmarshal(body.Sort, &sortOrder)
	q.descending = strings.EqualFold(sortOrder, "DESC") // anything else is ASC, silently

	if len(body.Service) == 0 {
		return q, fmt.Errorf("service is required; valid values: %s", strings.Join(Services, ", "))
	}
	for _, s := range body.Service {
		if !slices.Contains(Services, s) {
			return q, fmt.Errorf("invalid service %q; valid values: %s", s, strings.Join(Services, ", "))
		}
	}
	if !slices.Contains(body.Service, "all") {
		q.services = body.Service
	}

	if body.StartTime == nil {
		return q, errors.New("start_time is required (RFC 3339)")
	}
	var err error
	if q.start, err = time.Parse(time.RFC3339Nano, *body.StartTime); err != nil {
		return q, fmt.Errorf("start_time %q is not an RFC 3339 date", *body.StartTime)
	}
	if q.start.After(now) {
		return q, fmt.Errorf("start_time %s is in the future", *body.StartTime)
	}
	if body.EndTime != nil {
		if q.end, err = time.Parse(time.RFC3339Nano, *body.EndTime); err != nil {
			return q, fmt.Errorf("end_time %q is not an RFC 3339 date", *body.EndTime)
		}
		if !q.end.After(q.start) {
			return q, fmt.Errorf("end_time %s must be after start_time %s", *body.EndTime, *body.StartTime)
		}
	}

	if len(body.SearchAfter) > 0 && string(body.SearchAfter) != "null" {
		key, err := parseSearchAfter(body.SearchAfter)
		if err != nil {
			return q, err
		}
		q.searchAfter = &key
		q.rawAfter = body.SearchAfter
	}
	return q, nil
}

func requestedLimit(raw json.RawMessage) int {
	var limit int
	if json.Unmarshal(raw, &limit) != nil {
		return 0
	}
	return limit
}

func parseSearchAfter(raw json.RawMessage) (sortKey, error) {
	var parts []json.RawMessage
	if json.Unmarshal(raw, &parts) != nil || len(parts) != 2 {
		return sortKey{}, errBadSearchAfter
	}
	var key sortKey
	if json.Unmarshal(parts[0], &key.millisecond) != nil || json.Unmarshal(parts[1], &key.tieBreak) != nil {
		return sortKey{}, errBadSearchAfter
	}
	return key, nil
}

// answer writes one page of the query's results.
func (j *JumpCloud) answer(w http.ResponseWriter, q eventQuery, now time.Time) {
	page := j.page(q, now)

	size := 2 + len(page)
	for _, c := range page {
		size += len(c.raw)
		if c.backlog != nil {
			size += 1536 // about the largest generated event
		}
	}
	body := append(make([]byte, 0, size), '[')
	for k, c := range page {
		if k > 0 {
			body = append(body, ',')
		}
		body = c.appendEvent(body)
	}
	body = append(body, ']')

	searchAfter := "[]"
	switch {
	case len(page) > 0:
		searchAfter = page[len(page)-1].key.headerValue()
	case q.rawAfter != nil:
		var compact bytes.Buffer
		if json.Compact(&compact, q.rawAfter) == nil {
			searchAfter = compact.String()
		}
	}
	sortName := "ASC"
	if q.descending {
		sortName = "DESC"
	}

	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Result-Count", strconv.Itoa(len(page)))
	h.Set("X-Limit", strconv.Itoa(q.limit))
	h.Set("X-Sort", sortName)
	h.Set("X-Search_after", searchAfter)
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

// page returns the events of one page, in order.
//
// Each source (the stored events, each generated backlog) is already in sort order, so a page is a
// merge: every source seeks to the page's first key by binary search, and the merge takes the
// next event from whichever source holds it until the page is full or the window is passed.
func (j *JumpCloud) page(q eventQuery, now time.Time) []candidate {
	// The first key of the page lies just past a bound: search_after, or the window's edge.
	var bound sortKey
	if q.descending {
		bound = sortKey{math.MaxInt64, "\xff"} // after every tie-break of the last millisecond
		if !q.end.IsZero() {
			bound.millisecond = q.end.UnixMilli()
		}
		if q.searchAfter != nil && q.searchAfter.compare(bound) < 0 {
			bound = *q.searchAfter
		}
	} else {
		bound = sortKey{q.start.UnixMilli(), ""} // before every tie-break of the first millisecond
		if q.searchAfter != nil && q.searchAfter.compare(bound) > 0 {
			bound = *q.searchAfter
		}
	}

	j.mu.RLock()
	cursors := []eventCursor{newStoredCursor(j.stored, bound, q.descending)}
	for _, b := range j.backlogs {
		cursors = append(cursors, newBacklogCursor(b, bound, q.descending))
	}
	j.mu.RUnlock() // the cursors hold what they need; stored events are never modified

	var page []candidate
	for len(page) < q.limit {
		c, ok := nextCandidate(cursors, q.descending)
		if !ok || q.passedWindow(c) {
			break
		}
		if q.matches(c, now) {
			page = append(page, c)
		}
	}
	return page
}

// passedWindow reports whether c, and so everything after it in the sort order, lies beyond the
// query's window. Only whole milliseconds can be skipped: within one, order is by tie-break.
func (q eventQuery) passedWindow(c candidate) bool {
	if q.descending {
		return c.key.millisecond < q.start.UnixMilli()
	}
	return !q.end.IsZero() && c.key.millisecond > q.end.UnixMilli()
}

// matches reports whether c belongs in the results: in the window (both ends inclusive, at full
// precision), visible by now, and of a requested service.
func (q eventQuery) matches(c candidate, now time.Time) bool {
	if c.timestamp.Before(q.start) || (!q.end.IsZero() && c.timestamp.After(q.end)) {
		return false
	}
	if now.Before(c.visibleAt) {
		return false
	}
	return q.services == nil || slices.Contains(q.services, c.service)
}

// candidate is one event a cursor offers to the merge. A generated event's JSON is built only once
// it is picked for a page.
type candidate struct {
	key       sortKey
	timestamp time.Time
	service   string
	visibleAt time.Time
	raw       []byte            // a stored event
	backlog   *generatedBacklog // or a generated one: event index of backlog
	index     int
}

func (c candidate) appendEvent(dst []byte) []byte {
	if c.backlog != nil {
		return c.backlog.appendEvent(dst, c.index)
	}
	return append(dst, c.raw...)
}

// eventCursor walks one ordered source of events from a starting point, in the page's direction.
type eventCursor interface {
	head() (candidate, bool) // the current event; false when the source is exhausted
	advance()
}

// nextCandidate takes the next event in sort order from whichever cursor holds it.
func nextCandidate(cursors []eventCursor, descending bool) (candidate, bool) {
	best, found := -1, false
	var bestCandidate candidate
	for k, cursor := range cursors {
		c, ok := cursor.head()
		if !ok {
			continue
		}
		order := c.key.compare(bestCandidate.key)
		if descending {
			order = -order
		}
		if !found || order < 0 {
			best, bestCandidate, found = k, c, true
		}
	}
	if found {
		cursors[best].advance()
	}
	return bestCandidate, found
}

// storedCursor walks the stored events.
type storedCursor struct {
	events []storedEvent
	next   int // index of the current event
	step   int // +1 ascending, -1 descending
}

// newStoredCursor starts at the first event strictly past bound in the walk's direction.
func newStoredCursor(events []storedEvent, bound sortKey, descending bool) *storedCursor {
	if descending {
		firstNotBefore := sort.Search(len(events), func(k int) bool { return events[k].key.compare(bound) >= 0 })
		return &storedCursor{events: events, next: firstNotBefore - 1, step: -1}
	}
	firstAfter := sort.Search(len(events), func(k int) bool { return events[k].key.compare(bound) > 0 })
	return &storedCursor{events: events, next: firstAfter, step: 1}
}

func (s *storedCursor) head() (candidate, bool) {
	if s.next < 0 || s.next >= len(s.events) {
		return candidate{}, false
	}
	e := &s.events[s.next]
	return candidate{key: e.key, timestamp: e.timestamp, service: e.service, visibleAt: e.visibleAt, raw: e.raw}, true
}

func (s *storedCursor) advance() { s.next += s.step }

// backlogCursor walks a generated backlog one millisecond at a time. Event indices ascend with
// timestamps, so the indices of a millisecond are found by binary search; within the millisecond
// the events are put in tie-break order, which is unrelated to index order.
type backlogCursor struct {
	backlog    *generatedBacklog
	descending bool
	group      []backlogEntry // the current millisecond's events, in walk order
	position   int            // in group
	nextIndex  int            // ascending: first index after group; descending: one past the last index before it
}

type backlogEntry struct {
	index     int
	key       sortKey
	timestamp time.Time
}

func newBacklogCursor(b *generatedBacklog, bound sortKey, descending bool) *backlogCursor {
	c := &backlogCursor{backlog: b, descending: descending}
	if descending {
		c.nextIndex = sort.Search(b.N, func(i int) bool { return b.millisecond(i) > bound.millisecond })
	} else {
		c.nextIndex = sort.Search(b.N, func(i int) bool { return b.millisecond(i) >= bound.millisecond })
	}
	c.loadGroup()
	// Skip what the bound's own millisecond holds at or before the bound.
	for {
		entry, ok := c.current()
		if !ok {
			break
		}
		order := entry.key.compare(bound)
		if (descending && order < 0) || (!descending && order > 0) {
			break
		}
		c.advance()
	}
	return c
}

// loadGroup loads the millisecond that nextIndex starts (ascending) or ends (descending).
func (c *backlogCursor) loadGroup() {
	b := c.backlog
	c.group, c.position = c.group[:0], 0
	// Step, not bisect, to the group's other end: a millisecond holds few events, and the
	// group's events are all visited below anyway.
	var lo, hi int
	if c.descending {
		if c.nextIndex <= 0 {
			return
		}
		hi = c.nextIndex
		ms := b.millisecond(hi - 1)
		for lo = hi - 1; lo > 0 && b.millisecond(lo-1) == ms; lo-- {
		}
		c.nextIndex = lo
	} else {
		if c.nextIndex >= b.N {
			return
		}
		lo = c.nextIndex
		ms := b.millisecond(lo)
		for hi = lo + 1; hi < b.N && b.millisecond(hi) == ms; hi++ {
		}
		c.nextIndex = hi
	}
	for i := lo; i < hi; i++ {
		timestamp := b.Timestamp(i)
		key := sortKey{millisecond: timestamp.UnixMilli(), tieBreak: b.tieBreak(i)}
		c.group = append(c.group, backlogEntry{index: i, key: key, timestamp: timestamp})
	}
	slices.SortFunc(c.group, func(x, y backlogEntry) int {
		if c.descending {
			return y.key.compare(x.key)
		}
		return x.key.compare(y.key)
	})
}

func (c *backlogCursor) current() (backlogEntry, bool) {
	if c.position >= len(c.group) {
		return backlogEntry{}, false
	}
	return c.group[c.position], true
}

func (c *backlogCursor) head() (candidate, bool) {
	entry, ok := c.current()
	if !ok {
		return candidate{}, false
	}
	return candidate{
		key:       entry.key,
		timestamp: entry.timestamp,
		service:   c.backlog.service(entry.index),
		backlog:   c.backlog,
		index:     entry.index,
	}, true
}

func (c *backlogCursor) advance() {
	c.position++
	if c.position >= len(c.group) {
		c.loadGroup()
	}
}

func writeMessage(w http.ResponseWriter, status int, message string) {
	body, _ := json.Marshal(map[string]string{"message": message})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// newRequestID returns a random UUID, as the API's X-Request-Id.
func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40 // version 4
	b[8] = b[8]&0x3f | 0x80 // RFC 4122 variant
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
