# cometsync — build, test and benchmark.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
export DEBIAN_FRONTEND := noninteractive

.PHONY: build test test-deps demo bench vet

build:
	scripts/build-static.sh cometsync $(VERSION)

demo:
	go run ./cmd/cometsync demo

# The whole test suite. The integration tests start their own throwaway
# MariaDB, so the server binaries must be installed (not running).
test: test-deps
	go vet ./...
	go test -race -count=1 -timeout 30m ./...

# Installs Debian's mariadb-server when its binaries are missing.
test-deps:
	@if ! command -v mariadbd >/dev/null 2>&1 && [ ! -x /usr/sbin/mariadbd ]; then \
		echo "installing mariadb-server (the tests start their own MariaDB from it)"; \
		SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq --no-install-recommends mariadb-server >/dev/null; \
	fi

vet:
	gofmt -l $$(git ls-files '*.go') | tee /dev/stderr | (! read)
	go vet ./...
