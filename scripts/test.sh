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

echo "[lookalike] ruff check"
ruff check .
echo "[lookalike] ruff format --check"
ruff format --check .
echo "[lookalike] mypy shared/ services/"
mypy shared/ services/
echo "[lookalike] pytest"
python -m pytest "$@"
