#!/usr/bin/env bash
# The newcomer's first command: install, then run the embedded demo (Ctrl-C to stop).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
DRIFTLINE_SETUP_SYSTEM=0 bash scripts/setup.sh   # the demo needs Python only
exec .venv/bin/driftline demo "$@"
