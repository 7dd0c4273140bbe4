GO ?= go
BINARY := bin/logzio-jumpcloud
# The release build: a static binary with no local paths in it. The Dockerfile uses the same flags.
BUILD_FLAGS := -trimpath -ldflags="-s -w"

.PHONY: demo test build fuzz bench docker clean

## demo: ship a generated JumpCloud backlog to a local Logz.io listener (no accounts needed)
demo:
	$(GO) run ./cmd/logzio-jumpcloud demo

## test: vet, then every test with the race detector
test:
	$(GO) vet ./...
	$(GO) test -race ./...

## build: the static release binary, as the container builds it
build:
	CGO_ENABLED=0 $(GO) build $(BUILD_FLAGS) -o $(BINARY) ./cmd/logzio-jumpcloud

## fuzz: each fuzz target for FUZZTIME (default 10s): config, checkpoint, page decoder, transform
FUZZTIME ?= 10s
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 5s ./config/
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 5s ./checkpoint/
	$(GO) test -run '^$$' -fuzz '^FuzzDecodePage$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 5s ./source/
	$(GO) test -run '^$$' -fuzz '^FuzzTransform$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 5s ./source/

## docker: the container image (needs a Docker engine)
docker:
	docker build -t logzio-jumpcloud .

clean:
	rm -rf bin

## bench: each stage, then the binary end to end against the emulator (200,000 events, then
## 2,000,000 to show memory does not grow with the backlog), with the single-goroutine limit
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./source/ ./sink/
	$(GO) test -run '^$$' -bench EndToEnd -benchtime 1x ./internal/bench/
	$(GO) test -run '^$$' -bench EndToEnd -benchtime 1x -timeout 30m ./internal/bench/ -args -backlog 2000000
