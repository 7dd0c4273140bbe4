package checkpoint

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestSaveThenLoadReturnsThePointAtMicrosecondPrecision(t *testing.T) {
	utc := func(ns int) time.Time { return time.Date(2023, 5, 4, 12, 30, 0, ns, time.UTC) }
	tests := map[string]struct {
		saved, loaded time.Time
	}{
		"A whole second comes back unchanged.":   {utc(0), utc(0)},
		"Milliseconds come back unchanged.":      {utc(123_000_000), utc(123_000_000)},
		"Microseconds come back unchanged.":      {utc(123_456_000), utc(123_456_000)},
		"Nanoseconds are cut, never rounded up.": {utc(123_456_999), utc(123_456_000)},
		"A time in another zone is kept as the same instant in UTC.": {
			time.Date(2023, 5, 4, 14, 30, 0, 5000, time.FixedZone("CEST", 2*3600)), utc(5000)},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "lastTime.txt")
			if err := Open(path).Save(tt.saved); err != nil {
				t.Fatal(err)
			}
			got, found, err := Open(path).Load()
			if err != nil || !found {
				t.Fatalf("Load() = %v, %v, %v", got, found, err)
			}
			if !got.Equal(tt.loaded) || got.Location() != time.UTC {
				t.Errorf("Load() = %v, want %v in UTC", got, tt.loaded)
			}
			data, _ := os.ReadFile(path)
			want := "jumpcloud: " + tt.loaded.Format(Layout) + "\n"
			if string(data) != want {
				t.Errorf("file holds %q, want %q", data, want)
			}
		})
	}
}

func TestLoadReadsEveryAcceptedForm(t *testing.T) {
	want := time.Date(2023, 5, 4, 12, 30, 1, 123456000, time.UTC)
	tests := map[string]string{
		"The existing image's file, a lone date without a newline, is the jumpcloud entry.": "2023-05-04T12:30:01.123456Z",
		"A lone date with spaces and blank lines around it is read.":                        "\n\n  2023-05-04T12:30:01.123456Z  \r\n\n",
		"The current format is read.":                                                       "jumpcloud: 2023-05-04T12:30:01.123456Z\n",
		"Any RFC 3339 form is read and converted to UTC.":                                   "jumpcloud: 2023-05-04T14:30:01.123456+02:00\n",
		"Milliseconds are enough.":                                                          "other: 2023-01-01T00:00:00Z\njumpcloud:2023-05-04T12:30:01.123456000Z\n",
	}
	for name, content := range tests {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "lastTime.txt")
			writeFile(t, path, content)
			got, found, err := Open(path).Load()
			if err != nil || !found || !got.Equal(want) {
				t.Errorf("Load() = %v, %v, %v; want %v, true, nil", got, found, err, want)
			}
		})
	}
}

func TestLoadWithoutAPointIsAFreshStart(t *testing.T) {
	tests := map[string]func(t *testing.T, path string){
		"A missing file is a fresh start.":                      func(t *testing.T, path string) {},
		"An empty file is a fresh start.":                       func(t *testing.T, path string) { writeFile(t, path, "") },
		"A file of blank lines is a fresh start.":               func(t *testing.T, path string) { writeFile(t, path, "\n  \n") },
		"A file with only other APIs' entries is a fresh start": func(t *testing.T, path string) { writeFile(t, path, "other: 2023-05-04T12:30:00Z\n") },
	}
	for name, setup := range tests {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "lastTime.txt")
			setup(t, path)
			got, found, err := Open(path).Load()
			if err != nil || found || !got.IsZero() {
				t.Errorf("Load() = %v, %v, %v; want zero, false, nil", got, found, err)
			}
		})
	}
}

func TestSaveKeepsOtherEntriesAsTheyWere(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lastTime.txt")
	writeFile(t, path, "alerts: 2023-01-01T00:00:00.123456789Z\n\n  jumpcloud: 2022-01-01T00:00:00.000000Z  \nradius:2023-02-02T10:00:00+01:00\n")
	f := Open(path)
	if _, _, err := f.Load(); err != nil {
		t.Fatal(err)
	}
	for _, sec := range []int{1, 2} { // the second save must keep them too
		if err := f.Save(time.Date(2023, 5, 4, 0, 0, sec, 0, time.UTC)); err != nil {
			t.Fatal(err)
		}
	}
	want := "alerts: 2023-01-01T00:00:00.123456789Z\njumpcloud: 2023-05-04T00:00:02.000000Z\nradius:2023-02-02T10:00:00+01:00\n"
	if got := readFile(t, path); got != want {
		t.Errorf("file holds\n%s\nwant\n%s", got, want)
	}
}

func TestSaveWithoutLoadKeepsOtherEntriesAndUpgradesTheOldFormat(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lastTime.txt")
	writeFile(t, path, "2022-01-01T00:00:00.000000Z\nalerts: 2023-01-01T00:00:00Z")
	if err := Open(path).Save(time.Date(2023, 5, 4, 0, 0, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	want := "jumpcloud: 2023-05-04T00:00:00.000000Z\nalerts: 2023-01-01T00:00:00Z\n"
	if got := readFile(t, path); got != want {
		t.Errorf("file holds %q, want %q", got, want)
	}
}

func TestACorruptFileIsAnErrorNamingTheLine(t *testing.T) {
	tests := map[string]struct {
		content string
		line    int
		says    string
	}{
		"A line that is neither an entry nor a date is named.": {"jumpcloud: 2023-05-04T12:30:00Z\nhello world\n", 2, `"hello world" is neither`},
		"A line with no name before the colon is named.":       {": 2023-05-04T12:30:00Z", 1, "is neither"},
		"A name with spaces is not a name.":                    {"jump cloud: 2023-05-04T12:30:00Z", 1, "is neither"},
		"A bad date is named with its entry.":                  {"\n\njumpcloud: 2023-13-04T12:30:00Z\n", 3, `jumpcloud: "2023-13-04T12:30:00Z" is not a date`},
		"A date in another format is a bad date.":              {"jumpcloud: 2023-05-04 12:30:00", 1, "is not a date"},
		"A lone bad date is named.":                            {"2023-05-04T25:30:00Z", 1, `"2023-05-04T25:30:00Z" is not a date`},
		"A name must start with a letter.":                     {"_x: 2023-05-04T12:30:00Z", 1, "is neither"},
		"Binary data is named.":                                {"jumpcloud: 2023-05-04T12:30:00Z\n\x00\x01\x02\xff", 2, "binary data"},
		"Invalid UTF-8 is binary data.":                        {"\xff\xfe2\x000\x002\x00", 1, "binary data"},
		"An entry twice is named with both lines.":             {"jumpcloud: 2023-05-04T12:30:00Z\n2023-05-04T12:30:00Z\n", 2, "jumpcloud appears twice (also on line 1)"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "lastTime.txt")
			writeFile(t, path, tt.content)
			_, found, err := Open(path).Load()
			var corrupt *CorruptError
			if !errors.As(err, &corrupt) || found {
				t.Fatalf("Load() = found %v, error %v; want a *CorruptError", found, err)
			}
			if corrupt.Line != tt.line {
				t.Errorf("error names line %d, want %d", corrupt.Line, tt.line)
			}
			msg := err.Error()
			for _, want := range []string{path + ":", tt.says, howToFix} {
				if !strings.Contains(msg, want) {
					t.Errorf("error %q does not say %q", msg, want)
				}
			}
		})
	}
}

func TestAFileOverTheSizeLimitIsAnError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lastTime.txt")
	writeFile(t, path, strings.Repeat("jumpcloud: 2023-05-04T12:30:00Z\n", MaxSize/32+1))
	_, _, err := Open(path).Load()
	var corrupt *CorruptError
	if !errors.As(err, &corrupt) || !strings.Contains(err.Error(), path+": ") || !strings.Contains(err.Error(), "too big") {
		t.Errorf("Load() error = %v, want one saying %s is too big", err, path)
	}
}

func TestSaveNeverOverwritesACorruptFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lastTime.txt")
	writeFile(t, path, "garbage\n")
	err := Open(path).Save(time.Now())
	var corrupt *CorruptError
	if !errors.As(err, &corrupt) {
		t.Errorf("Save() error = %v, want a *CorruptError", err)
	}
	if got := readFile(t, path); got != "garbage\n" {
		t.Errorf("file now holds %q", got)
	}
}

func TestSaveRefusesTimesTheFileCannotHold(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lastTime.txt")
	for _, tm := range []time.Time{{}, time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)} {
		if err := Open(path).Save(tm); err == nil {
			t.Errorf("Save(%v) succeeded", tm)
		}
	}
}

func TestSaveReplacesTheFileAtomicallyWithMode0600(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "lastTime.txt")
	writeFile(t, path, "2022-01-01T00:00:00.000000Z")
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	f := Open(path)
	if err := f.CheckWritable(); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := f.Save(time.Date(2023, 5, 4, 0, 0, i, 0, time.UTC)); err != nil {
			t.Fatal(err)
		}
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("mode is %o, want 600", perm)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("folder holds %v, want only lastTime.txt", names)
	}
}

func TestAReadOnlyFolderFailsCheckWritableAndSaveNamingThePath(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "lastTime.txt")
	writeFile(t, path, "jumpcloud: 2022-01-01T00:00:00.000000Z\n")
	if err := os.Chmod(dir, 0o500); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(dir, 0o700) })
	if probe, err := os.Create(filepath.Join(dir, "probe")); err == nil {
		probe.Close()
		t.Skip("this user can write in a read-only folder (root?); permissions cannot be tested")
	}

	f := Open(path)
	if err := f.CheckWritable(); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("CheckWritable() = %v, want an error naming %s", err, path)
	}
	if err := f.Save(time.Now()); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("Save() = %v, want an error naming %s", err, path)
	}
	if got := readFile(t, path); got != "jumpcloud: 2022-01-01T00:00:00.000000Z\n" {
		t.Errorf("file now holds %q", got)
	}
}

func TestCheckWritableRejectsAFolderWhereTheFileGoes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lastTime.txt")
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := Open(path).CheckWritable(); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("CheckWritable() = %v, want an error naming %s", err, path)
	}
}

func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		"", "2023-05-04T12:30:01.123456Z", "jumpcloud: 2023-05-04T12:30:00.000000Z\n",
		"a: 2023-05-04T12:30:00+02:00\n\n b:2023-05-04T12:30:00.123456789Z \r\n",
		"jumpcloud: 2023-13-04T12:30:00Z", "x:y:z", "\x00\xff", "0000-01-01T00:00:00Z",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		entries, err := Parse(data, "lastTime.txt")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "lastTime.txt:") {
				t.Fatalf("error %q does not name the file", err)
			}
			return
		}
		out := Format(entries)
		again, err := Parse(out, "lastTime.txt")
		if err != nil {
			t.Fatalf("Parse(Format(%q)) = %v", out, err)
		}
		if len(again) != len(entries) {
			t.Fatalf("round trip gave %d entries, want %d", len(again), len(entries))
		}
		for i, e := range entries {
			// Format keeps microseconds: the point may move earlier by less than one, never later.
			lost := e.Time.Sub(again[i].Time)
			if again[i].Name != e.Name || lost < 0 || lost >= time.Microsecond {
				t.Fatalf("entry %d: %v became %v", i, e, again[i])
			}
		}
		if string(Format(again)) != string(out) {
			t.Fatalf("Format is not stable: %q then %q", out, Format(again))
		}
	})
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}
