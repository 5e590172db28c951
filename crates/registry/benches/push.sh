#!/bin/bash
# Benchmark: push a ~500 MB multi-layer OCI image with hoist's registry client vs
# `skopeo copy`, to an empty registry (first push) and again (all blobs present).
#
# Usage: crates/registry/benches/push.sh [RUNS]      (from the workspace root)
# Env:   BENCH_DIR (default /tmp/hoist-push-bench), LAYERS (5), LAYER_MB (100)
#
# Each first-push run gets a fresh docker-registry (empty storage); re-push runs
# reuse the populated one. Prints per-run times and medians.
#
# Measured 2026-11-23 on the 2-core dev machine (load average ~8 from other jobs, so
# noisy), 5 x ~100 MB gzip layers (499 MB), RUNS=5:
#   first push: skopeo 6.22 s, hoist 4.07 s (1.53x)   re-push: skopeo 0.101 s, hoist 0.011 s (9.4x)
# CPU for a first push: hoist 0.06 s user + 0.27 s sys; skopeo 1.5 s user + 0.3 s sys.
set -euo pipefail
RUNS=${1:-3}
DIR=${BENCH_DIR:-/tmp/hoist-push-bench}
LAYERS=${LAYERS:-5}
LAYER_MB=${LAYER_MB:-128}
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target/registry}
mkdir -p "$DIR"

# 1. The image: LAYERS gzip layers of random + text data, written as an OCI layout.
LAYOUT=$DIR/layout
if [ ! -f "$LAYOUT/index.json" ]; then
  echo "generating a ${LAYERS}x${LAYER_MB} MB image in $LAYOUT" >&2
  rm -rf "$LAYOUT" "$DIR/gen"; mkdir -p "$LAYOUT/blobs/sha256" "$DIR/gen"
  layers_json=""; diffids=""
  for i in $(seq 1 "$LAYERS"); do
    d=$DIR/gen/l$i; mkdir -p "$d/data"
    head -c $((LAYER_MB * 7 / 10))M /dev/urandom > "$d/data/random.bin"
    seq 1 $((LAYER_MB * 3 / 10 * 150000)) | head -c $((LAYER_MB * 3 / 10))M > "$d/data/text.txt" || true
    echo "layer $i" > "$d/data/id.txt"
    tar -C "$d" --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -cf "$DIR/gen/l$i.tar" data
    diff=$(sha256sum "$DIR/gen/l$i.tar" | cut -d' ' -f1)
    gzip -1 -n -c "$DIR/gen/l$i.tar" > "$DIR/gen/l$i.tgz"
    dg=$(sha256sum "$DIR/gen/l$i.tgz" | cut -d' ' -f1); sz=$(stat -c %s "$DIR/gen/l$i.tgz")
    mv "$DIR/gen/l$i.tgz" "$LAYOUT/blobs/sha256/$dg"; rm -rf "$d" "$DIR/gen/l$i.tar"
    layers_json+="${layers_json:+,}{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"sha256:$dg\",\"size\":$sz}"
    diffids+="${diffids:+,}\"sha256:$diff\""
  done
  printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[%s]}}' "$diffids" > "$DIR/gen/config.json"
  cd=$(sha256sum "$DIR/gen/config.json" | cut -d' ' -f1); cs=$(stat -c %s "$DIR/gen/config.json")
  mv "$DIR/gen/config.json" "$LAYOUT/blobs/sha256/$cd"
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[%s]}' \
    "$cd" "$cs" "$layers_json" > "$DIR/gen/manifest.json"
  md=$(sha256sum "$DIR/gen/manifest.json" | cut -d' ' -f1); ms=$(stat -c %s "$DIR/gen/manifest.json")
  mv "$DIR/gen/manifest.json" "$LAYOUT/blobs/sha256/$md"
  printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"bench"}}]}' \
    "$md" "$ms" > "$LAYOUT/index.json"
  echo '{"imageLayoutVersion":"1.0.0"}' > "$LAYOUT/oci-layout"
fi
echo "image: $(du -sh "$LAYOUT/blobs" | cut -f1) in $LAYERS layers" >&2
[ -n "${GEN_ONLY:-}" ] && exit 0

# 2. hoist's pusher (release build).
# (Set HOIST_PUSH_BIN to use an already built binary.)
if [ -z "${HOIST_PUSH_BIN:-}" ]; then
  (cd "$ROOT" && cargo build --release -q -p hoist-registry --example push_layout)
fi
HOIST=${HOIST_PUSH_BIN:-$CARGO_TARGET_DIR/release/examples/push_layout}

# 3. A registry on a free port with fresh storage.
REG_PID=""; PORT=""
printf 'version: 0.1\n' > "$DIR/registry.yml"
start_registry() {
  rm -rf "$DIR/storage"; mkdir -p "$DIR/storage"
  REGISTRY_HTTP_ADDR=127.0.0.1:0 REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY=$DIR/storage \
  REGISTRY_STORAGE_DELETE_ENABLED=true REGISTRY_LOG_LEVEL=info REGISTRY_LOG_ACCESSLOG_DISABLED=true \
  REGISTRY_HTTP_SECRET=bench /usr/bin/docker-registry serve "$DIR/registry.yml" > "$DIR/registry.log" 2>&1 &
  REG_PID=$!
  for _ in $(seq 100); do
    PORT=$(grep -o 'listening on 127.0.0.1:[0-9]*' "$DIR/registry.log" | head -1 | cut -d: -f2 || true)
    [ -n "$PORT" ] && break; sleep 0.05
  done
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/v2/" > /dev/null && break; sleep 0.05; done
}
stop_registry() { [ -n "$REG_PID" ] && kill "$REG_PID" 2>/dev/null && wait "$REG_PID" 2>/dev/null || true; REG_PID=""; }
trap stop_registry EXIT

now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

run_tool() { # tool ref
  case $1 in
    skopeo) skopeo copy --quiet --dest-tls-verify=false "oci:$LAYOUT:bench" "docker://$2" ;;
    hoist) "$HOIST" "$LAYOUT" bench "$2" 2>>"$DIR/hoist.log" ;;
  esac
}

declare -A FIRST REPUSH
for tool in skopeo hoist; do
  FIRST[$tool]=""; REPUSH[$tool]=""
  for i in $(seq 1 "$RUNS"); do
    start_registry
    sync; t0=$(now); run_tool $tool "127.0.0.1:$PORT/bench/img:v1"; t1=$(now)
    FIRST[$tool]+="$(echo "$t1 - $t0" | bc) "
    for j in 1 2; do
      t0=$(now); run_tool $tool "127.0.0.1:$PORT/bench/img:v1"; t1=$(now)
      REPUSH[$tool]+="$(echo "$t1 - $t0" | bc) "
    done
    stop_registry
  done
  echo "$tool first push: ${FIRST[$tool]}" >&2
  echo "$tool re-push:    ${REPUSH[$tool]}" >&2
done
fs=$(echo ${FIRST[skopeo]} | tr ' ' '\n' | median); fh=$(echo ${FIRST[hoist]} | tr ' ' '\n' | median)
rs=$(echo ${REPUSH[skopeo]} | tr ' ' '\n' | median); rh=$(echo ${REPUSH[hoist]} | tr ' ' '\n' | median)
printf 'first push (median of %s): skopeo %.3fs  hoist %.3fs  speed-up %.2fx\n' "$RUNS" "$fs" "$fh" "$(echo "$fs / $fh" | bc -l)"
printf 're-push    (median of %s): skopeo %.3fs  hoist %.3fs  speed-up %.2fx\n' "$((RUNS*2))" "$rs" "$rh" "$(echo "$rs / $rh" | bc -l)"
