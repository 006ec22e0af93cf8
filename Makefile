# recon — the two commands a newcomer needs are `make run` and `make test`.
SHELL := /bin/bash
export DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/recon
DEMO_DATE := 2025-01-15
STORE := ./.recon/store
CARGO ?= cargo
BENCH_N ?= 1000000

.PHONY: run test arm64 fmt lint build watch invoke validate bench bench-split bench-core fuzz screenshots three-days deploy-local

## run: reconcile the bundled demo day (events/demo) through the real pipeline, local store + .eml outbox
run:
	@rm -rf $(STORE) && mkdir -p $(STORE) && cp -r events/demo/inbox $(STORE)/
	@$(CARGO) build -q -p recon-cli
	@scripts/with-postgres.sh ./target/debug/recon run --date $(DEMO_DATE) --grace-days 0 --store $(STORE)
	@echo; echo "Open the report.html above in a browser; the operations email is in ./.recon/outbox/."

## test: every test (unit, property, PostgreSQL, moto, CLI and Lambda end to end, the match Lambda's arm64
## build); starts what it needs
test:
	@scripts/validate.sh
	@scripts/deny.sh
	@scripts/with-postgres.sh scripts/with-moto.sh bash -c '$(CARGO) test --workspace --no-fail-fast && scripts/lambda-e2e.sh && scripts/sfn-e2e.sh && scripts/deploy-local.sh'
	@scripts/arm64-build.sh

## arm64: the match Lambda built for Lambda's arm64 with the CLI's allocator settings (Debian's rustc-web and
## its aarch64 std, zig as linker; part of `make test`)
arm64:
	@scripts/arm64-build.sh

## deploy-local: terraform apply of the dev stack onto moto, the demo day through it, a second plan (needs terraform)
deploy-local:
	@scripts/with-postgres.sh scripts/with-moto.sh scripts/deploy-local.sh

fmt:
	$(CARGO) fmt --all

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

## build: the Lambda zips (arm64, provided.al2023) and the release CLI
build:
	PATH=$(CURDIR)/target/tools/cargo-lambda/bin:$$PATH cargo lambda build --release --arm64 --output-format zip \
	  -p fetch-stripe -p fetch-paypal -p fetch-square -p fetch-ledger -p match -p notify -p s3-trigger
	$(CARGO) build --release -p recon-cli

## watch: serve the functions locally (cargo lambda watch) against moto and PostgreSQL
watch:
	scripts/with-postgres.sh scripts/with-moto.sh env PATH=$(CURDIR)/target/tools/cargo-lambda/bin:$$PATH \
	  cargo lambda watch --invoke-address 127.0.0.1 --invoke-port 9000

## invoke: FN=match EVENT=events/match/demo-stripe.json (with `make watch` running)
invoke:
	PATH=$(CURDIR)/target/tools/cargo-lambda/bin:$$PATH cargo lambda invoke $(FN) --invoke-address 127.0.0.1 \
	  --invoke-port 9000 --data-file $(EVENT)

## validate: state machine (asl-validator, statelint) and Terraform (checkov, python-hcl2) checks
validate:
	@scripts/validate.sh

## bench: the peer kit (DuckDB, Polars, DataFusion, chDB) and recon on the same 1M-row day; prints the ratio
## table. recon records its runs in a database of its own, recon_bench, dropped first (figures independent of
## what other runs left; the kit's first run is a day's first run, the others reruns)
bench:
	$(CARGO) build --release -q -p recon-cli
	scripts/with-postgres.sh scripts/fresh-database.sh recon_bench ../shared/bench/bench.sh $(BENCH_N) $(CURDIR)/target/release/recon run --date 2025-06-02 \
	  --store DIR --processors stripe --grace-days 0 --format json --no-notify

## bench-split: a sharded BENCH_N-row day worker by worker (PARTITIONS, RANGE_BYTES): each Lambda step a process,
## its peak memory, time and object requests; the merged run checked equal to the whole one
PARTITIONS ?= 16
RANGE_BYTES ?= 16777216
bench-split:
	$(CARGO) build --release -q -p recon-cli
	@kit=$(CURDIR)/../shared/bench; root=$${BENCH_HOME:-/tmp/recon-bench}; \
	  data=$$root/data/$(BENCH_N)-$$(sha256sum $$kit/gen.py | cut -c1-12); \
	  if [ ! -f $$data/expected.json ]; then \
	    [ -x $$root/venv/bin/python ] || { echo "run make bench BENCH_N=$(BENCH_N) once first (it installs the kit)"; exit 2; }; \
	    $$root/venv/bin/python $$kit/gen.py --rows $(BENCH_N) --out $$data.tmp >/dev/null && mv $$data.tmp $$data; fi; \
	  scripts/with-postgres.sh scripts/bench-split.py $(CURDIR)/target/release/recon $$data \
	    --partitions $(PARTITIONS) --range-bytes $(RANGE_BYTES)

## bench-core: criterion benchmarks of the matcher (whole and partitioned), of the parsers and of the write side
## (reports; recording a run in PostgreSQL from DATABASE_URL's server, started if needed)
bench-core:
	$(CARGO) bench -p recon-core -p recon-sources
	scripts/with-postgres.sh $(CARGO) bench -p recon-app --bench write

## fuzz: every parser's fuzz target for FUZZ_SECONDS each (cargo-fuzz; not part of `make test`)
FUZZ_SECONDS ?= 60
fuzz:
	command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked --version 0.13.1
	cd fuzz && for t in detect_and_parse ledger_csv stripe_report_csv paypal_settlement json_pages money; do \
	  RUSTC_BOOTSTRAP=1 cargo fuzz run $$t -- -max_total_time=$(FUZZ_SECONDS) || exit 1; done

## screenshots: the worked three-day example's report (16th) and email (18th) rendered to PNG by headless Chromium
screenshots:
	@$(CARGO) build -q -p recon-cli
	@scripts/with-postgres.sh scripts/three-days.sh --screenshots

## three-days: the README's worked example of items across days (its own database and store)
three-days:
	@$(CARGO) build -q -p recon-cli
	@scripts/with-postgres.sh scripts/three-days.sh
