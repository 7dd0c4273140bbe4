// Package config reads config.yaml, the file users of the existing image already mount, into the
// settings the shipper runs with.
//
// Every key of the existing image keeps its meaning. Loading goes defaults → file → environment
// (LOGZIO_API_TOKEN, JUMPCLOUD_API_TOKEN and JUMPCLOUD_ORG_ID override the file) → Validate. Every
// error names the file and, where there is one, the line and the full key, and says how to fix
// it; all of a file's problems are reported at once. No error or warning ever shows a token, and
// printing a Config masks them.
package config

import (
	"errors"
	"fmt"
	"io"
	"iter"
	"net/url"
	"os"
	"regexp"
	"runtime"
	"strings"
	"time"
)

// Defaults and limits.
const (
	DefaultType         = "jumpcloud"
	DefaultJumpCloudURL = "https://api.jumpcloud.com/insights/directory/v1/events"
	DefaultInterval     = 5 * time.Minute
	DefaultLag          = time.Minute
	MaxPageSize         = 10000 // the most JumpCloud returns in one page
	MaxFileSize         = 1 << 20
)

// Environment variables that override the file, so that secrets can stay out of it.
const (
	EnvLogzioToken    = "LOGZIO_API_TOKEN"
	EnvJumpCloudToken = "JUMPCLOUD_API_TOKEN"
	EnvOrgID          = "JUMPCLOUD_ORG_ID"
)

// Full key paths, as errors name them.
const (
	keyLogzioURL      = "logzio.url"
	keyLogzioToken    = "logzio.token"
	keyLogzioType     = "logzio.type"
	keyJumpCloudURL   = "jumpcloud_api.url"
	keyStartDate      = "jumpcloud_api.start_date"
	keyJumpCloudToken = "jumpcloud_api.credentials.token"
	keyOrgID          = "jumpcloud_api.credentials.org_id"
	keyInterval       = "jumpcloud_api.settings.time_interval"
	keyLag            = "jumpcloud_api.settings.lag"
	keyServices       = "jumpcloud_api.settings.services"
	keyPageSize       = "jumpcloud_api.settings.page_size"
)

// Config is the effective configuration.
type Config struct {
	Logzio    Logzio
	JumpCloud JumpCloud

	// Warnings are findings that do not stop the program but that the user should see, such as
	// a token in a file other users can read. Each names the file.
	Warnings []string

	source       string            // the file name, for messages
	lines        map[string]int    // full key path → line in the file, for messages
	fileHasToken bool              // a token was read from the file itself
	fromEnv      map[string]string // full key path → the environment variable that set it
}

// Logzio holds the logzio section: where events are shipped.
type Logzio struct {
	URL   string // listener URL, such as https://listener.logz.io:8071; the token is not in it
	Token Secret // log shipping token, sent as ?token=
	Type  string // Logz.io log type (default "jumpcloud")
}

// JumpCloud holds the jumpcloud_api section: where events are read.
type JumpCloud struct {
	URL       string        // Directory Insights events endpoint (default DefaultJumpCloudURL)
	StartDate time.Time     // UTC; zero when unset, and the caller then starts from now
	Token     Secret        // API key, sent as x-api-key
	OrgID     string        // sent as x-org-id when not empty
	Interval  time.Duration // time between polls (default 5m)
	Lag       time.Duration // events newer than now - Lag are not read yet (default 1m)
	Services  []string      // JumpCloud services to read (default ["all"])
	PageSize  int           // events per request, 1..MaxPageSize (default MaxPageSize)
}

// Default returns the configuration before the file is read.
func Default() *Config {
	return &Config{
		Logzio: Logzio{Type: DefaultType},
		JumpCloud: JumpCloud{
			URL:      DefaultJumpCloudURL,
			Interval: DefaultInterval,
			Lag:      DefaultLag,
			Services: []string{"all"},
			PageSize: MaxPageSize,
		},
	}
}

// Secret is a credential. Printing it, with fmt or as JSON, shows at most its last 4 characters;
// convert it with string() only where it is sent.
type Secret string

// String returns the secret masked: "****" and, for a secret of 12 characters or more, its last 4.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	r := []rune(string(s))
	if len(r) < 12 {
		return "****"
	}
	return "****" + string(r[len(r)-4:])
}

// GoString masks the secret in %#v too.
func (s Secret) GoString() string { return fmt.Sprintf("config.Secret(%q)", s.String()) }

// MarshalText masks the secret in JSON, YAML and structured logs.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Sentinel errors, matched with errors.Is on what Parse, Load and Validate return.
var (
	ErrEmpty        = errors.New("config file is empty")
	ErrTooLarge     = errors.New("config file is too large")
	ErrMalformed    = errors.New("config file is not YAML text with a mapping at the top")
	ErrUnknownKey   = errors.New("unknown key")
	ErrDuplicateKey = errors.New("key set twice")
	ErrInvalid      = errors.New("invalid value")
	ErrMissing      = errors.New("required value missing")
)

// FieldError is one problem in a configuration. Parse and Validate return them joined with
// errors.Join, so that the user sees every problem at once; match them with errors.As.
type FieldError struct {
	File string // "" for a Config not read from a file
	Line int    // 0 when no line applies
	Key  string // full key path, such as "jumpcloud_api.settings.page_size"; "" for the whole file
	Err  error  // one of the Err sentinels
	Msg  string // what is wrong and how to fix it
}

func (e *FieldError) Error() string {
	switch {
	case e.File == "" && e.Line == 0:
		return e.Msg
	case e.File == "":
		return fmt.Sprintf("line %d: %s", e.Line, e.Msg)
	case e.Line == 0:
		return e.File + ": " + e.Msg
	}
	return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
}

func (e *FieldError) Unwrap() error { return e.Err }

// Load reads the file at path; see Parse. It also warns when the file holds a token and other
// users can read it.
func Load(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		var pathErr *os.PathError
		if errors.As(err, &pathErr) {
			err = pathErr.Err // the path is already in the message
		}
		return nil, fmt.Errorf("%s: cannot read the config file: %w", path, err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("%s: cannot read the config file: %w", path, err)
	}
	if info.IsDir() {
		return nil, fmt.Errorf("%s is a folder; give the path of the config file in it", path)
	}
	// Read one byte past the limit so Parse can tell a file that is too large; a special file such
	// as /dev/zero stops there too.
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("%s: cannot read the config file: %w", path, err)
	}
	cfg, err := Parse(data, path, os.Getenv)
	if err != nil {
		return nil, err
	}
	// Windows does not report these permission bits.
	if cfg.fileHasToken && info.Mode().Perm()&0o044 != 0 && runtime.GOOS != "windows" {
		cfg.Warnings = append(cfg.Warnings, path+" is readable by other users and holds a token; chmod 600 it")
	}
	return cfg, nil
}

// Parse reads a configuration from data, the contents of the file filename (used in messages
// only), applies the overrides getenv returns (nil: none), and validates the result. It never
// panics; a bad file is always an error naming it.
func Parse(data []byte, filename string, getenv func(string) string) (*Config, error) {
	p := &parser{file: filename, cfg: Default()}
	p.cfg.source = filename
	p.cfg.lines = map[string]int{}
	p.parse(data)
	p.applyEnv(getenv) // even on a fatal error, so that the variables' secrets are hidden
	if p.fatal {
		return nil, p.result()
	}

	// A key whose value could not be read is already reported: its default or missing value, or
	// those of keys under it, would only be reported again.
	reported := map[string]bool{}
	for _, e := range p.errs {
		reported[e.Key] = true
	}
	for _, e := range p.cfg.validate() {
		if !underReported(e.Key, reported) {
			p.errs = append(p.errs, e)
		}
	}
	if len(p.errs) > 0 {
		return nil, p.result()
	}
	p.cfg.Warnings = append(p.cfg.Warnings, p.cfg.plainHTTPWarnings()...)
	for i, w := range p.cfg.Warnings {
		p.cfg.Warnings[i] = scrub(w, p.secrets)
	}
	return p.cfg, nil
}

// Validate checks the configuration, whether read by Parse or built in code, and returns every
// problem found, joined; each is a *FieldError naming its key.
func (c *Config) Validate() error {
	var errs []error
	for _, e := range c.validate() {
		errs = append(errs, e)
	}
	return errors.Join(errs...)
}

func (c *Config) validate() []*FieldError {
	v := validator{c: c}
	v.url(keyLogzioURL, c.Logzio.URL, "https://listener.logz.io:8071")
	if u := strings.ToLower(c.Logzio.URL); strings.Contains(u, "?token=") || strings.Contains(u, "&token=") {
		v.invalid(keyLogzioURL, "must not hold the token; put the token in %s (or %s) and the URL as https://listener.logz.io:8071",
			keyLogzioToken, EnvLogzioToken)
	}
	v.secret(keyLogzioToken, c.Logzio.Token, EnvLogzioToken, "your Logz.io log shipping token")
	if c.Logzio.Type == "" {
		v.invalid(keyLogzioType, "empty; set it, or leave it out for %q", DefaultType)
	}

	v.url(keyJumpCloudURL, c.JumpCloud.URL, DefaultJumpCloudURL)
	v.secret(keyJumpCloudToken, c.JumpCloud.Token, EnvJumpCloudToken, "your JumpCloud API key")
	if isPlaceholder(c.JumpCloud.OrgID) {
		v.invalid(keyOrgID, "still holds the documentation's placeholder; replace it with your organization ID, or remove it")
	}

	if c.JumpCloud.Interval <= 0 {
		v.invalid(keyInterval, "%s is not more than 0; use a number of minutes such as 5, or a duration such as \"30s\"", c.JumpCloud.Interval)
	}
	if c.JumpCloud.Lag < 0 {
		v.invalid(keyLag, "%s is negative; use 0 or more, such as \"1m\"", c.JumpCloud.Lag)
	}
	if len(c.JumpCloud.Services) == 0 {
		v.invalid(keyServices, `the list is empty; list at least one service, such as ["all"]`)
	}
	for i, s := range c.JumpCloud.Services {
		if strings.TrimSpace(s) == "" {
			v.invalid(fmt.Sprintf("%s[%d]", keyServices, i), `empty; name a service, such as "all"`)
		}
	}
	if n := c.JumpCloud.PageSize; n < 1 || n > MaxPageSize {
		v.invalid(keyPageSize, "%d is out of range; use a number from 1 to %d", n, MaxPageSize)
	}
	return v.errs
}

type validator struct {
	c    *Config
	errs []*FieldError
}

// add records a problem with key; the message says what is wrong and how to fix it.
func (v *validator) add(key string, sentinel error, format string, args ...any) {
	v.errs = append(v.errs, &FieldError{
		File: v.c.source, Line: v.c.line(key), Key: key, Err: sentinel,
		Msg: key + ": " + fmt.Sprintf(format, args...),
	})
}

func (v *validator) invalid(key, format string, args ...any) {
	v.add(key, ErrInvalid, format, args...)
}

func (v *validator) url(key, raw, example string) {
	switch problem := urlProblem(raw); {
	case raw == "":
		v.add(key, ErrMissing, "missing; set it to a URL such as %s", example)
	case isPlaceholder(raw):
		v.invalid(key, "%s still holds the documentation's placeholder; replace the <<...>> part, as in %s", quote(redactURL(raw)), example)
	case problem != "":
		v.invalid(key, "%s %s; use a URL such as %s", quote(redactURL(raw)), problem, example)
	}
}

// secret checks a token without ever showing it.
func (v *validator) secret(key string, s Secret, env, what string) {
	switch {
	case s == "":
		v.add(key, ErrMissing, "missing; set it to %s, or set the environment variable %s", what, env)
	case isPlaceholder(string(s)):
		v.invalid(key, "still holds the documentation's placeholder; replace it with %s", what)
	case strings.ContainsFunc(string(s), func(r rune) bool { return r <= ' ' || r == 0x7f }):
		v.invalid(key, "contains spaces or control characters; copy %s again", what)
	}
}

// line returns the line of key in the file or, for a key the file lacks, of its nearest parent.
func (c *Config) line(key string) int {
	for k := range keyAndParents(key) {
		if n, ok := c.lines[k]; ok {
			return n
		}
	}
	return 0
}

// keyAndParents yields a key path and then each parent: "a.b[1]", "a.b", "a".
func keyAndParents(key string) iter.Seq[string] {
	return func(yield func(string) bool) {
		for key != "" && yield(key) {
			i := strings.LastIndexAny(key, ".[")
			key = key[:max(i, 0)]
		}
	}
}

// urlProblem says what is wrong with an absolute http or https URL, or returns "".
func urlProblem(raw string) string {
	u, err := url.Parse(raw)
	switch {
	case err != nil || u.Host == "":
		return "is not a URL"
	case u.Scheme != "http" && u.Scheme != "https":
		return "must start with https:// (or http://)"
	}
	return ""
}

func isPlaceholder(s string) bool {
	i := strings.Index(s, "<<")
	return i >= 0 && strings.Contains(s[i:], ">>")
}

// plainHTTPWarnings allows http:// (local relays and emulators use it) but says what it costs.
func (c *Config) plainHTTPWarnings() []string {
	var warnings []string
	for _, u := range []struct{ key, url, what string }{
		{keyLogzioURL, c.Logzio.URL, "the token and the logs"},
		{keyJumpCloudURL, c.JumpCloud.URL, "the API key and the events"},
	} {
		if strings.HasPrefix(strings.ToLower(u.url), "http://") {
			w := &FieldError{File: c.source, Line: c.line(u.key), Msg: fmt.Sprintf(
				"%s uses http://, so %s cross the network unencrypted; use https:// unless it is a local relay or emulator",
				u.key, u.what)}
			warnings = append(warnings, w.Error())
		}
	}
	return warnings
}

var (
	tokenParam = regexp.MustCompile(`(?i)(token=)[^&#\s]*`)
	password   = regexp.MustCompile(`(//[^/:@\s]*:)[^/@\s]*@`)
)

// redactURL masks a token query parameter and a password, for showing a URL in a message.
func redactURL(s string) string {
	s = tokenParam.ReplaceAllString(s, "${1}****")
	return password.ReplaceAllString(s, "${1}****@")
}

// minSecretLen is the shortest secret scrub hides wherever it occurs: shorter ones would turn
// ordinary words of a message into stars, and no real token is that short.
const minSecretLen = 8

// scrub hides every secret in s: a last defence for a token the user typed where some other value
// goes, which a message may quote. Each replacement shortens s, so the loop ends.
func scrub(s string, secrets []string) string {
	for changed := true; changed; {
		changed = false
		for _, secret := range secrets {
			if len(secret) >= minSecretLen && strings.Contains(s, secret) {
				s = strings.ReplaceAll(s, secret, "****")
				changed = true
			}
		}
	}
	return s
}

// quote shows a value in a message, cut short so a long value cannot flood the log.
func quote(s string) string {
	const max = 60
	if len(s) > max {
		s = strings.ToValidUTF8(s[:max], "") + "…"
	}
	return fmt.Sprintf("%q", s)
}

// String returns the effective settings, one "key: value" line each, with secrets masked: what a
// validate command shows. Printing a Config with fmt shows the same.
func (c Config) String() string {
	var b strings.Builder
	show := func(key string, value any) {
		if s := fmt.Sprint(value); s == "" {
			value = "(not set)"
		}
		fmt.Fprintf(&b, "%s: %v", key, value)
		if env := c.fromEnv[key]; env != "" {
			fmt.Fprintf(&b, " (from %s)", env)
		}
		b.WriteByte('\n')
	}
	show(keyLogzioURL, redactURL(c.Logzio.URL))
	show(keyLogzioToken, c.Logzio.Token)
	show(keyLogzioType, c.Logzio.Type)
	show(keyJumpCloudURL, redactURL(c.JumpCloud.URL))
	if c.JumpCloud.StartDate.IsZero() {
		show(keyStartDate, "(not set: starts from now)")
	} else {
		show(keyStartDate, c.JumpCloud.StartDate.UTC().Format(time.RFC3339Nano))
	}
	show(keyJumpCloudToken, c.JumpCloud.Token)
	show(keyOrgID, c.JumpCloud.OrgID)
	show(keyInterval, c.JumpCloud.Interval)
	show(keyLag, c.JumpCloud.Lag)
	show(keyServices, fmt.Sprintf("%q", c.JumpCloud.Services))
	show(keyPageSize, c.JumpCloud.PageSize)
	return b.String()
}

// Redacted is String, by a name that says what it promises.
func (c Config) Redacted() string { return c.String() }
