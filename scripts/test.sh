#!/usr/bin/env bash
# Lint, type-check and run every test suite (slow ones included). Arguments go to pytest,
# e.g. `scripts/test.sh -m "not slow"` for the quick loop.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh" dev
cd "$ROOT"

# Debian's Prometheus gives promtool and a real server for the deploy checks.
if ! command -v promtool >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "[lookalike] installing Debian's prometheus (promtool) for the deploy checks"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
    # The package starts a server on :9090 we do not want; the tests start their own.
    (systemctl stop prometheus || service prometheus stop || pkill -x prometheus) >/dev/null 2>&1 || true
  else
    echo "promtool is missing: install Debian's 'prometheus' package (or Prometheus' release)" >&2
    exit 1
  fi
fi

# Debian's Chromium for the browser test (Playwright drives it; no browser download).
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "[lookalike] installing Debian's chromium for the browser test"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "the browser test needs Debian's chromium at /usr/bin/chromium" >&2
    exit 1
  fi
fi

# Debian's MariaDB server for the backfill's database tests: the tests start mariadbd
# themselves, on a free port with a data folder of their own (never the system service).
if ! command -v mariadbd >/dev/null 2>&1 && [ ! -x /usr/sbin/mariadbd ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "[lookalike] installing Debian's mariadb-server for the backfill's database tests"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mariadb-server >/dev/null
    # Where the package starts its service, stop it: the tests start their own server.
    (systemctl stop mariadb || service mariadb stop) >/dev/null 2>&1 || true
  else
    echo "[lookalike] no mariadbd: the backfill's database tests will be skipped (install Debian's mariadb-server)"
  fi
fi

echo "[lookalike] ruff check"
ruff check .
echo "[lookalike] ruff format --check"
ruff format --check .
echo "[lookalike] mypy shared/ services/"
mypy shared/ services/
echo "[lookalike] pytest"
python -m pytest "$@"
