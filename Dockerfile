# syntax=docker/dockerfile:1
# A static binary on a distroless base, built for the platform being targeted.
FROM --platform=$BUILDPLATFORM golang:1.26 AS build
ARG TARGETOS TARGETARCH
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# The same flags as `make build`.
RUN CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -ldflags="-s -w" -o /out/logzio-jumpcloud ./cmd/logzio-jumpcloud

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/logzio-jumpcloud /usr/local/bin/logzio-jumpcloud
# The folder users mount, holding config.yaml and lastTime.txt, as with the image this replaces.
WORKDIR /app/src/shared
USER nonroot:nonroot
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/logzio-jumpcloud"]
