package sink

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
)

func TestRedactURL(t *testing.T) {
	tests := map[string]struct{ in, want string }{
		"The token's value is replaced and the rest kept.": {
			"https://listener.logz.io:8071/?token=" + testToken + "&type=jumpcloud",
			"https://listener.logz.io:8071/?token=REDACTED&type=jumpcloud",
		},
		"A userinfo password is replaced.": {
			"https://shipper:" + testToken + "@listener.logz.io:8071/",
			"https://shipper:REDACTED@listener.logz.io:8071/",
		},
		"A token parameter in another case is replaced.": {
			"http://host/?TOKEN=" + testToken, "http://host/?TOKEN=REDACTED",
		},
		"Every token parameter is replaced.": {
			"http://host/?token=" + testToken + "&token=" + testToken, "http://host/?token=REDACTED",
		},
		"A URL without secrets is unchanged.": {
			"https://listener-eu.logz.io:8071/bulk?type=jumpcloud", "https://listener-eu.logz.io:8071/bulk?type=jumpcloud",
		},
		"A URL that does not parse is scrubbed as text.": {
			"http://host:bad port/?token=" + testToken + "&type=x", "http://host:bad port/?token=REDACTED&type=x",
		},
		"A query that does not parse is scrubbed as text.": {
			"http://host/?token=" + testToken + "%zz&type=x", "http://host/?token=REDACTED&type=x",
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			if got := RedactURL(tt.in); got != tt.want {
				t.Errorf("RedactURL(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestRedactText(t *testing.T) {
	tests := map[string]struct{ in, want string }{
		"A token in a quoted URL is replaced up to the quote.": {
			`Post "https://h/?token=` + testToken + `": EOF`, `Post "https://h/?token=REDACTED": EOF`,
		},
		"A token in a sentence is replaced up to the space.": {
			"sent token=" + testToken + " to the listener", "sent token=REDACTED to the listener",
		},
		"A password in a URL is replaced.": {
			"dial https://u:" + testToken + "@h:8071/x failed", "dial https://u:REDACTED@h:8071/x failed",
		},
		"Text without secrets is unchanged.": {
			"token rejected (HTTP 401) at https://h:8071/", "token rejected (HTTP 401) at https://h:8071/",
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			if got := redactText(tt.in); got != tt.want {
				t.Errorf("redactText(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestRedactErrorKeepsTheChain(t *testing.T) {
	raw := "https://listener.logz.io:8071/?token=" + testToken + "&type=jumpcloud"
	urlErr := &url.Error{Op: "Post", URL: raw, Err: context.DeadlineExceeded}
	tests := map[string]error{
		"A *url.Error is rebuilt around the redacted URL.":         urlErr,
		"A *url.Error wrapped with %w is redacted at every layer.": fmt.Errorf("sending 3 lines to %s: %w", raw, urlErr),
		"Joined errors are each redacted.":                         errors.Join(errors.New("first"), urlErr),
	}
	for name, err := range tests {
		t.Run(name, func(t *testing.T) {
			clean := redactError(err)
			assertNoToken(t, clean)
			if !strings.Contains(clean.Error(), "token=REDACTED") {
				t.Errorf("redactError = %q, want the URL shown with the token redacted", clean)
			}
			if !errors.Is(clean, context.DeadlineExceeded) {
				t.Errorf("redactError = %q no longer matches the wrapped context.DeadlineExceeded", clean)
			}
			var ue *url.Error
			if !errors.As(clean, &ue) || !ue.Timeout() || strings.Contains(ue.URL, testToken) {
				t.Errorf("redactError = %#v, want a redacted *url.Error inside that still reports a timeout", clean)
			}
		})
	}

	plain := errors.New("no secrets here")
	if redactError(plain) != plain {
		t.Error("redactError replaced an error that holds no secret")
	}
	if redactError(nil) != nil {
		t.Error("redactError(nil) is not nil")
	}
}
