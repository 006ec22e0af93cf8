# recon — the two commands a newcomer needs are `make run` and `make test`.
SHELL := /bin/bash
export DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/recon
DEMO_DATE := 2025-01-15
STORE := ./.recon/store
CARGO ?= cargo
BENCH_N ?= 1000000

.PHONY: run test fmt lint build bench bench-core clean-demo

## run: reconcile the bundled demo day (events/demo) through the real pipeline, local store + .eml outbox
run:
	@rm -rf $(STORE) && mkdir -p $(STORE) && cp -r events/demo/inbox $(STORE)/
	@$(CARGO) build -q -p recon-cli
	@scripts/with-postgres.sh ./target/debug/recon run --date $(DEMO_DATE) --grace-days 0 --store $(STORE)
	@echo; echo "Open the report.html above in a browser; the operations email is in ./.recon/outbox/."

## test: every test (unit, property, PostgreSQL integration, CLI end to end); starts PostgreSQL if needed
test:
	@scripts/with-postgres.sh scripts/with-moto.sh $(CARGO) test --workspace --no-fail-fast

fmt:
	$(CARGO) fmt --all

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

## build: release binary of the CLI
build:
	$(CARGO) build --release -p recon-cli

## bench: the peer kit (DuckDB, Polars) and recon on the same 1M-row day; prints the ratio table
bench:
	$(CARGO) build --release -q -p recon-cli
	scripts/with-postgres.sh ../shared/bench/bench.sh $(BENCH_N) $(CURDIR)/target/release/recon run --date 2025-06-02 \
	  --store DIR --processors stripe --grace-days 0 --format json --no-notify

## bench-core: criterion benchmarks of the matcher
bench-core:
	$(CARGO) bench -p recon-core
