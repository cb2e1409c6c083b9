# Sourced by stack.sh: the S3-compatible server behind `stack.sh start
# --s3`. SeaweedFS (`weed server`: master, volume, filer and S3 gateway in
# one process), built by scripts/deps-s3.sh into .deps/seaweedfs/weed, on
# eight free loopback ports, with SigV4 authentication on (one identity
# whose secret is drawn per stack) and the bucket `cascade` created.
#
# DIR/env gains CASCADE_S3_ENDPOINT, CASCADE_S3_REGION,
# CASCADE_S3_ACCESS_KEY_ID, CASCADE_S3_SECRET_ACCESS_KEY (what the s3://
# store reads) and CASCADE_S3_URI=s3://cascade (for tests and scripts; no
# service reads it). Data lives in DIR/s3/data, the log in DIR/logs/s3.log.

CX_WEED=${CASCADE_SEAWEEDFS:-$CX_REPO/.deps/seaweedfs/weed}
CX_S3_BUCKET=cascade
CX_S3_REGION=us-east-1
# SHA-256 of the empty body, which a bodiless SigV4 request must declare.
CX_S3_EMPTY_SHA=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855

stk_s3_check() {
    [ -x "$CX_WEED" ] || stk_die "SeaweedFS missing: $CX_WEED (run scripts/deps-s3.sh, or set CASCADE_SEAWEEDFS)"
    command -v curl >/dev/null || stk_die "curl not installed (run scripts/deps.sh)"
}

# Creates the bucket; 200 (created) and 409 (ours already) both do. Fails
# while the gateway is still starting (connection refused, 5xx).
stk_s3_mkbucket() {
    local port=$1 key=$2 secret=$3 code
    code=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 5 \
        --aws-sigv4 "aws:amz:$CX_S3_REGION:s3" --user "$key:$secret" \
        -H "x-amz-content-sha256: $CX_S3_EMPTY_SHA" \
        -X PUT "http://127.0.0.1:$port/$CX_S3_BUCKET") || return 1
    [ "$code" = 200 ] || [ "$code" = 409 ]
}

stk_s3_spawn() {
    local dir=$1
    shift
    local -a p=("$@")
    rm -rf "$dir/s3/data"
    mkdir -p "$dir/s3/data"
    echo "${p[*]}" >"$dir/s3/ports"
    stk_spawn "$dir" s3 "$dir/logs/s3.log" "$CX_WEED" server \
        -ip=127.0.0.1 -ip.bind=127.0.0.1 -dir="$dir/s3/data" \
        -master.port="${p[0]}" -master.port.grpc="${p[1]}" \
        -master.volumeSizeLimitMB=64 \
        -volume.port="${p[2]}" -volume.port.grpc="${p[3]}" -volume.max=16 \
        -volume.preStopSeconds=0 \
        -filer -filer.port="${p[4]}" -filer.port.grpc="${p[5]}" \
        -s3 -s3.port="${p[6]}" -s3.port.grpc="${p[7]}" \
        -s3.port.iceberg=0 -s3.port.lance=0 -s3.config="$dir/s3/s3.json"
}

# Starts the server and appends its settings to DIR/env. 1 when it did not
# come up on three sets of ports.
stk_start_s3() {
    local dir=$1 try key=cascade-test secret t0
    local -a ports
    t0=$(stk_now)
    secret=$(python3 -c 'import secrets; print(secrets.token_hex(20))')
    mkdir -p "$dir/s3"
    (umask 077; cat >"$dir/s3/s3.json" <<EOF
{"identities": [{"name": "cascade", "credentials": [{"accessKey": "$key", "secretKey": "$secret"}],
  "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}
EOF
    )
    for try in 1 2 3; do
        read -r -a ports <<<"$(stk_free_ports 8)"
        stk_s3_spawn "$dir" "${ports[@]}"
        if stk_wait_ready "$dir" s3 60 stk_port_ours "$dir" s3 "${ports[6]}" &&
           stk_wait_ready "$dir" s3 60 stk_s3_mkbucket "${ports[6]}" "$key" "$secret"; then
            cat >>"$dir/env" <<EOF
CASCADE_S3_ENDPOINT=http://127.0.0.1:${ports[6]}
CASCADE_S3_REGION=$CX_S3_REGION
CASCADE_S3_ACCESS_KEY_ID=$key
CASCADE_S3_SECRET_ACCESS_KEY=$secret
CASCADE_S3_URI=s3://$CX_S3_BUCKET
EOF
            stk_log "s3 127.0.0.1:${ports[6]} (SeaweedFS, bucket $CX_S3_BUCKET) ready in $(awk -v a="$t0" -v b="$(stk_now)" 'BEGIN{printf "%.1f", b-a}')s"
            return 0
        fi
        stk_log "attempt $try: S3 server did not come up (ports ${ports[*]})"
        tail -n 20 "$dir/logs/s3.log" >&2 2>/dev/null || true
        stk_s3_stop "$dir"
    done
    return 1
}

# Test data only, and `weed server` takes 20-30 s to honour SIGTERM: a
# short grace, then SIGKILL. It leaves gRPC sockets in /tmp named by port.
stk_s3_stop() {
    local dir=$1 p
    stk_terminate "$dir" s3 3
    if [ -f "$dir/s3/ports" ]; then
        for p in $(cat "$dir/s3/ports"); do
            rm -f /tmp/seaweedfs-*-"$p".sock
        done
        rm -f "$dir/s3/ports"
    fi
}
