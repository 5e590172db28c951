#!/usr/bin/env bash
# hoist multi-platform build (`--platform linux/amd64,linux/arm64`, one image per platform
# under an OCI image index) cold and cached, against buildah building the same Dockerfile and
# context into a manifest list pushed as an OCI archive, both in one hyperfine run.
#
#   benches/multiplatform.sh [HOIST_BIN]   (as root; needs buildah, skopeo, hyperfine, umoci,
#                                           busybox-static)
#
# Env: BENCH_FS (default /mnt/hoist-peers-bench: the journaled loop fs of
#      ../shared/peers/bench-fs.sh; when it is not mounted, /tmp is used, which is noisier),
#      RUNS_COLD (default 5), RUNS_CACHED (default 10),
#      BUILDAH_JOBS (buildah's `--jobs`, default: not given, i.e. buildah's default of 1,
#      one platform after the other as hoist does; 2 lets it build both platforms at once),
#      OUT (a directory to keep the hyperfine markdown + JSON in; default: not kept).
#
# The workload is cross-compile style: the build stage is `FROM --platform=$BUILDPLATFORM`
# (runs natively, no qemu needed), only its output is copied into each platform's image.
# Equivalent work for both tools, per timed run:
#   cold    hoist: `--no-cache`, empty cache dir | buildah: `--no-cache`, empty private store
#                                                  (base too)
#   cached  hoist: the cache dir of the previous run | buildah: `--layers`, its store of the
#                                                  previous run (the manifest list removed)
#   both read the busybox base from the same OCI layout, build the same Dockerfile and context
#   for linux/amd64 and linux/arm64, and end with an OCI archive holding an image index over
#   the two images (hoist: `-o type=oci,dest=hoist.tar`; buildah: `build --manifest` then
#   `manifest push --all … oci-archive:bb.tar`).
#
# buildah runs with its own store under the work directory (never the machine's default
# store, which other users share), overlay driver, `--isolation chroot` as in BENCHMARKS.md's
# other sections.
set -euo pipefail
cd "$(dirname "$0")/.."
HOIST=$(realpath "${1:-target/release/hoist}")
RUNS_COLD=${RUNS_COLD:-5}
RUNS_CACHED=${RUNS_CACHED:-10}
PLATFORMS=linux/amd64,linux/arm64
BUILDAH_JOBS=${BUILDAH_JOBS:-}
. benches/common.sh
bench_workdir hoist-mp-bench

bash scripts/make-busybox-base.sh "$W/work/busybox" >/dev/null
# Context: 2,000 small files (100 B–8 KiB) and one 4 MiB file.
mkdir -p "$W/work/ctx"
python3 - "$W/work/ctx" <<'PY'
import os, sys, random
random.seed(7)
root = sys.argv[1]
for d in range(40):
    os.makedirs(f"{root}/d{d}", exist_ok=True)
    for f in range(50):
        with open(f"{root}/d{d}/f{f}.txt", "w") as fh:
            fh.write("x" * random.randint(100, 8000))
with open(f"{root}/blob.bin", "wb") as fh:
    fh.write(random.randbytes(4 << 20))
PY
# The base comes in as a meta ARG (an absolute oci: path), which both tools expand in FROM.
cat > "$W/work/Dockerfile" <<'DF'
ARG base
FROM --platform=$BUILDPLATFORM ${base} AS build
ARG TARGETPLATFORM
COPY . /src
RUN tar -cf /out.tar -C /src . && echo "$TARGETPLATFORM" > /platform
FROM scratch
COPY --from=build /out.tar /platform /
DF
cd "$W/work"
echo "context: $(find ctx -type f | wc -l) files, $(du -sh ctx | cut -f1)" >&2

# No output redirection here: hyperfine discards the commands' output itself, and the
# checked runs below show it when a command fails.
hb() { # [--no-cache]
  HOIST_CACHE_DIR=$PWD/cache "$HOIST" build "$@" --platform "$PLATFORMS" \
    --build-arg base="oci:$PWD/busybox:latest" -f Dockerfile -o "type=oci,dest=$PWD/hoist.tar" ctx
}
# buildah 1.28 does not apply `FROM --platform=$BUILDPLATFORM` (its arm64 build pulls the
# amd64 base for the arm64 platform, then fails: "creating build container: locating pulled
# image … image not known"; a literal `--platform=linux/amd64` works, and so does setting
# BUILDPLATFORM, which RUN already sees as the host's, explicitly). Only buildah gets it.
BUILDPLATFORM=linux/$(dpkg --print-architecture)
bb() { # --no-cache | --layers
  buildah "${ST[@]}" build --quiet "$@" ${BUILDAH_JOBS:+--jobs "$BUILDAH_JOBS"} \
    --isolation chroot --platform "$PLATFORMS" \
    --build-arg BUILDPLATFORM="$BUILDPLATFORM" \
    --build-arg base="oci:$PWD/busybox:latest" --manifest bench-mp -f Dockerfile ctx &&
  buildah "${ST[@]}" manifest push --quiet --all bench-mp "oci-archive:$PWD/bb.tar"
}
ST_Q=$(printf '%q ' "${ST[@]}")
export -f hb bb; export HOIST PLATFORMS BUILDPLATFORM BUILDAH_JOBS
ST_DECL="ST=($ST_Q)"
# `export -f` does not carry arrays: each hyperfine command re-declares ST.
reset_hoist_cold='rm -rf cache hoist.tar; mkdir cache'
reset_hoist_cached='rm -f hoist.tar'
reset_bb_cold="$ST_DECL; rm -f bb.tar; buildah \"\${ST[@]}\" rm -a >/dev/null; buildah \"\${ST[@]}\" rmi -a -f >/dev/null"
reset_bb_cached="$ST_DECL; rm -f bb.tar; buildah \"\${ST[@]}\" manifest rm bench-mp >/dev/null 2>&1 || true"

# One checked run of each before timing, output shown on failure.
checked() { # NAME PREP CMD
  local log=$W/check-$1.log
  local rc=0
  bash -c "$2; $3" >"$log" 2>&1 || rc=$?
  if [ "$rc" != 0 ]; then
    echo "$1 failed (exit status $rc):" >&2; cat "$log" >&2
    echo "Dockerfile:" >&2; cat Dockerfile >&2
    exit 1
  fi
}
# Both outputs must be an image index over a linux/amd64 and a linux/arm64 image, each with
# /out.tar and /platform naming its platform.
verify() { # ARCHIVE
  echo "== $1: skopeo inspect --raw" >&2
  local raw
  raw=$(skopeo inspect --raw "oci-archive:$PWD/$1")
  python3 - "$PWD/$1" "$raw" <<'PY'
import gzip, io, json, sys, tarfile
path, raw = sys.argv[1], json.loads(sys.argv[2])
plats = sorted(f"{m['platform']['os']}/{m['platform']['architecture']}"
               for m in raw.get("manifests", []))
print(f"   {raw.get('mediaType')}: {len(plats)} manifests {plats}", file=sys.stderr)
if plats != ["linux/amd64", "linux/arm64"]:
    sys.exit(f"{path}: expected manifests for linux/amd64 and linux/arm64, got {plats}")
t = tarfile.open(path)
blob = lambda d: t.extractfile("blobs/" + d.replace(":", "/")).read()
for m in raw["manifests"]:
    man = json.loads(blob(m["digest"]))
    cfg = json.loads(blob(man["config"]["digest"]))
    want = f"{m['platform']['os']}/{m['platform']['architecture']}"
    found = {}
    for l in man["layers"]:
        data = blob(l["digest"])
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        with tarfile.open(fileobj=io.BytesIO(data)) as lt:
            for e in lt:
                n = e.name.lstrip("./")
                if n in ("platform", "out.tar") and e.isfile():
                    found[n] = lt.extractfile(e).read()
    got = found.get("platform", b"").decode().strip()
    kinds = ",".join(sorted({l["mediaType"].rsplit(".", 1)[-1] for l in man["layers"]}))
    print(f"   {want}: config {cfg['os']}/{cfg['architecture']}, /platform={got!r}, "
          f"/out.tar {len(found.get('out.tar', b''))} B, {len(man['layers'])} layer(s) ({kinds})",
          file=sys.stderr)
    if cfg["architecture"] != m["platform"]["architecture"] or got != want or "out.tar" not in found:
        sys.exit(f"{path}: the {want} image is wrong")
PY
}
JOBS_N=${BUILDAH_JOBS:+ --jobs $BUILDAH_JOBS}
checked hoist "$reset_hoist_cold" "hb --no-cache"
checked buildah "$reset_bb_cold" "$ST_DECL; bb --no-cache"
verify hoist.tar
verify bb.tar
ls -l hoist.tar bb.tar

hyperfine --shell bash --warmup 1 --runs "$RUNS_COLD" \
  --export-markdown "$W/cold.md" --export-json "$W/cold.json" \
  --prepare "$reset_hoist_cold" -n 'hoist build --no-cache (cold)' 'hb --no-cache' \
  --prepare "$reset_bb_cold" -n "buildah build --no-cache$JOBS_N + manifest push (cold)" \
  "$ST_DECL; bb --no-cache"
# Cached: hoist's cache dir and buildah's store (`--layers`) are whatever the previous run
# left (the warmup run fills them); only the outputs (and buildah's manifest list, which
# `--manifest` would otherwise add to) are removed before each run.
hyperfine --shell bash --warmup 1 --runs "$RUNS_CACHED" \
  --export-markdown "$W/cached.md" --export-json "$W/cached.json" \
  --prepare "$reset_hoist_cached" -n 'hoist build (cached)' 'hb' \
  --prepare "$reset_bb_cached" -n "buildah build --layers$JOBS_N + manifest push (cached)" \
  "$ST_DECL; bb --layers"
verify hoist.tar
verify bb.tar
ls -l hoist.tar bb.tar
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
