# Shared set-up of the side-by-side benchmarks (sourced by benches/task.sh and
# benches/multiplatform.sh, from the repository root).
#
#   bench_workdir NAME   sets W (a fresh, lowercase work directory on the journaled bench
#                        file system, else /tmp) and ST (buildah flags for a private store in
#                        it), and removes both on exit.
#
# Env: BENCH_FS (default /mnt/hoist-peers-bench: the journaled loop fs of
#      ../shared/peers/bench-fs.sh; when it is not mounted, /tmp is used, which is noisier).

bench_workdir() {
  local bf=${BENCH_FS:-/mnt/hoist-peers-bench} base
  if mountpoint -q "$bf"; then
    base=$bf/work
  else
    base=/tmp
    echo "note: $bf is not mounted (../shared/peers/bench-fs.sh); using /tmp, expect more noise" >&2
  fi
  mkdir -p "$base"
  # buildah stores an `oci:DIR` base under the name `localhost/DIR`, and an image name must
  # be lowercase: a work directory from `mktemp -d …XXXXXX` (mixed case) makes every buildah
  # build fail with "repository name must be lowercase" (exit status 125). So: a lowercase name.
  W=$base/$1.$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')
  if [[ $W != "${W,,}" ]]; then
    echo "the work directory $W must be lowercase (buildah names the oci: base after it)" >&2
    exit 1
  fi
  mkdir "$W"
  # buildah's own store under the work directory (never the machine's default store, which
  # other users share), overlay driver.
  ST=(--root "$W/buildah/root" --runroot "$W/buildah/run" --storage-driver overlay)
  trap bench_cleanup EXIT
}

bench_cleanup() {
  buildah "${ST[@]}" rm -a >/dev/null 2>&1 || true
  buildah "${ST[@]}" rmi -a -f >/dev/null 2>&1 || true
  umount -R "$W/buildah/root/overlay" 2>/dev/null || true
  rm -rf "$W"
}
