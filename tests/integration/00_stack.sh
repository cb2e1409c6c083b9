#!/usr/bin/env bash
# The harness itself: a broker and Redis come up on free ports, the topics
# exist with their partition counts, and a message makes the round trip
# through cxdev byte for byte.
set -euo pipefail
. "$(dirname "$0")/../harness/lib.sh"

dir=$(cx_tmpdir 00_stack)
cx_stack_up "$dir" 0 --no-services

[ "$(redis-cli -u "$CASCADE_REDIS_URL" ping)" = PONG ] || cx_fail "redis does not answer"
cx_assert_eq "$(cx_cxdev partitions cascade.dispatch)" 16 "cascade.dispatch partitions"
cx_assert_eq "$(cx_cxdev partitions cascade.staged)" 4 "cascade.staged partitions"
# Creating them again changes nothing and succeeds.
cx_cxdev create-topics --timeout 30 || cx_fail "create-topics is not idempotent"

payload="hello cascade $$ $(date +%s%N) \"quoted\" tab	end"
printf '%s' "$payload" | cx_cxdev produce cascade.jobs --key stack-test \
    || cx_fail "produce failed"
got=$(cx_cxdev tail cascade.jobs --from-beginning --max 1 --timeout-ms 30000 --value-only) \
    || cx_fail "tail read nothing"
expected=$(printf '%s' "$payload" | sed 's/\\/\\\\/g; s/"/\\"/g; s/\t/\\t/g')
cx_assert_eq "$got" "$expected" "round trip through cascade.jobs"

# The full line names partition, offset and key.
line=$(cx_cxdev tail cascade.jobs --from-beginning --max 1 --timeout-ms 30000)
case $line in
    "partition="*" offset=0 key=stack-test value=$expected") ;;
    *) cx_fail "unexpected tail line: $line" ;;
esac
echo "00_stack: ok"
