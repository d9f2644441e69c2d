#!/usr/bin/env bash
# Run the whole system locally with the sample catalogue. Arguments go to
# `python -m lookalike_stack up` (try --help).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh" local
cd "$ROOT"
exec python -m lookalike_stack up "$@"
