#!/usr/bin/env bash
# Builds the demo image localhost/minikubelet-demo:latest from Debian's
# busybox-static (/bin/busybox plus applet symlinks) in a temporary folder, and imports it
# into the image store of a root dir.
#
#   hack/build-demo-image.sh [--root-dir DIR] [--tar FILE]    (default /var/lib/minikubelet-demo)
#
# --tar FILE also keeps the image's docker-archive there (make bench loads the
# same tarball into podman and containerd).
#
# Needs bin/minikubelet (make build) and busybox-static (make deps).
set -euo pipefail
cd "$(dirname "$0")/.."
root_dir=/var/lib/minikubelet-demo
keep_tar=
while (($#)); do
  case $1 in
    --tar) keep_tar=$2; shift 2 ;;
    --tar=*) keep_tar=${1#*=}; shift ;;
    --root-dir) root_dir=$2; shift 2 ;;
    --root-dir=*) root_dir=${1#*=}; shift ;;
    *) echo "usage: $0 [--root-dir DIR] [--tar FILE]" >&2; exit 2 ;;
  esac
done
export PATH=/usr/local/go/bin:$PATH
bin=${MKL_DEMO_BIN:-bin/minikubelet}
[ -x /bin/busybox ] || { echo "build-demo-image: /bin/busybox missing: apt-get install busybox-static (make deps)" >&2; exit 1; }
[ -x "$bin" ] || { echo "build-demo-image: $bin missing: run make build" >&2; exit 1; }

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
trap 'exit 130' INT TERM HUP # so the EXIT trap runs on a signal too
mkdir -p "$stage"/{bin,etc,tmp,root,var/www,proc,sys,dev}
chmod 1777 "$stage/tmp"
install -m 0755 /bin/busybox "$stage/bin/busybox"
for applet in sh ash cat echo ls ps sleep httpd wget nc ip hostname id env printenv true false \
              mkdir rm cp mv ln touch head tail grep sed awk sort uniq wc date uname kill top df du \
              mount umount ping nslookup vi less tee xargs find chmod chown stat seq test '[' basename dirname; do
  ln -s busybox "$stage/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' > "$stage/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$stage/etc/group"
printf '<h1>minikubelet demo</h1>\n' > "$stage/var/www/index.html"

out=$stage.tar
trap 'rm -rf "$stage" "$out"' EXIT
go run ./hack/mkimage --dir "$stage" --ref localhost/minikubelet-demo:latest --out "$out" \
  --cmd /bin/sh --env PATH=/bin --workdir / --expose 80/tcp
mkdir -p "$root_dir"
"$bin" image import --root-dir "$root_dir" "$out"
[ -z "$keep_tar" ] || cp "$out" "$keep_tar"
