# The Makefile is the contract: make demo, make test, make bench, make lint.
GO      ?= go
CUE_VERSION := v0.17.1
export PATH := $(CURDIR)/bin:$(PATH)

.PHONY: all build test lint bench bench-eval bench-deploy demo clean

all: build

build:
	$(GO) build -o bin/deploy ./cmd/deploy
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

bench-eval: build bin/cue
	@echo "bench-eval: not yet wired"

bench-deploy: build
	@echo "bench-deploy: not yet wired"

# A real deployment of examples/forum on a local fleet; installs what is
# missing first (as root, on Debian).
demo: build
	bash examples/demo.sh

clean:
	rm -rf bin .fleet
