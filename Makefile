# Everything CI runs is `make test`. See README.md.
SHELL := /bin/bash
CARGO ?= cargo
PNPM := $(CURDIR)/.tools/node_modules/.bin/pnpm
PNPM_VERSION := 10.34.8
export CARGO_TERM_COLOR ?= never

.PHONY: lint-workflows test test-long threat-model fmt-check clippy test-rust test-e2e test-infra test-examples venv dev fmt bench generated token hooks lambdas

## make test: format check, clippy (warnings are errors), every cargo test against a
## fresh moto, then the browser and schemathesis checks against a real local gateway.
## Each phase announces itself (==> [n/9] name) and prints its time (scripts/phases.sh).
TEST_PHASES := venv fmt-check clippy threat-model lint-workflows test-rust test-e2e test-infra test-examples
test:
	@MAKE="$(MAKE)" scripts/phases.sh $(TEST_PHASES)

## The GitHub workflows: actionlint (syntax, expressions, shellcheck) and zizmor
## (pins, permissions, injection), plus the pipeline-ordering test.
lint-workflows: venv
	scripts/lint-workflows.sh

## The Node.js business-Lambda example against the committed context contract.
test-examples:
	node --test examples/node-context/

## make test-long: the same suites at full scale (bit flips 10^5, load 60 s, …).
test-long:
	AGPAT_LONG_TESTS=1 $(MAKE) test

## Every test named in threat-model.md must exist.
threat-model:
	python3 scripts/check-threat-model.py

venv:
	@scripts/ensure-venv.sh

fmt-check:
	$(CARGO) fmt --all -- --check

fmt:
	$(CARGO) fmt --all

clippy:
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings
	scripts/check-context-slim.sh

test-rust:
	scripts/with-moto.sh $(CARGO) test --workspace --locked --no-fail-fast -- --show-output

test-e2e:
	scripts/with-moto.sh scripts/e2e-external.sh

## The CDK app: typecheck, lint, format check, Jest (assertions + cdk-nag), the release hook's
## node tests, synth, cfn-lint, checkov.
test-infra: venv $(PNPM)
	cd infra && $(PNPM) install --frozen-lockfile --reporter=append-only
	cd infra && $(PNPM) run build && $(PNPM) run lint && $(PNPM) run format:check
	cd infra && $(PNPM) test
	cd infra && node --test test/hooks/
	cd infra && CDK_DISABLE_VERSION_CHECK=1 $(PNPM) run synth && $(PNPM) run cfn-lint
	scripts/check-iac.sh infra/cdk.out

# pnpm from the npm registry into a project-local prefix (corepack's signature
# check fails on some Node 20 installs).
$(PNPM):
	npm install --silent --no-audit --no-fund --prefix .tools pnpm@$(PNPM_VERSION)

## make dev: venv, build, moto + table + Cognito pool + demo user, and the local gateway on
## 127.0.0.1:3000; scripts/dev.sh shows each step ([n/6]) and cargo's own progress.
dev:
	@scripts/dev.sh

## make bench: every figure of BENCHMARKS.md and issue #17 in one run (criterion, aws-jwt-verify
## side by side, cold start, RSS, x86_64 and arm64 sizes, pinned gateway throughput, fleet model),
## each step bounded in time, loopback only. Raw output in target/bench/; then BENCHMARKS.md's
## marked tables are refreshed from it. `scripts/bench.sh STEP...` runs single steps.
bench: venv
	scripts/bench.sh

## make generated: regenerate the committed files derived from code (OpenAPI document, route manifest).
generated:
	$(CARGO) run -q -p local-gateway --example write-generated

## make token [LOGIN=demo PASSWORD=…]: a fresh Cognito access token from the running `make dev`.
token:
	@$(CARGO) run -q -p local-gateway -- token $(LOGIN) $(PASSWORD)

## make hooks: install the pre-commit (fmt, clippy, infra lint) and commit-msg (Conventional Commits) hooks.
hooks:
	git config core.hooksPath scripts/hooks

## make lambdas: release builds for provided.al2023/arm64 into target/lambda (needs cargo-lambda).
lambdas:
	scripts/build-lambdas.sh
