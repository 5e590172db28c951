#!/usr/bin/env bash
# Install what hoist's tests need on a fresh Debian machine, then run the whole test suite.
#
#   scripts/test.sh            # as root (installs packages, creates the unprivileged test user)
#
# Tests that need namespaces run twice: as root (the CI user) and as the unprivileged user
# `hoisttest` (subuid/subgid range 200000:65536), through scripts/test-unprivileged.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

need_install=0
for tool in docker-registry skopeo umoci podman busybox newuidmap debootstrap jq htpasswd openssl curl; do
  command -v "$tool" >/dev/null 2>&1 || need_install=1
done
if [ "$need_install" = 1 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "scripts/test.sh: test tools are missing and installing them needs root" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends \
    docker-registry skopeo umoci podman buildah busybox-static uidmap fuse-overlayfs \
    runc debootstrap jq apache2-utils openssl curl ca-certificates git >/dev/null
fi

# podman on these machines: no CAP_SYS_RESOURCE, so keep its default ulimits in range.
if [ "$(id -u)" = 0 ] && [ ! -f /etc/containers/containers.conf.d/50-hoist-tests.conf ]; then
  mkdir -p /etc/containers/containers.conf.d
  cat > /etc/containers/containers.conf.d/50-hoist-tests.conf <<'CONF'
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"
CONF
fi

# The unprivileged test user with a full subordinate id range.
if [ "$(id -u)" = 0 ]; then
  id hoisttest >/dev/null 2>&1 || useradd -m -s /bin/bash hoisttest
  grep -q '^hoisttest:' /etc/subuid || echo 'hoisttest:200000:65536' >> /etc/subuid
  grep -q '^hoisttest:' /etc/subgid || echo 'hoisttest:200000:65536' >> /etc/subgid
fi

export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
# A shared compile cache where one is installed (Debian: sccache): repeated runs on one
# machine then compile dependencies once.
if [ -z "${RUSTC_WRAPPER:-}" ] && command -v sccache >/dev/null 2>&1; then
  export RUSTC_WRAPPER=sccache
fi
# A whole-suite run gains nothing from incremental compilation, which would double the
# target directory's size; set CARGO_INCREMENTAL=1 to keep it.
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}

# Disk space is the resource these tests run short of first (images, caches, registries):
# say how much there is, so a "no space left on device" is easy to place.
df -h . /tmp 2>/dev/null | sed 's/^/scripts\/test.sh: /' || true

# Both runs always happen; the script fails if either did.
status=0
cargo test --workspace --no-fail-fast || status=$?

if [ "$(id -u)" = 0 ]; then
  scripts/test-unprivileged.sh || status=1
fi
exit $status
