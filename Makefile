# The two set-up commands of the README. Both work on a fresh clone and install everything they need.
.PHONY: serve test bench

serve:  ## install into .venv and run the service on 127.0.0.1:8080 with data in ./orchestra-data
	scripts/bootstrap.sh runtime
	.venv/bin/orchestra serve

test:  ## install the dev dependencies and run lint, types and the whole test suite
	scripts/test.sh

bench:  ## run the benchmarks (see benchmarks/README.md)
	scripts/bootstrap.sh dev
	.venv/bin/python -m benchmarks
