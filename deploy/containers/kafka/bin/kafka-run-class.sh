#!/bin/bash
# kafka-run-class.sh MAIN_CLASS [ARGS...]: one JVM on the image's jars (a short-lived tool unless
# KAFKA_HEAP_OPTS says otherwise). No hsperfdata files: the root file system is read-only.
set -euo pipefail
exec java ${KAFKA_TOOL_HEAP_OPTS:--Xmx256m -XX:TieredStopAtLevel=1} -XX:-UsePerfData \
  -Dlog4j2.configurationFile=/opt/kafka/config/log4j2.properties \
  -cp '/opt/kafka/libs/*' "$@"
