#!/usr/bin/env bash
# The local Cascade stack: a single-node Kafka broker (KRaft), redis-server
# and the six services, all on 127.0.0.1 with ports the kernel hands out, so
# any number of stacks can run side by side in different directories.
#
#   stack.sh start DIR [--workers N] [--no-services] [--s3]
#   stack.sh start-service DIR NAME [ARGS...]   (NAME: planner, gpu-worker-3, ...)
#   stack.sh kill DIR NAME [-9]                 (SIGTERM and wait, or SIGKILL)
#   stack.sh stop DIR                           (everything; idempotent)
#   stack.sh status DIR
#
# DIR/env gets CASCADE_KAFKA_BROKERS, CASCADE_REDIS_URL, CASCADE_STORE_URI,
# CASCADE_CHECKPOINT_DIR (default <repo>/.deps/checkpoints, where `make
# checkpoint` fits ref-cxr-v1) and CASCADE_RUN_DIR; DIR/pids/<name>.pid
# one pid per process; DIR/logs/ the logs (kafka-server.log, redis.log,
# <name>.log). `start` begins from empty state: it clears DIR's kafka,
# redis, store, logs and pids. --s3 also runs an S3 server and adds its
# CASCADE_S3_* settings to DIR/env (stack_s3.sh).
#
# Binaries come from $CASCADE_BIN (default: $CASCADE_BUILD_DIR/bin, else
# <repo>/build/bin); cxdev from there too. Kafka's jars from
# $CASCADE_KAFKA_LIBS (default <repo>/.deps/kafka-libs, see scripts/deps.sh).
set -euo pipefail

CX_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CX_BIN=${CASCADE_BIN:-${CASCADE_BUILD_DIR:-$CX_REPO/build}/bin}
CX_KAFKA_LIBS=${CASCADE_KAFKA_LIBS:-$CX_REPO/.deps/kafka-libs}
CX_KAFKA_HEAP=${CASCADE_KAFKA_HEAP:-512m}
# How long to wait for the broker to answer the admin API (seconds).
CX_KAFKA_START_TIMEOUT=${CASCADE_KAFKA_START_TIMEOUT:-90}

stk_die() { echo "stack.sh: $*" >&2; exit 1; }
# shellcheck source=stack_s3.sh
. "$CX_REPO/tests/harness/stack_s3.sh"
stk_log() { echo "stack.sh: $*" >&2; }
stk_now() { date +%s.%N; }

# N distinct free loopback ports: all N sockets are bound to port 0 at once,
# so the kernel gives N different ports, then released for the servers.
stk_free_ports() {
    python3 - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks:
    s.close()
EOF
}

# A process is ours if it is alive and runs with DIR as its working
# directory (we start everything there), so a recycled pid is never killed.
stk_pid_ours() {
    local dir=$1 pid=$2 cwd
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
    cwd=$(readlink "/proc/$pid/cwd" 2>/dev/null) || return 1
    [ "$cwd" = "$dir" ]
}

stk_pid_of() {
    local f="$1/pids/$2.pid"
    [ -f "$f" ] && cat "$f" || true
}

# Starts a command in DIR, detached from our session and our stdio (a ctest
# fixture must not wait for it), and records its pid as DIR/pids/NAME.pid.
stk_spawn() {
    local dir=$1 name=$2 log=$3
    shift 3
    local back=$PWD
    mkdir -p "$dir/pids" "$dir/logs"
    # cd before the fork: the child has DIR as cwd from its first instant,
    # which is what stk_pid_ours checks right after.
    cd "$dir"
    setsid "$@" >>"$log" 2>&1 </dev/null &
    echo $! >"$dir/pids/$name.pid"
    cd "$back"
}

# Waits up to $3 seconds for NAME's process to exit. Returns 1 if it is
# still running.
stk_wait_exit() {
    local dir=$1 pid=$2 secs=$3 deadline
    deadline=$(( $(date +%s%N) + secs * 1000000000 ))
    while stk_pid_ours "$dir" "$pid"; do
        # A zombie child of ours has exited already.
        [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" = Z ] && return 0
        [ "$(date +%s%N)" -lt "$deadline" ] || return 1
        sleep 0.1
    done
}

# SIGTERM, then SIGKILL after `grace` seconds. No-op when not running.
stk_terminate() {
    local dir=$1 name=$2 grace=$3 pid
    pid=$(stk_pid_of "$dir" "$name")
    if stk_pid_ours "$dir" "$pid"; then
        kill -TERM "$pid" 2>/dev/null || true
        if ! stk_wait_exit "$dir" "$pid" "$grace"; then
            stk_log "$name (pid $pid) ignored SIGTERM for ${grace}s; killing"
            # The whole process group (setsid made pid its leader), so no
            # child of the service outlives it.
            kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
            stk_wait_exit "$dir" "$pid" 10 || stk_log "$name (pid $pid) survives SIGKILL"
        fi
    fi
    rm -f "$dir/pids/$name.pid"
}

stk_write_kafka_conf() {
    local dir=$1 bport=$2 cport=$3
    mkdir -p "$dir/kafka"
    cat >"$dir/kafka/server.properties" <<EOF
# Written by tests/harness/stack.sh: single-node KRaft broker+controller.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$bport,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$bport
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$dir/kafka/data
num.partitions=4
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
log.retention.hours=168
log.segment.bytes=67108864
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
EOF
}

# The broker's JVM: fixed small heap, log4j2 writing files under DIR/logs.
stk_jvm_opts() {
    CX_JVM=(java -Xms"$CX_KAFKA_HEAP" -Xmx"$CX_KAFKA_HEAP" -XX:+UseG1GC
        -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true
        -Dkafka.logs.dir="$1/logs"
        -Dlog4j2.configurationFile="$CX_REPO/scripts/kafka/log4j2.properties"
        -cp "$CX_KAFKA_LIBS/*")
}

# Formats the log dir and starts the broker. Returns 1 if it died at once
# (typically a port taken between our probe and its bind).
stk_start_kafka() {
    local dir=$1 bport=$2 cport=$3 uuid
    rm -rf "$dir/kafka"
    stk_write_kafka_conf "$dir" "$bport" "$cport"
    stk_jvm_opts "$dir"
    # What `StorageTool random-uuid` prints (22 characters of URL-safe
    # base64 of 16 random bytes, not starting with '-'), without a second
    # JVM start (~1 s).
    uuid=$(python3 -c 'import base64, os
while True:
    u = base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")
    if not u.startswith("-"): print(u); break')
    "${CX_JVM[@]}" kafka.tools.StorageTool format -t "$uuid" \
        -c "$dir/kafka/server.properties" >>"$dir/logs/kafka-format.log" 2>&1 \
        || { cat "$dir/logs/kafka-format.log" >&2; stk_die "formatting Kafka storage failed"; }
    stk_spawn "$dir" kafka "$dir/logs/kafka-stdout.log" \
        "${CX_JVM[@]}" kafka.Kafka "$dir/kafka/server.properties"
}

stk_start_redis() {
    local dir=$1 port=$2
    # No --dir: redis would chdir there, and its cwd is how stop finds it.
    stk_spawn "$dir" redis "$dir/logs/redis.log" \
        redis-server --port "$port" --bind 127.0.0.1 --save '' \
        --appendonly no --daemonize no
}

# Polls until `cmd` succeeds while `name`'s process lives; 1 on death or
# timeout.
stk_wait_ready() {
    local dir=$1 name=$2 secs=$3 deadline pid
    shift 3
    pid=$(stk_pid_of "$dir" "$name")
    deadline=$(( $(date +%s%N) + secs * 1000000000 ))
    until "$@" >/dev/null 2>&1; do
        stk_pid_ours "$dir" "$pid" || return 1
        [ "$(date +%s%N)" -lt "$deadline" ] || return 1
        sleep 0.2
    done
}

stk_redis_ping() { [ "$(redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null)" = PONG ]; }
# PORT is listened on by NAME's process, not by some other stack that got
# the same port between our probe and the server's bind.
stk_port_ours() {
    local dir=$1 name=$2 port=$3 pid
    pid=$(stk_pid_of "$dir" "$name")
    ss -Hltnp "sport = :$port" 2>/dev/null | grep -q "pid=$pid,"
}

# NAME's /readyz answers 200: it has joined its consumer group (or made its
# partition assignment) and consumes. Its port is the one it logged.
stk_service_ready() {
    local dir=$1 name=$2 port
    port=$(sed -n 's/.*msg="http endpoint" port=\([0-9]*\).*/\1/p' "$dir/logs/$name.log" | head -1)
    [ -n "$port" ] && curl -fsS -m 2 "http://127.0.0.1:$port/readyz" >/dev/null
}

stk_cxdev() {
    [ -x "$CX_BIN/cxdev" ] || stk_die "cxdev not found in $CX_BIN (build first: make build, or set CASCADE_BIN)"
    "$CX_BIN/cxdev" "$@"
}

# The binary behind an instance name: gpu-worker-3 -> cascade-gpu-worker.
stk_binary_for() {
    local base=$1
    [[ $base =~ ^(.*[^0-9])-[0-9]+$ ]] && base=${BASH_REMATCH[1]}
    echo "$CX_BIN/cascade-$base"
}

cmd_start_service() {
    local dir name bin pid
    dir=$(stk_abs "${1:?DIR}"); name=${2:?NAME}
    shift 2
    [ -f "$dir/env" ] || stk_die "no stack in $dir (run: stack.sh start $dir)"
    bin=$(stk_binary_for "$name")
    [ -x "$bin" ] || stk_die "service binary missing: $bin"
    pid=$(stk_pid_of "$dir" "$name")
    stk_pid_ours "$dir" "$pid" && stk_die "$name already running in $dir (pid $pid)"
    # Only the settings the services' config tables know are exported.
    (
        set -a
        # shellcheck disable=SC1091
        . "$dir/env"
        set +a
        unset CASCADE_RUN_DIR
        stk_spawn "$dir" "$name" "$dir/logs/$name.log" "$bin" --instance "$name" "$@"
    )
    pid=$(stk_pid_of "$dir" "$name")
    stk_pid_ours "$dir" "$pid" || stk_die "$name exited at once; see $dir/logs/$name.log"
    stk_log "started $name (pid $pid)"
}

cmd_kill() {
    local dir name sig pid
    dir=$(stk_abs "${1:?DIR}"); name=${2:?NAME}; sig=${3:-}
    pid=$(stk_pid_of "$dir" "$name")
    stk_pid_ours "$dir" "$pid" || { rm -f "$dir/pids/$name.pid"; stk_die "$name is not running in $dir"; }
    if [ "$sig" = -9 ]; then
        kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid"
        stk_wait_exit "$dir" "$pid" 10 || stk_die "$name (pid $pid) survives SIGKILL"
        rm -f "$dir/pids/$name.pid"
    else
        stk_terminate "$dir" "$name" 10
    fi
}

cmd_stop() {
    local dir f name
    [ -d "${1:?DIR}/pids" ] || return 0
    dir=$(stk_abs "$1")
    for f in "$dir"/pids/*.pid; do
        [ -e "$f" ] || continue
        name=$(basename "$f" .pid)
        case $name in kafka|redis|s3) continue ;; esac
        stk_terminate "$dir" "$name" 10 &
    done
    wait
    stk_s3_stop "$dir"
    stk_terminate "$dir" redis 10
    stk_terminate "$dir" kafka 30
}

cmd_status() {
    local dir f name pid state rc=0
    dir=$(stk_abs "${1:?DIR}")
    for f in "$dir"/pids/*.pid; do
        [ -e "$f" ] || continue
        name=$(basename "$f" .pid); pid=$(cat "$f")
        if stk_pid_ours "$dir" "$pid"; then state=running; else state=dead; rc=1; fi
        printf '%-20s %-8s %s\n' "$name" "$pid" "$state"
    done
    return $rc
}

cmd_start() {
    local dir workers=1 services=1 s3=0 t0 bport cport rport try i name
    dir=$(stk_abs "${1:?DIR}"); shift
    while [ $# -gt 0 ]; do
        case $1 in
            --workers) workers=${2:?--workers N}; shift 2 ;;
            --workers=*) workers=${1#*=}; shift ;;
            --no-services) services=0; shift ;;
            --s3) s3=1; shift ;;
            *) stk_die "start: unknown option $1" ;;
        esac
    done
    [[ $workers =~ ^[0-9]+$ ]] || stk_die "--workers wants a number"
    [ -f "$CX_KAFKA_LIBS/.complete" ] || stk_die "Kafka jars missing in $CX_KAFKA_LIBS (run scripts/deps.sh)"
    command -v redis-server >/dev/null || stk_die "redis-server not installed (run scripts/deps.sh)"
    command -v python3 >/dev/null || stk_die "python3 not installed (run scripts/deps.sh)"
    command -v curl >/dev/null || stk_die "curl not installed (run scripts/deps.sh)"
    command -v ss >/dev/null || stk_die "ss (iproute2) not installed (run scripts/deps.sh)"
    [ "$s3" = 0 ] || stk_s3_check
    [ -x "$CX_BIN/cxdev" ] || stk_die "cxdev not found in $CX_BIN (build first: make build, or set CASCADE_BIN)"
    local names=()
    if [ "$services" = 1 ]; then
        names=(planner scheduler validator committer indexer)
        for ((i = 0; i < workers; i++)); do names+=("gpu-worker-$i"); done
        for name in "${names[@]}"; do
            [ -x "$(stk_binary_for "$name")" ] ||
                stk_die "service binary missing: $(stk_binary_for "$name") (make build, or set CASCADE_BIN)"
        done
    fi
    mkdir -p "$dir"
    if { cmd_status "$dir" 2>/dev/null || true; } | grep -q ' running$'; then
        stk_die "a stack is already running in $dir (stack.sh stop $dir)"
    fi
    rm -rf "$dir/kafka" "$dir/redis" "$dir/store" "$dir/logs" "$dir/pids" "$dir/env" "$dir/s3"
    mkdir -p "$dir/logs" "$dir/pids" "$dir/store"
    t0=$(stk_now)

    for try in 1 2 3; do
        # CASCADE_STACK_PORTS="broker controller redis" pins the first try's
        # ports (debugging, and testing the retry).
        if [ "$try" = 1 ] && [ -n "${CASCADE_STACK_PORTS:-}" ]; then
            read -r bport cport rport <<<"$CASCADE_STACK_PORTS"
        else
            read -r bport cport rport <<<"$(stk_free_ports 3)"
        fi
        stk_start_redis "$dir" "$rport"
        stk_start_kafka "$dir" "$bport" "$cport"
        # Redis answers within milliseconds; the broker after a few seconds.
        if stk_wait_ready "$dir" redis 20 stk_port_ours "$dir" redis "$rport" &&
           stk_wait_ready "$dir" redis 20 stk_redis_ping "$rport" &&
           stk_wait_ready "$dir" kafka "$CX_KAFKA_START_TIMEOUT" stk_port_ours "$dir" kafka "$bport" &&
           stk_wait_ready "$dir" kafka 20 stk_port_ours "$dir" kafka "$cport"; then
            break
        fi
        stk_log "attempt $try: broker or redis did not come up (ports $bport/$cport/$rport)"
        tail -n 20 "$dir/logs/kafka-server.log" "$dir/logs/redis.log" >&2 2>/dev/null || true
        stk_terminate "$dir" redis 5
        stk_terminate "$dir" kafka 10
        [ "$try" -lt 3 ] || stk_die "could not start Kafka and Redis; logs in $dir/logs"
    done

    cat >"$dir/env" <<EOF
CASCADE_KAFKA_BROKERS=127.0.0.1:$bport
CASCADE_REDIS_URL=redis://127.0.0.1:$rport/0
CASCADE_STORE_URI=file://$dir/store
CASCADE_RUN_DIR=$dir
CASCADE_CHECKPOINT_DIR=${CASCADE_CHECKPOINT_DIR:-$CX_REPO/.deps/checkpoints}
EOF
    if [ "$s3" = 1 ] && ! stk_start_s3 "$dir"; then
        cmd_stop "$dir"
        stk_die "could not start the S3 server; logs in $dir/logs"
    fi
    # The topic creation doubles as the broker's readiness check: it retries
    # until the admin API answers.
    if ! stk_cxdev create-topics --brokers "127.0.0.1:$bport" \
            --timeout "$CX_KAFKA_START_TIMEOUT"; then
        tail -n 30 "$dir/logs/kafka-server.log" >&2 || true
        cmd_stop "$dir"
        stk_die "creating topics failed; logs in $dir/logs"
    fi
    stk_log "kafka 127.0.0.1:$bport (controller $cport), redis $rport ready in $(awk -v a="$t0" -v b="$(stk_now)" 'BEGIN{printf "%.1f", b-a}')s"

    if [ "$services" = 1 ]; then
        for name in "${names[@]}"; do
            # A subshell, so that its stk_die leaves us here to clean up.
            if ! (cmd_start_service "$dir" "$name"); then
                cmd_stop "$dir"
                stk_die "could not start $name"
            fi
        done
        # Ready means consuming: a job submitted now does not wait for
        # group joins (seconds on a fresh broker).
        for name in "${names[@]}"; do
            if ! stk_wait_ready "$dir" "$name" 120 stk_service_ready "$dir" "$name"; then
                tail -n 20 "$dir/logs/$name.log" >&2 || true
                cmd_stop "$dir"
                stk_die "$name did not become ready; logs in $dir/logs"
            fi
        done
        stk_log "services ready in $(awk -v a="$t0" -v b="$(stk_now)" 'BEGIN{printf "%.1f", b-a}')s"
    fi
    echo "$dir/env"
}

stk_abs() { mkdir -p "$1" && (cd "$1" && pwd -P); }

main() {
    local cmd=${1:-}
    [ $# -gt 0 ] && shift
    case $cmd in
        start) cmd_start "$@" ;;
        start-service) cmd_start_service "$@" ;;
        kill) cmd_kill "$@" ;;
        stop) cmd_stop "$@" ;;
        status) cmd_status "$@" ;;
        *) sed -n '2,20p' "${BASH_SOURCE[0]}" >&2; exit 2 ;;
    esac
}

main "$@"
