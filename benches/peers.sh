#!/usr/bin/env bash
# Issue 16's benchmarks, hoist side by side with its peers in ONE run, tools alternated
# run by run (A B C A B C), builder state and outputs on the journaled loop fs.
#
#   benches/peers.sh [ROW...]      rows: W1 W1dir W2 W3 W4 W1push W5 MEM (default: all)
#
# Needs ../shared/peers: setup.sh, registry-start.sh (localhost:5000), base-busybox.sh,
# gen-workloads.py, bench-fs.sh, and dockerd-start.sh overlay2 $BF/docker for docker.
# Peers: docker (dockerd 20.10 + BuildKit, `docker build`), buildah (`bud --layers`,
# chroot), skopeo (W5), bk (buildctl, when $BC works). Env: RUNS (3), HOIST
# (target/release/hoist), PEERS ("docker buildah"), OUT ($BF/peers), BF.
# Writes $OUT/results.csv (workload,tool,run,elapsed_s,maxrss_kb,rc; /usr/bin/time -v
# numbers) and $OUT/table.md (medians, ratios against hoist), the table of BENCHMARKS.md.
set -uo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
P=${PEERS_DIR:-/tmp/hoist-peers}
BF=${BF:-/mnt/hoist-peers-bench}
H=${HOIST:-$HERE/target/release/hoist}
RUNS=${RUNS:-3}
PEERS=${PEERS:-"docker buildah"}
OUT=${OUT:-$BF/peers}
REG=localhost:5000
D=/usr/bin/docker                       # 20.10: DOCKER_BUILDKIT=1 works with it
BC=${BC:-"buildctl --addr unix:///run/buildkit/buildkitd.sock"}
B="buildah --root $BF/containers --runroot /run/containers/peers --storage-driver overlay"
mountpoint -q "$BF" || { echo "run ../shared/peers/bench-fs.sh first" >&2; exit 1; }
[ -x "$H" ] || { echo "build hoist first: cargo build --release -p hoist" >&2; exit 1; }
mkdir -p "$OUT/logs" "$OUT/df" "$BF/out" "$BF/work"
CSV=$OUT/results.csv
[ -f "$CSV" ] || echo "workload,tool,run,elapsed_s,maxrss_kb,rc" > "$CSV"
export HOIST_CACHE_DIR=$BF/peers-hoist-cache
PUSHPORT=5191; PR=$BF/work/peers-reg

printf 'FROM %s/base/busybox:latest\nCOPY . /data\n' $REG > "$OUT/df/W1.Dockerfile"
printf 'FROM %s/base/busybox:latest\nCOPY . /app\n' $REG > "$OUT/df/W2.Dockerfile"
cp "$HERE/../shared/peers/dockerfiles/W3.Dockerfile" "$OUT/df/W3.Dockerfile" 2>/dev/null ||
  cp /work/shared/peers/dockerfiles/W3.Dockerfile "$OUT/df/W3.Dockerfile"

measure() { # WORKLOAD TOOL RUN PREP CMD  (PREP untimed)
  bash -c "$4" >>"$OUT/prep.log" 2>&1
  sync; sleep 1
  /usr/bin/time -v -o "$OUT/time.tmp" bash -c "$5" >"$OUT/logs/$1-$2-$3.log" 2>&1
  local rc=$? el rss
  el=$(awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,a,":"); s=0; for(i=1;i<=n;i++) s=s*60+a[i]; print s}' "$OUT/time.tmp")
  rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$OUT/time.tmp")
  echo "$1,$2,$3,$el,$rss,$rc" >> "$CSV"
  printf '%-9s %-12s run%s %8ss rss=%8sKB rc=%s\n' "$1" "$2" "$3" "$el" "$rss" "$rc"
}

ctx_of() { case $1 in W1|W4*|W1*) echo "$P/ctx-large";; W2) echo "$P/ctx-small";; W3) echo "$P/ctx-run";; esac; }
df_of() { case $1 in W2) echo "$OUT/df/W2.Dockerfile";; W3) echo "$OUT/df/W3.Dockerfile";; *) echo "$OUT/df/W1.Dockerfile";; esac; }

# A fresh, empty registry on $PUSHPORT (for the push rows).
fresh_registry() {
  echo "[ -f $PR.pid ] && kill \$(cat $PR.pid) 2>/dev/null; sleep 0.3; rm -rf $PR; mkdir -p $PR; printf 'version: 0.1\n' > $PR.yml; REGISTRY_HTTP_ADDR=127.0.0.1:$PUSHPORT REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY=$PR REGISTRY_LOG_LEVEL=error REGISTRY_LOG_ACCESSLOG_DISABLED=true setsid /usr/bin/docker-registry serve $PR.yml >/dev/null 2>&1 </dev/null & echo \$! > $PR.pid; sleep 1"
}

cmd() { # TOOL ROW NOCACHE -> the timed command
  local t=$1 row=$2 nc=$3 ctx df f=; ctx=$(ctx_of "$row"); df=$(df_of "$row")
  [ "$nc" = 1 ] && f=--no-cache
  case $t:$row in
    hoist:W1dir|hoist:W4dir) echo "$H build $f --progress plain --network none -f $df -o type=oci,dest=$BF/out/hoist-$row $ctx";;
    hoist:W1push) echo "$H build $f --progress plain --network none -f $df -t 127.0.0.1:$PUSHPORT/w1:latest --push $ctx";;
    hoist-late:W1push) echo "HOIST_EARLY_PUSH=0 $H build $f --progress plain --network none -f $df -t 127.0.0.1:$PUSHPORT/w1:latest --push $ctx";;
    hoist:*) echo "$H build $f --progress plain --network none -f $df -o type=oci,dest=$BF/out/hoist-$row.tar $ctx";;
    docker:W1push) echo "DOCKER_BUILDKIT=1 $D build $f --network none -f $df -t 127.0.0.1:$PUSHPORT/w1:latest $ctx && $D push -q 127.0.0.1:$PUSHPORT/w1:latest";;
    docker:*) echo "DOCKER_BUILDKIT=1 $D build $f --network none -f $df -t peers-${row,,} $ctx";;
    bk:*) echo "$BC build $f --frontend dockerfile.v0 --local context=$ctx --local dockerfile=$(dirname "$df") --opt filename=$(basename "$df") --output type=oci,dest=$BF/out/bk-$row.tar";;
    buildah:*) f=; [ "$nc" = 1 ] && f=--no-cache; echo "$B bud --layers $f --isolation chroot -f $df -t peers-${row,,} $ctx";;
  esac
}

prep() { # TOOL ROW: untimed cleanup before a cold run
  case $1 in
    hoist*) echo "rm -rf $BF/out/hoist-$2 $BF/out/hoist-$2.tar";;
    docker) echo "$D rmi -f peers-${2,,} 127.0.0.1:$PUSHPORT/w1:latest; $D builder prune -af";;
    bk) echo "rm -f $BF/out/bk-$2.tar; $BC prune >/dev/null";;
    buildah) echo "$B rmi -f peers-${2,,}; $B rmi --prune -f";;
  esac
}

cold_row() { # ROW TOOLS...
  local row=$1; shift
  for t in "$@"; do bash -c "$(cmd "$t" "$row" 0)" >/dev/null 2>&1; done   # bases warm
  for i in $(seq "$RUNS"); do
    for t in "$@"; do measure "$row" "$t" "$i" "$(prep "$t" "$row")" "$(cmd "$t" "$row" 1)"; done
  done
}

rows=${*:-"W1 W1dir W2 W3 W4 W1push W5 MEM"}
for row in $rows; do
  case $row in
    W1|W2|W3) cold_row "$row" hoist $PEERS ;;
    W1dir) cold_row W1dir hoist ;;
    W4)
      # Cached rebuild: one warm build with the cache, then rebuild; hoist with an OCI
      # dir (reflinks/hard links) and with an OCI archive (copy_file_range).
      for t in hoist $PEERS; do bash -c "$(cmd "$t" W4 0)" >/dev/null 2>&1; done
      bash -c "$(cmd hoist W4dir 0)" >/dev/null 2>&1
      for i in $(seq "$RUNS"); do
        measure W4dir hoist "$i" "rm -rf $BF/out/hoist-W4dir" "$(cmd hoist W4dir 0)"
        measure W4tar hoist "$i" "rm -f $BF/out/hoist-W4.tar" "$(cmd hoist W4 0)"
        for t in $PEERS; do measure W4 "$t" "$i" true "$(cmd "$t" W4 0)"; done
      done ;;
    W1push)
      # Build + push to an empty registry: hoist (early uploads), hoist pushing only
      # after the build, docker build then docker push; each run starts from no cache.
      for i in $(seq "$RUNS"); do
        for t in hoist hoist-late docker; do
          [ "$t" = docker ] && ! [[ " $PEERS " == *" docker "* ]] && continue
          measure W1push "$t" "$i" "$(prep "$t" W1push); $(fresh_registry)" "$(cmd "$t" W1push 1)"
        done
      done
      [ -f "$PR.pid" ] && kill "$(cat "$PR.pid")" 2>/dev/null ;;
    W5)
      SRC=$BF/out/hoist-W1.tar
      [ -f "$SRC" ] || bash -c "$(cmd hoist W1 0)" >/dev/null 2>&1
      for i in $(seq "$RUNS"); do
        measure W5 hoist "$i" "$(fresh_registry)" "$H push oci-archive:$SRC docker://127.0.0.1:$PUSHPORT/w1:latest"
        measure W5 skopeo "$i" "$(fresh_registry)" "skopeo copy -q --dest-tls-verify=false oci-archive:$SRC docker://127.0.0.1:$PUSHPORT/w1:latest"
      done
      [ -f "$PR.pid" ] && kill "$(cat "$PR.pid")" 2>/dev/null ;;
    MEM)
      # Peak RSS: a 2 GiB single file (half text, half random), and a 1,000-layer base.
      big=$BF/work/ctx-big2g
      if [ ! -f "$big/big.bin" ]; then
        mkdir -p "$big"
        { yes 'a line of text in a big file' | head -c $((1024 << 20)); head -c $((1024 << 20)) /dev/urandom; } > "$big/big.bin"
      fi
      printf 'FROM %s/base/busybox:latest\nCOPY big.bin /big.bin\n' $REG > "$OUT/df/BIG.Dockerfile"
      many=$BF/work/ctx-many
      if ! skopeo inspect --tls-verify=false docker://$REG/base/many:latest >/dev/null 2>&1; then
        rm -rf "$many"; mkdir -p "$many"
        { echo "FROM $REG/base/busybox:latest"; for n in $(seq 999); do echo "f$n" > "$many/f$n"; echo "COPY f$n /l/f$n"; done; } > "$many/Dockerfile"
        "$H" build -q -t $REG/base/many:latest --push "$many" >/dev/null
      fi
      mkdir -p "$BF/work/ctx-onmany"; echo x > "$BF/work/ctx-onmany/x"
      printf 'FROM %s/base/many:latest\nCOPY x /x\n' $REG > "$OUT/df/MANY.Dockerfile"
      for i in $(seq "$RUNS"); do
        measure MEM-2GiB hoist "$i" "rm -f $BF/out/hoist-big.tar" "$H build --no-cache --progress plain -f $OUT/df/BIG.Dockerfile -o type=oci,dest=$BF/out/hoist-big.tar $big"
        measure MEM-1000layers hoist "$i" "rm -f $BF/out/hoist-many.tar" "$H build --no-cache --progress plain -f $OUT/df/MANY.Dockerfile -o type=oci,dest=$BF/out/hoist-many.tar $BF/work/ctx-onmany"
      done ;;
    *) echo "unknown row $row" >&2 ;;
  esac
done

# Medians per (row, tool), ratios against hoist, peak RSS: the BENCHMARKS.md table.
python3 - "$CSV" "$OUT/table.md" <<'PY'
import csv, statistics, sys, collections
rows = [r for r in csv.DictReader(open(sys.argv[1])) if r["rc"] == "0"]
t = collections.defaultdict(list); m = collections.defaultdict(list)
for r in rows:
    t[(r["workload"], r["tool"])].append(float(r["elapsed_s"]))
    m[(r["workload"], r["tool"])].append(int(r["maxrss_kb"]))
tools = ["hoist", "hoist-late", "docker", "bk", "buildah", "skopeo"]
present = [x for x in tools if any(k[1] == x for k in t)]
out = ["| row | " + " | ".join(present) + " | hoist peak RSS |", "|---" * (len(present) + 2) + "|"]
# hoist's W4 rows (OCI dir, OCI archive) are compared with the peers' W4.
ref = {"W4dir": "W4", "W4tar": "W4", "W1dir": "W1"}
for w in sorted({k[0] for k in t if k[1] == "hoist"}):
    h = statistics.median(t[(w, "hoist")])
    cells = []
    for x in present:
        k = (w, x) if (w, x) in t or x.startswith("hoist") else (ref.get(w, w), x)
        if k not in t: cells.append("—"); continue
        v = statistics.median(t[k])
        cells.append(f"{v:.2f} s" + (f" ({v / h:.1f}x)" if h and x != "hoist" else ""))
    rss = f"{max(m[(w, 'hoist')]) / 1024:.0f} MB" if (w, "hoist") in m else "—"
    out.append(f"| {w} | " + " | ".join(cells) + f" | {rss} |")
open(sys.argv[2], "w").write("\n".join(out) + "\n")
print("\n".join(out))
PY
