package source_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/logzio/logzio-jumpcloud/source"
)

// Fixtures shaped like real Directory Insights events, pretty-printed as in JumpCloud's docs.
const (
	adminLoginEvent = `{
  "initiated_by": {
    "id": "61e536ebdbbe784cb2e55fb5",
    "type": "admin",
    "email": "john.doe@example.com"
  },
  "geoip": {
    "country_code": "FR",
    "timezone": "Europe/Paris",
    "latitude": 48.8323,
    "continent_code": "EU",
    "region_name": "Paris",
    "longitude": 2.4075,
    "region_code": "75"
  },
  "useragent": {
    "os": "Mac OS X",
    "minor": "0",
    "os_minor": "15",
    "os_version": "10.15.7",
    "os_major": "10",
    "version": "114.0.0.0",
    "os_patch": "7",
    "patch": "0",
    "os_full": "Mac OS X 10.15.7",
    "major": "114",
    "name": "Chrome",
    "os_name": "Mac OS X",
    "device": "Mac"
  },
  "mfa": true,
  "event_type": "admin_login_attempt",
  "provider": null,
  "service": "directory",
  "success": true,
  "organization": "641b3db57090821c0b2f8183",
  "@version": "1",
  "client_ip": "1.2.3.4",
  "id": "648c6c758c2ac07fa1fdee94",
  "timestamp": "2023-06-16T14:06:45.921Z"
}
`
	adminLoginLine = `{"initiated_by":{"id":"61e536ebdbbe784cb2e55fb5","type":"admin","email":"john.doe@example.com"},` +
		`"geoip":{"country_code":"FR","timezone":"Europe/Paris","latitude":48.8323,"continent_code":"EU","region_name":"Paris","longitude":2.4075,"region_code":"75"},` +
		`"useragent":{"os":"Mac OS X","minor":"0","os_minor":"15","os_version":"10.15.7","os_major":"10","version":"114.0.0.0","os_patch":"7","patch":"0","os_full":"Mac OS X 10.15.7","major":"114","name":"Chrome","os_name":"Mac OS X","device":"Mac"},` +
		`"mfa":true,"event_type":"admin_login_attempt","provider":null,"service":"directory","success":true,` +
		`"organization":"641b3db57090821c0b2f8183","@version":"1","client_ip":"1.2.3.4","id":"648c6c758c2ac07fa1fdee94",` +
		`"timestamp":"2023-06-16T14:06:45.921Z","@timestamp":"2023-06-16T14:06:45.921Z","type":"jumpcloud"}`

	// A RADIUS event: upper-case UUID id, no fractional seconds, and no organization.
	radiusAuthEvent = `{
  "initiated_by": {
    "type": "user",
    "username": "jane.doe"
  },
  "auth_type": "eap",
  "nas_mfa_state": "DISABLED",
  "geoip": {
    "country_code": "US",
    "timezone": "America/New_York",
    "latitude": 42.3797,
    "continent_code": "NA",
    "region_name": "Massachusetts",
    "longitude": -71.1034,
    "region_code": "MA"
  },
  "eap_type": "MSCHAPv2",
  "outer": {
    "eap_type": "PEAP",
    "username": "jane.doe",
    "error_message": null
  },
  "mfa": false,
  "auth_meta": {
    "user_password_enabled": true,
    "device_cert_enabled": false,
    "user_cert_enabled": false,
    "auth_idp": "JUMPCLOUD",
    "userid_type": "USERNAME"
  },
  "event_type": "radius_auth_attempt",
  "service": "radius",
  "success": true,
  "organization": null,
  "@version": "1",
  "client_ip": "20.21.22.23",
  "id": "842B7B84-FE16-32AF-B257-9D508FB22D22",
  "username": "jane.doe",
  "timestamp": "2023-06-15T15:17:41Z"
}`
	radiusAuthLine = `{"initiated_by":{"type":"user","username":"jane.doe"},"auth_type":"eap","nas_mfa_state":"DISABLED",` +
		`"geoip":{"country_code":"US","timezone":"America/New_York","latitude":42.3797,"continent_code":"NA","region_name":"Massachusetts","longitude":-71.1034,"region_code":"MA"},` +
		`"eap_type":"MSCHAPv2","outer":{"eap_type":"PEAP","username":"jane.doe","error_message":null},"mfa":false,` +
		`"auth_meta":{"user_password_enabled":true,"device_cert_enabled":false,"user_cert_enabled":false,"auth_idp":"JUMPCLOUD","userid_type":"USERNAME"},` +
		`"event_type":"radius_auth_attempt","service":"radius","success":true,"organization":"org-from-config","@version":"1",` +
		`"client_ip":"20.21.22.23","id":"842B7B84-FE16-32AF-B257-9D508FB22D22","username":"jane.doe",` +
		`"timestamp":"2023-06-15T15:17:41Z","@timestamp":"2023-06-15T15:17:41Z","type":"jumpcloud"}`

	// A user update whose changes hold arrays of objects, strings and booleans.
	userUpdateEvent = `{
  "initiated_by": {
    "id": "5bf6defbdcd8233029e0c599",
    "source": "scim",
    "type": "admin",
    "email": "maurice.moss@example.com"
  },
  "resource": {
    "id": "628cf9c0d6f4831f8192fa8d",
    "type": "user",
    "username": "john.wick"
  },
  "changes": [
    {
      "field": "attributes",
      "from": [
        {
          "name": "Division",
          "id": "648f9f5f293ab1deaf28fa84",
          "value": "Marketing"
        }
      ],
      "to": [
        {
          "name": "Division",
          "id": "6490f0f5a2d539837a30aaa0",
          "value": "Sales"
        }
      ]
    },
    {
      "field": "company",
      "from": "SEKOIA.IO",
      "to": "Sekoia.io"
    },
    {
      "field": "suspended",
      "from": false,
      "to": true
    }
  ],
  "auth_method": "api key",
  "event_type": "user_update",
  "correlation": {},
  "service": "directory",
  "success": true,
  "organization": "641b3db57090821c0b2f8183",
  "@version": "1",
  "client_ip": "10.11.12.13",
  "id": "64908c2ef675033f5a7a5e1e",
  "timestamp": "2023-06-19T17:11:10.381Z"
}`
	userUpdateLine = `{"initiated_by":{"id":"5bf6defbdcd8233029e0c599","source":"scim","type":"admin","email":"maurice.moss@example.com"},` +
		`"resource":{"id":"628cf9c0d6f4831f8192fa8d","type":"user","username":"john.wick"},` +
		`"changes":"{\"attributes_changed_to\":[{\"name\":\"Division\",\"id\":\"6490f0f5a2d539837a30aaa0\",\"value\":\"Sales\"}],` +
		`\"attributes_was\":[{\"name\":\"Division\",\"id\":\"648f9f5f293ab1deaf28fa84\",\"value\":\"Marketing\"}],` +
		`\"company_changed_to\":\"Sekoia.io\",\"company_was\":\"SEKOIA.IO\",\"suspended_changed_to\":true,\"suspended_was\":false}",` +
		`"auth_method":"api key","event_type":"user_update","correlation":{},"service":"directory","success":true,` +
		`"organization":"641b3db57090821c0b2f8183","@version":"1","client_ip":"10.11.12.13","id":"64908c2ef675033f5a7a5e1e",` +
		`"timestamp":"2023-06-19T17:11:10.381Z","@timestamp":"2023-06-19T17:11:10.381Z","type":"jumpcloud"}`
)

var (
	jumpcloud        = source.TransformConfig{Type: "jumpcloud"}
	jumpcloudWithOrg = source.TransformConfig{Type: "jumpcloud", OrgID: "org-from-config"}
)

func TestTransform(t *testing.T) {
	tests := map[string]struct {
		cfg  source.TransformConfig
		in   string
		want string
	}{
		"A pretty-printed admin login keeps every field in order and gains @timestamp and type at the end": {
			cfg: jumpcloud, in: adminLoginEvent, want: adminLoginLine,
		},
		"A RADIUS event with a null organization gets the configured one in place": {
			cfg: jumpcloudWithOrg, in: radiusAuthEvent, want: radiusAuthLine,
		},
		"A user update gets its changes flattened into a string and keeps everything else": {
			cfg: jumpcloud, in: userUpdateEvent, want: userUpdateLine,
		},
		"Numbers keep their exact text": {
			cfg:  jumpcloud,
			in:   `{"latitude": 48.8323, "longitude": -71.1034, "big": 12345678901234567890, "exp": 1e3, "upper": 2E-7, "zero": -0.0, "frac": 1.50}`,
			want: `{"latitude":48.8323,"longitude":-71.1034,"big":12345678901234567890,"exp":1e3,"upper":2E-7,"zero":-0.0,"frac":1.50,"type":"jumpcloud"}`,
		},
		"Strings keep their content and escapes": {
			cfg:  jumpcloud,
			in:   `{"msg": "a \"quoted\" \\ path\twith tab\nand newline", "html": "<b>&amp;</b>", "slash": "a\/b"}`,
			want: `{"msg":"a \"quoted\" \\ path\twith tab\nand newline","html":"<b>&amp;</b>","slash":"a\/b","type":"jumpcloud"}`,
		},
		"White space around the object, including a trailing newline, is dropped": {
			cfg:  jumpcloud,
			in:   " \r\n\t{ \"id\" : \"1\" }\r\n ",
			want: `{"id":"1","type":"jumpcloud"}`,
		},
		"An empty object gains only type": {
			cfg: jumpcloud, in: `{}`, want: `{"type":"jumpcloud"}`,
		},
		"An existing type is replaced in place": {
			cfg:  jumpcloud,
			in:   `{"type":"admin","id":"1"}`,
			want: `{"type":"jumpcloud","id":"1"}`,
		},
		"An existing @timestamp is replaced in place by timestamp": {
			cfg:  jumpcloud,
			in:   `{"@timestamp":"2020-01-01T00:00:00Z","timestamp":"2023-06-15T15:17:41Z"}`,
			want: `{"@timestamp":"2023-06-15T15:17:41Z","timestamp":"2023-06-15T15:17:41Z","type":"jumpcloud"}`,
		},
		"An existing @timestamp is kept when timestamp is not a string": {
			cfg:  jumpcloud,
			in:   `{"timestamp":1686924405,"@timestamp":"2023-06-16T14:06:45Z"}`,
			want: `{"timestamp":1686924405,"@timestamp":"2023-06-16T14:06:45Z","type":"jumpcloud"}`,
		},
		"No @timestamp is added when timestamp is missing": {
			cfg: jumpcloud, in: `{"id":"1"}`, want: `{"id":"1","type":"jumpcloud"}`,
		},
		"No @timestamp is added when timestamp is null": {
			cfg:  jumpcloud,
			in:   `{"timestamp":null}`,
			want: `{"timestamp":null,"type":"jumpcloud"}`,
		},
		"Every timestamp precision is copied as is": {
			cfg:  jumpcloud,
			in:   `{"timestamp":"2023-03-07T13:01:19.21859368Z"}`,
			want: `{"timestamp":"2023-03-07T13:01:19.21859368Z","@timestamp":"2023-03-07T13:01:19.21859368Z","type":"jumpcloud"}`,
		},
		"A repeated key keeps its last value at its first place": {
			cfg:  jumpcloud,
			in:   `{"id":"a","service":"sso","id":"b"}`,
			want: `{"id":"b","service":"sso","type":"jumpcloud"}`,
		},
		"Repeated type, @timestamp and timestamp keys come out once each, the last timestamp winning": {
			cfg:  jumpcloud,
			in:   `{"type":"a","@timestamp":"x","timestamp":"2023-01-01T00:00:00Z","type":"b","@timestamp":"y","timestamp":"2023-06-15T15:17:41Z"}`,
			want: `{"type":"jumpcloud","@timestamp":"2023-06-15T15:17:41Z","timestamp":"2023-06-15T15:17:41Z"}`,
		},
		"A key spelt with escapes is the same key as its plain spelling": {
			cfg:  jumpcloud,
			in:   `{"typ\u0065":"admin","id":"a","\u0069d":"b"}`,
			want: `{"typ\u0065":"jumpcloud","id":"b"}`,
		},
		"Only top-level type and timestamp fields are touched": {
			cfg:  jumpcloud,
			in:   `{"resource":{"type":"user","timestamp":"x","organization":null}}`,
			want: `{"resource":{"type":"user","timestamp":"x","organization":null},"type":"jumpcloud"}`,
		},
		"A missing organization is added at the end": {
			cfg:  jumpcloudWithOrg,
			in:   `{"id":"1"}`,
			want: `{"id":"1","type":"jumpcloud","organization":"org-from-config"}`,
		},
		"A present organization is left as is": {
			cfg:  jumpcloudWithOrg,
			in:   `{"organization":"641b3db57090821c0b2f8183"}`,
			want: `{"organization":"641b3db57090821c0b2f8183","type":"jumpcloud"}`,
		},
		"An empty organization string is not null and is left as is": {
			cfg:  jumpcloudWithOrg,
			in:   `{"organization":""}`,
			want: `{"organization":"","type":"jumpcloud"}`,
		},
		"A null organization stays null without a configured one": {
			cfg:  jumpcloud,
			in:   `{"organization":null}`,
			want: `{"organization":null,"type":"jumpcloud"}`,
		},
		"A changes string is left as is": {
			cfg: jumpcloud, in: `{"changes":"none"}`, want: `{"changes":"none","type":"jumpcloud"}`,
		},
		"A changes object is left as is": {
			cfg:  jumpcloud,
			in:   `{"changes":{"field":"a","to":1}}`,
			want: `{"changes":{"field":"a","to":1},"type":"jumpcloud"}`,
		},
		"A null changes is left as is": {
			cfg: jumpcloud, in: `{"changes":null}`, want: `{"changes":null,"type":"jumpcloud"}`,
		},
		"Type and organization from the config are JSON-escaped": {
			cfg:  source.TransformConfig{Type: `jump"cloud\`, OrgID: "org\n1"},
			in:   `{}`,
			want: `{"type":"jump\"cloud\\","organization":"org\n1"}`,
		},
		"An event with many fields and repeated keys keeps the last values at the first places": {
			cfg: jumpcloud,
			in:  numberedFields(60, `"f0":"last","f59":"end","type":"x"`),
			want: strings.NewReplacer(`"f0":0,`, `"f0":"last",`, `"f59":59,`, `"f59":"end",`).
				Replace(numberedFields(60, `"type":"jumpcloud"`)),
		},
		"An empty configured type is written as is": {
			cfg: source.TransformConfig{}, in: `{"type":"x"}`, want: `{"type":""}`,
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := source.NewTransform(tt.cfg)([]byte(tt.in))
			if err != nil {
				t.Fatalf("error: %v", err)
			}
			checkLine(t, got, tt.cfg.Type)
			if string(got) != tt.want {
				t.Errorf("\n got: %s\nwant: %s", got, tt.want)
			}
		})
	}
}

func TestTransformFlattensChanges(t *testing.T) {
	// want is the object the changes string holds.
	tests := map[string]struct{ changes, want string }{
		"String values become <field>_changed_to and <field>_was": {
			changes: `[{"field":"company","from":"SEKOIA.IO","to":"Sekoia.io"}]`,
			want:    `{"company_changed_to":"Sekoia.io","company_was":"SEKOIA.IO"}`,
		},
		"Number values keep their text": {
			changes: `[{"field":"uid","from":5001,"to":5.0e3}]`,
			want:    `{"uid_changed_to":5.0e3,"uid_was":5001}`,
		},
		"Boolean and null values are kept": {
			changes: `[{"field":"suspended","from":null,"to":false}]`,
			want:    `{"suspended_changed_to":false,"suspended_was":null}`,
		},
		"Object values are kept as compact JSON": {
			changes: `[{"field": "mfa", "from": {"configured": false}, "to": {"configured": true, "exclusion": null}}]`,
			want:    `{"mfa_changed_to":{"configured":true,"exclusion":null},"mfa_was":{"configured":false}}`,
		},
		"Array values are kept as compact JSON": {
			changes: "[{\"field\":\"addresses\",\n \"from\":[],\n \"to\":[ {\"type\":\"work\",\"locality\":\"Paris\"} , 1 ]}]",
			want:    `{"addresses_changed_to":[{"type":"work","locality":"Paris"},1],"addresses_was":[]}`,
		},
		"An item with only from gives only <field>_was": {
			changes: `[{"field":"location","from":"Paris"}]`,
			want:    `{"location_was":"Paris"}`,
		},
		"An item with only to gives only <field>_changed_to": {
			changes: `[{"field":"location","to":"France"}]`,
			want:    `{"location_changed_to":"France"}`,
		},
		"An item with neither from nor to gives <field>: null": {
			changes: `[{"field":"password"}]`,
			want:    `{"password":null}`,
		},
		"Several items keep their order": {
			changes: `[{"field":"b","to":1},{"field":"a","to":2},{"field":"c","from":3}]`,
			want:    `{"b_changed_to":1,"a_changed_to":2,"c_was":3}`,
		},
		"An empty array gives an empty object": {
			changes: `[]`,
			want:    `{}`,
		},
		"Items that are not objects are kept whole under changes_item_<index>": {
			changes: `["oops",{"field":"a","to":1},42,null,[1,2]]`,
			want:    `{"changes_item_0":"oops","a_changed_to":1,"changes_item_2":42,"changes_item_3":null,"changes_item_4":[1,2]}`,
		},
		"An item without a field is kept whole": {
			changes: `[{"from":1,"to":2}]`,
			want:    `{"changes_item_0":{"from":1,"to":2}}`,
		},
		"An item whose field is not a string is kept whole": {
			changes: `[{"field":7,"to":2},{"field":null}]`,
			want:    `{"changes_item_0":{"field":7,"to":2},"changes_item_1":{"field":null}}`,
		},
		"Keys of an item other than field, from and to are ignored": {
			changes: `[{"field":"a","op":"replace","to":1}]`,
			want:    `{"a_changed_to":1}`,
		},
		"Repeated keys in an item keep the last value": {
			changes: `[{"field":"a","to":1,"to":2,"field":"b"}]`,
			want:    `{"b_changed_to":2}`,
		},
		"The same field changed twice keeps the last values": {
			changes: `[{"field":"a","from":1,"to":2},{"field":"a","from":2,"to":3}]`,
			want:    `{"a_changed_to":3,"a_was":2}`,
		},
		"A field named like a derived key does not make a duplicate key": {
			changes: `[{"field":"a_was"},{"field":"a","from":2}]`,
			want:    `{"a_was":2}`,
		},
		"A field with quotes and backslashes makes a valid key": {
			changes: `[{"field":"we\"ird\\name","to":"x"}]`,
			want:    `{"we\"ird\\name_changed_to":"x"}`,
		},
		"A field spelt with escapes is the same field as its plain spelling": {
			changes: `[{"field":"\u0061","to":1},{"field":"a","to":2}]`,
			want:    `{"\u0061_changed_to":2}`,
		},
		"Values with quotes and escapes survive being put in a string": {
			changes: `[{"field":"note","to":"say \"hi\"\n\\o/ \u00e9"}]`,
			want:    `{"note_changed_to":"say \"hi\"\n\\o/ \u00e9"}`,
		},
		"A field changed in more items than dedupe compares pairwise keeps the last value": {
			changes: `[` + strings.Repeat(`{"field":"a","to":1},`, 60) + `{"field":"a","to":2}]`,
			want:    `{"a_changed_to":2}`,
		},
		"Unicode in fields and values survives": {
			changes: `[{"field":"prénom","to":"José 🎉"}]`,
			want:    `{"prénom_changed_to":"José 🎉"}`,
		},
	}
	transform := source.NewTransform(jumpcloud)
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			in := `{"event_type":"user_update","changes":` + tt.changes + `,"id":"1"}`
			got, err := transform([]byte(in))
			if err != nil {
				t.Fatalf("error: %v", err)
			}
			checkLine(t, got, jumpcloud.Type)
			var event struct {
				Changes *string `json:"changes"`
			}
			if err := json.Unmarshal(got, &event); err != nil || event.Changes == nil {
				t.Fatalf("changes is not a string in %s (%v)", got, err)
			}
			if *event.Changes != tt.want {
				t.Errorf("\n got: %s\nwant: %s", *event.Changes, tt.want)
			}
			checkObject(t, []byte(*event.Changes))
			// The fields around changes are untouched.
			prefix := `{"event_type":"user_update","changes":"`
			suffix := `","id":"1","type":"jumpcloud"}`
			if !bytes.HasPrefix(got, []byte(prefix)) || !bytes.HasSuffix(got, []byte(suffix)) {
				t.Errorf("fields around changes changed: %s", got)
			}
		})
	}
}

func TestTransformKeepsUnicode(t *testing.T) {
	tests := map[string]struct{ in, want string }{
		"Emoji and accents written raw stay raw": {
			in:   `{"name":"Zoë 🎉 日本"}`,
			want: `{"name":"Zoë 🎉 日本","type":"jumpcloud"}`,
		},
		"Escaped line separators and surrogate pairs stay escaped": {
			in:   `{"m":"a\u2028b\u2029c \ud83c\udf89 \u0000"}`,
			want: `{"m":"a\u2028b\u2029c \ud83c\udf89 \u0000","type":"jumpcloud"}`,
		},
		"A raw line separator stays raw": {
			in:   "{\"m\":\"a\u2028b\"}",
			want: "{\"m\":\"a\u2028b\",\"type\":\"jumpcloud\"}",
		},
		"A lone escaped surrogate is kept as written": {
			in:   `{"m":"\ud800"}`,
			want: `{"m":"\ud800","type":"jumpcloud"}`,
		},
		"An invalid UTF-8 byte in a value becomes U+FFFD": {
			in:   "{\"m\":\"a\xffb\"}",
			want: "{\"m\":\"a\uFFFDb\",\"type\":\"jumpcloud\"}",
		},
		"Each byte of a truncated sequence becomes U+FFFD": {
			in:   "{\"m\":\"a\xe2\x82\"}",
			want: "{\"m\":\"a\uFFFD\uFFFD\",\"type\":\"jumpcloud\"}",
		},
		"An invalid UTF-8 byte in a key becomes U+FFFD": {
			in:   "{\"k\xc0\":1}",
			want: "{\"k\uFFFD\":1,\"type\":\"jumpcloud\"}",
		},
		"An invalid UTF-8 byte in changes becomes U+FFFD": {
			in:   "{\"changes\":[{\"field\":\"f\xff\",\"to\":\"\xfe\"}]}",
			want: "{\"changes\":\"{\\\"f\uFFFD_changed_to\\\":\\\"\uFFFD\\\"}\",\"type\":\"jumpcloud\"}",
		},
	}
	transform := source.NewTransform(jumpcloud)
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := transform([]byte(tt.in))
			if err != nil {
				t.Fatalf("error: %v", err)
			}
			checkLine(t, got, jumpcloud.Type)
			if string(got) != tt.want {
				t.Errorf("\n got: %q\nwant: %q", got, tt.want)
			}
		})
	}
}

func TestTransformRejectsWhatIsNotOneObject(t *testing.T) {
	tests := map[string]string{
		"Empty input":                              ``,
		"White space only":                         " \n\t",
		"An array of events":                       `[{"id":"1"},{"id":"2"}]`,
		"An empty array":                           `[]`,
		"A string":                                 `"{\"id\":\"1\"}"`,
		"A number":                                 `42`,
		"null":                                     `null`,
		"true":                                     `true`,
		"Truncated JSON":                           `{"id":"1","geoip":{"latitude":48.8`,
		"An unterminated string":                   `{"id":"1`,
		"Trailing garbage after the object":        `{"id":"1"} x`,
		"A second object after the first":          `{"id":"1"}{"id":"2"}`,
		"A second object on the next line":         "{\"id\":\"1\"}\n{\"id\":\"2\"}",
		"A trailing comma":                         `{"id":"1",}`,
		"An unquoted key":                          `{id:"1"}`,
		"A single-quoted string":                   `{"id":'1'}`,
		"A raw control character in a string":      "{\"id\":\"a\x01b\"}",
		"A raw newline in a string":                "{\"id\":\"a\nb\"}",
		"A bad escape":                             `{"id":"\x41"}`,
		"An invalid number":                        `{"n":01}`,
		"NaN":                                      `{"n":NaN}`,
		"An invalid UTF-8 byte outside strings":    "{\"n\":1\xff}",
		"A byte-order mark":                        "\xef\xbb\xbf{}",
		"Changes that are broken inside":           `{"changes":[{"field":"a","to":}]}`,
		"A closing bracket that does not match":    `{"a":[1}`,
		"An object closed twice":                   `{"a":1}}`,
		"A lone closing brace":                     `}`,
		"A key without a value":                    `{"a"}`,
		"Nesting deeper than encoding/json allows": `{"a":` + strings.Repeat("[", 10001) + strings.Repeat("]", 10001) + `}`,
	}
	transform := source.NewTransform(jumpcloudWithOrg)
	for name, in := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := transform([]byte(in))
			if !errors.Is(err, source.ErrInvalidEvent) {
				t.Fatalf("got %q and error %v, want an error wrapping ErrInvalidEvent", got, err)
			}
			if got != nil {
				t.Errorf("got %q along with the error", got)
			}
		})
	}
}

func TestTransformIsSafeForConcurrentUseAndItsLinesStayPut(t *testing.T) {
	transform := source.NewTransform(jumpcloudWithOrg)
	events := []string{adminLoginEvent, radiusAuthEvent, userUpdateEvent, `{"changes":[1,{"field":"a"}]}`}
	want := make([]string, len(events))
	for i, e := range events {
		line, err := transform([]byte(e))
		if err != nil {
			t.Fatal(err)
		}
		want[i] = string(line)
	}

	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Go(func() {
			var kept [][]byte // lines from earlier calls must not change under later ones
			for i := range 200 {
				n := (g + i) % len(events)
				line, err := transform([]byte(events[n]))
				if err != nil {
					errs <- err
					return
				}
				kept = append(kept, line)
			}
			for i, line := range kept {
				if n := (g + i) % len(events); string(line) != want[n] {
					errs <- fmt.Errorf("line %d changed: %s", i, line)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func FuzzTransform(f *testing.F) {
	for _, seed := range []string{
		adminLoginEvent, radiusAuthEvent, userUpdateEvent,
		`{}`, `[]`, ``, `{"type":1,"type":2}`, `{"timestamp":"t","@timestamp":"u"}`,
		`{"organization":null}`, `{"changes":["x",{"field":"a"},{"field":"a_was","from":1}]}`,
		`{"typ\u0065":"x","changes":[{"field":"\"","to":"\\"}]}`, "{\"m\":\"\xff\"}", `{"a":1} x`,
	} {
		f.Add([]byte(seed), "jumpcloud", "")
		f.Add([]byte(seed), "jumpcloud", "org-1")
	}
	f.Fuzz(func(t *testing.T, data []byte, typ, org string) {
		if !utf8.ValidString(typ) || !utf8.ValidString(org) {
			t.Skip("config values come from a YAML file, which is valid UTF-8")
		}
		cfg := source.TransformConfig{Type: typ, OrgID: org}
		got, err := source.NewTransform(cfg)(data)
		isObject := json.Valid(data) && bytes.HasPrefix(bytes.TrimLeft(data, " \t\r\n"), []byte("{"))
		if err != nil {
			if isObject {
				t.Fatalf("a JSON object was rejected: %v", err)
			}
			return
		}
		if !isObject {
			t.Fatalf("accepted something that is not a JSON object: %q → %q", data, got)
		}
		fields := checkLine(t, got, cfg.Type)
		if org != "" && (fields["organization"] == nil || string(fields["organization"]) == "null") {
			t.Errorf("organization not filled: %s", got)
		}
		if !utf8.Valid(data) {
			return // values were repaired, so they differ from the input's
		}
		var in map[string]json.RawMessage // encoding/json keeps the last of repeated keys too
		if err := json.Unmarshal(data, &in); err != nil {
			t.Fatalf("input accepted by the transform but not by encoding/json: %v", err)
		}
		for key, value := range in {
			switch key {
			case "type", "@timestamp", "organization":
				continue
			case "changes":
				if bytes.HasPrefix(value, []byte("[")) {
					var flat string
					if err := json.Unmarshal(fields[key], &flat); err != nil {
						t.Fatalf("changes is not a string: %s", fields[key])
					}
					checkObject(t, []byte(flat))
					continue
				}
			}
			if !bytes.Equal(compact(t, value), fields[key]) {
				t.Errorf("field %q changed: %s → %s", key, value, fields[key])
			}
		}
	})
}

// checkLine fails the test unless line is one valid JSON object on one line, with each
// top-level key once and `type` equal to typ. It returns the object's fields.
func checkLine(t testing.TB, line []byte, typ string) map[string][]byte {
	t.Helper()
	if bytes.ContainsAny(line, "\r\n") {
		t.Fatalf("line break in %q", line)
	}
	if !utf8.Valid(line) {
		t.Fatalf("invalid UTF-8 in %q", line)
	}
	fields := checkObject(t, line)
	var gotType string
	if err := json.Unmarshal(fields["type"], &gotType); err != nil || gotType != typ {
		t.Fatalf("type is %s, want %q", fields["type"], typ)
	}
	return fields
}

// checkObject fails the test unless b is one valid JSON object with no repeated top-level key.
// It returns the object's fields, their values compact.
func checkObject(t testing.TB, b []byte) map[string][]byte {
	t.Helper()
	if !json.Valid(b) {
		t.Fatalf("not valid JSON: %q", b)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("not a JSON object: %q", b)
	}
	fields := map[string][]byte{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		key := tok.(string)
		var value json.RawMessage
		if err := dec.Decode(&value); err != nil {
			t.Fatal(err)
		}
		if _, ok := fields[key]; ok {
			t.Fatalf("key %q repeated in %s", key, b)
		}
		fields[key] = value
	}
	return fields
}

// numberedFields returns an object with members "f0":0 … "f<n-1>":<n-1>, then extra.
func numberedFields(n int, extra string) string {
	var b strings.Builder
	b.WriteString("{")
	for i := range n {
		fmt.Fprintf(&b, `"f%d":%d,`, i, i)
	}
	return b.String() + extra + "}"
}

func compact(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
