# Portal: make help lists the targets.
SHELL := /bin/bash
BIN   := $(CURDIR)/bin
GOMICRO_GEN := v4.7.0
# staticcheck's module version (release 2025.1 line), built into bin/.
STATICCHECK := v0.8.2
PROTOS := user system runtime oidc
# Further .proto files of a package, generated beside its main one.
EXTRA_PROTOS := user/accounts user/passkeys

.PHONY: help build run test test-deploy k8s test-repeat test-race bench bench-quick faults lint staticcheck licenses proto proto-check tools clean screenshots

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

# The "up" tag adds portal up's embedded etcd and NATS (internal/supervisor/
# embed.go); a plain go build or go run leaves them out.
TAGS := up

build: ## build bin/portal, with portal up's embedded etcd and NATS (-tags up)
	@echo "building bin/portal (the first build compiles about 920 packages: a few minutes on a fresh machine)"
	go build -tags $(TAGS) -o $(BIN)/portal ./cmd/portal

run: build ## run Portal, all services in one process, on :8080
	$(BIN)/portal

# go test -json through scripts/testsummary: each package's result, the
# output of failed tests, then every skipped test with its reason and an
# "N passed, N failed, N skipped" line; the raw events stay in
# bin/test/last-run.json (every test's time and output). SUMMARY_FLAGS=-fail-on-skip (CI)
# fails the run on any skip.
SUMMARY_FLAGS ?=
# Parallel tests run at once per package. go test's default is the number of
# cores (2 here), but most of these tests wait (on processes, servers,
# timeouts) rather than compute. internal/portal schedules its own: this many
# of its tests at once (portal.ScheduleParallel), and its browser tests beside
# them, two Chromiums at once (browserSlots).
PARALLEL := 3
# Named first, go test builds and starts them first, longest first:
# internal/portal's run is the suite's critical path, and the other packages
# link and run beside it, so that none of them is left to run alone after it.
FIRST_PKGS := ./internal/portal/ ./internal/platform/ ./internal/audit/ ./internal/supervisor/ ./internal/user/ ./internal/config/ ./internal/web/
# Packages linked or run at once (go test's -p; its default is the number of
# cores). With two, internal/portal held one slot for its whole run and the
# other 34 packages queued for the second, and the cores idled while its
# tests waited on servers. With three the cores are busy to the end.
PKGS_AT_ONCE := 3
# go test's flags for make test and test-race. -tags up: portal up's
# embedded etcd and NATS are in the test binaries, as in the portal build the
# tests run (TestRunInProcess runs the supervisor in the test process).
# -vet=off: make lint runs go vet (every analyzer, both tag sets); go test's
# own vet pass repeated a subset of it on every package, 10 s of CPU.
# -ldflags=-w: no DWARF in the test binaries, which every run links again (a
# fifth of each link; panics read the symbol table, not DWARF). Debug a test
# binary with a plain go test -c.
TEST_FLAGS := -tags $(TAGS) -p $(PKGS_AT_ONCE) -count=1 -parallel $(PARALLEL) -vet=off -ldflags=-w -timeout 15m -json
# make test compiles with go build's defaults, no -race: the tests run the
# portal (and NATS) as processes built with those defaults
# (testenv.BuildPortal), so one compile of every package serves both, and
# make lint's go vet and staticcheck (go list -export) compile the same.
# With -race the test binaries and the processes were two compiles of about
# 920 packages each: on a slow two-core machine a new machine's make test
# took 457-513 s, most of it those two compiles. The race detector runs in
# make test-race (CI runs it on every change), over every package.
#
# What the test binaries and the portal build import, without the commands
# (go build would link them) and the test variants (go test compiles those
# itself); with -tags up, so that portal up's embedded etcd and NATS, which
# the shared portal build has, are in it.
TEST_IMPORTS := go list -tags $(TAGS) -e -deps -test -f '{{if not (or (eq .Name "main") .ForTest)}}{{.ImportPath}}{{end}}' ./...

# On a new machine, installing the Debian packages (about 20 s of apt) and
# go test's first compile overlap: go build compiles what the test binaries
# and the shared portal build import (the most of go test's work on an
# empty build cache) while scripts/deps.sh installs; go test then starts on
# a warm cache.
test: $(BIN)/testsummary ## run every test (installs chromium and the servers when missing); ends with the skipped tests
	@mkdir -p $(BIN)/test
	@if ./scripts/deps.sh --check; then :; else \
	  echo "compiling what the tests import while scripts/deps.sh installs (output: bin/test/prebuild.log)"; \
	  go build -tags $(TAGS) $$($(TEST_IMPORTS)) > $(BIN)/test/prebuild.log 2>&1 & pid=$$!; \
	  ./scripts/deps.sh; st=$$?; wait $$pid; exit $$st; \
	fi
	set -o pipefail; go test $(TEST_FLAGS) $(FIRST_PKGS) ./... | tee $(BIN)/test/last-run.json | $(BIN)/testsummary $(SUMMARY_FLAGS)

# deploy/helm/check is a module of its own (Helm's library and k8s.io/api
# stay out of Portal's go.mod): the chart renders, every object decodes
# strictly, the restricted profile, the NetworkPolicies, deploy/k8s is the
# chart's output, compose.yaml's files come from gen-certs.sh.
test-deploy: ## check the Helm chart, deploy/k8s and compose.yaml offline (deploy/helm/check)
	cd deploy/helm/check && go test -count=1 ./...

k8s: ## render deploy/k8s/portal.yaml from the Helm chart deploy/helm/portal
	cd deploy/helm/check && go test -count=1 -run TestManifestsUpToDate ./... -update

N ?= 5
test-repeat: ## run the whole suite N times (default 5), stopping at the first failure: a flake is a defect
	@for i in $$(seq $(N)); do t0=$$(date +%s); echo "=== test-repeat: run $$i of $(N)"; $(MAKE) --no-print-directory test || exit 1; echo "=== test-repeat: run $$i of $(N) passed in $$(( $$(date +%s) - t0 )) s"; done

# The race detector sleeps a second as a test binary exits (atexit_sleep_ms,
# 1000 by default) so that goroutines still running can report a race: a
# second of nothing per package. A race while a test runs fails that test,
# whatever this says; the packages that start servers fail if a goroutine
# outlives their tests (leak.VerifyTestMain), so little is left running to
# race at exit. A GORACE of your own comes after this one and wins.
export GORACE := atexit_sleep_ms=0 $(GORACE)

# The whole suite again, with the race detector (TestRunInProcess runs the
# supervisor and its embedded servers under it), and without DWARF in the
# compiler's output (-dwarf=false), which nothing reads: that race compile
# took 141 + 25 s of CPU with it and 113 + 21 s without. The processes the
# tests start are the shared non-race build (a race-built portal made
# TestDistributed 54 -> 135 s). CI runs it after make test, so the slowest
# packages run twice.
test-race: $(BIN)/testsummary ## run every test again with the race detector (CI runs it)
	@./scripts/deps.sh
	set -o pipefail; go test -race -gcflags=all=-dwarf=false $(TEST_FLAGS) $(FIRST_PKGS) ./... | $(BIN)/testsummary $(SUMMARY_FLAGS)

$(BIN)/testsummary: scripts/testsummary/main.go
	go build -o $@ ./scripts/testsummary

# BENCH_FLAGS: more flags for bench/ (go run ./bench -h lists them).
bench: ## the benchmark harness: Portal vs a one-process baseline, logins, embedded mode, store growth, gRPC vs mucp; markdown tables on stdout (~7 min)
	@./scripts/deps.sh etcd redis-server
	@go run ./bench $(BENCH_FLAGS)

bench-quick: ## the benchmark harness with short runs, for development (~1 min)
	@./scripts/deps.sh etcd redis-server
	@go run ./bench -quick $(BENCH_FLAGS)

screenshots: ## refresh the README's screenshots (docs/screenshots/*.png) from the browser test
	PORTAL_SCREENSHOTS=$(CURDIR)/docs/screenshots PORTAL_REQUIRE_BROWSER=1 go test -count=1 -run TestBrowserPages ./internal/portal/

# FAULT_FLAGS: more flags for the fault run (go run ./bench faults -h lists them).
faults: ## the fault run: kill -9, SIGTERM, etcd, Redis and NATS outages, a slow Redis under steady load; a markdown table on stdout (~3 min)
	@./scripts/deps.sh etcd redis-server
	@go run ./bench faults $(FAULT_FLAGS)

# The chart's checks are a lint of deploy/ (like helm lint: render, decode,
# policy), not a test of Portal; they compile Helm and k8s.io/api, three
# minutes of a fresh machine's two cores, so make test leaves them to lint.
lint: proto-check staticcheck licenses test-deploy ## go vet, gofmt, staticcheck, dependency licences, the chart's offline checks, govulncheck against the offline database
	go vet ./...
	go vet -tags $(TAGS) ./...
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '\.pb\.')); if [ -n "$$out" ]; then echo "gofmt: $$out"; exit 1; fi
	./scripts/vulncheck.sh

staticcheck: $(BIN)/staticcheck-$(STATICCHECK) ## staticcheck (pinned, built into bin/); fails on any finding
	$(BIN)/staticcheck-$(STATICCHECK) -tags $(TAGS) ./...

$(BIN)/staticcheck-$(STATICCHECK):
	GOBIN=$(BIN)/.staticcheck go install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK)
	mv $(BIN)/.staticcheck/staticcheck $@ && rmdir $(BIN)/.staticcheck

licenses: ## list every dependency's licence; fail on an unknown or incompatible one
	./scripts/licenses.sh

tools: $(BIN)/protoc-gen-go $(BIN)/protoc-gen-micro ## build the protoc plugins into bin/

$(BIN)/protoc-gen-go:
	GOBIN=$(BIN) go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12

# The module proxy refuses github.com/go-micro/generator here: build
# protoc-gen-micro from go-micro itself.
$(BIN)/protoc-gen-micro:
	go mod download go-micro.dev/v4@$(GOMICRO_GEN)
	cd $$(go env GOMODCACHE)/go-micro.dev/v4@$(GOMICRO_GEN) && GOFLAGS=-mod=mod go build -o $(BIN)/protoc-gen-micro ./cmd/protoc-gen-micro

proto: tools ## regenerate proto/*/*.pb.go and *.pb.micro.go from the .proto files
	@command -v protoc >/dev/null || { echo "protoc missing: apt-get install protobuf-compiler"; exit 1; }
	for p in $(PROTOS); do \
	  protoc --proto_path=. --plugin=protoc-gen-go=$(BIN)/protoc-gen-go --plugin=protoc-gen-micro=$(BIN)/protoc-gen-micro \
	    --go_out=. --go_opt=paths=source_relative --micro_out=. --micro_opt=paths=source_relative proto/$$p/$$p.proto || exit 1; \
	done
	for p in $(EXTRA_PROTOS); do \
	  protoc --proto_path=. --plugin=protoc-gen-go=$(BIN)/protoc-gen-go --plugin=protoc-gen-micro=$(BIN)/protoc-gen-micro \
	    --go_out=. --go_opt=paths=source_relative --micro_out=. --micro_opt=paths=source_relative proto/$$p.proto || exit 1; \
	done

proto-check: proto ## fail when the generated code differs from the .proto files
	@git diff --exit-code -- proto/ || { echo "generated code drifted from proto/*.proto: run make proto and commit"; exit 1; }

clean: ## remove build output (bin/: tools, the tests' shared portal build)
	rm -rf $(BIN)
