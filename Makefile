# Everything CI runs is `make test`. See README.md.
SHELL := /bin/bash
CARGO ?= cargo
export CARGO_TERM_COLOR ?= never

.PHONY: test fmt-check clippy test-rust test-e2e venv dev fmt bench openapi token

## make test: format check, clippy (warnings are errors), every cargo test against a
## fresh moto, then the browser and schemathesis checks against a real local gateway.
test: venv fmt-check clippy test-rust test-e2e

venv:
	@scripts/ensure-venv.sh

fmt-check:
	$(CARGO) fmt --all -- --check

fmt:
	$(CARGO) fmt --all

clippy:
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

test-rust:
	scripts/with-moto.sh $(CARGO) test --workspace --locked --no-fail-fast

test-e2e:
	scripts/with-moto.sh scripts/e2e-external.sh

## make dev: moto + table + Cognito pool + demo user, and the local gateway on 127.0.0.1:3000.
dev: venv
	scripts/dev.sh

## make bench: criterion benchmarks of the authorizer's hot paths (loopback only, bounded).
bench:
	$(CARGO) bench -p authorizer --bench decision -- --warm-up-time 1 --measurement-time 3

## make openapi: regenerate the committed OpenAPI document (docs/openapi.json).
openapi:
	$(CARGO) run -q -p local-gateway --example write-openapi

## make token [LOGIN=demo PASSWORD=…]: a fresh Cognito access token from the running `make dev`.
token:
	@$(CARGO) run -q -p local-gateway -- token $(LOGIN) $(PASSWORD)
