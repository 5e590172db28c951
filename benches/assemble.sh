#!/usr/bin/env bash
# hoist assemble of a 50 MB binary onto a base already in a local registry, pushed to that
# registry, against skopeo+umoci doing the same and against `hoist build` of the
# equivalent FROM+COPY Dockerfile. Not a test: prints wall-clock seconds (median of
# ROUNDS, default 3) and ratios.
#
#   [ROUNDS=5] [DATA=binary|random] benches/assemble.sh [HOIST_BINARY]   (default target/release/hoist)
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
  # Wall-clock seconds, then the CPU seconds (user + system) of everything it ran: on a
  # shared machine the second says more about the work done.
  times > "$work/times" # not in a $(…): a subshell would count its own children only
  printf '%s %s\n' "$(echo "$e - $s" | bc)" \
    "$(awk 'NR == 2 { split($1, u, "m"); split($2, s, "m"); print u[1] * 60 + u[2] + s[1] * 60 + s[2] }' "$work/times")"
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

# The 50 MB "binary": DATA=binary (default) is real machine code, the executables of
# /usr/bin concatenated (compressible as a Go or Rust binary is, about 2:1) behind 4 KiB
# of random bytes that make every file new; DATA=random is incompressible random bytes.
DATA=${DATA:-binary}
make_app() {
  case "$DATA" in
    random) head -c 50000000 /dev/urandom > "$1" ;;
    binary) { head -c 4096 /dev/urandom; find /usr/bin -maxdepth 1 -type f -size +100k -print0 \
                | sort -z | xargs -0 cat; } 2> /dev/null | head -c 50000000 > "$1" || true
            [ "$(stat -c %s "$1")" = 50000000 ] || { echo "make_app: /usr/bin too small" >&2; exit 1; } ;;
    *) echo "DATA=$DATA: expected binary or random" >&2; exit 1 ;;
  esac
}

# Each round: a new 50 MB binary (nothing in the registry or a cache to reuse),
# fresh hoist caches, new repositories; the three tools in turn.
ROUNDS=${ROUNDS:-3}
A=(); U=(); B=()
for i in $(seq "$ROUNDS"); do
  mkdir -p "$work/ctx$i"
  make_app "$work/ctx$i/app"
  chmod 0755 "$work/ctx$i/app"
  printf 'FROM %s/base:1\nCOPY --chmod=0755 app /usr/local/bin/app\nENTRYPOINT ["/usr/local/bin/app"]\n' "$R" > "$work/ctx$i/Dockerfile"
  export HOIST_CACHE_DIR="$work/cache-assemble-$i"
  A+=("$(t "$HOIST" assemble --base "$R/base:1" --insecure-registry "$R" \
        --add "$work/ctx$i/app:/usr/local/bin/app,mode=0755" \
        --entrypoint /usr/local/bin/app -t "$R/app-assemble-$i:1" --push)")
  U+=("$(t umoci_run "$i")")
  # hoist build sees a new layer too: a different binary than the assemble round's.
  make_app "$work/ctx$i/app"
  export HOIST_CACHE_DIR="$work/cache-build-$i"
  B+=("$(t "$HOIST" build --insecure-registry "$R" -t "$R/app-build-$i:1" --push "$work/ctx$i")")
  rm -rf "$work/u$i" "$work/ub$i" "$work/cache-assemble-$i" "$work/cache-build-$i"
done
wall() { for x in "$@"; do echo "${x% *}"; done; }
cpu() { for x in "$@"; do echo "${x#* }"; done; }
echo "data: $DATA; rounds: $ROUNDS (wall, CPU seconds: assemble ${A[*]}; umoci ${U[*]}; build ${B[*]})"
a=$(median $(wall "${A[@]}")); u=$(median $(wall "${U[@]}")); b=$(median $(wall "${B[@]}"))
ac=$(median $(cpu "${A[@]}")); uc=$(median $(cpu "${U[@]}")); bc_=$(median $(cpu "${B[@]}"))
printf '%-26s %8s %8s %8s\n' "median of $ROUNDS" "wall s" "vs" "CPU s"
printf '%-26s %8.2f %7.1fx %8.2f\n' "hoist assemble --push" "$a" 1 "$ac"
printf '%-26s %8.2f %7.1fx %8.2f\n' "skopeo+umoci" "$u" "$(echo "$u / $a" | bc -l)" "$uc"
printf '%-26s %8.2f %7.1fx %8.2f\n' "hoist build FROM+COPY" "$b" "$(echo "$b / $a" | bc -l)" "$bc_"
