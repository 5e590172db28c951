#!/usr/bin/env bash
# Make a real Debian (bookworm, minbase) base image as an OCI layout at DIR (tag: bookworm)
# with debootstrap and umoci. Needs root (debootstrap) and Debian's mirror. Takes a minute
# or two; tests cache the result under target/test-bases.
#
#   scripts/make-debian-base.sh DIR [SUITE] [MIRROR]
set -euo pipefail
DIR=${1:?usage: make-debian-base.sh DIR [SUITE] [MIRROR]}
SUITE=${2:-bookworm}
MIRROR=${3:-http://deb.debian.org/debian}
if [ "$(id -u)" != 0 ]; then
  echo "make-debian-base.sh: debootstrap needs root" >&2
  exit 1
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
debootstrap --variant=minbase "$SUITE" "$work/rootfs" "$MIRROR" > "$work/debootstrap.log" 2>&1 || {
  tail -20 "$work/debootstrap.log" >&2
  exit 1
}
rm -rf "$work"/rootfs/var/cache/apt/*.bin "$work"/rootfs/var/cache/apt/archives/*.deb "$work"/rootfs/var/lib/apt/lists/*
umoci init --layout "$work/oci"
umoci new --image "$work/oci:$SUITE"
umoci unpack --image "$work/oci:$SUITE" "$work/bundle"
cp -a "$work/rootfs/." "$work/bundle/rootfs/"
umoci repack --image "$work/oci:$SUITE" "$work/bundle"
umoci config --image "$work/oci:$SUITE" --config.cmd /bin/bash \
  --config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  --architecture "$(dpkg --print-architecture)" --os linux
umoci gc --layout "$work/oci"
mkdir -p "$(dirname "$DIR")"
rm -rf "$DIR.tmp"
mv "$work/oci" "$DIR.tmp"
chmod -R a+rX "$DIR.tmp"
rm -rf "$DIR"
mv "$DIR.tmp" "$DIR"
