#!/usr/bin/env bash
# Lint, type-check and run every test suite (slow ones included). Arguments go to pytest,
# e.g. `scripts/test.sh -m "not slow"` for the quick loop.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh" dev
cd "$ROOT"

# --- Prometheus (promtool and a real server) for the deploy checks --------------------------
# Taken from the files of Debian's `prometheus` package, never installed: installing it would
# start a system service and enable it for every boot. The package is downloaded once and
# unpacked into .cache/debian/prometheus (git-ignored); its usr/bin goes first on PATH for this
# run. Both binaries need only libc. A promtool and prometheus already on PATH are used as they
# are; LOOKALIKE_PROMETHEUS_FROM_DEBIAN=1 takes Debian's files anyway.
PROMETHEUS_TREE="${LOOKALIKE_DEBIAN_CACHE:-$ROOT/.cache/debian}/prometheus"
unpack_debian_prometheus() {
  local work
  if ! command -v apt-get >/dev/null 2>&1 || ! command -v dpkg-deb >/dev/null 2>&1; then
    echo "promtool and prometheus are missing: put them on PATH (Prometheus' release" \
      "tarball has both), or run on Debian/Ubuntu where this script takes Debian's" >&2
    return 1
  fi
  if ! apt-cache show prometheus >/dev/null 2>&1; then
    if [ "$(id -u)" != 0 ]; then
      echo "apt does not know the prometheus package yet: run 'apt-get update' as root" >&2
      return 1
    fi
    echo "[lookalike] apt-get update (package lists, to find Debian's prometheus package)"
    apt-get update -qq >/dev/null
  fi
  echo "[lookalike] downloading Debian's prometheus package to unpack promtool and" \
    "prometheus into $PROMETHEUS_TREE (the package is not installed: no system service)"
  work="$PROMETHEUS_TREE.partial"
  rm -rf "$work"
  mkdir -p "$work"
  (
    download="$(mktemp -d)" # under /tmp: apt's own download user can reach it
    trap 'rm -rf "$download"' EXIT
    if [ "$(id -u)" = 0 ] && id _apt >/dev/null 2>&1; then chown _apt "$download"; fi
    cd "$download"
    apt-get download -qq prometheus >/dev/null
    dpkg-deb -x prometheus_*.deb "$work/tree"
  )
  "$work/tree/usr/bin/promtool" --version >/dev/null
  "$work/tree/usr/bin/prometheus" --version >/dev/null
  rm -rf "$PROMETHEUS_TREE"
  mv "$work/tree" "$PROMETHEUS_TREE" # whole or not at all, so a broken unpack is not reused
  rmdir "$work"
}
if [ -n "${LOOKALIKE_PROMETHEUS_FROM_DEBIAN:-}" ] ||
  ! command -v promtool >/dev/null 2>&1 || ! command -v prometheus >/dev/null 2>&1; then
  if [ ! -x "$PROMETHEUS_TREE/usr/bin/promtool" ] || [ ! -x "$PROMETHEUS_TREE/usr/bin/prometheus" ]; then
    unpack_debian_prometheus
  fi
  export PATH="$PROMETHEUS_TREE/usr/bin:$PATH"
fi
echo "[lookalike] using $(command -v promtool) ($(promtool --version 2>&1 | head -n 1))"
# --- end of Prometheus ---------------------------------------------------------------------

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
# themselves, on a free port with a data folder of their own. The package's own service is
# neither started (policy-rc.d refuses it during the install) nor enabled for the next boot.
if ! command -v mariadbd >/dev/null 2>&1 && [ ! -x /usr/sbin/mariadbd ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "[lookalike] installing Debian's mariadb-server for the backfill's database tests" \
      "(its system service is not started or enabled: the tests run their own server)"
    apt-get update -qq >/dev/null
    policy=/usr/sbin/policy-rc.d
    made_policy=""
    if [ ! -e "$policy" ]; then
      printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && made_policy=1
      trap 'rm -f "$policy"' EXIT # gone even if the install fails
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      mariadb-server >/dev/null
    if [ -n "$made_policy" ]; then rm -f "$policy" && trap - EXIT; fi
    if command -v systemctl >/dev/null 2>&1; then
      systemctl disable mariadb >/dev/null 2>&1 || true
    fi
    if command -v update-rc.d >/dev/null 2>&1; then
      update-rc.d mariadb disable >/dev/null 2>&1 || true
    fi
  else
    echo "[lookalike] no mariadbd: the backfill's database tests will be skipped" \
      "(install Debian's mariadb-server)"
  fi
fi

echo "[lookalike] ruff check"
ruff check .
echo "[lookalike] ruff format --check"
ruff format --check .
echo "[lookalike] mypy shared/ services/"
mypy shared/ services/
# The benchmarks are scripts, typed loosely, but a call to an API that changed under them
# (a renamed function, a removed method) must fail here, not at the next measurement.
echo "[lookalike] mypy bench/"
mypy --allow-untyped-defs --allow-untyped-calls --allow-any-generics --no-warn-return-any \
  --disable-error-code var-annotated bench/
echo "[lookalike] pytest"
python -m pytest "$@"
