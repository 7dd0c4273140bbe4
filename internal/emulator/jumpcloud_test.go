package emulator

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const testAPIKey = "test-api-key"

// epoch is a fixed point in the past that the tests place their events around.
var epoch = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

// startServer serves j on loopback for the length of the test.
func startServer(t testing.TB, j *JumpCloud) string {
	t.Helper()
	server := httptest.NewServer(j)
	t.Cleanup(server.Close)
	return server.URL + EventsPath
}

// response is one answer from the emulator.
type response struct {
	status  int
	header  http.Header
	body    []byte
	events  []map[string]any // when the body is an array
	message string           // when the body is {"message": ...}
}

// post sends body as a query with the test key and any extra headers (name, value, name, value…).
func post(t testing.TB, url, body string, headers ...string) response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("x-api-key", testAPIKey)
	for k := 0; k+1 < len(headers); k += 2 {
		req.Header.Add(headers[k], headers[k+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got := response{status: resp.StatusCode, header: resp.Header}
	if got.body, err = io.ReadAll(resp.Body); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(got.body, &got.events); err != nil {
			t.Fatalf("200 with a body that is not an array of objects: %v: %s", err, got.body)
		}
	} else {
		var m struct{ Message string }
		_ = json.Unmarshal(got.body, &m) // a fault hook's answer may have no body
		got.message = m.Message
	}
	return got
}

func mustJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// fetchAll pages through a query the way a client should: same query, search_after from the
// previous page's header, until a page has fewer rows than the limit. It checks each page's headers.
func fetchAll(t testing.TB, url string, query map[string]any) (events []map[string]any, pages int) {
	t.Helper()
	query = maps.Clone(query) // paging must not change the caller's query
	for {
		page := post(t, url, mustJSON(t, query))
		if page.status != http.StatusOK {
			t.Fatalf("page %d: status %d: %s", pages+1, page.status, page.message)
		}
		pages++
		count, _ := strconv.Atoi(page.header.Get("X-Result-Count"))
		limit, _ := strconv.Atoi(page.header.Get("X-Limit"))
		if count != len(page.events) {
			t.Fatalf("page %d: X-Result-Count %d but %d events", pages, count, len(page.events))
		}
		if len(page.events) > 0 {
			checkSearchAfterNamesLastEvent(t, page)
		}
		events = append(events, page.events...)
		if count < limit {
			return events, pages
		}
		query["search_after"] = json.RawMessage(page.header.Get("X-Search_after"))
		if pages > 100000 {
			t.Fatal("paging does not end")
		}
	}
}

var searchAfterPattern = regexp.MustCompile(`^\[(\d+),"([A-Za-z0-9_-]{20})"\]$`)

func checkSearchAfterNamesLastEvent(t testing.TB, page response) {
	t.Helper()
	header := page.header.Get("X-Search_after")
	match := searchAfterPattern.FindStringSubmatch(header)
	if match == nil {
		t.Fatalf("X-Search_after %q is not [<ms>,\"<20-char tie-break>\"]", header)
	}
	last := page.events[len(page.events)-1]
	if want := strconv.FormatInt(millisecondOf(t, last), 10); match[1] != want {
		t.Fatalf("X-Search_after %s does not name the last event's millisecond %s", header, want)
	}
}

func timestampOf(t testing.TB, event map[string]any) time.Time {
	t.Helper()
	stamp, _ := event["timestamp"].(string)
	ts, err := time.Parse(time.RFC3339Nano, stamp)
	if err != nil {
		t.Fatalf("event timestamp %q: %v", stamp, err)
	}
	return ts
}

func millisecondOf(t testing.TB, event map[string]any) int64 {
	return timestampOf(t, event).UnixMilli()
}

func idsOf(events []map[string]any) []string {
	ids := make([]string, len(events))
	for k, e := range events {
		ids[k], _ = e["id"].(string)
	}
	return ids
}

// testEvent is a small stored event.
func testEvent(id string, timestamp time.Time, service string) []byte {
	return fmt.Appendf(nil, `{"id":%q,"service":%q,"event_type":"test","timestamp":%q}`,
		id, service, timestamp.UTC().Format(time.RFC3339Nano))
}

// clock is a settable clock, safe to read from the server's goroutines.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Set(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = now
}

// crowdedEvents returns n events in which most milliseconds hold several events with different
// sub-millisecond digits, each with the insertion number it will get when added in order.
func crowdedEvents(n int) (events [][]byte, ids []string, stamps []time.Time) {
	random := rand.New(rand.NewPCG(3, 4))
	for k := range n {
		millisecond := time.Duration(k/4) * 3 * time.Millisecond // four events to a millisecond
		subMillisecond := time.Duration(random.IntN(int(time.Millisecond)))
		stamps = append(stamps, epoch.Add(millisecond+subMillisecond))
		ids = append(ids, fmt.Sprintf("e%04d", k))
		events = append(events, testEvent(ids[k], stamps[k], "directory"))
	}
	return events, ids, stamps
}

// apiOrder returns ids sorted as the API orders them: by millisecond, then by the tie-break that
// the insertion number gives.
func apiOrder(ids []string, stamps []time.Time, insertion []uint64) []string {
	order := make([]int, len(ids))
	for k := range order {
		order[k] = k
	}
	sort.Slice(order, func(a, b int) bool {
		ka := sortKey{stamps[order[a]].UnixMilli(), storedTieBreak(insertion[order[a]])}
		kb := sortKey{stamps[order[b]].UnixMilli(), storedTieBreak(insertion[order[b]])}
		return ka.compare(kb) < 0
	})
	sorted := make([]string, len(order))
	for k, o := range order {
		sorted[k] = ids[o]
	}
	return sorted
}

func TestPagingReturnsEveryMatchingEventOnceInAPIOrder(t *testing.T) {
	events, ids, stamps := crowdedEvents(250)
	// Add in a shuffled order, over several calls, so the store's merge is exercised.
	shuffled := rand.New(rand.NewPCG(1, 2)).Perm(len(events))
	insertion := make([]uint64, len(events))
	j := NewJumpCloud(testAPIKey)
	for start := 0; start < len(shuffled); start += 60 {
		var batch [][]byte
		for _, k := range shuffled[start:min(start+60, len(shuffled))] {
			insertion[k] = uint64(j.Len() + len(batch))
			batch = append(batch, events[k])
		}
		if err := j.Add(batch...); err != nil {
			t.Fatal(err)
		}
	}
	url := startServer(t, j)
	ascending := apiOrder(ids, stamps, insertion)
	descending := slices.Clone(ascending)
	slices.Reverse(descending)

	tests := map[string]struct {
		sort string
		want []string
	}{
		"Ascending pages hold every event once, by millisecond then tie-break.": {"ASC", ascending},
		"Descending pages hold every event once, in exactly the reverse order.": {"DESC", descending},
		"A sort in lower case is understood, as the API ignores case.":          {"desc", descending},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, pages := fetchAll(t, url, map[string]any{
				"service": []string{"all"}, "start_time": epoch.Format(time.RFC3339), "limit": 7, "sort": tc.sort,
			})
			if pages < 30 {
				t.Fatalf("%d pages; the test means to cross many page borders", pages)
			}
			if !slices.Equal(idsOf(got), tc.want) {
				t.Fatalf("paged ids differ from the API order:\n got %v\nwant %v", idsOf(got), tc.want)
			}
		})
	}

	t.Run("Within a millisecond, order is not sub-millisecond order.", func(t *testing.T) {
		byTimestamp := 0
		for k := 1; k < len(ascending); k++ {
			a, b := indexOf(ids, ascending[k-1]), indexOf(ids, ascending[k])
			if stamps[a].UnixMilli() == stamps[b].UnixMilli() && stamps[a].After(stamps[b]) {
				byTimestamp++
			}
		}
		if byTimestamp == 0 {
			t.Fatal("every millisecond came out in timestamp order: the tie-break is not independent of it")
		}
	})
}

func indexOf(ids []string, id string) int { return slices.Index(ids, id) }

func TestPageHeaders(t *testing.T) {
	j := NewJumpCloud(testAPIKey)
	for k := range 25 {
		if err := j.Add(testEvent(fmt.Sprint(k), epoch.Add(time.Duration(k)*time.Second), "sso")); err != nil {
			t.Fatal(err)
		}
	}
	url := startServer(t, j)
	query := map[string]any{"service": []string{"sso"}, "start_time": epoch.Format(time.RFC3339), "limit": 10}

	requestIDs := map[string]bool{}
	var lastSearchAfter string
	for k, wantCount := range []int{10, 10, 5} {
		page := post(t, url, mustJSON(t, query))
		if page.status != http.StatusOK {
			t.Fatalf("page %d: %d %s", k, page.status, page.message)
		}
		for name, want := range map[string]string{
			"Content-Type":   "application/json",
			"X-Result-Count": strconv.Itoa(wantCount),
			"X-Limit":        "10",
			"X-Sort":         "ASC",
		} {
			if got := page.header.Get(name); got != want {
				t.Errorf("page %d: %s = %q, want %q", k, name, got, want)
			}
		}
		checkSearchAfterNamesLastEvent(t, page)
		id := page.header.Get("X-Request-Id")
		if id == "" || requestIDs[id] {
			t.Errorf("page %d: X-Request-Id %q is missing or repeated", k, id)
		}
		requestIDs[id] = true
		lastSearchAfter = page.header.Get("X-Search_after")
		query["search_after"] = json.RawMessage(lastSearchAfter)
	}

	t.Run("An empty page past the end echoes the request's search_after.", func(t *testing.T) {
		page := post(t, url, mustJSON(t, query))
		if page.status != http.StatusOK || len(page.events) != 0 {
			t.Fatalf("status %d, %d events; want an empty page", page.status, len(page.events))
		}
		if got := page.header.Get("X-Search_after"); got != lastSearchAfter {
			t.Fatalf("X-Search_after %q, want the request's %q", got, lastSearchAfter)
		}
		if got := page.header.Get("X-Result-Count"); got != "0" {
			t.Fatalf("X-Result-Count %q, want 0", got)
		}
	})
	t.Run("An empty first page has an empty X-Search_after array.", func(t *testing.T) {
		page := post(t, url, mustJSON(t, map[string]any{"service": []string{"radius"}, "start_time": epoch.Format(time.RFC3339)}))
		if got := page.header.Get("X-Search_after"); got != "[]" || string(page.body) != "[]" {
			t.Fatalf("X-Search_after %q and body %s, want [] and []", got, page.body)
		}
	})
}

func TestLimitIsClampedSilently(t *testing.T) {
	j := NewJumpCloud(testAPIKey)
	if err := j.Add(Generate(3, 1200, epoch, epoch.Add(time.Hour))...); err != nil {
		t.Fatal(err)
	}
	url := startServer(t, j)
	tests := map[string]struct {
		limit     any // nil: left out
		wantLimit int
	}{
		"A missing limit means the default of 1000.":         {nil, 1000},
		"A limit of zero becomes the default.":               {0, 1000},
		"A negative limit becomes the default.":              {-5, 1000},
		"A limit over the maximum becomes the default.":      {20000, 1000},
		"A limit that is not a number becomes the default.":  {"500", 1000},
		"A fractional limit becomes the default.":            {2.5, 1000},
		"The maximum limit of 10000 is kept.":                {10000, 10000},
		"A limit of one is kept.":                            {1, 1},
		"A limit between one and the maximum is kept as is.": {250, 250},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			query := map[string]any{"service": []string{"all"}, "start_time": epoch.Format(time.RFC3339)}
			if tc.limit != nil {
				query["limit"] = tc.limit
			}
			page := post(t, url, mustJSON(t, query))
			if got := page.header.Get("X-Limit"); got != strconv.Itoa(tc.wantLimit) {
				t.Fatalf("X-Limit %q, want %d", got, tc.wantLimit)
			}
			if want := min(tc.wantLimit, 1200); len(page.events) != want {
				t.Fatalf("%d events, want %d", len(page.events), want)
			}
		})
	}
}

func TestWindowIncludesBothEnds(t *testing.T) {
	start := epoch.Add(123456789 * time.Nanosecond) // mid-millisecond, so milliseconds alone cannot decide
	end := start.Add(time.Second)
	stamps := map[string]time.Time{
		"before-start":    start.Add(-time.Nanosecond),
		"at-start":        start,
		"inside":          start.Add(time.Millisecond),
		"at-end":          end,
		"after-end":       end.Add(time.Nanosecond),
		"end-millisecond": end.Truncate(time.Millisecond),
	}
	j := NewJumpCloud(testAPIKey)
	for id, ts := range stamps {
		if err := j.Add(testEvent(id, ts, "directory")); err != nil {
			t.Fatal(err)
		}
	}
	url := startServer(t, j)
	for _, sortOrder := range []string{"ASC", "DESC"} {
		got, _ := fetchAll(t, url, map[string]any{
			"service": []string{"all"}, "sort": sortOrder, "limit": 2,
			"start_time": start.Format(time.RFC3339Nano), "end_time": end.Format(time.RFC3339Nano),
		})
		ids := idsOf(got)
		slices.Sort(ids)
		if want := []string{"at-end", "at-start", "end-millisecond", "inside"}; !slices.Equal(ids, want) {
			t.Errorf("%s: window [start, end] returned %v, want %v", sortOrder, ids, want)
		}
	}
}

func TestBadQueriesAreRefused(t *testing.T) {
	now := epoch.Add(24 * time.Hour)
	j := NewJumpCloud(testAPIKey)
	j.Now = func() time.Time { return now }
	url := startServer(t, j)
	start := epoch.Format(time.RFC3339)
	tests := map[string]struct {
		body        string
		wantMessage string
	}{
		"A body that is not JSON is refused.":                  {`{"service": [`, "invalid JSON"},
		"A service that is a string, not an array, is refused": {`{"service":"all","start_time":"` + start + `"}`, "invalid JSON"},
		"A query without a service is refused.":                {`{"start_time":"` + start + `"}`, "service is required"},
		"An empty service list is refused.":                    {`{"service":[],"start_time":"` + start + `"}`, "service is required"},
		"An unknown service is refused with the valid ones listed.": {
			`{"service":["all","bogus"],"start_time":"` + start + `"}`, `invalid service "bogus"; valid values: ` + strings.Join(Services, ", "),
		},
		"A query without a start_time is refused.":      {`{"service":["all"]}`, "start_time is required"},
		"A start_time that is not RFC 3339 is refused.": {`{"service":["all"],"start_time":"2024-05-01 12:00:00"}`, "not an RFC 3339 date"},
		"A start_time in the future is refused.": {
			`{"service":["all"],"start_time":"` + now.Add(time.Second).Format(time.RFC3339) + `"}`, "in the future",
		},
		"An end_time that is not RFC 3339 is refused.": {`{"service":["all"],"start_time":"` + start + `","end_time":"yesterday"}`, "not an RFC 3339 date"},
		"An empty window, end_time equal to start_time, is refused.": {
			`{"service":["all"],"start_time":"` + start + `","end_time":"` + start + `"}`, "must be after start_time",
		},
		"An inverted window is refused.": {
			`{"service":["all"],"start_time":"` + start + `","end_time":"` + epoch.Add(-time.Nanosecond).Format(time.RFC3339Nano) + `"}`, "must be after start_time",
		},
		"A search_after that is not an array is refused.": {
			`{"service":["all"],"start_time":"` + start + `","search_after":"1714564800000"}`, "search_after must be",
		},
		"A search_after with one element is refused.": {
			`{"service":["all"],"start_time":"` + start + `","search_after":[1714564800000]}`, "search_after must be",
		},
		"A search_after with the millisecond as a string is refused.": {
			`{"service":["all"],"start_time":"` + start + `","search_after":["1714564800000","DZrPyW8BNsa9iKWoOm7h"]}`, "search_after must be",
		},
		"An empty search_after is refused.": {
			`{"service":["all"],"start_time":"` + start + `","search_after":[]}`, "search_after must be",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := post(t, url, tc.body)
			if got.status != http.StatusBadRequest {
				t.Fatalf("status %d, want 400", got.status)
			}
			if !strings.Contains(got.message, tc.wantMessage) {
				t.Fatalf("message %q does not contain %q", got.message, tc.wantMessage)
			}
		})
	}
}

func TestAuthentication(t *testing.T) {
	j := NewJumpCloud(testAPIKey)
	server := httptest.NewServer(j)
	defer server.Close()
	body := `{"service":["all"],"start_time":"2024-05-01T12:00:00Z"}`
	tests := map[string]struct {
		key        string // "" leaves the header out
		wantStatus int
	}{
		"A request without x-api-key is unauthorized.":   {"", http.StatusUnauthorized},
		"A request with the wrong key is unauthorized.":  {"other-key", http.StatusUnauthorized},
		"A request with the emulator's key is answered.": {testAPIKey, http.StatusOK},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, server.URL+EventsPath, strings.NewReader(body))
			if tc.key != "" {
				req.Header.Set("x-api-key", tc.key)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.wantStatus)
			}
			if tc.wantStatus == http.StatusUnauthorized && string(got) != `{"message":"Unauthorized"}` {
				t.Fatalf("body %s, want {\"message\":\"Unauthorized\"}", got)
			}
		})
	}
}

func TestOrganizationHeader(t *testing.T) {
	body := `{"service":["all"],"start_time":"2024-05-01T12:00:00Z"}`
	tests := map[string]struct {
		administered []string
		sent         []string
		wantStatus   int
	}{
		"A multi-tenant key without x-org-id is forbidden.":               {[]string{"org-a", "org-b"}, nil, http.StatusForbidden},
		"A multi-tenant key naming another organisation is forbidden.":    {[]string{"org-a", "org-b"}, []string{"org-c"}, http.StatusForbidden},
		"A multi-tenant key naming one of its organisations is answered.": {[]string{"org-a", "org-b"}, []string{"org-b"}, http.StatusOK},
		"Repeated x-org-id headers that all name its organisations are answered.": {
			[]string{"org-a", "org-b"}, []string{"org-a", "org-b"}, http.StatusOK,
		},
		"Repeated x-org-id headers with one stranger are forbidden.": {
			[]string{"org-a", "org-b"}, []string{"org-a", "org-c"}, http.StatusForbidden,
		},
		"A single-organisation key ignores x-org-id.": {nil, []string{"anything"}, http.StatusOK},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			j := NewJumpCloud(testAPIKey)
			j.OrgIDs = tc.administered
			url := startServer(t, j)
			var headers []string
			for _, id := range tc.sent {
				headers = append(headers, "x-org-id", id)
			}
			if got := post(t, url, body, headers...); got.status != tc.wantStatus {
				t.Fatalf("status %d (%s), want %d", got.status, got.message, tc.wantStatus)
			}
			if got := j.Queries()[0].OrgIDs; !slices.Equal(got, tc.sent) {
				t.Fatalf("recorded x-org-id %v, want %v", got, tc.sent)
			}
		})
	}
}

func TestLateEventsStayHiddenUntilVisible(t *testing.T) {
	clk := &clock{now: epoch.Add(time.Minute)}
	j := NewJumpCloud(testAPIKey)
	j.Now = clk.Now
	if err := j.Add(testEvent("on-time", epoch.Add(time.Second), "sso")); err != nil {
		t.Fatal(err)
	}
	// Timestamped before the on-time event, but visible only five minutes later.
	if err := j.AddLate(epoch.Add(6*time.Minute), testEvent("late", epoch.Add(time.Millisecond), "sso")); err != nil {
		t.Fatal(err)
	}
	url := startServer(t, j)
	query := mustJSON(t, map[string]any{"service": []string{"all"}, "start_time": epoch.Format(time.RFC3339)})

	tests := []struct {
		name string
		now  time.Time
		want []string
	}{
		{"Before visibleAt, the late event is not returned.", epoch.Add(6*time.Minute - time.Nanosecond), []string{"on-time"}},
		{"At visibleAt, the late event is returned, in timestamp order.", epoch.Add(6 * time.Minute), []string{"late", "on-time"}},
	}
	for _, tc := range tests { // in order: the clock only moves forward
		t.Run(tc.name, func(t *testing.T) {
			clk.Set(tc.now)
			if got := idsOf(post(t, url, query).events); !slices.Equal(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
	if j.Len() != 2 {
		t.Fatalf("Len %d, want 2: late events count as held", j.Len())
	}
}

func TestServiceFilter(t *testing.T) {
	j := NewJumpCloud(testAPIKey)
	for k, service := range []string{"sso", "radius", "directory", "sso", "systems"} {
		if err := j.Add(testEvent(fmt.Sprintf("%s-%d", service, k), epoch.Add(time.Duration(k)*time.Second), service)); err != nil {
			t.Fatal(err)
		}
	}
	if err := j.Add([]byte(`{"id":"no-service","timestamp":"2024-05-01T12:00:09Z"}`)); err != nil {
		t.Fatal(err)
	}
	url := startServer(t, j)
	tests := map[string]struct {
		services []string
		want     []string
	}{
		`"all" matches every event, even one without a service.`: {[]string{"all"}, []string{"sso-0", "radius-1", "directory-2", "sso-3", "systems-4", "no-service"}},
		"One service matches only its events.":                   {[]string{"sso"}, []string{"sso-0", "sso-3"}},
		"Several services match any of them.":                    {[]string{"radius", "systems"}, []string{"radius-1", "systems-4"}},
		`"all" among other services still matches everything.`:   {[]string{"ldap", "all"}, []string{"sso-0", "radius-1", "directory-2", "sso-3", "systems-4", "no-service"}},
		"A service with no events matches none.":                 {[]string{"ldap"}, []string{}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := post(t, url, mustJSON(t, map[string]any{"service": tc.services, "start_time": epoch.Format(time.RFC3339)}))
			if ids := idsOf(got.events); !slices.Equal(ids, tc.want) {
				t.Fatalf("got %v, want %v", ids, tc.want)
			}
		})
	}
}

func TestAddRefusesMalformedEvents(t *testing.T) {
	tests := map[string]string{
		"An array is not an event.":                          `[{"timestamp":"2024-05-01T12:00:00Z"}]`,
		"null is not an event.":                              `null`,
		"Broken JSON is not an event.":                       `{"timestamp":`,
		"An event needs a timestamp.":                        `{"id":"x"}`,
		"A numeric timestamp is refused.":                    `{"timestamp":1714564800}`,
		"A timestamp that is not RFC 3339 is refused.":       `{"timestamp":"2024-05-01 12:00:00"}`,
		"A timestamp with ten fractional digits is refused.": `{"timestamp":"2024-05-01T12:00:00.1234567891Z"}`,
	}
	for name, raw := range tests {
		t.Run(name, func(t *testing.T) {
			j := NewJumpCloud(testAPIKey)
			good := testEvent("good", epoch, "sso")
			if err := j.Add(good, []byte(raw)); err == nil {
				t.Fatal("Add accepted it")
			}
			if j.Len() != 0 {
				t.Fatalf("Len %d after a failed Add, want 0: nothing of the call is stored", j.Len())
			}
		})
	}
	t.Run("Timestamps with 0, 3, 8 and 9 fractional digits are accepted.", func(t *testing.T) {
		j := NewJumpCloud(testAPIKey)
		err := j.Add(
			[]byte(`{"timestamp":"2023-06-15T15:16:41Z"}`),
			[]byte(`{"timestamp":"2023-06-16T14:06:45.921Z"}`),
			[]byte(`{"timestamp":"2023-03-07T13:01:19.21859368Z"}`),
			[]byte(`{"timestamp":"2023-06-15T13:45:59.812449824Z"}`),
		)
		if err != nil || j.Len() != 4 {
			t.Fatalf("Add: %v, Len %d", err, j.Len())
		}
	})
}

func TestStoredEventsAreReturnedExactlyAsAdded(t *testing.T) {
	raw := []byte("{\n  \"timestamp\": \"2024-05-01T12:00:00.5Z\",\n  \"name\": \"Zoë 🌴\", \"n\": 1.50\n}")
	j := NewJumpCloud(testAPIKey)
	if err := j.Add(raw); err != nil {
		t.Fatal(err)
	}
	got := post(t, startServer(t, j), `{"service":["all"],"start_time":"2024-05-01T12:00:00Z"}`)
	if want := append(append([]byte("["), raw...), ']'); !bytes.Equal(got.body, want) {
		t.Fatalf("body %s, want %s", got.body, want)
	}
}

func TestQueriesAreRecorded(t *testing.T) {
	j := NewJumpCloud(testAPIKey)
	url := startServer(t, j)
	post(t, url, `{"service":["sso","radius"],"start_time":"2024-05-01T12:00:00Z","end_time":"2024-05-01T13:00:00Z","limit":10000,"sort":"DESC","search_after":[1714564800000,"DZrPyW8BNsa9iKWoOm7h"],"search_term":{"and":[]}}`, "x-org-id", "org-a")
	post(t, url, `not json`)
	if j.QueryCount() != 2 {
		t.Fatalf("QueryCount %d, want 2: every request is recorded, whatever the answer", j.QueryCount())
	}
	got := j.Queries()[0]
	want := Query{
		OrgIDs: []string{"org-a"}, Service: []string{"sso", "radius"},
		StartTime: "2024-05-01T12:00:00Z", EndTime: "2024-05-01T13:00:00Z", Limit: 10000, Sort: "DESC",
		SearchAfter: json.RawMessage(`[1714564800000,"DZrPyW8BNsa9iKWoOm7h"]`),
	}
	if mustJSON(t, got) != mustJSON(t, want) {
		t.Fatalf("recorded %+v, want %+v", got, want)
	}
}

func TestFaultHookAnswersInsteadOfTheAPI(t *testing.T) {
	j := NewJumpCloud(testAPIKey)
	var faultSawBody string
	j.Fault = func(w http.ResponseWriter, r *http.Request) bool {
		body, _ := io.ReadAll(r.Body)
		faultSawBody = string(body)
		if strings.Contains(faultSawBody, `"limit":429`) {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			return true
		}
		return false
	}
	url := startServer(t, j)
	throttled := `{"service":["all"],"start_time":"2024-05-01T12:00:00Z","limit":429}`
	if got := post(t, url, throttled); got.status != http.StatusTooManyRequests || got.header.Get("Retry-After") != "1" {
		t.Fatalf("status %d, want the fault's 429 with Retry-After", got.status)
	}
	if faultSawBody != throttled {
		t.Fatalf("the fault saw body %q, want the request's", faultSawBody)
	}
	if got := post(t, url, `{"service":["all"],"start_time":"2024-05-01T12:00:00Z"}`); got.status != http.StatusOK {
		t.Fatalf("status %d (%s): when the fault declines, the API answers", got.status, got.message)
	}
	if j.QueryCount() != 2 {
		t.Fatalf("QueryCount %d, want 2: faulted requests are recorded too", j.QueryCount())
	}
}

func TestOtherPathsAndMethods(t *testing.T) {
	j := NewJumpCloud(testAPIKey)
	server := httptest.NewServer(j)
	defer server.Close()
	tests := map[string]struct {
		method, path string
		wantStatus   int
	}{
		"Another path is not found.":             {http.MethodPost, "/insights/directory/v1/events/count", http.StatusNotFound},
		"GET on the events path is not allowed.": {http.MethodGet, EventsPath, http.StatusMethodNotAllowed},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, server.URL+tc.path, nil)
			req.Header.Set("x-api-key", testAPIKey)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.wantStatus)
			}
		})
	}
	if j.QueryCount() != 0 {
		t.Fatalf("QueryCount %d: only POSTs to the events path are queries", j.QueryCount())
	}
}

// expectedOrder lists, in API order, the ids of a backlog's events and of stored events in [from, to].
func expectedOrder(t testing.TB, backlog *generatedBacklog, stored []storedEvent, from, to time.Time) []string {
	t.Helper()
	type keyed struct {
		key sortKey
		id  string
	}
	var all []keyed
	first := sort.Search(backlog.N, func(i int) bool { return !backlog.Timestamp(i).Before(from) })
	for i := first; i < backlog.N && !backlog.Timestamp(i).After(to); i++ {
		var event struct{ ID string }
		if err := json.Unmarshal(backlog.Event(i), &event); err != nil {
			t.Fatal(err)
		}
		all = append(all, keyed{sortKey{backlog.millisecond(i), backlog.tieBreak(i)}, event.ID})
	}
	for _, s := range stored {
		if !s.timestamp.Before(from) && !s.timestamp.After(to) {
			var event struct{ ID string }
			_ = json.Unmarshal(s.raw, &event)
			all = append(all, keyed{s.key, event.ID})
		}
	}
	slices.SortFunc(all, func(a, b keyed) int { return a.key.compare(b.key) })
	ids := make([]string, len(all))
	for k, e := range all {
		ids[k] = e.id
	}
	return ids
}

func TestGeneratedBacklogIsMergedWithStoredEvents(t *testing.T) {
	from, to := epoch, epoch.Add(2*time.Second) // dense: milliseconds shared within and across sources
	j := NewJumpCloud(testAPIKey)
	j.AddGenerated(11, 3000, from, to)
	var stored [][]byte
	for k := range 300 {
		stored = append(stored, testEvent(fmt.Sprintf("stored-%d", k), from.Add(time.Duration(k)*6666667*time.Nanosecond), "directory"))
	}
	if err := j.Add(stored...); err != nil {
		t.Fatal(err)
	}
	if j.Len() != 3300 {
		t.Fatalf("Len %d, want 3300", j.Len())
	}
	url := startServer(t, j)
	want := expectedOrder(t, j.backlogs[0], j.stored, from, to)

	for _, sortOrder := range []string{"ASC", "DESC"} {
		got, pages := fetchAll(t, url, map[string]any{
			"service": []string{"all"}, "start_time": from.Format(time.RFC3339Nano), "limit": 500, "sort": sortOrder,
		})
		wantHere := slices.Clone(want)
		if sortOrder == "DESC" {
			slices.Reverse(wantHere)
		}
		if pages != 7 || !slices.Equal(idsOf(got), wantHere) {
			t.Fatalf("%s: %d pages, %d events; want 7 pages of the %d events in API order", sortOrder, pages, len(got), len(wantHere))
		}
	}
}

func TestTwoMillionGeneratedEventsPageWithoutMemory(t *testing.T) {
	const n = 2_000_000
	from, to := epoch.Add(-24*time.Hour), epoch
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)

	j := NewJumpCloud(testAPIKey)
	j.AddGenerated(42, n, from, to)
	// A stored event in the middle of the window, to check the merge at scale.
	middle := from.Add(12*time.Hour + 123*time.Microsecond)
	if err := j.Add(testEvent("stored-middle", middle, "directory")); err != nil {
		t.Fatal(err)
	}
	url := startServer(t, j)

	windowStart, windowEnd := middle.Add(-50*time.Second), middle.Add(50*time.Second)
	want := expectedOrder(t, j.backlogs[0], j.stored, windowStart, windowEnd)
	got, pages := fetchAll(t, url, map[string]any{
		"service": []string{"all"}, "limit": 1000,
		"start_time": windowStart.Format(time.RFC3339Nano), "end_time": windowEnd.Format(time.RFC3339Nano),
	})
	if len(want) < 2000 || pages < 3 || !slices.Equal(idsOf(got), want) {
		t.Fatalf("%d pages of %d events; want the window's %d events in API order over several pages", pages, len(got), len(want))
	}
	if !slices.Contains(idsOf(got), "stored-middle") {
		t.Fatal("the stored event is missing from the merged pages")
	}

	newestFirst := post(t, url, mustJSON(t, map[string]any{"service": []string{"all"}, "start_time": from.Format(time.RFC3339), "sort": "DESC", "limit": 10}))
	lastMinute := expectedOrder(t, j.backlogs[0], nil, to.Add(-time.Minute), to)
	slices.Reverse(lastMinute)
	if ids := idsOf(newestFirst.events); !slices.Equal(ids, lastMinute[:10]) {
		t.Fatalf("DESC first page %v, want the ten newest events %v", ids, lastMinute[:10])
	}

	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	if grown := int64(after.HeapAlloc) - int64(before.HeapAlloc); grown > 16<<20 {
		t.Fatalf("the heap grew by %d MiB for a generated backlog; it should hold no events", grown>>20)
	}
	runtime.KeepAlive(j)
}

// BenchmarkPagingGeneratedBacklog reads pages of 1000 from a backlog of two million events.
func BenchmarkPagingGeneratedBacklog(b *testing.B) {
	from := epoch.Add(-24 * time.Hour)
	j := NewJumpCloud(testAPIKey)
	j.AddGenerated(42, 2_000_000, from, epoch)
	query := map[string]any{"service": []string{"all"}, "start_time": from.Format(time.RFC3339), "limit": 1000}
	b.ReportAllocs()
	events := 0
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, EventsPath, strings.NewReader(mustJSON(b, query)))
		req.Header.Set("x-api-key", testAPIKey)
		rec := httptest.NewRecorder()
		j.ServeHTTP(rec, req)
		count, _ := strconv.Atoi(rec.Header().Get("X-Result-Count"))
		events += count
		query["search_after"] = json.RawMessage(rec.Header().Get("X-Search_after"))
	}
	b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
}
