#!/usr/bin/env bash
# The BuildKit conformance gate: builds the cases of the recorded differential suite
# (../shared/conformance beside the clone, or $HOIST_CONFORMANCE) with the release binary
# and fails when a case of the committed baseline stops passing.
#
#   tests/conformance/passing.txt               cases that pass as root (one per line)
#   tests/conformance/passing-unprivileged.txt  RUN cases that pass as the user hoisttest
#   tests/conformance/allow.txt                 CASE<TAB>reason: accepted differences,
#                                               each documented in docs/compatibility.md
#
# Usage: scripts/conformance.sh [--all]   (--all: every case, not only the baseline's;
#        prints the new passes to add to the baseline). Env: JOBS (default 2), HOIST_BIN
#        (default target/release/hoist, built if missing), HOIST_TEST_USER (hoisttest).
# Needs root (the suite is recorded as root; the unprivileged part switches user).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
SUITE=${HOIST_CONFORMANCE:-$REPO/../shared/conformance}
USER_NAME=${HOIST_TEST_USER:-hoisttest}
JOBS=${JOBS:-2}
ALL=0; [ "${1:-}" = --all ] && ALL=1
[ -x "$SUITE/run.sh" ] || { echo "conformance.sh: no suite at $SUITE (set HOIST_CONFORMANCE)" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "conformance.sh: run as root" >&2; exit 2; }
BIN=${HOIST_BIN:-}
if [ -z "${RUSTC_WRAPPER:-}" ] && command -v sccache >/dev/null 2>&1; then
  export RUSTC_WRAPPER=sccache   # a shared compile cache where one is installed
fi
if [ -z "$BIN" ]; then
  cargo build --release -p hoist
  BIN=$(cargo metadata --format-version 1 --no-deps | jq -r .target_directory)/release/hoist
fi

W=$(mktemp -d /tmp/hoist-conformance-gate.XXXXXX)
trap 'rm -rf "$W"' EXIT
chmod 755 "$W"
# A git checkout of the suite has 0644 files; a read-only copy (0444) would change the mode of
# the Dockerfiles run.sh copies into contexts. Work on a writable copy, as a checkout is.
cp -a "$SUITE" "$W/suite" && chmod -R u+w,go+rX "$W/suite"
# Likewise a checkout without symlink support (core.symlinks=false, some copies) leaves each
# symlink of cases/MANIFEST as a file holding its target: make it the symlink git meant.
python3 - "$W/suite" <<'PY'
import json, os, sys
root = sys.argv[1]
for line in open(os.path.join(root, "cases", "MANIFEST"), encoding="utf-8"):
    kind, _mode, _mtime, rel = json.loads(line)
    p = os.path.join(root, "cases", rel)
    if kind == "l" and os.path.isfile(p) and not os.path.islink(p):
        target = open(p, encoding="utf-8").read()
        os.remove(p)
        os.symlink(target, p)
PY
cp "$BIN" "$W/hoist" && chmod 755 "$W/hoist"

# lists FILE: the case names of a baseline file (comments and blanks skipped)
lists() { { grep -v '^\s*#' "$1" || true; } | awk 'NF {print $1}'; }
allowed=$(lists tests/conformance/allow.txt)

# check NAME BASELINE RESULTS: every baseline case passed (or is allow-listed)
check() {
  local name=$1 base=$2 res=$3 bad=0 c line
  while read -r c; do
    grep -qx "$c" <<< "$allowed" && continue
    line=$(grep -P "^$c\t" "$res" || true)
    case "$(cut -f2 <<< "$line")" in
      PASS*|BOTH-FAIL*) ;;
      *) echo "REGRESSION ($name): $c ${line#*	}"; bad=1;;
    esac
  done < <(lists "$base")
  if [ $ALL = 1 ]; then
    awk -F'\t' '$2 ~ /^(PASS|BOTH-FAIL)/ {print $1}' "$res" | sort | comm -13 <(lists "$base" | sort) - \
      | sed "s|^|new pass ($name, add to $base): |"
  fi
  return $bad
}

status=0
# As root: the baseline's cases (--all: every case).
if [ $ALL = 1 ]; then root_cases=(); else mapfile -t root_cases < <(lists tests/conformance/passing.txt); fi
JOBS=$JOBS WORK=$W/root "$W/suite/run.sh" "$W/hoist" "${root_cases[@]}" > "$W/root.txt" || true
tail -1 "$W/root.txt"
check root tests/conformance/passing.txt "$W/root/results.tsv" || status=1

# As the unprivileged user: the cases with a RUN (the sandbox's rootless path).
id "$USER_NAME" >/dev/null 2>&1 || useradd -m -s /bin/bash "$USER_NAME"
grep -q "^$USER_NAME:" /etc/subuid || echo "$USER_NAME:200000:65536" >> /etc/subuid
grep -q "^$USER_NAME:" /etc/subgid || echo "$USER_NAME:200000:65536" >> /etc/subgid
if [ $ALL = 1 ]; then
  mapfile -t un_cases < <(grep -l '^RUN' "$W"/suite/cases/[a-z]*/Dockerfile | xargs -n1 dirname | xargs -n1 basename)
else
  mapfile -t un_cases < <(lists tests/conformance/passing-unprivileged.txt)
fi
mkdir -p "$W/unpriv" && chown "$USER_NAME:" "$W/unpriv"
[ ${#un_cases[@]} -gt 0 ] || { echo "conformance.sh: empty unprivileged baseline" >&2; exit 2; }
runuser -u "$USER_NAME" -- env -i PATH=/usr/local/bin:/usr/bin:/bin HOME="/home/$USER_NAME" LANG=C.UTF-8 \
  TMPDIR="$W/unpriv" JOBS=$JOBS WORK="$W/unpriv/work" "$W/suite/run.sh" "$W/hoist" "${un_cases[@]}" \
  > "$W/unpriv.txt" || true
tail -1 "$W/unpriv.txt"
check unprivileged tests/conformance/passing-unprivileged.txt "$W/unpriv/work/results.tsv" || status=1
[ $status = 0 ] && echo "conformance: no regressions"
exit $status
