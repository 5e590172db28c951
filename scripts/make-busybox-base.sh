#!/usr/bin/env bash
# Make a tiny busybox base image as an OCI layout at DIR (tag: latest), without network,
# using Debian's busybox-static and umoci (an independent tool, so tests never depend on
# hoist to make their own inputs).
#
#   scripts/make-busybox-base.sh DIR
set -euo pipefail
DIR=${1:?usage: make-busybox-base.sh DIR}
BUSYBOX=$(command -v busybox)
work=$(mktemp -d)
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
rootless=()
[ "$(id -u)" = 0 ] || rootless=(--rootless)
umoci init --layout "$work/oci"
umoci new --image "$work/oci:latest"
umoci unpack "${rootless[@]}" --image "$work/oci:latest" "$work/bundle"
R=$work/bundle/rootfs
mkdir -p "$R"/{bin,sbin,usr/bin,usr/sbin,etc,tmp,root,proc,sys,dev,var,home}
chmod 1777 "$R/tmp"
chmod 0700 "$R/root"
install -m 0755 "$BUSYBOX" "$R/bin/busybox"
"$BUSYBOX" --list-full | while read -r p; do
  [ "$p" = bin/busybox ] && continue
  [ -e "$R/$p" ] || ln -s /bin/busybox "$R/$p"
done
printf 'root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' > "$R/etc/passwd"
printf 'root:x:0:\napp:x:1000:\nstaff:x:50:app\nnogroup:x:65534:\n' > "$R/etc/group"
mkdir -p "$R/home/app"
[ "$(id -u)" = 0 ] && chown 1000:1000 "$R/home/app"
umoci repack --image "$work/oci:latest" "$work/bundle"
umoci config --image "$work/oci:latest" --config.cmd /bin/sh \
  --config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  --config.workingdir / --architecture "$(dpkg --print-architecture)" --os linux
umoci gc --layout "$work/oci"
mkdir -p "$(dirname "$DIR")"
rm -rf "$DIR.tmp"
mv "$work/oci" "$DIR.tmp"
rm -rf "$DIR"
mv "$DIR.tmp" "$DIR"
