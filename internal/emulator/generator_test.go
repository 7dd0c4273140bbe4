package emulator

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestGenerateIsDeterministic(t *testing.T) {
	from, to := epoch, epoch.Add(time.Hour)
	first, again := Generate(5, 500, from, to), Generate(5, 500, from, to)
	other := Generate(6, 500, from, to)
	backlog := Backlog{Seed: 5, N: 500, From: from, To: to}
	differences := 0
	for i := range first {
		if !bytes.Equal(first[i], again[i]) {
			t.Fatalf("event %d differs between two runs with one seed", i)
		}
		if !bytes.Equal(first[i], backlog.Event(i)) {
			t.Fatalf("event %d of Generate differs from Backlog.Event", i)
		}
		if !bytes.Equal(first[i], other[i]) {
			differences++
		}
	}
	if differences < 490 {
		t.Fatalf("only %d of 500 events differ between seeds 5 and 6", differences)
	}
}

var (
	objectIDPattern   = regexp.MustCompile(`^[0-9a-f]{24}$`)
	radiusIDPattern   = regexp.MustCompile(`^[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}$`)
	timestampPattern  = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.(\d+))?Z$`)
	eventTypesWanted  = []string{"admin_login_attempt", "user_login_attempt", "sso_auth", "radius_auth_attempt", "user_update", "association_change", "login_attempt", "mdm_command_result"}
	servicesOfEvents  = map[string]string{"admin_login_attempt": "directory", "user_login_attempt": "directory", "sso_auth": "sso", "radius_auth_attempt": "radius", "user_update": "directory", "association_change": "directory", "login_attempt": "systems", "mdm_command_result": "mdm"}
	changesEventTypes = map[string]bool{"user_update": true, "association_change": true}
)

func TestGeneratedEventsHaveTheShapeOfRealOnes(t *testing.T) {
	from, to := epoch, epoch.Add(6*time.Hour)
	backlog := Backlog{Seed: 9, N: 4000, From: from, To: to}
	events := Generate(backlog.Seed, backlog.N, from, to)

	seenTypes := map[string]int{}
	seenDigits := map[int]int{}
	organizations := map[string]int{} // "string", "null", "absent"
	totalBytes := 0
	var previous time.Time
	for i, raw := range events {
		var event map[string]any
		if err := json.Unmarshal(raw, &event); err != nil {
			t.Fatalf("event %d is not a JSON object: %v\n%s", i, err, raw)
		}
		eventType, _ := event["event_type"].(string)
		seenTypes[eventType]++
		if event["service"] != servicesOfEvents[eventType] {
			t.Errorf("event %d: %s with service %v", i, eventType, event["service"])
		}
		for _, field := range []string{"id", "timestamp", "initiated_by", "client_ip", "geoip"} {
			if _, ok := event[field]; !ok {
				t.Errorf("event %d (%s) has no %s", i, eventType, field)
			}
		}
		if event["@version"] != "1" {
			t.Errorf("event %d: @version %v, want \"1\"", i, event["@version"])
		}
		if _, ok := event["initiated_by"].(map[string]any); !ok {
			t.Errorf("event %d: initiated_by is not an object", i)
		}

		id, _ := event["id"].(string)
		idPattern := objectIDPattern
		if eventType == "radius_auth_attempt" {
			idPattern = radiusIDPattern
		}
		if !idPattern.MatchString(id) {
			t.Errorf("event %d (%s): id %q has the wrong form", i, eventType, id)
		}

		stamp, _ := event["timestamp"].(string)
		match := timestampPattern.FindStringSubmatch(stamp)
		if match == nil {
			t.Fatalf("event %d: timestamp %q is not UTC RFC 3339 ending in Z", i, stamp)
		}
		seenDigits[len(match[2])]++
		ts, _ := time.Parse(time.RFC3339Nano, stamp)
		if !ts.Equal(backlog.Timestamp(i)) {
			t.Fatalf("event %d: timestamp %s, but Backlog.Timestamp says %s", i, ts, backlog.Timestamp(i))
		}
		if ts.Before(from) || !ts.Before(to) || ts.Before(previous) {
			t.Fatalf("event %d: timestamp %s is out of [from, to) or before the previous %s", i, ts, previous)
		}
		previous = ts

		switch organization, present := event["organization"]; {
		case !present:
			organizations["absent"]++
		case organization == nil:
			organizations["null"]++
		default:
			if !objectIDPattern.MatchString(organization.(string)) {
				t.Errorf("event %d: organization %v is not a 24-hex id", i, organization)
			}
			organizations["string"]++
		}

		if success, ok := event["success"].(bool); ok && !success {
			if message, _ := event["error_message"].(string); message == "" {
				t.Errorf("event %d (%s) failed without an error_message", i, eventType)
			}
		}
		if _, ok := event["changes"].([]any); ok != changesEventTypes[eventType] {
			t.Errorf("event %d (%s): has a changes array: %v", i, eventType, ok)
		}
		if size := len(raw); size < 500 || size > 2500 {
			t.Errorf("event %d (%s) is %d bytes; real ones are 0.7–1.5 KB", i, eventType, size)
		}
		totalBytes += len(raw)
	}

	for _, eventType := range eventTypesWanted {
		if seenTypes[eventType] == 0 {
			t.Errorf("no %s event among %d", eventType, len(events))
		}
	}
	for _, digits := range []int{0, 3, 8, 9} {
		if seenDigits[digits] == 0 {
			t.Errorf("no timestamp with %d fractional digits", digits)
		}
	}
	if len(seenDigits) != 4 {
		t.Errorf("fractional digit counts %v, want only 0, 3, 8 and 9", seenDigits)
	}
	for _, form := range []string{"string", "null", "absent"} {
		if organizations[form] == 0 {
			t.Errorf("no event whose organization is %s (%v)", form, organizations)
		}
	}
	if average := totalBytes / len(events); average < 700 || average > 1500 {
		t.Errorf("events average %d bytes; real ones are 0.7–1.5 KB", average)
	}
}

func TestChangeValuesVaryInType(t *testing.T) {
	seen := map[string]bool{}
	for _, raw := range Generate(21, 1500, epoch, epoch.Add(time.Hour)) {
		var event struct {
			Changes []map[string]json.RawMessage
		}
		if err := json.Unmarshal(raw, &event); err != nil {
			t.Fatal(err)
		}
		for _, change := range event.Changes {
			from, hasFrom := change["from"]
			to, hasTo := change["to"]
			switch {
			case hasFrom && !hasTo:
				seen["only from"] = true
			case hasTo && !hasFrom:
				seen["only to"] = true
			}
			for _, value := range []json.RawMessage{from, to} {
				if len(value) > 0 {
					seen[jsonKind(value)] = true
				}
			}
		}
	}
	for _, want := range []string{"string", "number", "bool", "object", "array", "only from", "only to"} {
		if !seen[want] {
			t.Errorf("no change with %s; saw %v", want, seen)
		}
	}
}

func jsonKind(value json.RawMessage) string {
	switch value[0] {
	case '"':
		return "string"
	case '{':
		return "object"
	case '[':
		return "array"
	case 't', 'f':
		return "bool"
	case 'n':
		return "null"
	}
	return "number"
}

func TestSomeNeighboursShareAMillisecond(t *testing.T) {
	// Slots of 720 ms: only the generator's pairing puts neighbours in one millisecond.
	tests := map[string]Backlog{
		"Slots that begin on whole milliseconds still get pairs.": {Seed: 13, N: 5000, From: epoch, To: epoch.Add(time.Hour)},
		"Slots that begin mid-millisecond get pairs.":             {Seed: 13, N: 5000, From: epoch.Add(123456 * time.Nanosecond), To: epoch.Add(time.Hour)},
	}
	for name, backlog := range tests {
		t.Run(name, func(t *testing.T) {
			sharing := 0
			for i := 1; i < backlog.N; i++ {
				a, b := backlog.Timestamp(i-1), backlog.Timestamp(i)
				if a.UnixMilli() == b.UnixMilli() {
					if !a.Before(b) {
						t.Fatalf("events %d and %d share a millisecond but not an ascending sub-millisecond: %s, %s", i-1, i, a, b)
					}
					sharing += 2
				}
			}
			if share := float64(sharing) / float64(backlog.N); share < 0.05 || share > 0.2 {
				t.Fatalf("%.1f%% of events share a millisecond with a neighbour, want about 10%%", 100*share)
			}
		})
	}
}

func TestUnicodeAppearsNowAndThen(t *testing.T) {
	accented, emoji := 0, 0
	for _, raw := range Generate(17, 2000, epoch, epoch.Add(time.Hour)) {
		if !utf8.Valid(raw) {
			t.Fatalf("event is not valid UTF-8: %s", raw)
		}
		for _, r := range string(raw) {
			if r > 0xFFFF {
				emoji++
			} else if r > 0x7F {
				accented++
			}
		}
	}
	if accented == 0 || emoji == 0 {
		t.Fatalf("%d accented letters and %d emoji in 2000 events; want some of each", accented, emoji)
	}
}

func TestTimestampsAscendInEveryShapeOfBacklog(t *testing.T) {
	tests := map[string]Backlog{
		"Sparse: ten events over a year, mostly on whole seconds.":   {Seed: 1, N: 10, From: epoch, To: epoch.AddDate(1, 0, 0)},
		"Dense: five thousand events in half a second.":              {Seed: 2, N: 5000, From: epoch, To: epoch.Add(time.Second / 2)},
		"Denser than the clock: more events than nanoseconds.":       {Seed: 3, N: 3000, From: epoch, To: epoch.Add(1000 * time.Nanosecond)},
		"A window that starts mid-millisecond, in another location.": {Seed: 4, N: 2000, From: epoch.Add(777777 * time.Nanosecond).In(time.FixedZone("CET", 3600)), To: epoch.Add(10 * time.Second)},
		"A single event.": {Seed: 5, N: 1, From: epoch, To: epoch.Add(time.Minute)},
	}
	for name, backlog := range tests {
		t.Run(name, func(t *testing.T) {
			var previous time.Time
			for i := range backlog.N {
				var event struct{ Timestamp string }
				if err := json.Unmarshal(backlog.Event(i), &event); err != nil {
					t.Fatal(err)
				}
				ts, err := time.Parse(time.RFC3339Nano, event.Timestamp)
				if err != nil || !strings.HasSuffix(event.Timestamp, "Z") {
					t.Fatalf("event %d: timestamp %q", i, event.Timestamp)
				}
				if !ts.Equal(backlog.Timestamp(i)) || ts.Before(previous) || ts.Before(backlog.From) || ts.After(backlog.To) {
					t.Fatalf("event %d: timestamp %s (Timestamp %s) after %s, window [%s, %s)", i, ts, backlog.Timestamp(i), previous, backlog.From, backlog.To)
				}
				previous = ts
			}
		})
	}
}

func BenchmarkBacklogEvent(b *testing.B) {
	backlog := Backlog{Seed: 1, N: 2_000_000, From: epoch.Add(-24 * time.Hour), To: epoch}
	i := 0
	for b.Loop() {
		_ = backlog.Event(i % backlog.N)
		i += 7919
	}
}
