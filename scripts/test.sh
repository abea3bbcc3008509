#!/usr/bin/env bash
# Install, start a real Kafka broker, run the test suite, stop the broker.
# Extra arguments go to pytest (e.g. scripts/test.sh tests/unit -x).
#   scripts/test.sh           the CI suite: every kind of fault and PII at CI size, without the tests marked slow
#   scripts/test.sh --slow    the long runs too (before a release): the tests marked slow, and the corpora,
#                             property examples and outages at full size (DRIFTLINE_FULL=1, see tests/sizes.py)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
select=(-m "not slow")
if [ "${1:-}" = --slow ]; then
  shift
  select=()
  export DRIFTLINE_FULL=1
fi
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
.venv/bin/python -m pytest ${select[@]+"${select[@]}"} "$@"
