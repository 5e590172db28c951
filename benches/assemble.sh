#!/usr/bin/env bash
# hoist assemble of a 50 MB binary onto a base already in a local registry, pushed to that
# registry, against skopeo+umoci doing the same and against `hoist build` of the
# equivalent FROM+COPY Dockerfile. Not a test: prints wall-clock seconds and ratios.
#
#   benches/assemble.sh [HOIST_BINARY]   (default target/release/hoist)
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
mkdir -p "$work/ctx"
head -c 50000000 /dev/urandom > "$work/ctx/app"
chmod 0755 "$work/ctx/app"
t() { local s e; s=$(date +%s.%N); "$@" > /dev/null 2>&1; e=$(date +%s.%N); echo "$e - $s" | bc; }

export HOIST_CACHE_DIR="$work/cache-assemble"
a=$(t "$HOIST" assemble --base "$R/base:1" --insecure-registry "$R" --add "$work/ctx/app:/usr/local/bin/app,mode=0755" \
      --entrypoint /usr/local/bin/app -t "$R/app:assemble" --push)

umoci_run() {
  skopeo copy --quiet --src-tls-verify=false "docker://$R/base:1" "oci:$work/u:base"
  umoci unpack --image "$work/u:base" "$work/ub"
  install -D -m 0755 "$work/ctx/app" "$work/ub/rootfs/usr/local/bin/app"
  umoci repack --image "$work/u:base" "$work/ub"
  umoci config --image "$work/u:base" --config.entrypoint /usr/local/bin/app
  skopeo copy --quiet --dest-tls-verify=false "oci:$work/u:base" "docker://$R/app:umoci"
}
u=$(t umoci_run)

printf 'FROM %s/base:1\nCOPY --chmod=0755 app /usr/local/bin/app\nENTRYPOINT ["/usr/local/bin/app"]\n' "$R" > "$work/ctx/Dockerfile"
export HOIST_CACHE_DIR="$work/cache-build"
b=$(t "$HOIST" build --insecure-registry "$R" -t "$R/app:build" --push "$work/ctx")

printf 'hoist assemble --push     %6.2f s\n' "$a"
printf 'skopeo+umoci              %6.2f s  (%.1fx hoist assemble)\n' "$u" "$(echo "$u / $a" | bc -l)"
printf 'hoist build FROM+COPY     %6.2f s  (%.1fx hoist assemble)\n' "$b" "$(echo "$b / $a" | bc -l)"
