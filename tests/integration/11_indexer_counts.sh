#!/usr/bin/env bash
# The indexer binary against a real broker and Redis: a CommitRecord
# delivered twice is counted once, each delivery publishes a Progress,
# garbage is dead-lettered, and `--rebuild --job` recomputes the counters
# from the store's manifests (none here: the counters go back to nothing)
# without touching the planner's keys.
set -euo pipefail
. "$(dirname "$0")/../harness/lib.sh"

dir=$(cx_tmpdir 11_indexer_counts)
cx_stack_up "$dir" 0 --no-services
cx_service_start indexer
rcli() { redis-cli -u "$CASCADE_REDIS_URL" "$@"; }

# CommitRecord{job_id it11-jb, unit_id 0123..ef, class normal, planned 32,
# generated 32, passed 30, committed 29, manifest_key it11-jb/manifests/x.json}
printf '\xca\x25\x07it11-jb\xd2\x25\x200123456789abcdef0123456789abcdef\xda\x25\x06normal\xf0\x25\x20\xf8\x25\x20\x80\x26\x1e\x88\x26\x1d\x92\x26\x18it11-jb/manifests/x.json' \
    >"$dir/commit.bin"
rcli hset cx:job:it11-jb:issued normal 32 >/dev/null
cx_cxdev produce cascade.commits --key it11-jb --file "$dir/commit.bin"
cx_cxdev produce cascade.commits --key it11-jb --file "$dir/commit.bin"
printf 'garbage\xff' | cx_cxdev produce cascade.commits --key it11-jb

cx_wait_for "[ \$(cx_cxdev tail cascade.progress --from-beginning --max 2 --timeout-ms 1000 | grep -c ' key=it11-jb ') = 2 ]" 60 \
    || cx_fail "two Progress messages expected"
cx_assert_eq "$(rcli hget cx:job:it11-jb:committed normal)" 29 "committed counted once"
cx_assert_eq "$(rcli hget cx:job:it11-jb:units normal)" 1 "units counted once"
cx_assert_eq "$(rcli hget cx:job:it11-jb:passed normal)" 30 "passed"
cx_assert_eq "$(rcli hget cx:job:it11-jb:resolved_n normal)" 32 "resolved_n"
cx_assert_eq "$(rcli hget cx:job:it11-jb:resolved 0123456789abcdef0123456789abcdef)" c "resolved mark"
cx_wait_for "cx_cxdev tail cascade.deadletter --from-beginning --timeout-ms 1000 | grep -q 'service=indexer'" 30 \
    || cx_fail "garbage not dead-lettered"

out=$("$CASCADE_BIN/cascade-indexer" --rebuild --job it11-jb --log.level warn) \
    || cx_fail "rebuild failed"
grep -q "job it11-jb: 0 manifests" <<<"$out" || cx_fail "rebuild summary: $out"
cx_assert_eq "$(rcli hget cx:job:it11-jb:committed normal)" "" "rebuilt from (no) manifests"
cx_assert_eq "$(rcli hget cx:job:it11-jb:resolved 0123456789abcdef0123456789abcdef)" "" "c mark dropped"
cx_assert_eq "$(rcli hget cx:job:it11-jb:issued normal)" 32 "planner key untouched"

"$CX_STACK_SH" status "$dir" >/dev/null || cx_fail "a process died"
echo "11_indexer_counts: ok"
