#!/usr/bin/env bash
# The local stack (Kafka KRaft broker, Redis, the six services) on free
# loopback ports. Same code as the test harness: see tests/harness/stack.sh
#   scripts/stack.sh start run/dev [--workers N] [--no-services]
#   scripts/stack.sh stop run/dev
exec "$(dirname "${BASH_SOURCE[0]}")/../tests/harness/stack.sh" "$@"
