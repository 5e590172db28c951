# The hoist task image for Concourse: a drop-in for oci-build-task
# (`run: {path: build}`) that needs no daemon and no `privileged: true`.
#
#   hoist build -t hoist-task .                         # compile in the image (release)
#   hoist build --target prebuilt \
#     --build-context hoist-binary=DIR .                # DIR/hoist compiled elsewhere
#   hoist build --target tools .                        # + make, git, jq, bash, coreutils
#   hoist build --target prebuilt-tools --build-context hoist-binary=DIR .
#
# BASE_IMAGE and RUST_IMAGE can point anywhere FROM can (a registry, oci:DIR:TAG, ...).
ARG RUST_IMAGE=rust:1-bookworm
ARG BASE_IMAGE=debian:bookworm-slim

# --- compile: the release binary, at /hoist ------------------------------------------
FROM ${RUST_IMAGE} AS compile
WORKDIR /src
# .dockerignore keeps target/, .git and other large or unneeded paths out.
COPY . .
# Registry and target dir are caches: a rebuild only recompiles what changed. The
# binary is copied out in the same step, since the cache mount is gone afterwards.
RUN --mount=type=cache,id=hoist-cargo-registry,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,id=hoist-target,target=/src/target,sharing=locked \
    cargo build --release --locked -p hoist \
 && install -m 0755 target/release/hoist /hoist

# --- runtime: everything but the hoist binary ----------------------------------------
FROM ${BASE_IMAGE} AS runtime
# uidmap: newuidmap/newgidmap for the non-root user's id ranges;
# openssh-client: ssh-agent, to serve BUILDKIT_SSH key files to RUN --mount=type=ssh.
RUN export DEBIAN_FRONTEND=noninteractive \
 && apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates uidmap openssh-client \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin
# A non-root user whose subordinate ids fit in a 65536-id container user namespace
# (Concourse's unprivileged containers): every id but its own, in two ranges.
RUN useradd --uid 1000 --user-group --create-home --shell /bin/sh hoist \
 && printf 'hoist:1:999\nhoist:1001:64535\n' > /etc/subuid \
 && printf 'hoist:1:999\nhoist:1001:64535\n' > /etc/subgid
# oci-build-task's entry point: `run: {path: build}` keeps working unchanged.
RUN printf '#!/bin/sh\nexec hoist task "$@"\n' > /usr/local/bin/build \
 && chmod 0755 /usr/local/bin/build
# Concourse gives tasks no terminal: plain, line-oriented progress.
ENV HOIST_PROGRESS=plain
LABEL org.opencontainers.image.title="hoist" \
      org.opencontainers.image.description="Concourse task image: daemonless, rootless container image builds (a drop-in for oci-build-task)" \
      org.opencontainers.image.source="https://example.invalid/hoist"

# --- prebuilt: a binary compiled outside (--build-context hoist-binary=DIR) ------------
FROM runtime AS prebuilt
COPY --from=hoist-binary hoist /usr/local/bin/hoist

# --- tools: for builds driven by make (or any build tool) calling hoist build ----------
FROM runtime AS tools-runtime
RUN export DEBIAN_FRONTEND=noninteractive \
 && apt-get update \
 && apt-get install -y --no-install-recommends make git jq bash coreutils \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin

FROM tools-runtime AS prebuilt-tools
COPY --from=hoist-binary hoist /usr/local/bin/hoist

FROM tools-runtime AS tools
COPY --from=compile /hoist /usr/local/bin/hoist

# --- release (default): the binary compiled above ----------------------------------------
FROM runtime AS release
COPY --from=compile /hoist /usr/local/bin/hoist
