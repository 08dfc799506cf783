# The README's commands: make run, make test, make bench.
SHELL := /bin/bash
GO ?= go
export PATH := $(shell $(GO) env GOPATH)/bin:$(PATH)
# Every module of the workspace: `go test ./...` at a workspace root matches nothing.
PKGS := $(addsuffix /...,$(shell $(GO) list -m -f '{{.Dir}}'))
SERVICES := ticker sla reminders analytics gateway

.PHONY: run cluster build test vet bench tools clean

## run: the whole system in one process (NATS, PostgreSQL, demo data, all services)
run:
	@mkdir -p bin
	$(GO) build -o bin/devstack ./cmd/devstack
	./bin/devstack

## cluster: the production topology on this machine, every service a process of its own: three NATS nodes, two of each service
cluster: build
	./bin/devstack -cluster

## build: one binary per service, natsadmin (declares the streams; prints the NATS config), for running them separately or in containers;
## and nats-server, built from the version the project depends on (internal/go.mod), for make cluster
build:
	@mkdir -p bin
	@for s in $(SERVICES); do echo "go build -o bin/$$s ./services/$$s/cmd/$$s"; $(GO) build -o bin/$$s ./services/$$s/cmd/$$s || exit 1; done
	$(GO) build -o bin/natsadmin ./cmd/natsadmin
	$(GO) build -o bin/devstack ./cmd/devstack
	$(GO) build -o bin/nats-server github.com/nats-io/nats-server/v2

vet:
	$(GO) vet $(PKGS)

## test: every test, with the race detector, against real NATS, PostgreSQL and Chromium (and the nats CLI, which tools installs)
test: vet tools
	$(GO) test -race -count=1 -timeout 30m $(PKGS)

## bench: speed targets, as ratios to a baseline measured in the same run; ends with one table (value, baseline, ratio, target).
## -p 1: one package's benchmarks at a time, none sharing the 2 cores with another's (or with a build)
bench:
	@mkdir -p .artifacts
	@cat /proc/loadavg > .artifacts/load-before 2>/dev/null || true
	set -o pipefail; $(GO) test -p 1 -run '^$$' -bench . -benchmem -count=1 -timeout 60m $(PKGS) | tee .artifacts/bench.txt
	set -o pipefail; $(GO) run ./cmd/benchtable -load-before "$$(cat .artifacts/load-before 2>/dev/null)" .artifacts/bench.txt | tee .artifacts/bench-table.md

## tools: what the tests need beyond Go that go install can bring, into GOPATH/bin (make test runs it, as root or not)
tools:
	@command -v nats >/dev/null && nats --version 2>&1 | grep -q '0.5.0' || $(GO) install github.com/nats-io/natscli/nats@v0.5.0

clean:
	rm -rf bin .artifacts
