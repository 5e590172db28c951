#!/bin/bash
# Run the sandbox integration tests as unprivileged users (must be started as root).
#
# Creates, when missing:
#   hoisttest        with /etc/subuid and /etc/subgid ranges (full mapping via newuidmap)
#   hoisttest-nosub  without ranges (the single-mapping fallback)
# then builds the tests and runs them as root; the root run re-executes the portable
# tests as both users through `runuser` (see `unprivileged_user_runs_the_suite`).
# Extra arguments go to the test binary.
set -euo pipefail
cd "$(dirname "$0")/../../.."

if [ "$(id -u)" != 0 ]; then
  echo "run-unprivileged.sh: must run as root (it creates the test users)" >&2
  exit 1
fi
command -v newuidmap >/dev/null || apt-get install -y uidmap
command -v busybox >/dev/null || [ -x /bin/busybox ] || apt-get install -y busybox-static

if ! id hoisttest >/dev/null 2>&1; then
  useradd -m hoisttest
fi
for f in /etc/subuid /etc/subgid; do
  grep -q '^hoisttest:' "$f" || echo 'hoisttest:200000:65536' >> "$f"
done
if ! id hoisttest-nosub >/dev/null 2>&1; then
  useradd -m hoisttest-nosub
fi
for f in /etc/subuid /etc/subgid; do
  sed -i '/^hoisttest-nosub:/d' "$f"
done

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target/sandbox}
cargo test -p hoist-sandbox --test sandbox -- --test-threads=2 --nocapture "$@"
