#!/usr/bin/env bash
# A cold CI machine building a realistic multi-stage image (Debian base, apt in RUN, a
# compile, then a COPY of the app) and pushing it, with and without a registry cache
# from another machine; and the same flow with buildah's --cache-from/--cache-to.
# Not a test: prints wall-clock seconds and ratios.
#
#   benches/remote_cache.sh [HOIST_BINARY]     (default target/release/hoist; as root)
#
# Env: DEBIAN_BASE (an OCI layout with tag bookworm; default target/test-bases/debian-oci,
#      made with scripts/make-debian-base.sh when missing), NO_APT=1 (RUN steps that do
#      real work without the network instead of apt-get).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
HOIST=$(realpath "${1:-$repo/target/release/hoist}")
cd "$repo"
source benches/common.sh
bench_workdir remote-cache
DEBIAN_BASE=${DEBIAN_BASE:-$repo/target/test-bases/debian-oci}
[ -f "$DEBIAN_BASE/index.json" ] || bash scripts/make-debian-base.sh "$DEBIAN_BASE"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$W/reg.yml" <<YML
version: 0.1
storage: { filesystem: { rootdirectory: $W/registry } }
http: { addr: 127.0.0.1:$port }
YML
/usr/bin/docker-registry serve "$W/reg.yml" > "$W/reg.log" 2>&1 &
regpid=$!
trap 'kill $regpid 2>/dev/null || true; bench_cleanup' EXIT
for _ in $(seq 50); do curl -fs "http://127.0.0.1:$port/v2/" >/dev/null && break; sleep 0.1; done
R=127.0.0.1:$port
skopeo copy --quiet --dest-tls-verify=false "oci:$DEBIAN_BASE:bookworm" "docker://$R/library/debian:bookworm"

mkdir -p "$W/ctx/app"
cat > "$W/ctx/app.c" <<'C'
#include <stdio.h>
int main(void) { puts("hello from the app"); return 0; }
C
for i in $(seq 200); do head -c 4096 /dev/urandom | base64 > "$W/ctx/app/asset-$i.txt"; done
if [ "${NO_APT:-}" = 1 ]; then
  deps='RUN mkdir -p /opt/deps && for i in $(seq 400); do head -c 65536 /dev/urandom > /opt/deps/f$i; done && gzip -r -9 /opt/deps'
  compile='RUN sha256sum /src/app.c /opt/deps/* > /src/app'
  runtime_deps='RUN mkdir -p /opt/rt && for i in $(seq 200); do head -c 65536 /dev/urandom > /opt/rt/f$i; done && gzip -r -9 /opt/rt'
else
  deps='RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev && rm -rf /var/lib/apt/lists/*'
  compile='RUN gcc -O2 -o /src/app /src/app.c'
  runtime_deps='RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*'
fi
cat > "$W/ctx/Dockerfile" <<DF
FROM $R/library/debian:bookworm AS build
$deps
COPY app.c /src/app.c
$compile
FROM $R/library/debian:bookworm
$runtime_deps
COPY --from=build /src/app /usr/local/bin/app
COPY app/ /app/
DF

t() { local s e; s=$(date +%s.%N); "$@" > "$W/last.log" 2>&1 || { cat "$W/last.log" >&2; exit 1; }; e=$(date +%s.%N); echo "$e - $s" | bc; }
reg_gets() { grep -c '"GET /v2/[^ ]*/blobs/sha256:' "$W/reg.log" || true; }
H=("$HOIST" build --progress plain --insecure-registry "$R")

# hoist: machine A (cold, exports mode=max), machine B (cold cache dir, --cache-from),
# machine C (cold, no cache at all).
hA=$(HOIST_CACHE_DIR=$W/hoist-a t "${H[@]}" --cache-to "type=registry,ref=$R/cache/app:hoist,mode=max" -t "$R/app/hoist:a" --push "$W/ctx")
g0=$(reg_gets)
hB=$(HOIST_CACHE_DIR=$W/hoist-b t "${H[@]}" --cache-from "type=registry,ref=$R/cache/app:hoist" -t "$R/app/hoist:b" --push "$W/ctx")
hB_cached=$(grep -c ' CACHED$' "$W/last.log" || true)
hB_summary=$(grep -o 'remote cache: .*' "$W/last.log" | tail -1)
g1=$(reg_gets)
hC=$(HOIST_CACHE_DIR=$W/hoist-c t "${H[@]}" -t "$R/app/hoist:c" --push "$W/ctx")

# buildah: the same three machines (a fresh store each).
B() { local m=$1; shift; buildah --root "$W/buildah-$m/root" --runroot "$W/buildah-$m/run" --storage-driver overlay "$@"; }
bflow() { # MACHINE TAG [cache flags…]
  local m=$1 tag=$2; shift 2
  B "$m" build --quiet --layers --tls-verify=false "$@" -t "$R/app/buildah:$tag" "$W/ctx" &&
    B "$m" push --quiet --tls-verify=false "$R/app/buildah:$tag"
}
bA=$(t bflow a a --cache-to "$R/cache/app-buildah")
bB=$(t bflow b b --cache-from "$R/cache/app-buildah")
bC=$(t bflow c c)
for m in a b c; do
  B "$m" rm -a >/dev/null 2>&1 || true; B "$m" rmi -a -f >/dev/null 2>&1 || true
  umount -R "$W/buildah-$m/root/overlay" 2>/dev/null || true
done

printf 'workload: %s, base %s\n' "$([ "${NO_APT:-}" = 1 ] && echo 'RUNs writing and gzipping 40 MB (NO_APT=1)' || echo 'apt-get install gcc / ca-certificates, gcc compile')" "$DEBIAN_BASE"
printf '%-52s %8s %8s\n' "cold machine, build + push" hoist buildah
printf '%-52s %7.2fs %7.2fs\n' "A: no cache, --cache-to registry (mode=max)" "$hA" "$bA"
printf '%-52s %7.2fs %7.2fs\n' "B: empty cache dir, --cache-from registry" "$hB" "$bB"
printf '%-52s %7.2fs %7.2fs\n' "C: no cache at all" "$hC" "$bC"
printf 'hoist warm (B) vs cold (C): %.1fx faster; hoist B vs buildah B: %.1fx faster\n' \
  "$(echo "$hC / $hB" | bc -l)" "$(echo "$bB / $hB" | bc -l)"
printf 'hoist B: %s steps CACHED; %s; registry blob GETs during B: %s\n' "$hB_cached" "$hB_summary" "$((g1 - g0))"
