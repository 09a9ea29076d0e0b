# toppcloud's build, test and demo entry points. The README's two set-up
# commands are `sudo make demo` and `sudo make test`.

export PATH := /usr/local/go/bin:$(PATH)
GO ?= go
BIN := bin/toppcloud

# Debian packages the local provider and the integration tests need on the
# host: systemd-nspawn, debootstrap, nftables for local nodes; caddy for the
# router's tests against the real Caddy binary; php-cgi and php-cli
# for serve's tests of both ways it runs PHP; python3-django for the
# services test's django-admin startproject.
HOST_PACKAGES := systemd-container debootstrap nftables iproute2 caddy gunicorn python3-pastedeploy php-fpm php-cgi php-cli systemd rsync openssh-client curl python3-django

.PHONY: all build deps test unit integration vet demo bench clean

all: build

# Release builds are stripped (-s -w: no symbol table or DWARF) and
# -trimpath: the binary is also the agent setup-node uploads, and this
# makes it about a third smaller.
build:
	$(GO) build -trimpath -ldflags='-s -w' -o $(BIN) ./cmd/toppcloud

# deps installs what the local provider and the tests need (as root).
deps:
	@missing=""; for p in $(HOST_PACKAGES); do \
	  dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  DEBIAN_FRONTEND=noninteractive apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi
	@# Caddy's package starts a service where systemd runs; the tests start
	@# their own caddy, so make sure the packaged one is not in the way.
	-@systemctl disable --now caddy >/dev/null 2>&1 || true
	$(GO) mod download

# vet also builds the client for macOS, where developers run init, serve
# and deploys: Linux-only calls must stay in _linux.go files. (Seconds with
# a warm build cache; a cold one compiles the dependencies for darwin once.)
vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...
	GOOS=darwin GOARCH=arm64 $(GO) build -o /dev/null ./cmd/toppcloud

unit:
	$(GO) test ./...

# integration runs every test, including those that make real local nodes
# (root, systemd-nspawn). -p 2 keeps two packages' nodes at most at once.
integration:
	TOPPCLOUD_INTEGRATION=1 $(GO) test -p 2 -timeout 40m ./...

# test is what CI runs: prerequisites, static checks, all tests.
test: deps vet integration

demo: deps build
	./scripts/demo.sh

# bench prints the numbers behind the speed targets (see each program's
# doc comment); they need root and make real local nodes.
bench: deps build
	$(GO) run ./bench/clistart -bin $(BIN)
	$(GO) run ./bench/localnode
	$(GO) run ./bench/setupnode
	$(GO) run ./bench/transfer
	$(GO) run ./bench/deploy
	$(GO) run ./bench/routechange
	$(GO) run ./bench/services

clean:
	rm -rf bin
