#!/usr/bin/env bash
# hoist task (Concourse task mode) cold and cached, against buildah building the same
# Dockerfile and writing the same docker-archive (what oci-build-task's output is).
#
#   benches/task.sh [HOIST_BIN]      (as root; needs buildah, hyperfine, umoci, busybox-static)
set -euo pipefail
cd "$(dirname "$0")/.."
HOIST=$(realpath "${1:-target/release/hoist}")
W=$(mktemp -d /tmp/hoist-task-bench.XXXXXX)
trap 'rm -rf "$W"' EXIT
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
task() { env -i PATH="$PATH" HOME="$HOME" CONTEXT=src IMAGE_ARG_base=busybox "$HOIST" task >/dev/null 2>&1; }
export -f task; export HOIST
bb() { buildah bud --quiet --layers --build-arg base="oci:$PWD/busybox:latest" -t bench-task src >/dev/null 2>&1 && buildah push --quiet bench-task "docker-archive:$PWD/bb.tar:bench-task:latest" >/dev/null 2>&1; }
export -f bb
hyperfine --shell bash --warmup 1 --runs 5 --export-markdown "$W/cold.md" \
  --prepare 'rm -rf cache image bb.tar; mkdir cache image; buildah rmi -a -f >/dev/null 2>&1 || true' \
  -n 'hoist task (cold cache)' 'task' \
  -n 'buildah bud + push docker-archive (cold)' 'bb'
hyperfine --shell bash --warmup 1 --runs 10 --export-markdown "$W/warm.md" \
  --prepare 'rm -rf image bb.tar; mkdir -p image cache' \
  -n 'hoist task (cached)' 'task' \
  -n 'buildah bud + push docker-archive (cached)' 'bb'
cat "$W/cold.md" "$W/warm.md"
