# Portal: make help lists the targets.
SHELL := /bin/bash
BIN   := $(CURDIR)/bin
GOMICRO_GEN := v4.7.0
PROTOS := user system runtime

.PHONY: help build run test bench bench-quick lint proto proto-check tools clean screenshots

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

build: ## build bin/portal
	go build -o $(BIN)/portal ./cmd/portal

run: build ## run Portal, all services in one process, on :8080
	$(BIN)/portal

test: ## run every test with the race detector (installs chromium for the browser test when missing)
	./scripts/deps.sh
	go test -race -count=1 -timeout 15m ./...

# BENCH_FLAGS: more flags for bench/ (go run ./bench -h lists them).
bench: ## the benchmark harness: Portal vs a one-process baseline, logins, embedded mode; markdown tables on stdout (~5 min)
	@./scripts/deps.sh etcd redis-server nats-server
	@go run ./bench $(BENCH_FLAGS)

bench-quick: ## the benchmark harness with short runs, for development (~1 min)
	@./scripts/deps.sh etcd redis-server nats-server
	@go run ./bench -quick $(BENCH_FLAGS)

screenshots: ## refresh the README's screenshots (docs/screenshots/*.png) from the browser test
	PORTAL_SCREENSHOTS=$(CURDIR)/docs/screenshots PORTAL_REQUIRE_BROWSER=1 go test -count=1 -run TestBrowserPages ./internal/portal/

lint: proto-check ## go vet, gofmt, govulncheck against the offline database
	go vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '\.pb\.')); if [ -n "$$out" ]; then echo "gofmt: $$out"; exit 1; fi
	./scripts/vulncheck.sh

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

proto-check: proto ## fail when the generated code differs from the .proto files
	@git diff --exit-code -- proto/ || { echo "generated code drifted from proto/*.proto: run make proto and commit"; exit 1; }

clean: ## remove build output
	rm -rf $(BIN)
