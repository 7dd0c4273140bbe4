// Package checkpoint keeps the resume point in lastTime.txt, the file users of the existing image
// already find in their mounted folder.
//
// The pipeline hands each safe resume point to one goroutine, which calls File.Save; at start the
// program calls File.CheckWritable, so a folder that cannot be written stops it before any event is
// shipped, and File.Load, to resume where the last run stopped.
//
// The file holds one line per API, such as
//
//	jumpcloud: 2023-05-04T12:30:00.000000Z
//
// The existing image wrote just a date; that is read as the jumpcloud entry. Lines of other APIs
// are kept as they were whenever the file is rewritten.
package checkpoint

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"
)

const (
	// Name is the entry this program reads and writes.
	Name = "jumpcloud"
	// Layout is how dates are written: %Y-%m-%dT%H:%M:%S.%fZ, always UTC, in microseconds.
	// Go formats fractional seconds by truncation, so writing never moves a position later.
	Layout = "2006-01-02T15:04:05.000000Z"
	// MaxSize is the largest file read, in bytes: anything bigger is not a checkpoint file.
	MaxSize = 64 << 10
)

// howToFix ends every message about a bad file: the user must decide, the program never restarts
// silently from an earlier point.
const howToFix = "fix or delete the line; deleting the file restarts from start_date"

// Entry is one API's resume point.
type Entry struct {
	Name string    // the API, such as "jumpcloud"
	Time time.Time // UTC
}

// CorruptError reports a checkpoint file that cannot be read as one.
type CorruptError struct {
	File   string
	Line   int // 0 when the fault is not on one line
	Reason string
}

func (e *CorruptError) Error() string {
	if e.Line == 0 {
		return fmt.Sprintf("%s: %s", e.File, e.Reason)
	}
	return fmt.Sprintf("%s:%d: %s; %s", e.File, e.Line, e.Reason, howToFix)
}

// ParseTime reads a date in Layout or in any RFC 3339 form (0 to 9 fractional digits, any
// offset), and returns it in UTC.
func ParseTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(s))
	if err != nil {
		return time.Time{}, err
	}
	if t = t.UTC(); !writable(t) { // an offset can carry year 0 to year -1, or 9999 to 10000
		return time.Time{}, fmt.Errorf("%v is outside the years 1 to 9999", t)
	}
	return t, nil
}

// writable tells whether the file's layout can hold t.
func writable(t time.Time) bool { return !t.IsZero() && t.Year() >= 1 && t.Year() <= 9999 }

// line is one entry as read, with its text, so that other APIs' lines are rewritten unchanged.
type line struct {
	Entry
	text string
}

// Parse reads the contents of a checkpoint file; filename is used in error messages only.
// Blank lines and surrounding spaces are ignored. An empty file has no entries.
func Parse(data []byte, filename string) ([]Entry, error) {
	lines, err := parse(data, filename)
	entries := make([]Entry, len(lines))
	for i, l := range lines {
		entries[i] = l.Entry
	}
	return entries, err
}

func parse(data []byte, filename string) ([]line, error) {
	if len(data) > MaxSize {
		return nil, &CorruptError{File: filename, Reason: fmt.Sprintf(
			"more than %d bytes is too big for a checkpoint file; check that this is the right file, or delete it to restart from start_date", MaxSize)}
	}
	var lines []line
	seen := map[string]int{} // entry name → line number
	for i, raw := range strings.Split(string(data), "\n") {
		n := i + 1
		text := strings.TrimSpace(raw)
		if text == "" {
			continue
		}
		if isBinary(text) {
			return nil, &CorruptError{File: filename, Line: n, Reason: "binary data, not a date"}
		}
		e, err := parseLine(text)
		if err != nil {
			return nil, &CorruptError{File: filename, Line: n, Reason: err.Error()}
		}
		if first, dup := seen[e.Name]; dup {
			return nil, &CorruptError{File: filename, Line: n, Reason: fmt.Sprintf(
				"%s appears twice (also on line %d)", e.Name, first)}
		}
		seen[e.Name] = n
		lines = append(lines, line{Entry: e, text: text})
	}
	return lines, nil
}

func parseLine(text string) (Entry, error) {
	// A lone date is the existing image's format; its colons must not be read as a name.
	if t, err := ParseTime(text); err == nil {
		return Entry{Name: Name, Time: t}, nil
	}
	name, value, ok := strings.Cut(text, ":")
	name, value = strings.TrimSpace(name), strings.TrimSpace(value)
	if !ok || !isName(name) {
		if text[0] >= '0' && text[0] <= '9' {
			return Entry{}, fmt.Errorf("%s is not a date such as 2023-05-04T12:30:00.000000Z", quote(text))
		}
		return Entry{}, fmt.Errorf(`%s is neither "name: date" nor a date`, quote(text))
	}
	t, err := ParseTime(value)
	if err != nil {
		return Entry{}, fmt.Errorf("%s: %s is not a date such as 2023-05-04T12:30:00.000000Z", name, quote(value))
	}
	return Entry{Name: name, Time: t}, nil
}

// isName accepts API names such as "jumpcloud" or "password_manager": a letter, then letters,
// digits, '_', '-' or '.'.
func isName(s string) bool {
	for i, r := range s {
		letter := r < utf8.RuneSelf && unicode.IsLetter(r)
		if !letter && (i == 0 || !(r >= '0' && r <= '9' || r == '_' || r == '-' || r == '.')) {
			return false
		}
	}
	return s != ""
}

func isBinary(s string) bool {
	return !utf8.ValidString(s) || strings.ContainsFunc(s, func(r rune) bool {
		return unicode.IsControl(r) && r != '\t'
	})
}

// quote shows a value in a message, cut short so a long line cannot flood the log.
func quote(s string) string {
	const max = 60
	if len(s) > max {
		s = strings.ToValidUTF8(s[:max], "") + "…"
	}
	return fmt.Sprintf("%q", s)
}

// Format writes entries in the file's format, one line each, dates in Layout.
func Format(entries []Entry) []byte {
	var b bytes.Buffer
	for _, e := range entries {
		b.WriteString(formatEntry(e))
	}
	return b.Bytes()
}

func formatEntry(e Entry) string {
	return e.Name + ": " + e.Time.UTC().Format(Layout) + "\n"
}

// File is the checkpoint file at one path. It has one owner: its methods must not be called
// concurrently.
type File struct {
	path  string
	read  bool   // lines holds what is on disk
	lines []line // the file's entries, for rewriting other APIs' lines unchanged
}

// Open returns the checkpoint file at path. It touches nothing on disk: a missing file is a
// fresh start, created by the first Save.
func Open(path string) *File {
	return &File{path: path}
}

// Path returns the path given to Open.
func (f *File) Path() string { return f.path }

// Load returns the jumpcloud entry's resume point. found is false, with a nil error, when the
// file does not exist, is empty or has no jumpcloud entry. A file that cannot be read as a
// checkpoint is an error naming the line: it is never taken as a fresh start.
func (f *File) Load() (t time.Time, found bool, err error) {
	if err := f.load(); err != nil {
		return time.Time{}, false, err
	}
	for _, l := range f.lines {
		if l.Name == Name {
			return l.Time, true, nil
		}
	}
	return time.Time{}, false, nil
}

func (f *File) load() error {
	file, err := os.Open(f.path)
	if errors.Is(err, os.ErrNotExist) {
		f.lines, f.read = nil, true
		return nil
	}
	if err != nil {
		return fmt.Errorf("cannot read the checkpoint: %w", err)
	}
	defer file.Close()
	data, err := io.ReadAll(io.LimitReader(file, MaxSize+1))
	if err != nil {
		return fmt.Errorf("cannot read the checkpoint: %w", err)
	}
	lines, err := parse(data, f.path)
	if err != nil {
		return err
	}
	f.lines, f.read = lines, true
	return nil
}

// Save records t as the jumpcloud entry's resume point, keeping the other entries as they were.
// t is written in UTC with microseconds; finer precision is truncated, which can only move the
// point earlier. The file is replaced atomically (a temporary file in the same folder, synced,
// mode 0600, renamed over it, then the folder synced): a crash leaves the old file or the new one,
// never half of one.
func (f *File) Save(t time.Time) error {
	t = t.UTC()
	if !writable(t) {
		return fmt.Errorf("%s: refusing to save %v: it is not a date the file can hold", f.path, t)
	}
	if !f.read {
		// Read once, so the other APIs' lines survive the rewrite and a corrupt file is reported
		// rather than overwritten.
		if err := f.load(); err != nil {
			return err
		}
	}
	mine := line{Entry: Entry{Name: Name, Time: t}}
	mine.text = strings.TrimSuffix(formatEntry(mine.Entry), "\n")
	lines := make([]line, 0, len(f.lines)+1)
	replaced := false
	for _, l := range f.lines {
		if l.Name == Name {
			l, replaced = mine, true
		}
		lines = append(lines, l)
	}
	if !replaced {
		lines = append(lines, mine)
	}
	var b bytes.Buffer
	for _, l := range lines {
		b.WriteString(l.text + "\n")
	}
	if err := f.writeAtomic(b.Bytes()); err != nil {
		return fmt.Errorf("cannot save the checkpoint %s: %w; %s", f.path, err, f.fixPermissions())
	}
	f.lines = lines
	return nil
}

// CheckWritable proves that Save can work: it creates, writes, syncs and removes a temporary file
// in the checkpoint's folder. Call it at start, so that a read-only or full disk stops the program
// before anything is shipped (events shipped without a saved point are shipped again next run).
func (f *File) CheckWritable() error {
	if fi, err := os.Stat(f.path); err == nil && fi.IsDir() {
		return fmt.Errorf("%s is a folder; the checkpoint must be a file there, so move the folder away", f.path)
	}
	tmp, err := os.CreateTemp(filepath.Dir(f.path), f.tempPattern())
	if err == nil {
		_, err = tmp.WriteString(Name + ": " + Layout + "\n")
		if err == nil {
			err = tmp.Sync()
		}
		if cerr := tmp.Close(); err == nil {
			err = cerr
		}
		if rerr := os.Remove(tmp.Name()); err == nil {
			err = rerr
		}
	}
	if err != nil {
		return fmt.Errorf("cannot write the checkpoint %s: %w; %s", f.path, err, f.fixPermissions())
	}
	return nil
}

// fixPermissions says how to fix a failed write, naming the user because in Docker the mounted
// folder's owner is often not the container's user.
func (f *File) fixPermissions() string {
	dir := filepath.Dir(f.path)
	if uid := os.Getuid(); uid >= 0 {
		return fmt.Sprintf("make the folder %s writable by user id %d and check the disk is not full", dir, uid)
	}
	return fmt.Sprintf("make the folder %s writable and check the disk is not full", dir)
}

// tempPattern names temporary files: hidden, and in the file's own folder so rename is atomic.
func (f *File) tempPattern() string { return "." + filepath.Base(f.path) + ".*.tmp" }

func (f *File) writeAtomic(data []byte) error {
	dir := filepath.Dir(f.path)
	tmp, err := os.CreateTemp(dir, f.tempPattern())
	if err != nil {
		return err
	}
	renamed := false
	defer func() {
		if !renamed {
			tmp.Close() // a second Close after a failed rename only returns an error we ignore
			os.Remove(tmp.Name())
		}
	}()
	if _, err := tmp.Write(data); err != nil {
		return err
	}
	if err := tmp.Chmod(0o600); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), f.path); err != nil {
		return err
	}
	renamed = true
	return syncDir(dir)
}

// syncDir makes the rename durable. Some filesystems (and Windows) cannot sync a folder; there the
// rename is as durable as the platform allows, which is not worth failing the run over.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	err = d.Sync()
	if errors.Is(err, errors.ErrUnsupported) || errors.Is(err, syscall.EINVAL) || errors.Is(err, os.ErrPermission) {
		return nil
	}
	return err
}
