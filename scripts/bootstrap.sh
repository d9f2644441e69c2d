# Sourced by run-local.sh and test.sh: make .venv with the project installed, once per
# change of pyproject.toml or constraints.txt. Needs only Python 3.11+ and network access
# to PyPI.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${LOOKALIKE_VENV:-$ROOT/.venv}"
EXTRAS="${1:-local}"

find_python() {
  for candidate in python3.13 python3.12 python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
      "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      echo "$candidate"
      return
    fi
  done
  echo "lookalike needs Python 3.11 or newer (none found on PATH)" >&2
  exit 1
}

if [ ! -x "$VENV/bin/python" ]; then
  echo "[lookalike] creating virtual environment in $VENV"
  "$(find_python)" -m venv "$VENV"
fi
# The pinned versions (constraints.txt) decide the fingerprints: a change of either file
# installs again.
INPUTS="$(cat "$ROOT/pyproject.toml" "$ROOT/constraints.txt" | sha256sum | cut -c1-16)"
STAMP="$VENV/.installed-$EXTRAS-$INPUTS"
if [ ! -f "$STAMP" ]; then
  echo "[lookalike] installing lookalike[$EXTRAS] and its dependencies (first run only)"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  "$VENV/bin/python" -m pip install --quiet -c "$ROOT/constraints.txt" -e "$ROOT[$EXTRAS]"
  rm -f "$VENV"/.installed-"$EXTRAS"-*
  touch "$STAMP"
fi
export PATH="$VENV/bin:$PATH"
