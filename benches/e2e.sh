#!/usr/bin/env bash
# End-to-end benchmarks: hoist against buildah (and umoci for COPY) on the peer workloads,
# alternating tools run by run (A B A B) on the journaled bench filesystem.
#
#   benches/e2e.sh W1 W2 W3 W4 RUN1G     (needs ../shared/peers: setup.sh, registry-start.sh,
#                                          base-busybox.sh, gen-workloads.py, bench-fs.sh)
# Env: RUNS (default 3), HOIST (default target/release/hoist), OUT (results dir).
set -uo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
P=${PEERS_DIR:-/tmp/hoist-peers}
BF=${BENCH_FS:-/mnt/hoist-peers-bench}
HOIST=${HOIST:-$HERE/target/release/hoist}
RUNS=${RUNS:-3}
OUT=${OUT:-$BF/hoist-results}
REG=${REG:-localhost:5000}
mountpoint -q "$BF" || { echo "run ../shared/peers/bench-fs.sh first" >&2; exit 1; }
mkdir -p "$OUT" "$BF/work" "$BF/out"
CSV=$OUT/results.csv
[ -f "$CSV" ] || echo "workload,tool,run,elapsed_s,maxrss_kb,rc" > "$CSV"
B="buildah --root $BF/containers --runroot /run/containers/bench --storage-driver overlay"
export HOIST_CACHE_DIR=$BF/hoist-cache

measure() { # WORKLOAD TOOL RUN PREP CMD
  local wl=$1 tool=$2 run=$3 prep=$4 cmd=$5 el rss rc
  bash -c "$prep" >/dev/null 2>&1
  sync; sleep 1
  /usr/bin/time -f '%e %M' -o "$OUT/time.tmp" bash -c "$cmd" > "$OUT/$wl-$tool-$run.log" 2>&1
  rc=$?
  read -r el rss < <(tail -1 "$OUT/time.tmp")
  echo "$wl,$tool,$run,$el,$rss,$rc" >> "$CSV"
  printf '%-8s %-14s run%-2s %8ss rss=%8sKB rc=%s\n' "$wl" "$tool" "$run" "$el" "$rss" "$rc"
}

dockerfile() { # WL -> path of a Dockerfile for it
  case $1 in
    W1) printf 'FROM %s/base/busybox:latest\nCOPY . /data\n' "$REG" > "$OUT/W1.Dockerfile" ;;
    W2) printf 'FROM %s/base/busybox:latest\nCOPY . /app\n' "$REG" > "$OUT/W2.Dockerfile" ;;
    W3) sed "s#localhost:5000#$REG#" "$HERE/../shared/peers/dockerfiles/W3.Dockerfile" > "$OUT/W3.Dockerfile" ;;
  esac
  echo "$OUT/$1.Dockerfile"
}

copy_wl() { # WL CTX
  local wl=$1 ctx=$2 df i
  df=$(dockerfile "$wl")
  # warm the base in both tools
  $HOIST build --no-cache -f "$df" "$ctx" --progress quiet >/dev/null 2>&1 || true
  $B pull --tls-verify=false "$REG/base/busybox:latest" >/dev/null 2>&1
  for i in $(seq "$RUNS"); do
    measure "$wl" hoist "$i" "rm -rf $BF/out/hoist-$wl.tar $HOIST_CACHE_DIR/steps" \
      "$HOIST build --no-cache --progress plain -f $df -o type=oci,dest=$BF/out/hoist-$wl.tar $ctx"
    measure "$wl" buildah "$i" "$B rmi -f bench-$(echo $wl | tr A-Z a-z); rm -f $BF/out/buildah-$wl.tar" \
      "$B bud --layers --no-cache --isolation chroot -f $df -t bench-$(echo $wl | tr A-Z a-z) $ctx && $B push bench-$(echo $wl | tr A-Z a-z) oci-archive:$BF/out/buildah-$wl.tar"
    measure "$wl" umoci "$i" "rm -rf $BF/work/umoci-$wl; mkdir -p $BF/work/umoci-$wl; cp -a $P/base/oci-busybox $BF/work/umoci-$wl/layout" \
      "W=$BF/work/umoci-$wl; dst=/data; [ $wl = W2 ] && dst=/app; umoci unpack --image \$W/layout:latest \$W/bundle && mkdir -p \$W/bundle/rootfs\$dst && cp -a $ctx/. \$W/bundle/rootfs\$dst/ && umoci repack --image \$W/layout:latest \$W/bundle && umoci gc --layout \$W/layout && tar -cf $BF/out/umoci-$wl.tar -C \$W/layout ."
  done
  $B rmi -f "bench-$(echo $wl | tr A-Z a-z)" >/dev/null 2>&1
}

w3() {
  local df i
  df=$(dockerfile W3)
  for i in $(seq "$RUNS"); do
    measure W3 hoist "$i" "rm -rf $HOIST_CACHE_DIR/steps" \
      "$HOIST build --no-cache --progress plain -f $df -o type=oci,dest=$BF/out/hoist-W3 $P/ctx-run"
    measure W3 buildah "$i" "$B rmi -f bench-w3; $B rmi --prune -f" \
      "$B bud --layers --no-cache --isolation chroot -f $df -t bench-w3 $P/ctx-run"
  done
}

w4() { # W1 rebuilt with nothing changed, cache on
  local df i
  df=$(dockerfile W1)
  $HOIST build -f "$df" -o "type=oci,dest=$BF/out/hoist-W4" "$P/ctx-large" --progress quiet >/dev/null 2>&1
  $B bud --layers --isolation chroot -f "$df" -t bench-w4 "$P/ctx-large" >/dev/null 2>&1
  for i in $(seq "$RUNS"); do
    measure W4 hoist "$i" "true" "$HOIST build --progress plain -f $df -o type=oci,dest=$BF/out/hoist-W4 $P/ctx-large"
    measure W4 buildah "$i" "true" "$B bud --layers --isolation chroot -f $df -t bench-w4 $P/ctx-large"
  done
}

run1g() { # one RUN touching 1 file over a 1 GB base
  local base=$BF/work/base-1g ctx=$BF/work/ctx-1g i
  if [ ! -f "$base/index.json" ]; then
    rm -rf "$ctx" && mkdir -p "$ctx/big"
    python3 - "$ctx/big" <<'PY'
import os, sys, random
root = sys.argv[1]; rng = random.Random(7)
for d in range(32):
    os.makedirs(f"{root}/d{d:02}", exist_ok=True)
    for f in range(1024):
        with open(f"{root}/d{d:02}/f{f:04}", "wb") as fh:
            fh.write(rng.randbytes(32768))
PY
    printf 'FROM %s/base/busybox:latest\nCOPY big /big\n' "$REG" > "$ctx/Dockerfile"
    $HOIST build --progress quiet -t base1g:latest -o "type=oci,dest=$base" "$ctx"
    skopeo copy --dest-tls-verify=false "oci:$base:latest" "docker://$REG/base/big:latest" >/dev/null
  fi
  printf 'FROM %s/base/big:latest\nRUN echo changed > /big/d00/f0000\n' "$REG" > "$OUT/RUN1G.Dockerfile"
  $HOIST build --no-cache --progress quiet -f "$OUT/RUN1G.Dockerfile" "$P/ctx-run" >/dev/null 2>&1
  $B pull --tls-verify=false "$REG/base/big:latest" >/dev/null 2>&1
  for i in $(seq "$RUNS"); do
    measure RUN1G hoist "$i" "rm -rf $HOIST_CACHE_DIR/steps" \
      "$HOIST build --no-cache --progress plain -f $OUT/RUN1G.Dockerfile $P/ctx-run"
    measure RUN1G buildah "$i" "$B rmi -f bench-1g" \
      "$B bud --layers --no-cache --isolation chroot -f $OUT/RUN1G.Dockerfile -t bench-1g $P/ctx-run"
  done
}

run10() { # ten trivial RUN steps: the per-step overhead
  local i df=$OUT/RUN10.Dockerfile
  { printf 'FROM %s/base/busybox:latest\n' "$REG"; for i in $(seq 10); do printf 'RUN echo step %s > /step%s\n' "$i" "$i"; done; } > "$df"
  $HOIST build --no-cache --progress quiet -f "$df" "$P/ctx-run" >/dev/null 2>&1
  for i in $(seq "$RUNS"); do
    measure RUN10 hoist "$i" "rm -rf $HOIST_CACHE_DIR/steps" \
      "$HOIST build --no-cache --progress plain -f $df $P/ctx-run"
    measure RUN10 buildah "$i" "$B rmi -f bench-run10; $B rmi --prune -f" \
      "$B bud --layers --no-cache --isolation chroot -f $df -t bench-run10 $P/ctx-run"
  done
}

fresh_reg() { # PORT: a registry with empty storage on 127.0.0.1:PORT
  local port=$1
  [ -f "$P/registry-$port.pid" ] && kill "$(cat "$P/registry-$port.pid")" 2>/dev/null
  sleep 0.3; rm -rf "$BF/work/reg-$port"
  REG_LOG=$BF/work/reg-$port.log "$HERE/../shared/peers/registry-start.sh" "127.0.0.1:$port" "$BF/work/reg-$port" >/dev/null
}

w5() { # push W1's image to an empty registry, re-push it, copy registry to registry
  local img=$BF/out/hoist-W1.tar i
  [ -f "$img" ] || $HOIST build --progress quiet -f "$(dockerfile W1)" -o "type=oci,dest=$img" "$P/ctx-large"
  for i in $(seq "$RUNS"); do
    measure W5-push hoist "$i" "$(declare -f fresh_reg); HERE=$HERE P=$P BF=$BF; fresh_reg 5200" \
      "$HOIST push oci-archive:$img docker://127.0.0.1:5200/w1:1"
    measure W5-repush hoist "$i" "true" "$HOIST push oci-archive:$img docker://127.0.0.1:5200/w1:1"
    measure W5-copy-other hoist "$i" "$(declare -f fresh_reg); HERE=$HERE P=$P BF=$BF; fresh_reg 5201" \
      "$HOIST copy docker://127.0.0.1:5200/w1:1 docker://127.0.0.1:5201/w1:1"
    measure W5-copy-same hoist "$i" "true" "$HOIST copy docker://127.0.0.1:5200/w1:1 docker://127.0.0.1:5200/other/w1:$i"
    measure W5-push skopeo "$i" "$(declare -f fresh_reg); HERE=$HERE P=$P BF=$BF; fresh_reg 5200" \
      "skopeo copy --dest-tls-verify=false oci-archive:$img docker://127.0.0.1:5200/w1:1"
    measure W5-repush skopeo "$i" "true" "skopeo copy --dest-tls-verify=false oci-archive:$img docker://127.0.0.1:5200/w1:1"
    measure W5-copy-other skopeo "$i" "$(declare -f fresh_reg); HERE=$HERE P=$P BF=$BF; fresh_reg 5201" \
      "skopeo copy --src-tls-verify=false --dest-tls-verify=false docker://127.0.0.1:5200/w1:1 docker://127.0.0.1:5201/w1:1"
    measure W5-copy-same skopeo "$i" "true" "skopeo copy --src-tls-verify=false --dest-tls-verify=false docker://127.0.0.1:5200/w1:1 docker://127.0.0.1:5200/other2/w1:$i"
  done
}

for w in "$@"; do
  case $w in
    W1) copy_wl W1 "$P/ctx-large" ;;
    W2) copy_wl W2 "$P/ctx-small" ;;
    W3) w3 ;;
    W4) w4 ;;
    RUN1G) run1g ;;
    RUN10) run10 ;;
    W5) w5 ;;
    *) echo "unknown workload $w" >&2 ;;
  esac
done
echo "results: $CSV"
