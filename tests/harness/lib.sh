# Helpers for tests/integration/NN_*.sh scenario scripts. Source it:
#
#   . "$(dirname "$0")/../harness/lib.sh"
#   dir=$(cx_tmpdir 10_happy)
#   cx_stack_up "$dir" 2            # full stack, 2 workers; stopped on exit
#   cx_wait_for "cx_cxdev tail cascade.job-events --from-beginning \
#                 --max 1 --timeout-ms 1000 | grep -q ACCEPTED" 60 \
#       || cx_fail "job not accepted"
#
# After cx_stack_up the stack's env (CASCADE_KAFKA_BROKERS, ...) is exported.
# On exit (any cause) every stack started with cx_stack_up is stopped; when
# the script failed, the tails of its logs are printed first.
# Environment: CASCADE_BIN (binaries; default <repo>/build/bin),
# CX_KEEP=1 leaves the run dirs behind for inspection (they are under
# $CX_TEST_TMP, default <build>/itest-runs or /tmp).

CX_REPO=${CX_REPO:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
CX_STACK_SH="$CX_REPO/tests/harness/stack.sh"
CASCADE_BIN=${CASCADE_BIN:-${CASCADE_BUILD_DIR:-$CX_REPO/build}/bin}
export CASCADE_BIN
CX_STACKS=()
# cx_tmpdir runs in $(...), a subshell: it records its dirs in this file.
CX__TMPREG=$(mktemp "${TMPDIR:-/tmp}/cx-tmpreg.XXXXXX")

cx_log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# Prints the tail of every log of every stack we started (for failures).
cx_dump_logs() {
    local d f
    for d in "${CX_STACKS[@]}"; do
        for f in "$d"/logs/*.log; do
            [ -s "$f" ] || continue
            echo "----- $f (last 40 lines)" >&2
            tail -n 40 "$f" >&2
        done
    done
}

cx_fail() {
    echo "FAIL: $*" >&2
    exit 1
}

cx__cleanup() {
    local rc=$? d
    trap - EXIT INT TERM
    [ $rc -eq 0 ] || cx_dump_logs
    for d in "${CX_STACKS[@]}"; do
        "$CX_STACK_SH" stop "$d" || true
    done
    if [ "${CX_KEEP:-0}" != 1 ] && [ $rc -eq 0 ]; then
        while read -r d; do rm -rf "$d"; done <"$CX__TMPREG"
    elif [ -s "$CX__TMPREG" ]; then
        echo "run dirs kept: $(tr '\n' ' ' <"$CX__TMPREG")" >&2
    fi
    rm -f "$CX__TMPREG"
    exit $rc
}
trap cx__cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A fresh directory for one scenario's stack (removed on success).
cx_tmpdir() {
    local base=${CX_TEST_TMP:-${TMPDIR:-/tmp}} d
    mkdir -p "$base"
    d=$(mktemp -d "$base/cascade-${1:-test}.XXXXXX")
    echo "$d" >>"$CX__TMPREG"
    echo "$d"
}

# Starts a stack in DIR with N workers (0: none); extra args go to
# `stack.sh start` (e.g. --no-services). Exports its env. Must be called in
# the main shell, not in $(...), so that cleanup knows about it.
cx_stack_up() {
    local dir=${1:?DIR} n=${2:-1}
    shift 2 || shift $#
    CX_STACKS+=("$dir")
    "$CX_STACK_SH" start "$dir" --workers "$n" "$@" >/dev/null \
        || cx_fail "stack did not start in $dir"
    cx_load_env "$dir/env"
    CX_STACK_DIR=$dir
}

cx_stack_down() { "$CX_STACK_SH" stop "${1:-$CX_STACK_DIR}"; }

# Exports the KEY=VALUE lines of an env file.
cx_load_env() {
    set -a
    # shellcheck disable=SC1090
    . "$1"
    set +a
}

cx_service_start() { "$CX_STACK_SH" start-service "$CX_STACK_DIR" "$@"; }
cx_service_kill() { "$CX_STACK_SH" kill "$CX_STACK_DIR" "$@"; }

cx_cxdev() { "$CASCADE_BIN/cxdev" "$@"; }

# cx_wait_for CMD TIMEOUT_S: evaluates CMD (a string, run by eval) every
# 0.2 s until it succeeds; returns 1 if it has not within TIMEOUT_S.
cx_wait_for() {
    local cmd=$1 secs=${2:-30} deadline
    deadline=$(( $(date +%s%N) + secs * 1000000000 ))
    until eval "$cmd" >/dev/null 2>&1; do
        if [ "$(date +%s%N)" -ge "$deadline" ]; then
            cx_log "timed out after ${secs}s waiting for: $cmd"
            return 1
        fi
        sleep 0.2
    done
}

# Asserts two strings are equal.
cx_assert_eq() {
    [ "$1" = "$2" ] || cx_fail "${3:-values differ}: expected '$2', got '$1'"
}
