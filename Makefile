# The Makefile is the contract: make demo, make test, make bench, make lint.
GO      ?= go
CUE_VERSION := v0.17.1
export PATH := $(CURDIR)/bin:$(PATH)

.PHONY: all build test lint bench bench-eval bench-deploy demo clean

all: build

# deploy version prints VERSION; without git it falls back to what the Go
# toolchain recorded in the binary.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null)

build:
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o bin/deploy ./cmd/deploy
	$(GO) build -o bin/localfleet ./cmd/localfleet

# Every test, end to end included. The end-to-end tests need root, nix-bin
# and openssh-server (.ci/run installs them); outside CI they skip, saying
# what is missing.
test: build lint
	$(GO) test -count=1 -timeout 20m ./...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

bench: bench-eval bench-deploy

bin/cue:
	GOBIN=$(CURDIR)/bin $(GO) install cuelang.org/go/cmd/cue@$(CUE_VERSION)

# deploy eval --json against cue export of the same generated package, for
# 100, 1000 and 5000 hosts: wall time, peak memory, ratios.
bench-eval: build bin/cue
	$(GO) run ./cmd/evalbench -deploy bin/deploy -cue bin/cue

# deploy against a serial shell loop (nix-build, nix-copy-closure, ssh) on
# two local fleets of 20 hosts: first deploy and no-op, as ratios. Root.
bench-deploy: build
	$(GO) build -o bin/deploybench ./cmd/deploybench
	bin/deploybench --deploy bin/deploy

# A real deployment of examples/forum on a local fleet; installs what is
# missing first (as root, on Debian).
demo: build
	bash examples/demo.sh

clean:
	rm -rf bin .fleet
