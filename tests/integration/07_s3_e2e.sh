#!/usr/bin/env bash
# An exact-count job (120 samples, 3 classes; 01 runs the 300-sample one
# on the file store) with its output in S3: a real S3 server (SeaweedFS,
# SigV4 on) beside the stack, the job's output s3://cascade/runs, so
# staging, promotion, the manifests (put-if-absent) and dataset.json all
# go through the s3:// store. Verified from S3 alone:
# cxverify lists and decodes every object through the store interface, and
# the listing below shows staging emptied and nothing in the file store.
set -euo pipefail
. "$(dirname "$0")/../harness/lib.sh"
. "$(dirname "$0")/e2e_lib.sh"

dir=$(cx_tmpdir 07_s3)
cx_stack_up "$dir" 2 --s3
[ -n "${CASCADE_S3_ENDPOINT:-}" ] || cx_fail "the stack has no S3 server"
out="$CASCADE_S3_URI/runs"
job=e2e-s3

# Number of objects under a key prefix, from ListObjectsV2 (one page of up
# to 1000 is enough here: the caller asks about staging, which must be 0,
# or about fewer objects than that).
s3_count() {
    curl -sS --fail --aws-sigv4 "aws:amz:$CASCADE_S3_REGION:s3" \
        --user "$CASCADE_S3_ACCESS_KEY_ID:$CASCADE_S3_SECRET_ACCESS_KEY" \
        -H "x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" \
        "$CASCADE_S3_ENDPOINT/${CASCADE_S3_URI#s3://}?list-type=2&max-keys=1000&prefix=$(
            python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$1")" |
        python3 -c 'import re, sys
doc = sys.stdin.read()
assert "<ListBucketResult" in doc, doc
print(len(re.findall(r"<Contents>", doc)))'
}

cx_job_file "$dir/job.yaml" "$job" 120 "normal:0.4 effusion:0.35 nodule:0.25"
echo "output: $out" >>"$dir/job.yaml"
res=$(cx_ctl submit "$dir/job.yaml")
echo "$res" | grep -q "$job" || cx_fail "submit did not print the job id: $res"
cx_wait_state "$job" DONE
CASCADE_STORE_URI=$out cx_expect_counts "$job" "normal=48 effusion=42 nodule=30"

cx_assert_eq "$(s3_count "runs/$job/dataset.json")" 1 "dataset.json in S3"
cx_assert_eq "$(s3_count "runs/$job/staging/")" 0 "staging objects left behind in S3"
manifests=$(s3_count "runs/$job/manifests/")
[ "$manifests" -gt 0 ] || cx_fail "no manifests in S3"
# Nothing of the job went to the services' default (file://) store.
[ ! -e "$(cx_store_dir)/$job" ] || cx_fail "job data in the file store: $(find "$(cx_store_dir)/$job" | head)"
cx_ctl status "$job" | grep -qi done || cx_fail "cascadectl status does not say done"
echo "PASS 07_s3_e2e ($manifests manifests)"
