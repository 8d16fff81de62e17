# gradeflow: the single entry point for building, running, testing and
# benchmarking. `make run` brings the whole stack up; `make test` runs every
# test, end-to-end ones included. Both install what they need on a fresh
# Debian machine (Docker engine, PostgreSQL programs, Temporal CLI, base
# image, Hadoop jars).

SHELL      := /bin/bash
GO         ?= go
BIN        := $(CURDIR)/bin
GOBIN_DIR  := $(shell $(GO) env GOPATH)/bin
TEMPORAL_VERSION := v1.5.1
TEMPORAL_CLI ?= $(shell command -v temporal 2>/dev/null || echo $(GOBIN_DIR)/temporal)
IMAGE      ?= gradeflow/hadoop:dev
export TEMPORAL_CLI
export GRADEFLOW_IMAGE := $(IMAGE)

.PHONY: all build tools postgres docker images deploy-images deploy-test run scale test test-unit chaos bench bench-rush vet deps validate clean

all: build

## build: compile the worker, API, starter and the embedded MongoDB-compatible server into bin/
build: postgres
	$(GO) build -o $(BIN)/gradeflow-worker ./workers
	$(GO) build -o $(BIN)/gradeflow-api ./api
	$(GO) build -o $(BIN)/gradeflow-starter ./starter
	cd deploy/devstack && $(GO) build -o $(BIN)/gradeflow-mongod ./cmd/gradeflow-mongod

## tools: the Temporal CLI (dev server + Web UI), built from source with the Go proxy
tools: $(TEMPORAL_CLI)
$(TEMPORAL_CLI):
	GOBIN=$(GOBIN_DIR) GOFLAGS=-buildvcs=false $(GO) install github.com/temporalio/cli/cmd/temporal@$(TEMPORAL_VERSION)

## postgres: the PostgreSQL programs the embedded MongoDB-compatible server keeps its data in (installs postgresql-15 on Debian as root)
postgres:
	deploy/dev/ensure-postgres.sh

## docker: make sure a Docker engine runs (installs docker.io on Debian as root)
docker:
	deploy/dev/ensure-docker.sh

## images: the offline base image, the Hadoop runtime image, and gradeflow/hadoop-extra (the runtime image plus the Python packages of docker/image/extra/requirements.txt: how to build a per-assignment runtime image)
images: docker
	deploy/dev/build-images.sh
	deploy/dev/build-extra-image.sh

## deploy-images: the compose stack's images, built offline from the base image and the Go module proxy (Temporal server and Web UI, PostgreSQL, the store substitute, the programs)
deploy-images: tools images
	deploy/images.sh

## deploy-test: the compose stack for real: build its images, up, grade through the API, kill an execute replica, restart Temporal, Web UI filter, evaluation host, down -v
deploy-test: deploy-images
	deploy/deploy-test.sh

## run: bring up the whole stack, grade the bundled examples, stay up until Ctrl-C
run: build tools images
	deploy/dev/run.sh

## scale: set the number of extra execute workers of the running 'make run' stack: make scale N=4
scale:
	deploy/dev/scale.sh $(N)

## test: every test — vet, unit tests, and the stack tests (build tag "stack": API, store and end-to-end tests on the real stack)
test: build tools images vet validate
	$(GO) test -count=1 -tags stack -timeout 30m ./...
	cd deploy/devstack && $(GO) test -count=1 -timeout 10m ./...

## chaos: the fault tests at full strength (make test runs them with smaller counts)
chaos: build tools images
	CHAOS_KILLS=20 CHAOS_BURST=30 $(GO) test -count=1 -tags stack -timeout 60m -run 'TestChaos|TestWorkerKilled|TestHostile' -v ./test/

## test-unit: the tests that need nothing running (no Docker engine, Temporal or MongoDB): every test without the "stack" tag
test-unit: deps
	$(GO) test -count=1 ./...

## bench: performance figures on the real stack (see README "Performance")
bench: build tools images
	@mkdir -p .data
	set -o pipefail; $(P10_SMALL) $(GO) test -count=1 -tags stack -timeout 150m -run '^$$' -bench . -benchtime 1x ./test/... ./api/... | tee .data/bench.txt
	set -o pipefail; $(P10_SMALL) GRADEFLOW_FAIRNESS=off $(GO) test -count=1 -tags stack -timeout 60m -run '^$$' -bench P10 -benchtime 1x ./test/ | tee -a .data/bench.txt
	@echo; deploy/dev/bench-table.sh .data/bench.txt

# make bench runs the P10 rush at a sixth of the issue's size (300
# submissions from 75 students, 3 heavy, over 3 minutes: ~10 minutes of
# grading on 2 cores), with fair dispatch and then, on a stack of its own,
# without (GRADEFLOW_FAIRNESS=off: P10Rush/fifo); GRADEFLOW_P10_* set in the
# environment win.
P10_SMALL = GRADEFLOW_P10_SUBMISSIONS=$${GRADEFLOW_P10_SUBMISSIONS:-300} GRADEFLOW_P10_STUDENTS=$${GRADEFLOW_P10_STUDENTS:-75} \
	GRADEFLOW_P10_HEAVY=$${GRADEFLOW_P10_HEAVY:-3} GRADEFLOW_P10_MINUTES=$${GRADEFLOW_P10_MINUTES:-3}

## bench-rush: the P10 deadline rush at the issue's full size (2,000 submissions), with fair dispatch and then without (GRADEFLOW_FAIRNESS=off)
bench-rush: build tools images
	@mkdir -p .data
	set -o pipefail; $(GO) test -count=1 -tags stack -timeout 240m -run '^$$' -bench P10 -benchtime 1x ./test/ | tee .data/bench-rush.txt
	set -o pipefail; GRADEFLOW_FAIRNESS=off $(GO) test -count=1 -tags stack -timeout 240m -run '^$$' -bench P10 -benchtime 1x ./test/ | tee -a .data/bench-rush.txt
	@echo; deploy/dev/bench-table.sh .data/bench-rush.txt

## validate: the compose file and Kubernetes manifests, as far as this machine allows
validate:
	deploy/validate.sh

## vet: go vet of every package, stack tests included, and the dependency check
vet: deps
	$(GO) vet ./...
	$(GO) vet -tags stack ./...
	cd deploy/devstack && $(GO) vet ./...

## deps: the API and the starter must not link the Docker SDK (only workers run containers)
deps:
	@if $(GO) list -deps ./api ./starter | grep -q '^github.com/docker/docker'; then \
		echo "deps: the API or the starter links the Docker SDK:"; \
		$(GO) list -deps ./api ./starter | grep '^github.com/docker/docker' | head; exit 1; fi
	@echo "deps: api and starter are free of github.com/docker/docker"

clean:
	rm -rf $(BIN) .data
