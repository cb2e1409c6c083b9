#!/usr/bin/env bash
# The local stack (Kafka KRaft broker, Redis, the six services) on free
# loopback ports (--s3: also an S3 server, SeaweedFS from scripts/deps-s3.sh).
# Same code as the test harness: see tests/harness/stack.sh
#   scripts/stack.sh start run/dev [--workers N] [--no-services] [--s3]
#   scripts/stack.sh stop run/dev
exec "$(dirname "${BASH_SOURCE[0]}")/../tests/harness/stack.sh" "$@"
