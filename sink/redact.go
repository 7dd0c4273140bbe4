package sink

import (
	"net/url"
	"strings"
)

// This file is the sink's one redaction point. The Logz.io token travels in the request URL,
// and Go's *url.Error prints the whole URL, so every error and log line this package produces
// passes through redactError, RedactURL or redactText first.

// redacted replaces a secret wherever one is removed.
const redacted = "REDACTED"

// RedactURL returns raw with the value of any token query parameter, and any userinfo
// password, replaced by REDACTED. A string that does not parse as a URL is scrubbed as text.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return redactText(raw)
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), redacted)
	}
	if u.RawQuery != "" {
		u.RawQuery = redactQuery(u.RawQuery)
	}
	return u.String()
}

// redactQuery replaces the value of every token parameter in an encoded query.
func redactQuery(raw string) string {
	query, err := url.ParseQuery(raw)
	if err != nil {
		return redactText(raw) // a malformed query is scrubbed as text rather than trusted
	}
	found := false
	for key := range query {
		if strings.EqualFold(key, "token") {
			query[key] = []string{redacted}
			found = true
		}
	}
	if !found {
		return raw
	}
	return query.Encode()
}

// redactError returns err with every secret removed from its message. A *url.Error is rebuilt
// around the redacted URL, so errors.Is and errors.As still reach the network error inside it;
// any other error that carries a secret is replaced, layer by layer, by one that prints the
// scrubbed text and unwraps to the redacted rest of the chain. An error without secrets is
// returned as it is.
func redactError(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	clean := redactText(msg)
	if clean == msg {
		return err
	}
	if ue, ok := err.(*url.Error); ok {
		return &url.Error{Op: ue.Op, URL: RedactURL(ue.URL), Err: redactError(ue.Err)}
	}
	scrubbed := &scrubbedError{msg: clean}
	switch e := err.(type) {
	case interface{ Unwrap() error }:
		if next := redactError(e.Unwrap()); next != nil {
			scrubbed.wrapped = []error{next}
		}
	case interface{ Unwrap() []error }:
		for _, next := range e.Unwrap() {
			if next = redactError(next); next != nil {
				scrubbed.wrapped = append(scrubbed.wrapped, next)
			}
		}
	}
	return scrubbed
}

// scrubbedError stands in for an error whose message held a secret.
type scrubbedError struct {
	msg     string
	wrapped []error
}

func (e *scrubbedError) Error() string   { return e.msg }
func (e *scrubbedError) Unwrap() []error { return e.wrapped }

// redactText scrubs free text (an error message, a snippet of a listener's answer): the value
// after any "token=" and the password in any "scheme://user:password@" become REDACTED.
func redactText(s string) string {
	s = redactAfter(s, "token=", isTokenByte)
	return redactPasswords(s)
}

// redactAfter replaces the run of bytes accepted by keep that follows each occurrence of key
// (matched without regard to ASCII case).
func redactAfter(s, key string, keep func(byte) bool) string {
	lower := strings.ToLower(s)
	if !strings.Contains(lower, key) {
		return s
	}
	var b strings.Builder
	last := 0
	for from := 0; ; {
		i := strings.Index(lower[from:], key)
		if i < 0 {
			break
		}
		start := from + i + len(key)
		end := start
		for end < len(s) && keep(s[end]) {
			end++
		}
		if end > start {
			b.WriteString(s[last:start])
			b.WriteString(redacted)
			last = end
		}
		from = end
	}
	b.WriteString(s[last:])
	return b.String()
}

// isTokenByte reports whether c may be part of a query value as it appears in a URL.
func isTokenByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("-_.~%+!$'()*,;:@/?", c) >= 0 // not '&', which ends the value
}

// redactPasswords replaces the password of each "scheme://user:password@host" in s.
func redactPasswords(s string) string {
	if !strings.Contains(s, "://") {
		return s
	}
	var b strings.Builder
	for {
		i := strings.Index(s, "://")
		if i < 0 {
			break
		}
		b.WriteString(s[:i+3])
		s = s[i+3:]
		// The authority ends at the first '/', '?', '#' or space; userinfo ends at its last '@'.
		end := strings.IndexAny(s, "/?# \t\n\"'<>")
		if end < 0 {
			end = len(s)
		}
		authority := s[:end]
		at := strings.LastIndexByte(authority, '@')
		if colon := strings.IndexByte(authority, ':'); at > 0 && colon >= 0 && colon < at {
			b.WriteString(authority[:colon+1])
			b.WriteString(redacted)
			s = s[at:]
			continue
		}
		b.WriteString(authority)
		s = s[end:]
	}
	b.WriteString(s)
	return b.String()
}
