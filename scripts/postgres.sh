# Sourced by scripts/test.sh: make sure a PostgreSQL server is available to the tests and export
# ORCHESTRA_TEST_POSTGRES_URL. Installs Debian's postgresql package when no server binaries exist.
ensure_postgres() {
  if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      echo "==> installing PostgreSQL (Debian package)"
      DEBIAN_FRONTEND=noninteractive apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    else
      echo "PostgreSQL server binaries are missing: install the 'postgresql' package and re-run" >&2
      return 1
    fi
  fi
  # The tests start a private throw-away cluster from these binaries (tests/conftest.py), so nothing
  # system-wide is configured or left running.
  echo "==> PostgreSQL: $(ls -d /usr/lib/postgresql/*/bin | tail -n 1)"
}
