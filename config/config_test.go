package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

const (
	logzioToken    = "LogzioSecretToken0123456789abcdef"
	jumpcloudToken = "JumpCloudSecretKey0123456789abcdef0123456"
)

// env returns a getenv that knows only vars.
func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

// The existing image's documented config.yaml, indentation and all, with its placeholders filled.
const documentedConfig = `
logzio:
 url: "https://listener.logz.io:8071"
 token: "` + logzioToken + `"
jumpcloud_api:
   start_date:
   credentials:
     token: "` + jumpcloudToken + `"
   settings:
     time_interval:
`

func TestTheExistingImagesConfigsLoadUnchanged(t *testing.T) {
	tests := map[string]string{
		"The documented config, with empty start_date and time_interval, loads.": documentedConfig,
		"The existing image's test config, with an unquoted URL, loads.": `logzio:
 url: "https://listener.logz.io:8071"
 token: "` + logzioToken + `"
jumpcloud_api:
   url: https://api.jumpcloud.com/insights/directory/v1/events
   start_date:
   credentials:
     token: "` + jumpcloudToken + `"
   settings:
     time_interval:`,
	}
	for name, content := range tests {
		t.Run(name, func(t *testing.T) {
			cfg, err := Parse([]byte(content), "config.yaml", nil)
			if err != nil {
				t.Fatal(err)
			}
			want := Default()
			want.Logzio.URL = "https://listener.logz.io:8071"
			want.Logzio.Token = logzioToken
			want.JumpCloud.Token = jumpcloudToken
			if !reflect.DeepEqual(cfg.Logzio, want.Logzio) || !reflect.DeepEqual(cfg.JumpCloud, want.JumpCloud) {
				t.Errorf("got\n%#v\n%#v\nwant\n%#v\n%#v", cfg.Logzio, cfg.JumpCloud, want.Logzio, want.JumpCloud)
			}
			if cfg.JumpCloud.Interval != 5*time.Minute || !cfg.JumpCloud.StartDate.IsZero() {
				t.Errorf("an empty time_interval and start_date gave %v and %v, want 5m and unset", cfg.JumpCloud.Interval, cfg.JumpCloud.StartDate)
			}
			if len(cfg.Warnings) != 0 {
				t.Errorf("warnings: %q", cfg.Warnings)
			}
		})
	}
}

func TestEveryKeyIsRead(t *testing.T) {
	cfg, err := Parse([]byte(`
logzio:
  url: "https://listener-eu.logz.io:8071"
  token: "`+logzioToken+`"
  type: "jc"
jumpcloud_api:
  url: "https://api.eu.jumpcloud.com/insights/directory/v1/events"
  start_date: "2023-05-04T12:30:00.000000Z"
  credentials:
    token: "`+jumpcloudToken+`"
    org_id: "5f3c0a1b2c3d4e5f6a7b8c9d"
  settings:
    time_interval: 7
    lag: "90s"
    services: ["directory", "sso"]
    page_size: 500
`), "config.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{
		Logzio: Logzio{URL: "https://listener-eu.logz.io:8071", Token: logzioToken, Type: "jc"},
		JumpCloud: JumpCloud{
			URL:       "https://api.eu.jumpcloud.com/insights/directory/v1/events",
			StartDate: time.Date(2023, 5, 4, 12, 30, 0, 0, time.UTC),
			Token:     jumpcloudToken,
			OrgID:     "5f3c0a1b2c3d4e5f6a7b8c9d",
			Interval:  7 * time.Minute,
			Lag:       90 * time.Second,
			Services:  []string{"directory", "sso"},
			PageSize:  500,
		},
	}
	if !reflect.DeepEqual(cfg.Logzio, want.Logzio) || !reflect.DeepEqual(cfg.JumpCloud, want.JumpCloud) {
		t.Errorf("got\n%#v\n%#v\nwant\n%#v\n%#v", cfg.Logzio, cfg.JumpCloud, want.Logzio, want.JumpCloud)
	}
}

// withSetting returns a valid config with one line added under jumpcloud_api.settings (line 9)
// and one under jumpcloud_api (line 6).
func withSetting(jumpcloudLine, settingsLine string) string {
	return `logzio:
  url: "https://listener.logz.io:8071"
  token: "` + logzioToken + `"
jumpcloud_api:
  credentials:
    token: "` + jumpcloudToken + `"
  ` + jumpcloudLine + `
  settings:
    ` + settingsLine + `
`
}

func TestTimeIntervalIsMinutesOrADuration(t *testing.T) {
	tests := map[string]struct {
		value string
		want  time.Duration
	}{
		"A number is minutes, as in the existing image.":   {"7", 7 * time.Minute},
		"A quoted number is minutes too.":                  {`"7"`, 7 * time.Minute},
		"A duration in seconds is read.":                   {`"30s"`, 30 * time.Second},
		"An unquoted duration is read.":                    {"5m", 5 * time.Minute},
		"A compound duration is read.":                     {"1h30m", 90 * time.Minute},
		"An empty value means 5 minutes.":                  {"", 5 * time.Minute},
		"An empty string means 5 minutes.":                 {`""`, 5 * time.Minute},
		"null means 5 minutes.":                            {"null", 5 * time.Minute},
		"A number with spaces around it is still minutes.": {`" 3 "`, 3 * time.Minute},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			cfg, err := Parse([]byte(withSetting("", "time_interval: "+tt.value)), "config.yaml", nil)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.JumpCloud.Interval != tt.want {
				t.Errorf("time_interval: %s gave %v, want %v", tt.value, cfg.JumpCloud.Interval, tt.want)
			}
		})
	}
}

func TestStartDateAcceptsTheOldFormatAndRFC3339(t *testing.T) {
	at := func(ns int) time.Time { return time.Date(2023, 5, 4, 12, 30, 0, ns, time.UTC) }
	tests := map[string]struct {
		value string
		want  time.Time
	}{
		"The documented form, quoted, is read.":          {`"2023-05-04T12:30:00.000000Z"`, at(0)},
		"The documented form, unquoted, is read.":        {"2023-05-04T12:30:00.123456Z", at(123456000)},
		"No fractional digits is read.":                  {"2023-05-04T12:30:00Z", at(0)},
		"Nine fractional digits are kept.":               {`"2023-05-04T12:30:00.123456789Z"`, at(123456789)},
		"An offset other than Z is converted to UTC.":    {"2023-05-04T14:30:00.5+02:00", at(500000000)},
		"An empty value leaves it unset (start now).":    {"", time.Time{}},
		"An empty string leaves it unset (start now).":   {`""`, time.Time{}},
		"A date copied from lastTime.txt is read as is.": {"2023-05-04T12:30:00.000001Z", at(1000)},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			cfg, err := Parse([]byte(withSetting("start_date: "+tt.value, "")), "config.yaml", nil)
			if err != nil {
				t.Fatal(err)
			}
			got := cfg.JumpCloud.StartDate
			if !got.Equal(tt.want) || !got.IsZero() && got.Location() != time.UTC {
				t.Errorf("start_date: %s gave %v, want %v in UTC", tt.value, got, tt.want)
			}
		})
	}
}

func TestEnvironmentVariablesOverrideTheFile(t *testing.T) {
	tests := map[string]struct {
		content string
		vars    map[string]string
	}{
		"Variables override the file's values.": {
			content: withSetting("", ""),
			vars:    map[string]string{EnvLogzioToken: "EnvLogzio0123456789", EnvJumpCloudToken: "EnvJumpCloud0123456789", EnvOrgID: "org-from-env"},
		},
		"Variables stand in for tokens the file leaves out.": {
			content: "logzio:\n  url: https://listener.logz.io:8071\n",
			vars:    map[string]string{EnvLogzioToken: "EnvLogzio0123456789", EnvJumpCloudToken: "EnvJumpCloud0123456789", EnvOrgID: "org-from-env"},
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			cfg, err := Parse([]byte(tt.content), "config.yaml", env(tt.vars))
			if err != nil {
				t.Fatal(err)
			}
			if string(cfg.Logzio.Token) != tt.vars[EnvLogzioToken] || string(cfg.JumpCloud.Token) != tt.vars[EnvJumpCloudToken] || cfg.JumpCloud.OrgID != tt.vars[EnvOrgID] {
				t.Errorf("got tokens %q, %q and org %q", string(cfg.Logzio.Token), string(cfg.JumpCloud.Token), cfg.JumpCloud.OrgID)
			}
			if s := cfg.String(); !strings.Contains(s, "(from "+EnvLogzioToken+")") || !strings.Contains(s, "org-from-env (from "+EnvOrgID+")") {
				t.Errorf("String() does not say where values came from:\n%s", s)
			}
		})
	}
	t.Run("An empty variable does not override the file.", func(t *testing.T) {
		cfg, err := Parse([]byte(withSetting("", "")), "config.yaml", env(map[string]string{EnvLogzioToken: " "}))
		if err != nil || cfg.Logzio.Token != logzioToken {
			t.Errorf("got %v, %v", cfg, err)
		}
	})
}

func TestEachBadValueIsAnErrorNamingFileLineAndKey(t *testing.T) {
	tests := map[string]struct {
		content  string
		line     int
		key      string
		sentinel error
		says     string
	}{
		"A misspelt top-level key lists the known keys.": {
			withSetting("", "") + "logzzio:\n  url: x\n", 10, "logzzio", ErrUnknownKey,
			`unknown key "logzzio" (known keys: logzio, jumpcloud_api)`},
		"A misspelt nested key is named by its full path.": {
			withSetting("", "intervall: 5"), 9, "jumpcloud_api.settings.intervall", ErrUnknownKey,
			`unknown key "jumpcloud_api.settings.intervall" (known keys: time_interval, lag, services, page_size)`},
		"A key set twice names both lines.": {
			withSetting("url: https://a.example", "") + "  url: https://b.example\n", 10, "jumpcloud_api.url", ErrDuplicateKey,
			"jumpcloud_api.url is set twice (first on line 7); keep one"},
		"A start_date that is not a date shows the form to use.": {
			withSetting(`start_date: "2023-13-04"`, ""), 7, keyStartDate, ErrInvalid,
			`jumpcloud_api.start_date: "2023-13-04" is not a date; use the form 2023-05-04T12:30:00.000000Z (UTC)`},
		"A start_date with a space instead of T is not a date.": {
			withSetting(`start_date: 2023-05-04 12:30:00`, ""), 7, keyStartDate, ErrInvalid, "is not a date"},
		"A time_interval that is neither minutes nor a duration says what it takes.": {
			withSetting("", `time_interval: "5x"`), 9, keyInterval, ErrInvalid,
			`jumpcloud_api.settings.time_interval: "5x" is not a number of minutes or a duration such as "30s" or "5m"`},
		"A time_interval of 0 is refused.": {
			withSetting("", "time_interval: 0"), 9, keyInterval, ErrInvalid, "0s is not more than 0"},
		"A negative time_interval is refused.": {
			withSetting("", `time_interval: "-1m"`), 9, keyInterval, ErrInvalid, "-1m0s is not more than 0"},
		"A time_interval too long for a duration is refused.": {
			withSetting("", "time_interval: 99999999999999"), 9, keyInterval, ErrInvalid, "is too long"},
		"A fractional number of minutes is refused.": {
			withSetting("", "time_interval: 2.5"), 9, keyInterval, ErrInvalid, `"2.5" is not a number of minutes`},
		"A list where time_interval goes is a wrong type.": {
			withSetting("", "time_interval: [5]"), 9, keyInterval, ErrInvalid, "not a list"},
		"A lag without a unit asks for one.": {
			withSetting("", "lag: 60"), 9, keyLag, ErrInvalid, `"60" is not a duration such as "30s" or "1m" (add a unit)`},
		"A negative lag is refused.": {
			withSetting("", `lag: "-1s"`), 9, keyLag, ErrInvalid, "-1s is negative"},
		"An empty list of services is refused.": {
			withSetting("", "services: []"), 9, keyServices, ErrInvalid, `the list is empty; list at least one service, such as ["all"]`},
		"A string where the services list goes is a wrong type.": {
			withSetting("", "services: all"), 9, keyServices, ErrInvalid, `expected a list such as ["all"], not a single value`},
		"An empty service name is named by its index.": {
			withSetting("", `services: ["all", ""]`), 9, keyServices + "[1]", ErrInvalid, `empty; name a service`},
		"A mapping in the services list is a wrong type.": {
			withSetting("", "services: [all, {a: b}]"), 9, keyServices + "[1]", ErrInvalid, "not a mapping"},
		"A page_size of 0 is out of range.": {
			withSetting("", "page_size: 0"), 9, keyPageSize, ErrInvalid, "0 is out of range; use a number from 1 to 10000"},
		"A page_size over 10000 is out of range.": {
			withSetting("", "page_size: 10001"), 9, keyPageSize, ErrInvalid, "10001 is out of range"},
		"A mapping where page_size goes is a wrong type.": {
			withSetting("", "page_size: {a: 1}"), 9, keyPageSize, ErrInvalid, "expected a whole number from 1 to 10000, not a mapping"},
		"A page_size that is not a number is refused.": {
			withSetting("", "page_size: many"), 9, keyPageSize, ErrInvalid, `"many" is not a whole number`},
		"A list where a URL goes is a wrong type.": {
			withSetting("url: [a, b]", ""), 7, keyJumpCloudURL, ErrInvalid, "expected a URL such as https://api.jumpcloud.com/insights/directory/v1/events, not a list"},
		"A URL without a scheme is refused.": {
			withSetting("url: api.jumpcloud.com/events", ""), 7, keyJumpCloudURL, ErrInvalid, `"api.jumpcloud.com/events" is not a URL`},
		"A URL with another scheme is refused.": {
			withSetting("url: ftp://api.jumpcloud.com/events", ""), 7, keyJumpCloudURL, ErrInvalid, "must start with https://"},
		"A URL still holding the documentation's placeholder says so.": {
			strings.Replace(withSetting("", ""), "https://listener.logz.io:8071", "https://<<LISTENER-HOST>>:8071", 1), 2, keyLogzioURL, ErrInvalid,
			`"https://<<LISTENER-HOST>>:8071" still holds the documentation's placeholder`},
		"A token still holding the documentation's placeholder says so.": {
			strings.Replace(withSetting("", ""), logzioToken, "<<LOG-SHIPPING-TOKEN>>", 1), 3, keyLogzioToken, ErrInvalid,
			"logzio.token: still holds the documentation's placeholder; replace it with your Logz.io log shipping token"},
		"A token with a space inside is refused.": {
			strings.Replace(withSetting("", ""), jumpcloudToken, "abc def ghi jkl", 1), 6, keyJumpCloudToken, ErrInvalid, "contains spaces"},
		"A listener URL holding the token is refused.": {
			strings.Replace(withSetting("", ""), "8071", "8071/?token=abc", 1), 2, keyLogzioURL, ErrInvalid,
			"logzio.url: must not hold the token; put the token in logzio.token (or LOGZIO_API_TOKEN)"},
		"A string where a section goes is a wrong type.": {
			"logzio: listener.logz.io\njumpcloud_api: {credentials: {token: " + jumpcloudToken + "}}\n", 1, "logzio", ErrInvalid,
			"logzio: expected a mapping of the keys url, token, type, not a single value"},
		"A list as a key is refused.": {
			withSetting("", "? [a]\n    : 1"), 9, "jumpcloud_api.settings", ErrUnknownKey, "jumpcloud_api.settings: a key must be a name, not a list"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := Parse([]byte(tt.content), "config.yaml", nil)
			fe := onlyFieldError(t, err)
			if fe.Line != tt.line || fe.Key != tt.key || !errors.Is(err, tt.sentinel) {
				t.Errorf("got line %d, key %q, error %v; want line %d, key %q, %v", fe.Line, fe.Key, fe.Err, tt.line, tt.key, tt.sentinel)
			}
			msg := err.Error()
			for _, want := range []string{fmt.Sprintf("config.yaml:%d: ", tt.line), tt.key, tt.says} {
				if !strings.Contains(msg, want) {
					t.Errorf("error %q does not say %q", msg, want)
				}
			}
		})
	}
}

func TestABadFileIsOneClearError(t *testing.T) {
	tests := map[string]struct {
		content  string
		sentinel error
		says     string
	}{
		"An empty file says what it needs.":                   {"", ErrEmpty, "config.yaml: the file is empty; it needs at least logzio.url"},
		"A file of comments is empty.":                        {"# logzio:\n#  url: x\n", ErrEmpty, "the file is empty"},
		"A file holding only null is empty.":                  {"~\n", ErrEmpty, "the file is empty"},
		"A truncated file names the line where it ends.":      {"logzio:\n  url: \"https://listener.lo", ErrMalformed, "config.yaml:2: not valid YAML"},
		"A binary file names the line of the first bad byte.": {"logzio:\n\x00\x01\x02\xff", ErrMalformed, "config.yaml:2: binary data, not YAML text"},
		"A list at the top level is refused.":                 {"- logzio\n- jumpcloud_api\n", ErrMalformed, "config.yaml:1: the top level must be a mapping with the keys logzio and jumpcloud_api, not a list"},
		"A single value at the top level is refused.":         {"hello\n", ErrMalformed, "not a single value"},
		"A tab in the indentation is named.":                  {"logzio:\n\turl: x\n", ErrMalformed, "line 2 is indented with a tab; YAML needs spaces"},
		"A second document is refused.":                       {documentedConfig + "---\nlogzio: {}\n", ErrMalformed, "config.yaml:11: a second YAML document starts here"},
		"A file over 1 MiB is refused before parsing.":        {documentedConfig + strings.Repeat("#", MaxFileSize), ErrTooLarge, "config.yaml: larger than 1048576 bytes"},
		"An alias to an unknown anchor is refused.":           {"logzio:\n  token: *" + logzioToken + "\n", ErrMalformed, "an alias (*name) refers to an anchor (&name) that is not defined"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			cfg, err := Parse([]byte(tt.content), "config.yaml", nil)
			if cfg != nil {
				t.Errorf("got a config with the error")
			}
			onlyFieldError(t, err)
			if !errors.Is(err, tt.sentinel) || !strings.Contains(err.Error(), tt.says) {
				t.Errorf("got %v, want %v saying %q", err, tt.sentinel, tt.says)
			}
		})
	}
	t.Run("A trailing document marker is harmless.", func(t *testing.T) {
		if _, err := Parse([]byte(documentedConfig+"---\n"), "config.yaml", nil); err != nil {
			t.Error(err)
		}
	})
}

func TestAFileWithManyProblemsShowsTheFirst20AndACount(t *testing.T) {
	_, err := Parse([]byte(withSetting("", "")+strings.Repeat("x: 1\n", 25)), "config.yaml", nil)
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != 21 || lines[20] != "config.yaml: and 5 more problems; fix these first" {
		t.Errorf("got %d lines, ending %q", len(lines), lines[len(lines)-1])
	}
}

func TestAllMissingValuesAreReportedAtOnce(t *testing.T) {
	_, err := Parse([]byte("logzio:\n  type: jumpcloud\njumpcloud_api:\n  credentials:\n"), "config.yaml", nil)
	want := map[string]string{
		"config.yaml:1: logzio.url: missing; set it to a URL such as https://listener.logz.io:8071":                                                      "",
		"config.yaml:1: logzio.token: missing; set it to your Logz.io log shipping token, or set the environment variable LOGZIO_API_TOKEN":              "",
		"config.yaml:4: jumpcloud_api.credentials.token: missing; set it to your JumpCloud API key, or set the environment variable JUMPCLOUD_API_TOKEN": "",
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != len(want) {
		t.Fatalf("got %d errors, want %d:\n%v", len(lines), len(want), err)
	}
	for _, l := range lines {
		if _, ok := want[l]; !ok {
			t.Errorf("unexpected error %q", l)
		}
	}
	if !errors.Is(err, ErrMissing) {
		t.Errorf("errors.Is(err, ErrMissing) = false")
	}
}

func TestNoTokenAppearsInAnyErrorOrWarning(t *testing.T) {
	tests := map[string]struct {
		content string
		vars    map[string]string
	}{
		"A token typed as a key is hidden.": {
			withSetting("", "") + "logzio_tokens:\n  " + logzioToken + ": 1\n", nil},
		"A token typed as the start date is hidden.": {
			withSetting("start_date: "+jumpcloudToken, ""), nil},
		"A token in the listener URL's query is hidden.": {
			strings.Replace(withSetting("", ""), "8071", "8071/?type=x&token=SomeOtherToken1234", 1), nil},
		"A token in an invalid URL is hidden.": {
			strings.Replace(withSetting("", ""), "https://listener.logz.io:8071", "listener logz io?token=SomeOtherToken1234", 1), nil},
		"A password in a URL is hidden.": {
			withSetting("url: ftp://user:Password1234@api.example", ""), nil},
		"A token from the environment is hidden.": {
			withSetting("start_date: EnvToken0123456789", ""), map[string]string{EnvJumpCloudToken: "EnvToken0123456789"}},
		"A placeholder token is not shown.": {
			strings.Replace(withSetting("", ""), logzioToken, "<<LOG-SHIPPING-TOKEN>>", 1), nil},
		"Warnings hide tokens too.": {
			strings.Replace(withSetting("url: http://localhost:9000", ""), "https://listener.logz.io:8071", "http://localhost:8070", 1), nil},
	}
	secrets := []string{logzioToken, jumpcloudToken, "SomeOtherToken1234", "Password1234", "EnvToken0123456789", "LOG-SHIPPING-TOKEN"}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			cfg, err := Parse([]byte(tt.content), "config.yaml", env(tt.vars))
			var text string
			if err != nil {
				text = err.Error()
			} else {
				text = strings.Join(cfg.Warnings, "\n")
			}
			if text == "" {
				t.Fatal("no error or warning to check")
			}
			for _, s := range secrets {
				if strings.Contains(text, s) {
					t.Errorf("%q shows %q", text, s)
				}
			}
		})
	}
}

func TestPlainHTTPIsAllowedWithAWarning(t *testing.T) {
	content := strings.Replace(withSetting("url: http://localhost:9000/events", ""), "https://listener.logz.io:8071", "http://localhost:8070", 1)
	cfg, err := Parse([]byte(content), "config.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"config.yaml:2: logzio.url uses http://, so the token and the logs cross the network unencrypted; use https:// unless it is a local relay or emulator",
		"config.yaml:7: jumpcloud_api.url uses http://, so the API key and the events cross the network unencrypted; use https:// unless it is a local relay or emulator",
	}
	if !reflect.DeepEqual(cfg.Warnings, want) {
		t.Errorf("warnings:\n%q\nwant\n%q", cfg.Warnings, want)
	}
}

func TestLoadWarnsWhenOthersCanReadATokenInTheFile(t *testing.T) {
	tests := map[string]struct {
		content string
		mode    os.FileMode
		vars    map[string]string
		warns   bool
	}{
		"A token in a file others can read is a warning.":    {documentedConfig, 0o644, nil, true},
		"A token in a file only its owner can read is fine.": {documentedConfig, 0o600, nil, false},
		"A file without tokens may be readable by all.":      {"logzio:\n  url: https://listener.logz.io:8071\n", 0o644, map[string]string{EnvLogzioToken: logzioToken, EnvJumpCloudToken: jumpcloudToken}, false},
		"A token in a file its group can read is a warning.": {documentedConfig, 0o640, nil, true},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			for k, v := range tt.vars {
				t.Setenv(k, v)
			}
			path := filepath.Join(t.TempDir(), "config.yaml")
			if err := os.WriteFile(path, []byte(tt.content), tt.mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tt.mode); err != nil { // the umask may have cleared bits
				t.Fatal(err)
			}
			cfg, err := Load(path)
			if err != nil {
				t.Fatal(err)
			}
			want := path + " is readable by other users and holds a token; chmod 600 it"
			if got := strings.Join(cfg.Warnings, "\n"); (got == want) != tt.warns {
				t.Errorf("warnings %q, want the warning: %v", got, tt.warns)
			}
		})
	}
}

func TestLoadNamesTheFileWhenItCannotBeRead(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "config.yaml")
	if _, err := Load(missing); !errors.Is(err, fs.ErrNotExist) || !strings.HasPrefix(err.Error(), missing+": ") {
		t.Errorf("a missing file gave %v", err)
	}
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), dir+" is a folder") {
		t.Errorf("a folder gave %v", err)
	}
	big := filepath.Join(dir, "big.yaml")
	if err := os.WriteFile(big, make([]byte, MaxFileSize+10), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(big); !errors.Is(err, ErrTooLarge) || !strings.HasPrefix(err.Error(), big+": ") {
		t.Errorf("a file over 1 MiB gave %v", err)
	}
}

func TestPrintingAConfigMasksItsSecrets(t *testing.T) {
	cfg, err := Parse([]byte(documentedConfig), "config.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	jsonText, _ := json.Marshal(cfg)
	yamlText, _ := yaml.Marshal(cfg)
	outputs := map[string]string{
		"String":   cfg.String(),
		"Redacted": cfg.Redacted(),
		"%v":       fmt.Sprintf("%v", cfg),
		"%+v":      fmt.Sprintf("%+v", *cfg),
		"%#v":      fmt.Sprintf("%#v", cfg.Logzio),
		"JSON":     string(jsonText),
		"YAML":     string(yamlText),
	}
	for how, out := range outputs {
		if strings.Contains(out, logzioToken) || strings.Contains(out, jumpcloudToken) {
			t.Errorf("%s shows a token:\n%s", how, out)
		}
	}
	want := `logzio.url: https://listener.logz.io:8071
logzio.token: ****cdef
logzio.type: jumpcloud
jumpcloud_api.url: https://api.jumpcloud.com/insights/directory/v1/events
jumpcloud_api.start_date: (not set: starts from now)
jumpcloud_api.credentials.token: ****3456
jumpcloud_api.credentials.org_id: (not set)
jumpcloud_api.settings.time_interval: 5m0s
jumpcloud_api.settings.lag: 1m0s
jumpcloud_api.settings.services: ["all"]
jumpcloud_api.settings.page_size: 10000
`
	if got := cfg.String(); got != want {
		t.Errorf("String() =\n%s\nwant\n%s", got, want)
	}
	if got := Secret("short").String(); got != "****" {
		t.Errorf("a short secret shows as %q", got)
	}
}

func TestValidateChecksAConfigBuiltInCode(t *testing.T) {
	cfg := Default()
	err := cfg.Validate()
	if !errors.Is(err, ErrMissing) || strings.Contains(err.Error(), "config.yaml") {
		t.Errorf("Default().Validate() = %v, want missing values without a file name", err)
	}
	cfg.Logzio.URL = "https://listener.logz.io:8071"
	cfg.Logzio.Token = logzioToken
	cfg.JumpCloud.Token = jumpcloudToken
	if err := cfg.Validate(); err != nil {
		t.Errorf("Validate() = %v", err)
	}
	cfg.Logzio.Type = ""
	var fe *FieldError
	if err := cfg.Validate(); !errors.As(err, &fe) || fe.Key != keyLogzioType {
		t.Errorf("an empty type gave %v", err)
	}
}

// onlyFieldError checks that err is exactly one *FieldError naming config.yaml, and returns it.
func onlyFieldError(t *testing.T, err error) *FieldError {
	t.Helper()
	if err == nil {
		t.Fatal("no error")
	}
	if msg := err.Error(); strings.Contains(msg, "\n") || !strings.HasPrefix(msg, "config.yaml:") {
		t.Fatalf("want one error naming config.yaml, got:\n%v", msg)
	}
	var fe *FieldError
	if !errors.As(err, &fe) {
		t.Fatalf("%v is not a *FieldError", err)
	}
	return fe
}

func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		documentedConfig,
		withSetting(`start_date: "2023-05-04T12:30:00.000000Z"`, `services: [all]`),
		withSetting("url: http://localhost:9000", "time_interval: 30s\n    lag: 0\n    page_size: 10"),
		withSetting("start_date: "+jumpcloudToken, "lag: 60"),
		"logzio: &a {token: " + logzioToken + "}\njumpcloud_api: *a\n",
		"logzio:\n  token: *" + logzioToken + "\n",
		"logzio: {" + logzioToken + ": 1}\n",
		"- a\n", "", "\x00", "logzio:\n\turl: x\n", "a: b\n---\nc: d\n",
	} {
		f.Add([]byte(seed), "EnvSecret0123456789")
	}
	const file = "fuzz.yaml"
	f.Fuzz(func(t *testing.T, data []byte, envToken string) {
		cfg, err := Parse(data, file, env(map[string]string{EnvLogzioToken: envToken}))
		var messages []string
		if err != nil {
			messages = strings.Split(err.Error(), "\n")
		} else {
			messages = cfg.Warnings
		}
		secrets := append(tokensIn(data), strings.TrimSpace(envToken))
		for _, m := range messages {
			if err != nil && !strings.HasPrefix(m, file+":") {
				t.Fatalf("error %q does not name the file", m)
			}
			for _, s := range secrets {
				// Secrets shorter than minSecretLen are no real token; one inside the file name
				// is the caller's, not the input's.
				if len(s) >= minSecretLen && !strings.Contains(file, s) && strings.Contains(m, s) {
					t.Fatalf("message %q shows the token %q", m, s)
				}
			}
		}
	})
}

// tokensIn finds the tokens in a config file independently of Parse, as far as yaml.v3 can decode
// it.
func tokensIn(data []byte) []string {
	var doc struct {
		Logzio struct {
			Token any `yaml:"token"`
		} `yaml:"logzio"`
		JumpCloud struct {
			Credentials struct {
				Token any `yaml:"token"`
			} `yaml:"credentials"`
		} `yaml:"jumpcloud_api"`
	}
	func() {
		defer func() { recover() }()
		_ = yaml.Unmarshal(data, &doc) // partial results are fine
	}()
	var tokens []string
	for _, v := range []any{doc.Logzio.Token, doc.JumpCloud.Credentials.Token} {
		if s, ok := v.(string); ok {
			tokens = append(tokens, strings.TrimSpace(s))
		}
	}
	return tokens
}
