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
# torch first, by its exact version: pip then takes the local CPU wheel (find-links) instead of resolving a
# CUDA build with GBs of dependencies while solving the rest.
.venv/bin/python -m pip install --quiet "torch==2.13.0"
echo "==> installing automl-orchestra${extras} into .venv"
.venv/bin/python -m pip install --quiet -e ".${extras}"
# Engine environments (docs/architecture.md): one virtualenv .venv-NAME per environments/NAME/requirements.txt,
# holding that engine's pinned stack plus this package without its dependencies; the server finds them
# beside .venv. Re-installed only when the requirements file changed.
for requirements in environments/*/requirements.txt; do
  [ -e "$requirements" ] || continue
  name="$(basename "$(dirname "$requirements")")"
  venv=".venv-$name"
  stamp="$venv/.requirements.sha256"
  wanted="$(sha256sum "$requirements" | cut -d' ' -f1)"
  if [ ! -x "$venv/bin/python" ]; then
    echo "==> creating engine environment $venv"
    "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --upgrade pip
  fi
  if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
    echo "==> installing engine environment '$name' from $requirements (a few minutes the first time)"
    "$venv/bin/python" -m pip install --quiet -r "$requirements"
    echo "$wanted" > "$stamp"
  fi
  "$venv/bin/python" -m pip install --quiet --no-deps -e .
done
if ! command -v java >/dev/null 2>&1; then
  # H2O's engine runs a JVM (Java 17).
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "==> installing a Java runtime for H2O (Debian package)"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless >/dev/null
  else
    echo "warning: no 'java' on PATH: the h2o engine will fail until a Java 17 runtime is installed" >&2
  fi
fi
echo "==> ready: $(.venv/bin/orchestra --version 2>/dev/null || echo automl-orchestra)"
