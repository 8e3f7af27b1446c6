#!/bin/bash
# Writes server.properties from the KAFKA_* environment as apache/kafka does (KAFKA_NODE_ID ->
# node.id; `___` -> `-`, `__` -> `_`, `_` -> `.`), formats the storage on first start, then runs
# the broker as PID 1 so that it receives SIGTERM itself.
set -euo pipefail
config_dir=$(mktemp -d)  # /tmp: the root file system is read-only
config="$config_dir/server.properties"
: >"$config"
for name in $(compgen -e); do
  case "$name" in
    KAFKA_HEAP_OPTS | KAFKA_OPTS | KAFKA_TOOL_HEAP_OPTS) continue ;;
    KAFKA_*) ;;
    *) continue ;;
  esac
  key="${name#KAFKA_}"
  key="${key,,}"
  key="${key//___/-}"
  key="${key//__/@}"
  key="${key//_/.}"
  key="${key//@/_}"
  printf '%s=%s\n' "$key" "${!name}" >>"$config"
done
log_dirs="${KAFKA_LOG_DIRS:-/var/lib/kafka/data}"
grep -q '^log.dirs=' "$config" || printf 'log.dirs=%s\n' "$log_dirs" >>"$config"
if [ ! -f "${log_dirs%%,*}/meta.properties" ]; then
  cluster_id="${CLUSTER_ID:-$(kafka-storage.sh random-uuid)}"
  kafka-storage.sh format --ignore-formatted -t "$cluster_id" -c "$config" >/dev/null
fi
# shellcheck disable=SC2086  # KAFKA_HEAP_OPTS and KAFKA_OPTS hold several JVM options
exec java $KAFKA_HEAP_OPTS ${KAFKA_OPTS:-} -XX:+UseG1GC -XX:-UsePerfData \
  -Dlog4j2.configurationFile=/opt/kafka/config/log4j2.properties \
  -cp '/opt/kafka/libs/*' kafka.Kafka "$config"
