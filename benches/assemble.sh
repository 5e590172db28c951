#!/usr/bin/env bash
# hoist assemble of a 50 MB binary onto a base already in a local registry, pushed to that
# registry, against skopeo+umoci doing the same and against `hoist build` of the
# equivalent FROM+COPY Dockerfile. Not a test: prints wall-clock seconds (median of
# ROUNDS, default 3) and ratios.
#
#   [ROUNDS=5] benches/assemble.sh [HOIST_BINARY]   (default target/release/hoist)
set -euo pipefail
HOIST=${1:-target/release/hoist}
HOIST=$(realpath "$HOIST")
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'kill $regpid 2>/dev/null || true; rm -rf "$work"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$work/reg.yml" <<YML
version: 0.1
storage: { filesystem: { rootdirectory: $work/registry } }
http: { addr: 127.0.0.1:$port }
YML
/usr/bin/docker-registry serve "$work/reg.yml" > "$work/reg.log" 2>&1 &
regpid=$!
for _ in $(seq 50); do curl -fs "http://127.0.0.1:$port/v2/" >/dev/null && break; sleep 0.1; done
R=127.0.0.1:$port
base="$repo/target/test-bases/busybox-oci-uid$(id -u)"
[ -f "$base/index.json" ] || bash "$repo/scripts/make-busybox-base.sh" "$base"
skopeo copy --quiet --dest-tls-verify=false "oci:$base:latest" "docker://$R/base:1"
t() {
  local s e
  s=$(date +%s.%N)
  "$@" > "$work/last.log" 2>&1 || { echo "failed: $*" >&2; cat "$work/last.log" >&2; return 1; }
  e=$(date +%s.%N)
  echo "$e - $s" | bc
}
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

umoci_run() {
  local i=$1
  skopeo copy --quiet --src-tls-verify=false "docker://$R/base:1" "oci:$work/u$i:base"
  umoci unpack --image "$work/u$i:base" "$work/ub$i"
  install -D -m 0755 "$work/ctx$i/app" "$work/ub$i/rootfs/usr/local/bin/app"
  umoci repack --image "$work/u$i:base" "$work/ub$i"
  umoci config --image "$work/u$i:base" --config.entrypoint /usr/local/bin/app
  skopeo copy --quiet --dest-tls-verify=false "oci:$work/u$i:base" "docker://$R/app-umoci-$i:1"
}

# Each round: a new random 50 MB binary (nothing in the registry or a cache to reuse),
# fresh hoist caches, new repositories; the three tools in turn.
ROUNDS=${ROUNDS:-3}
A=(); U=(); B=()
for i in $(seq "$ROUNDS"); do
  mkdir -p "$work/ctx$i"
  head -c 50000000 /dev/urandom > "$work/ctx$i/app"
  chmod 0755 "$work/ctx$i/app"
  printf 'FROM %s/base:1\nCOPY --chmod=0755 app /usr/local/bin/app\nENTRYPOINT ["/usr/local/bin/app"]\n' "$R" > "$work/ctx$i/Dockerfile"
  export HOIST_CACHE_DIR="$work/cache-assemble-$i"
  A+=("$(t "$HOIST" assemble --base "$R/base:1" --insecure-registry "$R" \
        --add "$work/ctx$i/app:/usr/local/bin/app,mode=0755" \
        --entrypoint /usr/local/bin/app -t "$R/app-assemble-$i:1" --push)")
  U+=("$(t umoci_run "$i")")
  # hoist build sees a new layer too: a different binary than the assemble round's.
  head -c 50000000 /dev/urandom > "$work/ctx$i/app"
  export HOIST_CACHE_DIR="$work/cache-build-$i"
  B+=("$(t "$HOIST" build --insecure-registry "$R" -t "$R/app-build-$i:1" --push "$work/ctx$i")")
  rm -rf "$work/u$i" "$work/ub$i" "$work/cache-assemble-$i" "$work/cache-build-$i"
done
a=$(median "${A[@]}"); u=$(median "${U[@]}"); b=$(median "${B[@]}")
echo "rounds: $ROUNDS (seconds: assemble ${A[*]}; umoci ${U[*]}; build ${B[*]})"
printf 'hoist assemble --push     %6.2f s  (median)\n' "$a"
printf 'skopeo+umoci              %6.2f s  (%.1fx hoist assemble)\n' "$u" "$(echo "$u / $a" | bc -l)"
printf 'hoist build FROM+COPY     %6.2f s  (%.1fx hoist assemble)\n' "$b" "$(echo "$b / $a" | bc -l)"
