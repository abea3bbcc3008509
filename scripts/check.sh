#!/usr/bin/env bash
# Every check a change must pass, in order, stopping at the first failure:
#   1. ruff (lint, imports, line length 120)   2. mypy (configuration in pyproject.toml)
#   3. the test suite through scripts/test.sh (installs, starts Kafka, runs pytest)
# Extra arguments go to pytest (e.g. bash scripts/check.sh tests/unit -x).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

step() {
  echo "check.sh: $*"
  "$@" || { rc=$?; echo "check.sh: FAILED (exit $rc): $*" >&2; exit "$rc"; }
}

bash scripts/setup.sh   # ruff and mypy are pinned dev tools in .venv
step .venv/bin/ruff check .
step .venv/bin/mypy
step bash scripts/test.sh "$@"
