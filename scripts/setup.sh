#!/usr/bin/env bash
# Install everything Driftline needs into .venv (idempotent). Used by scripts/demo.sh and scripts/test.sh.
#   scripts/setup.sh          runtime + dev tools
# System packages (Java 17 and Maven for the Kafka broker) are installed with apt-get when missing and root.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-python3}"

need_apt=()
command -v java >/dev/null || need_apt+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || need_apt+=(maven)
# Headless Chromium and its driver for the dashboard's browser test (tests/e2e/test_dashboard_browser.py).
command -v chromium >/dev/null || need_apt+=(chromium)
command -v chromedriver >/dev/null || need_apt+=(chromium-driver)
# Debian's ClickHouse server (18.16) proves the clickhouse engine's version refusal and plumbing in tests.
[ "${DRIFTLINE_SETUP_CLICKHOUSE:-1}" = 1 ] && ! command -v clickhouse-server >/dev/null && need_apt+=(clickhouse-server)
if [ "${DRIFTLINE_SETUP_SYSTEM:-1}" = 1 ] && [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "setup: installing ${need_apt[*]} with apt-get"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
  else
    echo "setup: please install ${need_apt[*]} (the Kafka broker, ClickHouse and browser tests need them)" >&2
  fi
fi

"$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' \
  || { echo "setup: Python 3.11+ is needed, $("$PY" --version) found" >&2; exit 1; }
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import pip' >/dev/null 2>&1; then
  rm -rf .venv
  "$PY" -m venv .venv || { rm -rf .venv; echo "setup: '$PY -m venv' failed: install python3-venv (apt-get install python3-venv)" >&2; exit 1; }
fi
stamp=".venv/.driftline-installed"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ constraints.txt -nt "$stamp" ]; then
  echo "setup: installing Python packages into .venv (first run takes a few minutes)"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -c constraints.txt -e ".[dev]"
  touch "$stamp"
fi
echo "setup: ready ($(.venv/bin/python --version), $(.venv/bin/python -c 'import chdb; print("chDB", chdb.__version__)'))"
