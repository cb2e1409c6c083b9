# cascade-gpu-worker-cuda: the gpu-worker built with the CUDA kernels
# (CASCADE_CUDA=ON; sm_80 and sm_90, as cmake/CascadeCuda.cmake), on NVIDIA's
# CUDA images, with the CPU and CUDA generator plug-ins. Needs the NVIDIA
# container runtime on the node (the Helm chart requests nvidia.com/gpu).
# Build from the repository root (see deploy/README.md):
#   docker build -f docker/gpu-worker-cuda.Dockerfile -t cascade-gpu-worker-cuda .
# NVIDIA publishes no Debian-based CUDA image: Ubuntu 24.04 is the base, so
# the runtime package names differ from the bookworm images' (t64 ABI).
ARG CUDA_VERSION=12.8.1

FROM nvidia/cuda:${CUDA_VERSION}-devel-ubuntu24.04 AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential cmake pkg-config \
      librdkafka-dev libprotobuf-c-dev protobuf-c-compiler libhiredis-dev check \
      libcjson-dev libyaml-dev libpng-dev zlib1g-dev libssl-dev libcurl4-openssl-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCASCADE_SANITIZE=OFF \
      -DCASCADE_CUDA=ON -DCUDAToolkit_ROOT=/usr/local/cuda \
      -DCMAKE_CUDA_COMPILER=/usr/local/cuda/bin/nvcc \
 && cmake --build /build -j"$(nproc)" \
      --target cascade-gpu-worker cascade_refgen cascade_refgen_cuda

FROM nvidia/cuda:${CUDA_VERSION}-runtime-ubuntu24.04
# The runtime image brings the CUDA runtime and cuBLAS; these are the
# binaries' other libraries (Ubuntu 24.04 names); curl for the HEALTHCHECK.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
      librdkafka1 libprotobuf-c1 libhiredis1.1.0 libpng16-16t64 zlib1g libssl3t64 \
      libcjson1 libyaml-0-2 libcurl4t64 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin cascade
COPY --from=build /build/bin/cascade-gpu-worker /usr/local/bin/
COPY --from=build /build/plugins/ /usr/local/lib/cascade/plugins/
USER 10001:10001
ENV CASCADE_HTTP_BIND=0.0.0.0 CASCADE_HTTP_PORT=9100 \
    NVIDIA_VISIBLE_DEVICES=all NVIDIA_DRIVER_CAPABILITIES=compute,utility
EXPOSE 9100
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s \
  CMD ["curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:9100/healthz"]
ENTRYPOINT ["/usr/local/bin/cascade-gpu-worker"]
