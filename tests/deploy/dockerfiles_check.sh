#!/usr/bin/env bash
# docker/: one Dockerfile per service (plus the CUDA gpu-worker), each
# running its own binary; hadolint finds nothing (docker/.hadolint.yaml);
# and each bookworm image's runtime stage installs the Debian package of
# every shared library its binaries link (read from the built binaries with
# readelf and dpkg, on this Debian 12 machine, the images' release).
. "$(dirname "$0")/lib.sh"
dc_need "$DC_HADOLINT"
dd=$DC_REPO/docker
"$DC_HADOLINT" --config "$dd/.hadolint.yaml" "$dd"/*.Dockerfile

# The packages the runtime (second) stage installs: the words after
# --no-install-recommends in its RUN instruction, up to the next &&.
runtime_pkgs() {
    awk '/^FROM /{stage++} stage == 2 && !/^ *#/' "$1" |
        awk '{ line = line " " $0 } !/\\$/ { print line; line = "" }' |
        grep 'apt-get install' | tr -d '\\' | tr -s ' ' '\n' |
        awk '/^--no-install-recommends$/ { on = 1; next } /^&&$/ { on = 0 } on'
}

# Debian package of each library a binary needs: not libc6's (in the base
# image), nor the sanitizer runtimes of an ASan build (make test's).
needed_pkgs() {
    local so path
    for so in $(readelf -d "$1" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
        path=$(ldconfig -p | awk -v s="$so" '$1 == s && /x86-64|x86_64/ {print $NF; exit}')
        [ -n "$path" ] || dc_fail "$1 needs $so, not found on this machine"
        dpkg -S "$(readlink -f "$path")" 2>/dev/null | head -1 | cut -d: -f1
    done | sort -u | { grep -vxE 'libc6|lib(asan|ubsan|tsan|lsan)[0-9]+' || true; }
}

for svc in "${DC_SERVICES[@]}"; do
    f=$dd/$svc.Dockerfile
    [ -f "$f" ] || dc_fail "no $f"
    grep -q "^ENTRYPOINT \[\"/usr/local/bin/cascade-$svc\"\]" "$f" || dc_fail "$f does not run cascade-$svc"
    grep -q '^FROM debian:bookworm AS build' "$f" || dc_fail "$f: build stage is not Debian bookworm"
    grep -q '^FROM debian:bookworm-slim' "$f" || dc_fail "$f: runtime stage is not bookworm-slim"
    have=$(runtime_pkgs "$f")
    for bin in $(sed -n 's|^COPY --from=build \(.*\) /usr/local/bin/$|\1|p' "$f"); do
        b=$(basename "$bin")
        [ -x "$DC_BIN/$b" ] || dc_fail "$DC_BIN/$b not built (set CASCADE_BIN)"
        for p in $(needed_pkgs "$DC_BIN/$b"); do
            grep -qx "$p" <<<"$have" || dc_fail "$f: $b links a library of $p, which the runtime stage does not install"
        done
    done
done

# The CUDA variant: CUDA on, NVIDIA's images, and the same runtime set in
# Ubuntu 24.04's names.
cu=$dd/gpu-worker-cuda.Dockerfile
grep -q -- '-DCASCADE_CUDA=ON' "$cu" || dc_fail "$cu does not enable CUDA"
grep -q '^FROM nvidia/cuda:.*-devel-' "$cu" || dc_fail "$cu: build stage is not nvidia/cuda devel"
grep -q '^FROM nvidia/cuda:.*-runtime-' "$cu" || dc_fail "$cu: runtime stage is not nvidia/cuda runtime"
cuda_have=$(runtime_pkgs "$cu")
for p in $(runtime_pkgs "$dd/gpu-worker.Dockerfile"); do
    case $p in
        libhiredis0.14) p=libhiredis1.1.0 ;;
        libpng16-16 | libssl3 | libcurl4) p=${p}t64 ;;
    esac
    grep -qx "$p" <<<"$cuda_have" || dc_fail "$cu: runtime stage lacks $p"
done
[ -f "$DC_REPO/.dockerignore" ] && grep -qx '.deps' "$DC_REPO/.dockerignore" ||
    dc_fail ".dockerignore must keep .deps out of the build context"
echo "PASS deploy_dockerfiles"
