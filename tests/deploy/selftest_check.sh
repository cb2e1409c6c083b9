#!/usr/bin/env bash
# deploycheck itself: fed manifests and a compose configuration with known
# mistakes (tests/deploy/fixtures/bad-*.yaml), it must fail and name each.
. "$(dirname "$0")/lib.sh"
dc_need "$DC_CHECK"
dc_known_names "$DC_TMP/known"
fx=$DC_REPO/tests/deploy/fixtures

expect_fail() {
    local mode=$1 file=$2 out rc=0
    shift 2
    out=$("$DC_CHECK" "$mode" -known "$DC_TMP/known" <"$file") || rc=$?
    [ "$rc" = 1 ] || { echo "$out"; dc_fail "deploycheck $mode exited $rc on $file, expected 1"; }
    for want in "$@"; do
        grep -qF -- "$want" <<<"$out" || { echo "$out"; dc_fail "deploycheck $mode did not report: $want"; }
    done
}

expect_fail k8s "$fx/bad-k8s.yaml" \
    'unknown field "spec.template.spec.containers[0].imagePullPolicyy"' \
    'Deployment mismatch: selector app.kubernetes.io/component=validator does not match' \
    'probe port "web" is not a named container port' \
    'ConfigMap not-rendered is referenced but not rendered' \
    'env CASCADE_KAFKA_BROKERS set twice' \
    'cascade-planner does not read CASCADE_NOPE' \
    'request memory=2Gi above its limit 1Gi' \
    'extended resource nvidia.com/gpu: request must equal a limit' \
    'Service orphan: selector map[app.kubernetes.io/component:nothing] matches no Deployment' \
    'Service wrongport: targetPort metrics is not a port of Deployment mismatch' \
    'PodDisruptionBudget both: exactly one of minAvailable and maxUnavailable' \
    'HorizontalPodAutoscaler Bad_Name: name Bad_Name' \
    'minReplicas above maxReplicas' \
    'scale target Deployment/absent is not rendered' \
    'no kind "Gadget" is registered'
expect_fail compose "$fx/bad-compose.yaml" \
    'compose service planner: cascade-planner does not read CASCADE_SLOTS' \
    'compose service planner: no healthcheck on /healthz' \
    'compose service validator: no healthcheck on /healthz'
# An empty render is a failure too, not a pass.
rc=0
"$DC_CHECK" k8s </dev/null >/dev/null || rc=$?
[ "$rc" = 1 ] || dc_fail "deploycheck k8s passed an empty input"
echo "PASS deploy_selftest"
