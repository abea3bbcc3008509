#!/usr/bin/env bash
# Real Apache Kafka 4.x (KRaft, one combined broker+controller) for tests and local runs.
#
#   scripts/kafka.sh fetch    download the pinned broker jars from Maven Central with mvn (cached)
#   scripts/kafka.sh start    fetch if needed, format KRaft storage, start on 127.0.0.1:9092, wait until it answers
#   scripts/kafka.sh stop     stop it cleanly (SIGTERM, then wait)
#   scripts/kafka.sh status   exit 0 when the broker answers
#
# Environment: KAFKA_PORT (9092), KAFKA_HOME (.cache/kafka), KAFKA_WAIT_S (90).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
KAFKA_HOME="${KAFKA_HOME:-$ROOT/.cache/kafka}"
PORT="${KAFKA_PORT:-9092}"
CTRL_PORT="$((PORT + 1))"
LIBS="$KAFKA_HOME/libs"
DATA="$KAFKA_HOME/data-$PORT"
PIDFILE="$KAFKA_HOME/broker-$PORT.pid"
LOG="$KAFKA_HOME/broker-$PORT.log"
WAIT_S="${KAFKA_WAIT_S:-90}"

die() { echo "kafka.sh: $*" >&2; exit 1; }

fetch() {
  if [ -f "$LIBS/.complete" ]; then return 0; fi
  command -v mvn >/dev/null || die "mvn not found: install Maven (apt-get install maven) to fetch the Kafka broker"
  command -v java >/dev/null || die "java not found: Kafka 4.x needs Java 17+"
  echo "kafka.sh: fetching Apache Kafka broker jars from Maven Central (pinned in scripts/kafka/pom.xml)"
  mkdir -p "$LIBS"
  mvn -q -B -f "$ROOT/scripts/kafka/pom.xml" dependency:copy-dependencies \
      -DoutputDirectory="$LIBS" -DincludeScope=runtime || die "mvn could not fetch the Kafka jars"
  touch "$LIBS/.complete"
}

write_config() {
  cat > "$KAFKA_HOME/server-$PORT.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$CTRL_PORT
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CTRL_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$DATA
num.partitions=4
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
log.retention.hours=24
PROPS
  cat > "$KAFKA_HOME/log4j2.yaml" <<'L4J'
Configuration:
  Appenders:
    Console:
      name: STDOUT
      PatternLayout:
        Pattern: "[%d] %p %m (%c)%n"
  Loggers:
    Root:
      level: INFO
      AppenderRef:
        - ref: STDOUT
    Logger:
      - name: kafka
        level: INFO
      - name: org.apache.kafka
        level: WARN
L4J
}

start() {
  fetch
  if [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
    echo "kafka.sh: already running (pid $(cat "$PIDFILE")) on 127.0.0.1:$PORT"; return 0
  fi
  if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
    die "port $PORT is taken by another process (another broker?); stop it or set KAFKA_PORT"
  fi
  mkdir -p "$KAFKA_HOME"
  write_config
  if [ "${KAFKA_KEEP_DATA:-0}" = 1 ] && [ -f "$DATA/meta.properties" ]; then
    echo "kafka.sh: restarting on the existing data in $DATA"
  else
    rm -rf "$DATA"; mkdir -p "$DATA"
    local cid
    cid="$(java -cp "$LIBS/*" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -1)"
    [ -n "$cid" ] || die "could not create a cluster id (java -cp $LIBS/* kafka.tools.StorageTool random-uuid)"
    java -cp "$LIBS/*" -Dlog4j2.configurationFile="$KAFKA_HOME/log4j2.yaml" kafka.tools.StorageTool format \
         -t "$cid" -c "$KAFKA_HOME/server-$PORT.properties" >"$KAFKA_HOME/format-$PORT.log" 2>&1 \
      || { tail -20 "$KAFKA_HOME/format-$PORT.log" >&2; die "KRaft storage format failed"; }
  fi
  nohup java -Xms256m -Xmx1g -XX:+UseG1GC -Djava.awt.headless=true \
       -Dlog4j2.configurationFile="$KAFKA_HOME/log4j2.yaml" \
       -cp "$LIBS/*" kafka.Kafka "$KAFKA_HOME/server-$PORT.properties" >"$LOG" 2>&1 &
  echo $! > "$PIDFILE"
  local t=0
  until grep -q "Kafka Server started" "$LOG" 2>/dev/null && (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; do
    if ! kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then tail -30 "$LOG" >&2; die "broker exited during start (log: $LOG)"; fi
    t=$((t + 1)); [ "$t" -le "$WAIT_S" ] || { tail -30 "$LOG" >&2; die "broker did not answer on 127.0.0.1:$PORT within ${WAIT_S}s (log: $LOG)"; }
    sleep 1
  done
  echo "kafka.sh: Apache Kafka $(ls "$LIBS" | sed -n 's/^kafka_2.13-\(.*\)\.jar$/\1/p') up on 127.0.0.1:$PORT (pid $(cat "$PIDFILE"), ${t}s)"
}

stop() {
  [ -f "$PIDFILE" ] || { echo "kafka.sh: not running"; return 0; }
  local pid; pid="$(cat "$PIDFILE")"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -0 "$pid" 2>/dev/null && { echo "kafka.sh: broker did not stop in 30s, killing" >&2; kill -KILL "$pid"; }
  fi
  rm -f "$PIDFILE"; echo "kafka.sh: stopped"
}

status() {
  [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null && (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null
}

case "${1:-}" in
  fetch) fetch ;;
  start) start ;;
  stop) stop ;;
  status) status && echo "kafka.sh: up on 127.0.0.1:$PORT" || { echo "kafka.sh: down"; exit 1; } ;;
  *) echo "usage: scripts/kafka.sh fetch|start|stop|status" >&2; exit 2 ;;
esac
