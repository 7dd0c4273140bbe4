package source

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/logzio/logzio-jumpcloud/internal/emulator"
)

// FuzzDecodePage feeds page bodies to the reader's decoder, and each element it yields to the
// timestamp reader, as the JumpCloud reader does. Neither may panic; the decoder must accept
// exactly the bodies that are one JSON array, yielding its elements minified; and Timestamp must
// read what encoding/json reads.
func FuzzDecodePage(f *testing.F) {
	from := time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)
	page := append(append([]byte("["), bytes.Join(emulator.Generate(5, 3, from, from.Add(time.Second)), []byte(","))...), ']')
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, page, "", "  "); err != nil {
		f.Fatal(err)
	}
	f.Add(page)
	f.Add(pretty.Bytes())
	f.Add(page[:len(page)/2]) // cut off mid-page
	for _, seed := range []string{
		``, `[]`, ` [ ] `, `[] []`, `[1,]`, `[1 2]`, `{"message":"internal error"}`, `<html>502</html>`,
		`["a string", 42, null, ["an","array"], {}, {"id":"no-timestamp"}]`,
		`[{"timestamp":"2026-11-20T12:00:01Z"},{"timestamp":"2026-11-20T12:00:01.250Z"},` +
			`{"timestamp":"2026-11-20T12:00:01.25000001Z"},{"timestamp":"2026-11-20T12:00:01.999999999Z"}]`,
		`[{"timestamp":"2026-11-20T12:00:00Z","timestamp":1}, {"timestamp":1,"timestamp":"2026-11-20T12:00:00Z"}]`,
		`[{"timest\u0061mp":"2026-11-20T12:00:00\u002e5Z"}, {"nested":{"timestamp":"2026-11-20T12:00:00Z"}}]`,
		`[{"m":"\ud800","e":"🔐","s":"a` + "\u2028" + `b","q":"\\\"","t":"2026-11-20T12:00:00Z"}]`,
		"[{\"username\":\"\xff\xfe\",\"timestamp\":\"2026-11-20T12:00:00Z\"}]",
		`[{"path":"C:\\","timestamp":"2026-11-20T12:00:00Z"},"\\\\",{"k\\":"\\\""}]`, // backslashes before quotes
		"[\t{ \"timestamp\" :\n\"2026-11-20T12:00:00Z\" , \"a\" : [ 1 , { } ] }\r\n]",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var elements [][]byte
		n, err := decodeElements(bytes.NewReader(body), func(element []byte) error {
			elements = append(elements, element)
			Timestamp(element) // the reader asks this of every element: it must not panic
			return nil
		})

		var want []json.RawMessage
		isArray := json.Unmarshal(body, &want) == nil && bytes.HasPrefix(bytes.TrimLeft(body, " \t\r\n"), []byte("["))
		if err != nil {
			if isArray {
				t.Fatalf("a JSON array was rejected: %v", err)
			}
			return
		}
		if !isArray {
			t.Fatalf("accepted %q, which is not one JSON array", body)
		}
		if n != len(elements) || len(elements) != len(want) {
			t.Fatalf("decoded %d elements and said %d; the array has %d", len(elements), n, len(want))
		}
		for i, element := range elements {
			if !json.Valid(element) {
				t.Fatalf("element %d is not valid JSON: %q", i, element)
			}
			if compact := compactJSON(t, want[i]); !bytes.Equal(element, compact) {
				t.Fatalf("element %d is %q, want it minified: %q", i, element, compact)
			}
			checkTimestamp(t, element)
		}
	})
}

// checkTimestamp fails the test unless Timestamp reads element's top-level timestamp exactly
// when encoding/json finds a string there that parses as RFC 3339, and to the same time.
func checkTimestamp(t *testing.T, element []byte) {
	t.Helper()
	got, ok := Timestamp(element)
	var want time.Time
	wantOK := false
	var fields map[string]json.RawMessage // repeated keys: the last wins, as for Timestamp
	if json.Unmarshal(element, &fields) == nil {
		var stamp string
		if json.Unmarshal(fields["timestamp"], &stamp) == nil {
			ts, err := time.Parse(time.RFC3339Nano, stamp)
			want, wantOK = ts, err == nil
		}
	}
	if ok != wantOK || !got.Equal(want) {
		t.Fatalf("Timestamp(%q) = %s, %t; encoding/json reads %s, %t", element, got, ok, want, wantOK)
	}
}

func compactJSON(t *testing.T, value []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	if err := json.Compact(&out, value); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}
