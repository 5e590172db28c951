#!/usr/bin/env bash
# Run hoist's test binaries again as the unprivileged user `hoisttest` (subuid range
# 200000:65536), the way users without root run hoist. Needs root to set up; CI calls it
# from scripts/test.sh after the root run.
#
# The test binaries, the hoist binary, fixtures and scripts are copied to a directory the
# user owns, and the tests find them through HOIST_BIN / HOIST_REPO.
set -euo pipefail
cd "$(dirname "$0")/.."
USER_NAME=${HOIST_TEST_USER:-hoisttest}
if [ "$(id -u)" != 0 ]; then
  echo "test-unprivileged.sh: run as root (it switches to $USER_NAME)" >&2
  exit 1
fi
id "$USER_NAME" >/dev/null 2>&1 || useradd -m -s /bin/bash "$USER_NAME"
grep -q "^$USER_NAME:" /etc/subuid || echo "$USER_NAME:200000:65536" >> /etc/subuid
grep -q "^$USER_NAME:" /etc/subgid || echo "$USER_NAME:200000:65536" >> /etc/subgid

# Build (already built by the root run: this only lists the executables).
mapfile -t bins < <(cargo test --workspace --no-run --message-format=json 2>/dev/null \
  | jq -r 'select(.reason=="compiler-artifact" and .profile.test==true and .executable!=null) | .executable')
hoist_bin=$(cargo metadata --format-version 1 --no-deps | jq -r .target_directory)/debug/hoist

W=$(mktemp -d /tmp/hoist-unpriv.XXXXXX)
trap 'rm -rf "$W"' EXIT
mkdir -p "$W/bin" "$W/repo" "$W/tmp" "$W/run"
# Hard links where /tmp shares the target's file system (the binaries are large), else copies.
link_or_copy() { cp -l "$1" "$2" 2>/dev/null || cp "$1" "$2"; }
link_or_copy "$hoist_bin" "$W/bin/hoist"
for b in "${bins[@]}"; do link_or_copy "$b" "$W/bin/$(basename "$b")"; done
cp -a fixtures scripts "$W/repo/"
# Base images only root can make (debootstrap) are shared with the unprivileged run.
if [ -d target/test-bases/debian-oci ]; then
  mkdir -p "$W/repo/target/test-bases"
  cp -a target/test-bases/debian-oci "$W/repo/target/test-bases/"
fi
[ -d crates ] && mkdir -p "$W/repo/crates" && for c in crates/*; do
  # test data folders that tests read at run time
  for d in tests/corpus tests/data; do
    [ -d "$c/$d" ] && mkdir -p "$W/repo/$c/$(dirname $d)" && cp -a "$c/$d" "$W/repo/$c/$d"
  done
done
# The user owns its repo copy and scratch space; the binaries stay root's (read + execute).
chown -R "$USER_NAME:" "$W/repo" "$W/tmp" "$W/run"
# A runtime directory of the user's own for podman and skopeo (rootless podman runs the
# images the assemble suite builds): without XDG_RUNTIME_DIR they look under
# /run/containers/UID, which a root podman run leaves root-only (permission denied).
chmod 700 "$W/run"
chmod 755 "$W" "$W/bin"

status=0
for b in "$W"/bin/*; do
  name=$(basename "$b")
  [ "$name" = hoist ] && continue
  # Only the suites that touch the file system, namespaces or the CLI need the second run.
  [[ "$name" =~ ^(assemble|build|cache|run|task|task_image|hostile_context|users|sandbox|hoist_sandbox|hoist_image|hoist_engine)- || "$name" =~ ^(layer_|formats_) ]] || continue
  # The Node and Go apps repeat, rootless, the apt-heavy Debian builds the root run and the
  # Python app (kept here) already cover; skipping them keeps CI under its time budget.
  skip=()
  [[ "$name" =~ ^assemble- ]] && skip=(--skip auto_build_of_a_node --skip auto_build_of_a_go)
  echo "== $name as $USER_NAME"
  if ! runuser -u "$USER_NAME" -- env -i PATH=/usr/local/bin:/usr/bin:/bin HOME="/home/$USER_NAME" LANG=C.UTF-8 \
      HOIST_BIN="$W/bin/hoist" HOIST_REPO="$W/repo" HOIST_TEST_TMP="$W/tmp" TMPDIR="$W/tmp" \
      XDG_RUNTIME_DIR="$W/run" \
      RUST_BACKTRACE=1 CI=1 "$b" --test-threads=2 "${skip[@]}"; then
    status=1
  fi
done
exit $status
