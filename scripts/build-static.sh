#!/bin/sh
# Builds the static cometsync binary exactly as the Dockerfile does:
#   scripts/build-static.sh OUTPUT [VERSION]
# CGO is off so the binary runs on an empty root (scratch) image.
set -eu
out=${1:?usage: build-static.sh OUTPUT [VERSION]}
version=${2:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${version}" -o "$out" ./cmd/cometsync
