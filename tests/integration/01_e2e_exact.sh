#!/usr/bin/env bash
# A job of 300 samples in 3 classes goes through all six services and ends
# with exactly the requested count per class: every PNG decodes as 512x512
# 16-bit, no two files share a hash, manifests' totals equal the index's.
set -euo pipefail
. "$(dirname "$0")/../harness/lib.sh"
. "$(dirname "$0")/e2e_lib.sh"

dir=$(cx_tmpdir 01_e2e)
cx_stack_up "$dir" 2
cx_job_file "$dir/job.yaml" e2e-exact 300 "normal:0.4 effusion:0.35 nodule:0.25"
out=$(cx_ctl submit "$dir/job.yaml")
echo "$out" | grep -q e2e-exact || cx_fail "submit did not print the job id: $out"
cx_wait_state e2e-exact DONE
cx_expect_counts e2e-exact "normal=120 effusion=105 nodule=75"
[ -f "$(cx_store_dir)/e2e-exact/dataset.json" ] || cx_fail "no dataset.json"
# Staging is cleaned once units commit.
left=$(find "$(cx_store_dir)/e2e-exact/staging" -type f 2>/dev/null | wc -l)
cx_assert_eq "$left" 0 "staging files left behind"
cx_ctl status e2e-exact | grep -qi done || cx_fail "cascadectl status does not say done"
# Every committed unit's timing was summed once: the units and samples the
# timing hash counted equal the index's, and generation took time.
json=$(cx_ctl status --json e2e-exact)
python3 - "$json" <<'PY' || cx_fail "status timing does not match the index: $json"
import json, sys
s = json.loads(sys.argv[1])
t = s["timing"]
units = sum(c["units"] for c in s["classes"])
assert t["units"] == units, (t["units"], units)
assert t["samples"] == s["generated"], (t["samples"], s["generated"])
assert t["generate_ms"] > 0 and t["encode_ms"] > 0 and t["validate_ms"] > 0
assert t["staged_to_verdict_ms"] > 0, t
PY
echo "PASS 01_e2e_exact"
