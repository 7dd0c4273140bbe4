module github.com/logzio/logzio-jumpcloud

go 1.26.0

require (
	github.com/cenkalti/backoff/v4 v4.3.0
	github.com/rs/zerolog v1.35.1
	golang.org/x/sync v0.25.0
	gopkg.in/yaml.v3 v3.0.1
)

require (
	github.com/mattn/go-colorable v0.1.14 // indirect
	github.com/mattn/go-isatty v0.0.20 // indirect
	golang.org/x/sys v0.29.0 // indirect
)
