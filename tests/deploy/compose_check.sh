#!/usr/bin/env bash
# deploy/compose: Debian's docker-compose 1.29 must accept the file (alone
# and with the GPU override) without a Docker daemon, and the resolved
# configuration must give each Cascade service only variables its binary
# reads, and a healthcheck on /healthz.
. "$(dirname "$0")/lib.sh"
dc_need "$DC_CHECK"
command -v docker-compose >/dev/null || dc_fail "docker-compose missing: run scripts/deps.sh (make deps)"
dc_known_names "$DC_TMP/known"
main="$DC_REPO/deploy/compose/docker-compose.yml"
gpu="$DC_REPO/deploy/compose/docker-compose.gpu.yml"

grep -q '^name:' "$main" && dc_fail "top-level name: is Compose v2 only"
docker-compose -f "$main" config -q
docker-compose -f "$main" -f "$gpu" config -q
docker-compose -f "$main" config >"$DC_TMP/main.yaml"
docker-compose -f "$main" -f "$gpu" config >"$DC_TMP/gpu.yaml"
"$DC_CHECK" compose -known "$DC_TMP/known" <"$DC_TMP/main.yaml"
"$DC_CHECK" compose -known "$DC_TMP/known" <"$DC_TMP/gpu.yaml"
services=$(docker-compose -f "$main" config --services)
for s in kafka redis s3 "${DC_SERVICES[@]}"; do
    grep -qx "$s" <<<"$services" || dc_fail "no service $s"
done
grep -q 'dockerfile: docker/gpu-worker-cuda.Dockerfile' "$DC_TMP/gpu.yaml" ||
    dc_fail "the GPU override does not build the CUDA worker"
echo "PASS deploy_compose"
