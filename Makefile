# drover — see README.md. `make run` and `make test` are all a newcomer needs.
SHELL := /bin/bash
GO ?= go
BIN := bin
VERSION := $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
STATICCHECK_VERSION := v0.8.2
# ./... skips testdata/, so its packages are named.
TESTDATA_PKGS := ./testdata/example-worker ./testdata/testworker ./testdata/testbin ./testdata/lab ./testdata/crashbench ./testdata/fleet
# Debian's prometheus package, unpacked rather than installed (installing it
# would start a Prometheus server on this machine): promtool for the unit
# tests, the server for the lab's scrape (make deps).
PROMETHEUS_DIR := /var/cache/drover-tools/prometheus
export DROVER_TOOLS_PATH := $(PROMETHEUS_DIR)/usr/bin
# Under make test a tool the tests need and deps installs is required: a
# test that cannot find it fails instead of skipping.
export DROVER_REQUIRE_TOOLS := 1
# Static binaries: the lab installs them into Debian roots of other releases.
export CGO_ENABLED := 0

.PHONY: all build run test unit lab fleet lab-shell lint bench bench-crash deps clean deb rpm packages

# Packages (README, "Packages"): nfpm, pinned, from the Go module proxy.
NFPM_VERSION := v2.45.2
NFPM := $(GO) run github.com/goreleaser/nfpm/v2/cmd/nfpm@$(NFPM_VERSION)
DIST := dist
# git describe as a version dpkg and rpm order like git (packaging/version.sh).
PKG_VERSION := $(shell packaging/version.sh 2>/dev/null || echo 0.0.0~unknown)
PKG_ARCH := $(shell $(GO) env GOARCH)

all: build

build:
	@mkdir -p $(BIN)
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/drover ./cmd/drover
	$(GO) build -ldflags '-X main.version=$(VERSION)' -o $(BIN)/example-worker ./testdata/example-worker
	$(GO) build -o $(BIN)/testworker ./testdata/testworker

# drover in dev mode: no systemd, one example worker per core on 127.0.0.1:8080.
run: build
	$(BIN)/drover run --listen 127.0.0.1:8080 --control $(BIN)/drover.sock -- $(BIN)/example-worker

# Every test: lint, unit and integration tests with the race detector, then
# the real-systemd lab (systemd 252 and 257 in containers), then the fleet:
# the Ansible rollout across four of them behind HAProxy.
test: deps lint unit packages lab fleet

unit:
	CGO_ENABLED=1 $(GO) test -race -count=1 ./...

lab:
	$(GO) test -count=1 -v -timeout 30m ./testdata/lab/

# packaging/ansible's rollout on four lab containers behind HAProxy, under
# load (testdata/fleet; README, "Many machines"). About 3.5 minutes.
fleet:
	$(GO) test -count=1 -v -timeout 20m -run '^TestFleet$$' ./testdata/fleet/

DISTRO ?= trixie
lab-shell:
	bash testdata/lab/shell.sh $(DISTRO)

lint:
	@bad=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$bad" ]; then echo "gofmt needed: $$bad"; exit 1; fi
	@$(GO) mod tidy -diff >/dev/null || { echo 'go.mod/go.sum are not tidy: run go mod tidy'; $(GO) mod tidy -diff; exit 1; }
	$(GO) vet ./... $(TESTDATA_PKGS)
	$$($(GO) env GOPATH)/bin/staticcheck ./... $(TESTDATA_PKGS)

bench:
	$(GO) test -run '^$$' -bench . -benchtime 2s ./...
	@$(MAKE) --no-print-directory bench-crash

# kill -9 of a worker until a new one answers: drover beside a direct
# supervisor in the same run, with the Node worker (needs node); then 1000
# kills in a row to show drover's RSS, fds, threads and zombies stay flat,
# with the Go example worker so they take seconds, not minutes. About 45 s.
bench-crash: build
	$(GO) build -o $(BIN)/crashbench ./testdata/crashbench
	$(BIN)/crashbench --drover $(BIN)/drover --app 'node testdata/node-worker/server.js' --trials 7
	$(BIN)/crashbench --drover $(BIN)/drover --app $(BIN)/example-worker --crashes 1000

# Installs what the tests need on a fresh machine: the race detector wants
# cgo (gcc), the lab wants systemd-nspawn and debootstrap, drover top's
# test drives it in tmux, drover init --from-pm2's evaluates an
# ecosystem.config.js with node (npm installs the Node tests' packages from
# the npm registry), the fleet test Ansible (Debian's ansible-core, 2.14 on
# bookworm: the test checks the series), HAProxy and ssh. The test runs
# HAProxy itself, with its own config on a free port; the package's service
# is not used (Debian's default config has no frontend).
deps:
	@need=""; \
	command -v gcc >/dev/null || need="$$need gcc libc6-dev"; \
	command -v strip >/dev/null || need="$$need binutils"; \
	command -v systemd-nspawn >/dev/null || need="$$need systemd-container"; \
	command -v debootstrap >/dev/null || need="$$need debootstrap"; \
	command -v systemd-socket-activate >/dev/null || need="$$need systemd"; \
	command -v python3 >/dev/null || need="$$need python3"; \
	command -v lintian >/dev/null || need="$$need lintian"; \
	command -v rpm >/dev/null || need="$$need rpm"; \
	command -v rpmlint >/dev/null || need="$$need rpmlint"; \
	command -v dbus-daemon >/dev/null || need="$$need dbus-daemon"; \
	command -v groff >/dev/null || need="$$need groff-base"; \
	command -v tmux >/dev/null || need="$$need tmux"; \
	command -v zsh >/dev/null || need="$$need zsh"; \
	command -v fish >/dev/null || need="$$need fish"; \
	command -v node >/dev/null || need="$$need nodejs"; \
	command -v npm >/dev/null || need="$$need npm"; \
	command -v ansible-playbook >/dev/null || need="$$need ansible-core"; \
	command -v haproxy >/dev/null || need="$$need haproxy"; \
	command -v ssh >/dev/null || need="$$need openssh-client"; \
	if [ -n "$$need" ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$need; fi
	@test -x $$($(GO) env GOPATH)/bin/staticcheck || $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	@test -x $(PROMETHEUS_DIR)/usr/bin/promtool || testdata/tools/unpack-deb.sh prometheus $(PROMETHEUS_DIR)

# dist/drover_*.deb and dist/myapp_*.deb (or .rpm): drover, and myapp, the
# example worker packaged as an app that runs under drover. The binaries in
# them report the package version.
deb rpm: VERSION = $(PKG_VERSION)
deb rpm: LDFLAGS = -X main.version=$(PKG_VERSION)
deb rpm: build
	@mkdir -p $(DIST) $(BIN)/pkg
	rm -f $(DIST)/drover[-_]*.$@ $(DIST)/myapp[-_]*.$@
	@# Stripped as Debian strips: the Go runtime keeps its own symbol
	@# table for stack traces. binutils comes with gcc (deps).
	strip -o $(BIN)/pkg/drover $(BIN)/drover
	strip -o $(BIN)/pkg/myapp $(BIN)/example-worker
	$(BIN)/drover man | gzip -9n > $(BIN)/pkg/drover.1.gz
	@# Completion scripts, made by the binary they complete.
	for sh in bash zsh fish; do $(BIN)/drover completion $$sh > $(BIN)/pkg/drover.$$sh || exit 1; done
	gzip -9n < packaging/myapp/myapp.1 > $(BIN)/pkg/myapp.1.gz
	packaging/changelog.sh drover $(PKG_VERSION)-1 > $(BIN)/pkg/drover.changelog.Debian.gz
	packaging/changelog.sh myapp $(PKG_VERSION)-1 > $(BIN)/pkg/myapp.changelog.Debian.gz
	for p in drover myapp; do \
		PKG_VERSION='$(PKG_VERSION)' PKG_ARCH=$(PKG_ARCH) PKG_BIN=$(BIN) \
		$(NFPM) package --config packaging/$$p.yaml --packager $@ --target $(DIST)/ || exit 1; \
	done

# lintian and rpmlint on the packages, their contents and scripts, and an
# RPM install, upgrade and erase in a scratch root (packaging/check.sh).
packages: deb rpm
	packaging/check.sh $(DIST) '$(PKG_VERSION)'

clean:
	rm -rf $(BIN) dist
