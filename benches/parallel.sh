#!/usr/bin/env bash
# Parallel stages: what running independent stages at once buys, and the cost of the
# planned engine on a fully cached rebuild. Not a test: numbers go to BENCHMARKS.md.
#
#   benches/parallel.sh HOIST_BIN [BASELINE_HOIST_BIN]
#
# 1. four independent stages of `RUN sleep 2` + a COPY each, final stage copies from all:
#    default --jobs (cores) vs --jobs 1, and the ratio to the longest stage (2 s);
# 2. two stages of real work (CPU: gzip -9 of 64 MiB of random data; I/O: COPY of W1's
#    484 MiB context) against --jobs 1;
# 3. W1 (../shared/peers ctx-large, `FROM busybox; COPY . /data`) rebuilt with nothing
#    changed and no output, against BASELINE_HOIST_BIN (e.g. the previous release) when
#    given. Needs: hyperfine, python3, umoci (busybox base), the workloads of
#    ../shared/peers/gen-workloads.py in $PEERS_DIR (default /tmp/hoist-peers).
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/common.sh
HOIST=$(realpath "$1")
BASELINE=${2:+$(realpath "$2")}
PEERS_DIR=${PEERS_DIR:-/tmp/hoist-peers}
bench_workdir parallel
BB=$W/busybox
bash scripts/make-busybox-base.sh "$BB" >/dev/null

# 1. Four sleeping stages.
mkdir -p "$W/sleep"
for i in 1 2 3 4; do echo "$i" > "$W/sleep/f$i"; done
{
  for i in 1 2 3 4; do
    printf 'FROM oci:%s:latest AS s%d\nRUN sleep 2 && echo %d > /r%d\nCOPY f%d /f%d\n' "$BB" "$i" "$i" "$i" "$i" "$i"
  done
  echo "FROM scratch"
  for i in 1 2 3 4; do printf 'COPY --from=s%d /r%d /f%d /\n' "$i" "$i" "$i"; done
} > "$W/sleep/Dockerfile"
hyperfine --warmup 1 --runs 5 --export-json "$W/sleep.json" \
  -n "hoist 4 stages (default jobs)" "$HOIST build -q --no-cache --cache-dir $W/c1 $W/sleep" \
  -n "hoist 4 stages (--jobs 1)" "$HOIST build -q --no-cache --jobs 1 --cache-dir $W/c1 $W/sleep"

# 2. Real work in two stages.
mkdir -p "$W/work"
cp -a "$PEERS_DIR/ctx-large" "$W/work/big"
cat > "$W/work/Dockerfile" <<DF
FROM oci:$BB:latest AS cpu
RUN head -c 67108864 /dev/urandom | gzip -9 > /out.gz && sha256sum /out.gz > /sum
FROM scratch AS io
COPY big /big
FROM scratch
COPY --from=cpu /sum /sum
COPY --from=io /big /big
DF
hyperfine --warmup 1 --runs 3 --export-json "$W/work.json" \
  -n "hoist cpu+io stages (default jobs)" "$HOIST build -q --no-cache --cache-dir $W/c2 $W/work" \
  -n "hoist cpu+io stages (--jobs 1)" "$HOIST build -q --no-cache --jobs 1 --cache-dir $W/c2 $W/work"

# 3. W1 fully cached, no output.
mkdir -p "$W/w1"
cp -a "$PEERS_DIR/ctx-large/." "$W/w1/"
printf 'FROM oci:%s:latest\nCOPY . /data\n' "$BB" > "$W/w1/Dockerfile"
"$HOIST" build -q --cache-dir "$W/c3" "$W/w1" 2>/dev/null
args=(-n "hoist W1 cached, no output" "$HOIST build -q --cache-dir $W/c3 $W/w1")
if [ -n "$BASELINE" ]; then
  "$BASELINE" build -q --cache-dir "$W/c4" "$W/w1" 2>/dev/null
  args+=(-n "baseline W1 cached, no output" "$BASELINE build -q --cache-dir $W/c4 $W/w1")
fi
hyperfine --warmup 1 --runs 7 --export-json "$W/w1.json" "${args[@]}"
