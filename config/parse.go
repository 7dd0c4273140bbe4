package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"gopkg.in/yaml.v3"

	"github.com/logzio/logzio-jumpcloud/checkpoint"
)

// parser walks the YAML node tree rather than decoding into structs, so that every error can name
// its line and full key, and say how to fix it.
type parser struct {
	file    string
	cfg     *Config
	errs    []*FieldError
	fatal   bool     // the file as a whole is unreadable: its one error is all there is to say
	secrets []string // tokens seen, hidden from every message
}

func (p *parser) fail(line int, key string, sentinel error, format string, args ...any) {
	p.errs = append(p.errs, &FieldError{File: p.file, Line: line, Key: key, Err: sentinel, Msg: fmt.Sprintf(format, args...)})
}

// invalid records a value of key, on n's line, that cannot be read.
func (p *parser) invalid(n *yaml.Node, key, format string, args ...any) {
	p.fail(n.Line, key, ErrInvalid, key+": "+format, args...)
}

func (p *parser) fatalf(line int, sentinel error, format string, args ...any) {
	p.fail(line, "", sentinel, format, args...)
	p.fatal = true
}

// result joins the errors in the order of the file's lines, with every secret hidden.
func (p *parser) result() error {
	// Problems without a line, such as a missing key, come last.
	sort.SliceStable(p.errs, func(i, j int) bool {
		li, lj := p.errs[i].Line, p.errs[j].Line
		return li != 0 && (lj == 0 || li < lj)
	})
	// A broken file can hold thousands of problems; the first few say what to fix.
	const maxErrors = 20
	if extra := len(p.errs) - maxErrors; extra > 0 {
		p.errs = append(p.errs[:maxErrors], &FieldError{File: p.file, Err: p.errs[maxErrors].Err,
			Msg: fmt.Sprintf("and %d more problems; fix these first", extra)})
	}
	errs := make([]error, len(p.errs))
	for i, e := range p.errs {
		e.Msg, e.Key = scrub(e.Msg, p.secrets), scrub(e.Key, p.secrets)
		errs[i] = e
	}
	return errors.Join(errs...)
}

func (p *parser) parse(data []byte) {
	if len(data) > MaxFileSize {
		p.fatalf(0, ErrTooLarge, "larger than %d bytes (1 MiB); a config file is a few lines, so check this is the right file", MaxFileSize)
		return
	}
	if i := binaryAt(data); i >= 0 {
		p.fatalf(lineAt(data, i), ErrMalformed, "binary data, not YAML text; the config file must be UTF-8 text")
		return
	}
	root, err := decode(data)
	var second errSecondDocument
	switch {
	case errors.Is(err, io.EOF) || err == nil && isNull(resolve(root)):
		p.fatalf(0, ErrEmpty, "the file is empty; it needs at least %s, %s and %s (the tokens may come from %s and %s instead)",
			keyLogzioURL, keyLogzioToken, keyJumpCloudToken, EnvLogzioToken, EnvJumpCloudToken)
	case errors.As(err, &second):
		p.fatalf(second.line, ErrMalformed, "a second YAML document starts here; the config file must hold one, so remove this one or its ---")
	case err != nil:
		p.syntaxError(err, data)
	case resolve(root).Kind != yaml.MappingNode:
		p.fatalf(root.Line, ErrMalformed, "the top level must be a mapping with the keys logzio and jumpcloud_api, not %s", kindName(resolve(root)))
	default:
		p.root(root)
	}
}

// errSecondDocument reports a "---" that starts another document, which would be ignored.
type errSecondDocument struct{ line int }

func (e errSecondDocument) Error() string { return "a second YAML document" }

// decode returns the top node of the only document in data, or io.EOF when there is none.
func decode(data []byte) (root *yaml.Node, err error) {
	defer func() {
		// yaml.v3 has panicked on odd input before; a bad file must never crash the program.
		if r := recover(); r != nil {
			root, err = nil, errors.New("yaml: the YAML parser could not read this file")
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		return nil, err
	}
	for { // a trailing "---" with nothing after it is harmless
		var next yaml.Node
		switch err := dec.Decode(&next); {
		case errors.Is(err, io.EOF):
			if len(doc.Content) == 0 {
				return nil, io.EOF
			}
			return doc.Content[0], nil
		case err != nil:
			return nil, err
		case len(next.Content) > 0 && !isNull(next.Content[0]):
			return nil, errSecondDocument{next.Line}
		}
	}
}

var yamlError = regexp.MustCompile(`(?s)^yaml: line (\d+): (.*)$`)

func (p *parser) syntaxError(err error, data []byte) {
	msg, line := err.Error(), 0
	if m := yamlError.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
	}
	msg = strings.TrimPrefix(msg, "yaml: ")
	if strings.HasPrefix(msg, "unknown anchor") { // the anchor's name is input, which may be a token
		msg = "an alias (*name) refers to an anchor (&name) that is not defined before it"
	}
	hint := "check the indentation, colons and quotes"
	if line > 0 {
		hint += " on this line and the ones before it"
	}
	if tab := firstTabIndent(data); tab > 0 && (line == 0 || tab <= line) {
		hint = fmt.Sprintf("line %d is indented with a tab; YAML needs spaces", tab)
	}
	p.fatalf(line, ErrMalformed, "not valid YAML (%s); %s", msg, hint)
}

// binaryAt returns the offset of the first byte that cannot be in a UTF-8 text file, or -1.
func binaryAt(data []byte) int {
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		if r == 0 || r == utf8.RuneError && size == 1 {
			return i
		}
		i += size
	}
	return -1
}

func lineAt(data []byte, offset int) int { return bytes.Count(data[:offset], []byte("\n")) + 1 }

func firstTabIndent(data []byte) int {
	for i, l := range strings.Split(string(data), "\n") {
		if indent := l[:len(l)-len(strings.TrimLeft(l, " \t"))]; strings.Contains(indent, "\t") {
			return i + 1
		}
	}
	return 0
}

// startDateForm is the form errors suggest: the existing image's %Y-%m-%dT%H:%M:%S.%fZ, which is
// also lastTime.txt's (checkpoint.Layout), so a date copied from there works.
const startDateForm = "2023-05-04T12:30:00.000000Z"

func underReported(key string, reported map[string]bool) bool {
	for k := range keyAndParents(key) {
		if reported[k] {
			return true
		}
	}
	return false
}

func (p *parser) applyEnv(getenv func(string) string) {
	if getenv == nil {
		return
	}
	c := p.cfg
	c.fromEnv = map[string]string{}
	for _, o := range []struct {
		key, env string
		secret   bool
		set      func(string)
	}{
		{keyLogzioToken, EnvLogzioToken, true, func(v string) { c.Logzio.Token = Secret(v) }},
		{keyJumpCloudToken, EnvJumpCloudToken, true, func(v string) { c.JumpCloud.Token = Secret(v) }},
		{keyOrgID, EnvOrgID, false, func(v string) { c.JumpCloud.OrgID = v }},
	} {
		if v := strings.TrimSpace(getenv(o.env)); v != "" {
			o.set(v)
			c.fromEnv[o.key] = o.env
			if o.secret {
				p.secrets = append(p.secrets, v)
			}
		}
	}
}

// field is a known key of a mapping and what reads its value.
type field struct {
	key   string
	parse func(n *yaml.Node, path string)
}

func (p *parser) root(n *yaml.Node) {
	c := p.cfg
	p.mapping(n, "", []field{
		{"logzio", func(n *yaml.Node, path string) {
			p.mapping(n, path, []field{
				{"url", p.text(&c.Logzio.URL, "a URL such as https://listener.logz.io:8071")},
				{"token", p.secret(&c.Logzio.Token)},
				{"type", p.text(&c.Logzio.Type, `a log type such as "jumpcloud"`)},
			})
		}},
		{"jumpcloud_api", func(n *yaml.Node, path string) {
			p.mapping(n, path, []field{
				{"url", p.text(&c.JumpCloud.URL, "a URL such as "+DefaultJumpCloudURL)},
				{"start_date", p.startDate},
				{"credentials", func(n *yaml.Node, path string) {
					p.mapping(n, path, []field{
						{"token", p.secret(&c.JumpCloud.Token)},
						{"org_id", p.text(&c.JumpCloud.OrgID, "an organization ID")},
					})
				}},
				{"settings", func(n *yaml.Node, path string) {
					p.mapping(n, path, []field{
						{"time_interval", p.interval},
						{"lag", p.lag},
						{"services", p.services},
						{"page_size", p.pageSize},
					})
				}},
			})
		}},
	})
}

// mapping reads the keys of n, which may be null (all left at their defaults).
func (p *parser) mapping(n *yaml.Node, path string, fields []field) {
	m := resolve(n)
	if isNull(m) {
		return
	}
	known := make([]string, len(fields))
	for i, f := range fields {
		known[i] = f.key
	}
	knownKeys := strings.Join(known, ", ")
	if m.Kind != yaml.MappingNode {
		p.invalid(n, path, "expected a mapping of the keys %s, not %s", knownKeys, kindName(m))
		return
	}
	firstLine := map[string]int{}
	for i := 0; i+1 < len(m.Content); i += 2 {
		keyNode, k, v := m.Content[i], resolve(m.Content[i]), m.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			where := path
			if where == "" {
				where = "top level"
			}
			p.fail(keyNode.Line, path, ErrUnknownKey, "%s: a key must be a name, not %s (known keys: %s)", where, kindName(k), knownKeys)
			continue
		}
		full := joinKey(path, k.Value)
		i := indexOfKey(fields, k.Value)
		if i < 0 {
			p.fail(keyNode.Line, full, ErrUnknownKey, "unknown key %s (known keys: %s)", quote(full), knownKeys)
			continue
		}
		if line, dup := firstLine[k.Value]; dup {
			p.fail(keyNode.Line, full, ErrDuplicateKey, "%s is set twice (first on line %d); keep one", full, line)
			continue
		}
		firstLine[k.Value] = keyNode.Line
		p.cfg.lines[full] = keyNode.Line
		fields[i].parse(v, full)
	}
}

func indexOfKey(fields []field, key string) int {
	for i, f := range fields {
		if f.key == key {
			return i
		}
	}
	return -1
}

func joinKey(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// scalar returns n's text, trimmed. ok is false for null, and for a list or mapping, which is
// reported: want says what belongs there.
func (p *parser) scalar(n *yaml.Node, path, want string) (text string, ok bool) {
	s := resolve(n)
	if isNull(s) {
		return "", false
	}
	if s.Kind != yaml.ScalarNode {
		p.invalid(n, path, "expected %s, not %s", want, kindName(s))
		return "", false
	}
	return strings.TrimSpace(s.Value), true
}

// text reads a string; empty or null keeps the default.
func (p *parser) text(dst *string, want string) func(*yaml.Node, string) {
	return func(n *yaml.Node, path string) {
		if v, ok := p.scalar(n, path, want); ok && v != "" {
			*dst = v
		}
	}
}

func (p *parser) secret(dst *Secret) func(*yaml.Node, string) {
	return func(n *yaml.Node, path string) {
		if v, ok := p.scalar(n, path, "a token"); ok && v != "" {
			*dst = Secret(v)
			p.secrets = append(p.secrets, v)
			p.cfg.fileHasToken = true
		}
	}
}

// startDate accepts a quoted string or an unquoted YAML timestamp: both arrive as text.
func (p *parser) startDate(n *yaml.Node, path string) {
	v, ok := p.scalar(n, path, "a date such as "+startDateForm)
	if !ok || v == "" {
		return
	}
	t, err := checkpoint.ParseTime(v)
	if err != nil {
		p.invalid(n, path, "%s is not a date; use the form %s (UTC)", quote(v), startDateForm)
		return
	}
	p.cfg.JumpCloud.StartDate = t
}

// maxMinutes is the largest number of minutes a time.Duration holds.
const maxMinutes = math.MaxInt64 / int64(time.Minute)

// interval reads a number of minutes, as the existing image did, or a duration.
func (p *parser) interval(n *yaml.Node, path string) {
	const want = `a number of minutes or a duration such as "30s" or "5m"`
	v, ok := p.scalar(n, path, want)
	if !ok || v == "" {
		return
	}
	if minutes, err := strconv.ParseInt(v, 10, 64); err == nil {
		if minutes > maxMinutes || minutes < -maxMinutes {
			p.invalid(n, path, "%s minutes is too long; use a duration such as \"1h\"", v)
			return
		}
		p.cfg.JumpCloud.Interval = time.Duration(minutes) * time.Minute
		return
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		p.invalid(n, path, "%s is not %s", quote(v), want)
		return
	}
	p.cfg.JumpCloud.Interval = d
}

func (p *parser) lag(n *yaml.Node, path string) {
	v, ok := p.scalar(n, path, `a duration such as "1m"`)
	if !ok || v == "" {
		return
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		hint := ""
		if _, isNumber := strconv.ParseFloat(v, 64); isNumber == nil {
			hint = " (add a unit)"
		}
		p.invalid(n, path, "%s is not a duration such as \"30s\" or \"1m\"%s", quote(v), hint)
		return
	}
	p.cfg.JumpCloud.Lag = d
}

// services reads a list of names. JumpCloud's list of services grows, so names are not checked
// here: JumpCloud answers an unknown one with the list of valid ones.
func (p *parser) services(n *yaml.Node, path string) {
	list := resolve(n)
	if isNull(list) {
		return
	}
	if list.Kind != yaml.SequenceNode {
		p.invalid(n, path, `expected a list such as ["all"], not %s`, kindName(list))
		return
	}
	services := make([]string, 0, len(list.Content))
	for i, item := range list.Content {
		key := fmt.Sprintf("%s[%d]", path, i)
		p.cfg.lines[key] = item.Line
		name, _ := p.scalar(item, key, `a service name such as "all"`)
		services = append(services, name)
	}
	p.cfg.JumpCloud.Services = services
}

func (p *parser) pageSize(n *yaml.Node, path string) {
	want := fmt.Sprintf("a whole number from 1 to %d", MaxPageSize)
	v, ok := p.scalar(n, path, want)
	if !ok || v == "" {
		return
	}
	size, err := strconv.Atoi(v)
	if err != nil {
		p.invalid(n, path, "%s is not %s", quote(v), want)
		return
	}
	p.cfg.JumpCloud.PageSize = size
}

// resolve follows an alias to the node it names. The walk's depth is fixed by the known keys, so
// an alias cycle cannot make it loop.
func resolve(n *yaml.Node) *yaml.Node {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		return n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if isNull(n) {
			return "nothing"
		}
		return "a single value"
	}
	return "an alias"
}
