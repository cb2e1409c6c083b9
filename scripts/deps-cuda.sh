#!/usr/bin/env bash
# Installs the CUDA 13 compiler, headers, cudart and cuBLAS from PyPI wheels
# into a project-local virtual environment, .deps/cuda-venv (ignored by git),
# so the CUDA kernels compile on a machine without a GPU or a system toolkit
# (CI). Idempotent: skipped when the pinned set is already there.
#
# The wheels hold one toolkit tree, site-packages/nvidia/cu13 (bin/nvcc,
# include/, lib/, nvvm/). The only fix-up it needs to look like a toolkit
# to nvcc and CMake is the unversioned library links (libcublas.so ->
# libcublas.so.13) that `-lcublas` and FindCUDAToolkit look for; the
# wheels ship only the .so.13 names. cmake/CascadeCuda.cmake finds the tree
# through .deps/cuda (a link to it).
#
# Prints the toolkit root on stdout.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
venv="$here/.deps/cuda-venv"
link="$here/.deps/cuda"

# One coherent release: the pins of the cuda-toolkit 13.4.3 meta-package.
pins=(nvidia-cuda-nvcc==13.4.92 nvidia-cuda-crt==13.4.92
      nvidia-nvvm==13.4.92 nvidia-cuda-runtime==13.4.92
      nvidia-cuda-cccl==13.3.4.3.1 nvidia-cublas==13.8.0.4
      nvidia-cuda-nvrtc==13.4.92 nvidia-cuda-cuobjdump==13.4.92)
want=$(printf '%s\n' "${pins[@]}" | sha256sum | cut -d' ' -f1)

if [ "$(cat "$venv/.complete" 2>/dev/null)" != "$want" ]; then
    echo "deps-cuda: installing the CUDA toolkit wheels into $venv" >&2
    py=${PYTHON:-python3}
    rm -rf "$venv"
    "$py" -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check --no-input \
        "${pins[@]}" >&2
    root=$("$venv/bin/python" -c \
        'import os, nvidia; print(os.path.join(list(nvidia.__path__)[0], "cu13"))')
    [ -x "$root/bin/nvcc" ] || { echo "deps-cuda: no nvcc in $root" >&2; exit 1; }
    for lib in "$root"/lib/lib*.so.*; do
        base=${lib%%.so.*}.so
        [ -e "$base" ] || ln -s "$(basename "$lib")" "$base"
    done
    # Fails here, not in the build, if the compiler cannot run.
    "$root/bin/nvcc" --version >/dev/null
    ln -sfn "$root" "$link"
    echo "$want" >"$venv/.complete"
fi
readlink -f "$link"
