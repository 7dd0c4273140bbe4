package source_test

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/logzio/logzio-jumpcloud/source"
)

// BenchmarkTransform measures one event per operation, for the kinds that make up most of a
// backlog, pretty-printed as in JumpCloud's docs and compact as the API may send them.
func BenchmarkTransform(b *testing.B) {
	events := []struct{ name, data string }{
		{"admin_login", adminLoginEvent},
		{"radius_auth", radiusAuthEvent},
		{"user_update_with_changes", userUpdateEvent},
	}
	transform := source.NewTransform(jumpcloudWithOrg)
	for _, e := range events {
		for _, form := range []string{"pretty", "compact"} {
			data := []byte(e.data)
			if form == "compact" {
				var buf bytes.Buffer
				if err := json.Compact(&buf, data); err != nil {
					b.Fatal(err)
				}
				data = buf.Bytes()
			}
			b.Run(e.name+"/"+form, func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(data)))
				for b.Loop() {
					if _, err := transform(data); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
