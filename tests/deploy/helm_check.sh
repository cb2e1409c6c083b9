#!/usr/bin/env bash
# deploy/helm/cascade: `helm lint --strict`, then `helm template` with the
# default values and with tests/deploy/values-full.yaml (every option on),
# each render checked by deploycheck (strict decoding into the Kubernetes
# API types, API-server rules, cross references, and that every CASCADE_*
# variable a container gets is one its binary reads); then the facts the
# deployment relies on, and the values schema refusing bad input.
. "$(dirname "$0")/lib.sh"
dc_need "$DC_HELM"
dc_need "$DC_CHECK"
dc_known_names "$DC_TMP/known"
full="$DC_REPO/tests/deploy/values-full.yaml"
kv=(--kube-version 1.30.0)

"$DC_HELM" lint --strict "$DC_CHART"
"$DC_HELM" lint --strict "$DC_CHART" -f "$full"
"$DC_HELM" template cx "$DC_CHART" "${kv[@]}" >"$DC_TMP/default.yaml"
"$DC_HELM" template cx "$DC_CHART" "${kv[@]}" -f "$full" >"$DC_TMP/full.yaml"
"$DC_CHECK" k8s -known "$DC_TMP/known" <"$DC_TMP/default.yaml"
"$DC_CHECK" k8s -known "$DC_TMP/known" <"$DC_TMP/full.yaml"

# One render's one object: show KIND NAME FILE
show() { awk -v k="kind: $1" -v n="  name: $2" '
    /^---/ { if (hit) exit; buf = ""; kind = 0; name = 0; next }
    { buf = buf $0 "\n" }
    $0 == k { kind = 1 }
    $0 == n { name = 1 }
    kind && name { hit = 1 }
    END { if (!hit) exit 1; printf "%s", buf }' "$3" || dc_fail "$1 $2 not rendered"; }
count() { grep -c -- "$1" "$2" || true; }
# has KIND NAME FILE PATTERN: the object matches the grep pattern. (The
# object is read whole first: grep -q on a pipe would cut awk short.)
has() { local o; o=$(show "$1" "$2" "$3"); grep -q -- "$4" <<<"$o"; }

d=$DC_TMP/default.yaml
[ "$(count '^kind: Deployment$' "$d")" = 6 ] || dc_fail "expected 6 Deployments"
[ "$(count '^kind: PodDisruptionBudget$' "$d")" = 6 ] || dc_fail "expected 6 PodDisruptionBudgets"
[ "$(count '^kind: Service$' "$d")" = 6 ] || dc_fail "expected 6 metrics Services"
[ "$(count 'path: /healthz$' "$d")" = 6 ] || dc_fail "every service needs a liveness probe on /healthz"
[ "$(count 'path: /readyz$' "$d")" = 6 ] || dc_fail "every service needs a readiness probe on /readyz"
[ "$(count '^kind: HorizontalPodAutoscaler$' "$d")" = 0 ] || dc_fail "HPA must be off by default"
has Job cx-cascade-topics "$d" '"helm.sh/hook"\|helm.sh/hook: pre-install,pre-upgrade' ||
    dc_fail "the topics Job must be a pre-install/pre-upgrade hook"
w=$(show Deployment cx-cascade-gpu-worker "$d")
grep -q '^ *nvidia.com/gpu: 1$' <<<"$w" || dc_fail "gpu-worker has no nvidia.com/gpu limit"
grep -q 'key: nvidia.com/gpu' <<<"$w" || dc_fail "gpu-worker does not tolerate the GPU taint"
grep -q 'nvidia.com/gpu.present: "true"' <<<"$w" || dc_fail "gpu-worker has no GPU nodeSelector"
grace=$(sed -n 's/^ *terminationGracePeriodSeconds: //p' <<<"$w")
[ "$grace" -ge 120 ] || dc_fail "gpu-worker grace period $grace s is too short to drain units of up to 60 s"
grep -q 'name: CASCADE_S3_SECRET_ACCESS_KEY' <<<"$w" || dc_fail "S3 secret not passed to gpu-worker"
has Deployment cx-cascade-planner "$d" 'cpu\|memory' || dc_fail "planner has no resources"
has ConfigMap cx-cascade-common "$d" 'CASCADE_STORE_URI: "s3://cascade/datasets"' ||
    dc_fail "common ConfigMap lacks the store URI"

f=$DC_TMP/full.yaml
[ "$(count '^kind: HorizontalPodAutoscaler$' "$f")" = 1 ] || dc_fail "validator HPA not rendered"
v=$(show Deployment cx-cascade-validator "$f")
grep -q '^  replicas:' <<<"$v" && dc_fail "an autoscaled Deployment must leave replicas to the HPA"
has Deployment cx-cascade-gpu-worker "$f" '^ *nvidia.com/gpu: 2$' || dc_fail "gpu.count not applied"
has Deployment cx-cascade-committer "$f" 'claimName: cascade-datasets' || dc_fail "file store claim not mounted"
has Deployment cx-cascade-committer "$f" 'mountPath: /data/cascade' || dc_fail "file store mounted at the wrong path"
v=$(show ConfigMap cx-cascade-common "$f")
grep -q CASCADE_REDIS_URL <<<"$v" && dc_fail "Redis URL must come from its Secret only"
has Deployment cx-cascade-indexer "$f" 'name: redis-credentials' || dc_fail "Redis URL Secret not referenced"
has Deployment cx-cascade-indexer "$f" 'image: "registry.example.com/ml/cascade-indexer:1.2.3"' ||
    dc_fail "image registry/tag not applied"

# The schema refuses what the services would not understand.
for bad in "services.planner.config.PLANNER_X=1" "store.uri=gs://bucket" \
           "services.gpu-worker.gpu.count=-1" "log.level=verbose"; do
    if "$DC_HELM" template cx "$DC_CHART" "${kv[@]}" --set "$bad" >/dev/null 2>&1; then
        dc_fail "values schema accepted --set $bad"
    fi
done
echo "PASS deploy_helm"
