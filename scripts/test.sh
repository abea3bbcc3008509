#!/usr/bin/env bash
# Install, start a real Kafka broker, run the whole test suite, stop the broker.
# Extra arguments go to pytest (e.g. scripts/test.sh tests/unit -x).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh
started=0
if (exec 3<>"/dev/tcp/127.0.0.1/${KAFKA_PORT:-9092}") 2>/dev/null; then
  echo "test.sh: a broker already answers on 127.0.0.1:${KAFKA_PORT:-9092}; using it"
elif ! bash scripts/kafka.sh status >/dev/null 2>&1; then
  bash scripts/kafka.sh start || { echo "test.sh: Kafka could not start; the Kafka integration tests cannot run" >&2; exit 1; }
  started=1
fi
cleanup() { [ "$started" = 1 ] && bash scripts/kafka.sh stop || true; }
trap cleanup EXIT
export DRIFTLINE_KAFKA="${DRIFTLINE_KAFKA:-127.0.0.1:${KAFKA_PORT:-9092}}"
.venv/bin/python -m pytest "$@"
