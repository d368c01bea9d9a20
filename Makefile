# Gavel: the user's entry points. `make demo` runs the pipeline on the local
# stack; `make test` runs every test against it. Both start what is missing.

.PHONY: demo test stack-up stack-down stack-status stack-reset build lint bench container-smoke

demo:
	@bash deploy/local/demo.sh

test:
	@bash deploy/local/test.sh

stack-up:
	@bash deploy/local/stack.sh up

stack-down:
	@bash deploy/local/stack.sh down

stack-status:
	@bash deploy/local/stack.sh status

stack-reset:
	@bash deploy/local/reset.sh

build:
	@bash deploy/local/build.sh

# The image built with podman from the Dockerfile and the workers run from it
# against the local stack (also the last step of `make test`).
container-smoke:
	@bash deploy/local/stack.sh up
	@bash deploy/local/build.sh
	@bash deploy/container/smoke.sh

lint:
	cargo fmt --all -- --check
	cargo clippy --release --workspace --all-targets -- -D warnings

# Every benchmark in one run; report under bench/reports/. Flags for
# `gavel bench run` go in ARGS, e.g. make bench ARGS="--commands 50000".
bench:
	@bash deploy/local/bench.sh run $(ARGS)
