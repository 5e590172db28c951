#!/usr/bin/env bash
# hoist task (Concourse task mode) cold and cached, against buildah building the same
# Dockerfile and context and writing the same docker-archive (what oci-build-task's output is),
# both in one hyperfine run.
#
#   benches/task.sh [HOIST_BIN]      (as root; needs buildah, hyperfine, umoci, busybox-static)
#
# Env: BENCH_FS (default /mnt/hoist-peers-bench: the journaled loop fs of
#      ../shared/peers/bench-fs.sh; when it is not mounted, /tmp is used, which is noisier),
#      RUNS_COLD (default 5), RUNS_CACHED (default 10),
#      OUT (a directory to keep the hyperfine markdown + JSON in; default: not kept).
#
# Equivalent work for both tools, per timed run:
#   cold    hoist: empty task cache (`cache/`)  | buildah: empty private store (base too)
#   cached  hoist: `cache/` of the previous run | buildah: its store of the previous run
#   both read the busybox base from the same OCI layout, build the same Dockerfile and
#   context, and end with a docker-archive file (hoist: image/image.tar; buildah: bb.tar).
#
# buildah runs with its own store under the work directory (never the machine's default
# store, which other users share), overlay driver, `--isolation chroot` as in BENCHMARKS.md's
# other sections.
set -euo pipefail
cd "$(dirname "$0")/.."
HOIST=$(realpath "${1:-target/release/hoist}")
RUNS_COLD=${RUNS_COLD:-5}
RUNS_CACHED=${RUNS_CACHED:-10}
. benches/common.sh
bench_workdir hoist-task-bench

bash scripts/make-busybox-base.sh "$W/busybox" >/dev/null
mkdir -p "$W/work/src/app"
python3 - "$W/work/src/app" <<'PY'
import os, sys, random
random.seed(7)
root = sys.argv[1]
for d in range(40):
    os.makedirs(f"{root}/d{d}", exist_ok=True)
    for f in range(50):
        with open(f"{root}/d{d}/f{f}.txt", "w") as fh:
            fh.write("x" * random.randint(100, 8000))
PY
cat > "$W/work/src/Dockerfile" <<'DF'
ARG base
FROM ${base}
COPY app /app
RUN find /app -type f | wc -l > /count && dd if=/dev/urandom of=/blob bs=1M count=32 2>/dev/null
ENV APP=/app
DF
cp -a "$W/busybox" "$W/work/busybox"
cd "$W/work"

# No output redirection here: hyperfine discards the commands' output itself, and the
# checked runs below show it when a command fails.
task() { env -i PATH="$PATH" HOME="$HOME" CONTEXT=src IMAGE_ARG_base=busybox "$HOIST" task; }
bb() {
  buildah "${ST[@]}" bud --quiet --layers --isolation chroot \
    --build-arg base="oci:$PWD/busybox:latest" -t bench-task src &&
  buildah "${ST[@]}" push --quiet bench-task "docker-archive:$PWD/bb.tar:bench-task:latest"
}
ST_Q=$(printf '%q ' "${ST[@]}")
export -f task bb; export HOIST
ST_DECL="ST=($ST_Q)"
# `export -f` does not carry arrays: each hyperfine command re-declares ST.
reset_hoist='rm -rf cache image; mkdir cache image'
reset_bb_cold="$ST_DECL; rm -f bb.tar; buildah \"\${ST[@]}\" rmi -a -f >/dev/null"
reset_bb_cached='rm -f bb.tar'

# One checked run of each before timing, output shown on failure.
checked() { # NAME PREP CMD
  local log=$W/check-$1.log
  if ! bash -c "$2; $3" >"$log" 2>&1; then
    echo "$1 failed:" >&2; cat "$log" >&2; exit 1
  fi
}
checked hoist "$reset_hoist" task
checked buildah "$reset_bb_cold" "$ST_DECL; bb"
ls -l image/image.tar bb.tar

hyperfine --shell bash --warmup 1 --runs "$RUNS_COLD" \
  --export-markdown "$W/cold.md" --export-json "$W/cold.json" \
  --prepare "$reset_hoist" -n 'hoist task (cold cache)' 'task' \
  --prepare "$reset_bb_cold" -n 'buildah bud + push docker-archive (cold)' "$ST_DECL; bb"
# Cached: the cache (hoist's cache/, buildah's store) is whatever the previous run left;
# only the outputs are removed before each run.
hyperfine --shell bash --warmup 1 --runs "$RUNS_CACHED" \
  --export-markdown "$W/cached.md" --export-json "$W/cached.json" \
  --prepare 'rm -rf image; mkdir image' -n 'hoist task (cached)' 'task' \
  --prepare "$reset_bb_cached" -n 'buildah bud + push docker-archive (cached)' "$ST_DECL; bb"
ls -l image/image.tar bb.tar
cat "$W/cold.md" "$W/cached.md"
python3 - "$W/cold.json" "$W/cached.json" <<'PY'
import json, sys
for f in sys.argv[1:]:
    r = json.load(open(f))["results"]
    h, b = r[0], r[1]
    print(f"{h['command']}: mean {h['mean']:.3f} s ± {h['stddev']:.3f}, median {h['median']:.3f} s")
    print(f"{b['command']}: mean {b['mean']:.3f} s ± {b['stddev']:.3f}, median {b['median']:.3f} s")
    print(f"  buildah / hoist: mean {b['mean']/h['mean']:.2f}x, median {b['median']/h['median']:.2f}x")
PY
if [ -n "${OUT:-}" ]; then mkdir -p "$OUT"; cp "$W"/cold.* "$W"/cached.* "$OUT"/; fi
