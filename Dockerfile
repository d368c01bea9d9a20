# syntax=docker/dockerfile:1
# Gavel: one image, one binary; the role is the subcommand
# (`gavel aggregate`, `gavel sink`, `gavel topics create`, ...).
#
#   docker build -t gavel:local .
#
# The cache mounts below need BuildKit (the default builder since Docker 23).

# ---------------------------------------------------------------------------
# Builder
# ---------------------------------------------------------------------------
FROM rust:1-bookworm AS builder

# rdkafka is built with its `cmake-build` feature, i.e. librdkafka is compiled from
# source here: cmake, a C/C++ toolchain and the -dev headers it can link against.
# Versions are not pinned (hadolint DL3008): bookworm's security updates replace them.
# hadolint ignore=DL3008
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      cmake g++ make pkg-config \
      libcurl4-openssl-dev libssl-dev libsasl2-dev zlib1g-dev \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /build
COPY . .

# The registry and target caches persist between builds, so a source change does
# not recompile librdkafka and every dependency. A cache mount is not part of the
# image, so the binary is copied out of target/ in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/build/target \
    cargo build --release --locked --bin gavel \
 && cp target/release/gavel /usr/local/bin/gavel

# ---------------------------------------------------------------------------
# Runtime base: everything but the binary
# ---------------------------------------------------------------------------
FROM debian:bookworm-slim AS runtime-base

# ca-certificates: the registry client (reqwest + rustls) verifies HTTPS against the
# system trust store, and so will Kafka (SASL_SSL) and Postgres (sslmode=require) TLS.
# The binary links libssl3 (librdkafka's TLS and SCRAM, Postgres TLS) and zlib1g
# (librdkafka's libz); libcurl4 and libsasl2-2 are the runtime halves of the other -dev
# packages in the builder.
# hadolint ignore=DL3008
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      ca-certificates libcurl4 libssl3 libsasl2-2 zlib1g \
 && rm -rf /var/lib/apt/lists/*

# Fixed, non-root uid/gid 10001: the Kubernetes manifests pin runAsUser 10001, and a
# numeric USER lets the kubelet verify runAsNonRoot.
RUN groupadd --system --gid 10001 gavel \
 && useradd --system --uid 10001 --gid 10001 --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin gavel

# `gavel schemas register` reads these; its default --dir is ./schemas, which
# resolves to /opt/gavel/schemas from the WORKDIR below.
COPY schemas/ /opt/gavel/schemas/

WORKDIR /opt/gavel
USER 10001:10001

# Every worker serves /metrics, /health and /ready here (the binary's own default is
# an ephemeral loopback port, right for tests, useless in a container). The HTTP APIs
# listen on 8080 (`--listen 0.0.0.0:8080`).
ENV GAVEL_METRICS_ADDR=0.0.0.0:9464
EXPOSE 9464 8080

# Healthy = the worker's /health answers 200. No curl or wget in the image: bash
# speaks the one HTTP/1.0 request itself over /dev/tcp. A one-shot command (topics,
# schemas, audit) serves no /health; compose disables the check for those.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${GAVEL_METRICS_ADDR##*:} && printf 'GET /health HTTP/1.0\\r\\n\\r\\n' >&3 && read -r -t 4 _ status _ <&3 && [[ $status == 200 ]]"]

# gavel handles SIGTERM itself (finishes in-flight work, then exits), so it can run
# as PID 1 without an init shim.
ENTRYPOINT ["gavel"]
CMD ["--help"]

# ---------------------------------------------------------------------------
# Runtime with a binary built on the host: `--target prebuilt`, for machines
# whose Rust is too old for the builder stage. The context must hold
# target/release/gavel (a release build on Debian bookworm, so it links the
# same libraries); deploy/container/smoke.sh assembles such a context.
# ---------------------------------------------------------------------------
FROM runtime-base AS prebuilt
COPY target/release/gavel /usr/local/bin/gavel

# ---------------------------------------------------------------------------
# Runtime (the default target): the binary from the builder stage
# ---------------------------------------------------------------------------
FROM runtime-base AS runtime
COPY --from=builder /usr/local/bin/gavel /usr/local/bin/gavel
