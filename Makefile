# cometsync — build, test and benchmark.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
export DEBIAN_FRONTEND := noninteractive

.PHONY: build test test-deps demo bench vet

build:
	scripts/build-static.sh cometsync $(VERSION)

demo:
	go run ./cmd/cometsync demo

# The whole test suite. The integration tests start their own throwaway
# MariaDB and PostgreSQL, so the server programs must be installed (not
# running).
test: test-deps
	go vet ./...
	go test -race -count=1 -timeout 30m ./...

# Installs Debian's mariadb-server and postgresql, in one apt-get run, when
# their server programs are missing. Neither package's own service is used:
# the tests run the programs themselves, so postgresql is told not to create
# its main cluster.
test-deps:
	@pkgs=""; \
	if ! command -v mariadbd >/dev/null 2>&1 && [ ! -x /usr/sbin/mariadbd ]; then pkgs="$$pkgs mariadb-server"; fi; \
	if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 && [ ! -x "$$(pg_config --bindir 2>/dev/null)/postgres" ]; then \
		pkgs="$$pkgs postgresql"; \
	fi; \
	if [ -n "$$pkgs" ]; then \
		echo "installing$$pkgs (the tests start their own servers from them)"; \
		SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
		case "$$pkgs" in *postgresql*) \
			$$SUDO mkdir -p /etc/postgresql-common/createcluster.d && \
			echo "create_main_cluster = false" | $$SUDO tee /etc/postgresql-common/createcluster.d/cometsync-tests.conf >/dev/null;; \
		esac; \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq --no-install-recommends $$pkgs >/dev/null; \
	fi

vet:
	gofmt -l $$(git ls-files '*.go') | tee /dev/stderr | (! read)
	go vet ./...
