#!/usr/bin/env bash
# Run every fuzz target for SECONDS each (default 30), one after another, starting
# from the committed corpus (fuzz/seeds/TARGET and fuzz/regressions/TARGET). Fails if
# any target crashes, panics, hangs (-timeout) or runs out of memory; the input is
# left in fuzz/artifacts/TARGET/ (add it to fuzz/regressions/TARGET once fixed).
#
#   scripts/fuzz.sh            # 30 s per target (CI)
#   scripts/fuzz.sh 600        # 10 minutes per target
#   FUZZ_TARGETS="layer oci" scripts/fuzz.sh 60
#
# Works with the stable toolchain and without cargo-fuzz: no sanitizer is needed (hoist
# is safe Rust; panics, aborts, overflows (debug assertions are on) and hangs are what is
# looked for), and the coverage instrumentation is a stable codegen option.
# The corpus grows in a scratch copy, never in the repository.
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${1:-30}
targets=${FUZZ_TARGETS:-dockerfile layer documents docker_archive oci}
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
if [ -z "${RUSTC_WRAPPER:-}" ] && command -v sccache >/dev/null 2>&1; then
  export RUSTC_WRAPPER=sccache
fi

# libfuzzer-sys builds libFuzzer from C++ source.
if ! command -v c++ >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends g++ >/dev/null
  else
    echo "scripts/fuzz.sh: a C++ compiler (g++) is needed to build libFuzzer" >&2
    exit 1
  fi
fi
# The targets are built with plain cargo and the flags cargo-fuzz gives rustc for
# `-s none -a` (sanitizer coverage for libFuzzer, debug assertions, `--cfg fuzzing`):
# all stable codegen options, so no nightly and no `cargo install cargo-fuzz` on a fresh
# CI machine. `cargo fuzz run -s none -a TARGET` uses the same binaries' flags.
triple=$(rustc -vV | sed -n 's/^host: //p')
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares -Cllvm-args=-sanitizer-coverage-stack-depth \
--cfg fuzzing -Cdebug-assertions -Coverflow-checks"
(cd fuzz && cargo build --release --target "$triple" --bins)
bin_dir=fuzz/target/$triple/release

# The targets create and remove small trees per input: keep them in memory.
if [ -z "${TMPDIR:-}" ] && [ -d /dev/shm ] && [ -w /dev/shm ]; then
  export TMPDIR=/dev/shm
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/hoist-fuzz-corpus.XXXXXX")
trap 'rm -rf "$work"' EXIT

status=0
summary=()
for t in $targets; do
  mkdir -p "$work/$t" "fuzz/artifacts/$t"
  for d in fuzz/seeds/$t fuzz/regressions/$t; do
    if [ -d "$d" ]; then cp "$d"/* "$work/$t/" 2>/dev/null || true; fi
  done
  start=$(ls "$work/$t" | wc -l)
  log="$work/$t.log"
  echo "scripts/fuzz.sh: $t for ${secs}s from $start inputs"
  rc=0
  "$bin_dir/$t" "$work/$t" \
    -max_total_time="$secs" -timeout=30 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="fuzz/artifacts/$t/" >"$log" 2>&1 || rc=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 || true)
  end=$(ls "$work/$t" | wc -l)
  line="$t: ${runs:-?} runs in ${secs}s, ${cov:-cov: ?}, corpus $start -> $end"
  if [ "$rc" != 0 ]; then
    status=1
    line="$line, FAILED (exit $rc)"
    tail -60 "$log" >&2
    ls fuzz/artifacts/"$t"/ >&2 || true
  fi
  echo "scripts/fuzz.sh: $line"
  summary+=("$line")
done
printf 'scripts/fuzz.sh: %s\n' "${summary[@]}"
exit $status
