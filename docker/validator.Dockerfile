# cascade-validator: runs the quality gates on staged batches.
# Build from the repository root (see deploy/README.md):
#   docker build -f docker/validator.Dockerfile -t cascade-validator .
# Stage 1 compiles with Debian's -dev packages (the same as scripts/deps.sh);
# stage 2 carries only the binaries and the shared libraries they load.

FROM debian:bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential cmake pkg-config \
      librdkafka-dev libprotobuf-c-dev protobuf-c-compiler libhiredis-dev check \
      libcjson-dev libyaml-dev libpng-dev zlib1g-dev libssl-dev libcurl4-openssl-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCASCADE_SANITIZE=OFF \
      -DCASCADE_CUDA=OFF \
 && cmake --build /build -j"$(nproc)" --target cascade-validator

FROM debian:bookworm-slim
# Runtime libraries of the binaries (tests/deploy/dockerfile_check.sh keeps
# this list in step with what they link); curl for the HEALTHCHECK.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
      librdkafka1 libprotobuf-c1 libhiredis0.14 libpng16-16 zlib1g libssl3 \
      libcjson1 libyaml-0-2 libcurl4 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin cascade
COPY --from=build /build/bin/cascade-validator /usr/local/bin/
USER 10001:10001
# /healthz, /readyz and /metrics on all interfaces of the container.
ENV CASCADE_HTTP_BIND=0.0.0.0 CASCADE_HTTP_PORT=9100
EXPOSE 9100
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s \
  CMD ["curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:9100/healthz"]
ENTRYPOINT ["/usr/local/bin/cascade-validator"]
