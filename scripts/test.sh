#!/usr/bin/env bash
# Run every check the project has: lint, types, and the whole test suite against real servers, real
# workers, real SQLite and a real PostgreSQL (installed here from Debian's packages when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh dev
source scripts/postgres.sh
ensure_postgres
echo "==> ruff"
.venv/bin/ruff check src tests benchmarks examples
.venv/bin/ruff format --check src tests benchmarks examples
echo "==> mypy"
.venv/bin/mypy
echo "==> pytest"
.venv/bin/python -m pytest "$@"
