#!/usr/bin/env bash
# Create or update the project's virtual environment (.venv).
#   scripts/bootstrap.sh runtime   # the service and its engines
#   scripts/bootstrap.sh dev       # the same plus test and lint tools
# Idempotent: a second run only installs what changed. Nothing outside the repository is modified except
# Debian packages the test suite needs (PostgreSQL), which scripts/test.sh installs when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-runtime}"
python="${PYTHON:-python3.11}"
command -v "$python" >/dev/null 2>&1 || python=python3
"$python" - <<'PY'
import sys
if sys.version_info[:2] != (3, 11):
    sys.exit(f"AutoML Orchestra needs Python 3.11 (found {sys.version.split()[0]}); set PYTHON=/path/to/python3.11")
PY
if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv with $("$python" --version)"
  "$python" -m venv .venv
fi
export PIP_DISABLE_PIP_VERSION_CHECK=1
.venv/bin/python -m pip install --quiet --upgrade pip
extras=""
[ "$mode" = "dev" ] && extras="[dev]"
echo "==> installing automl-orchestra${extras} into .venv"
.venv/bin/python -m pip install --quiet -e ".${extras}"
echo "==> ready: $(.venv/bin/orchestra --version 2>/dev/null || echo automl-orchestra)"
