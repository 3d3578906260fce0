#!/usr/bin/env bash
# Makes the control-plane images `kubeadm init` names, offline, as an
# airgapped user would: one docker-archive per image, holding a static binary
# at /usr/local/bin/<name> as the upstream images do (scratch-style: the
# binary, /etc/passwd, /tmp), tagged with the names and versions of
#   kubeadm config images list --kubernetes-version v1.37.2
# The binaries come from hack/k8s/build.sh (k8s.io/kubernetes v1.37.2,
# go.etcd.io/etcd/server/v3 v3.7.0); pause is hack/pause. Drop the archives
# into <root-dir>/images/import/ (the airgap folder) or `minikubelet image
# import` them.
#   registry.k8s.io/kube-apiserver, kube-controller-manager, kube-scheduler:v1.37.2
#   registry.k8s.io/etcd:3.7.0-0 (etcd), registry.k8s.io/pause:3.10.2 (hack/pause)
# kube-proxy and coredns are not built: they are DaemonSet/Deployment pods of
# kubeadm's add-ons, which minikubelet does not run (it runs static pods only).
#
# Cached next to the binaries, keyed by the binaries' cache and this recipe:
#   <build.sh cache>/images-<hash>/<name>_<tag>.tar
# Usage: hack/k8s/images.sh        prints the folder of the archives.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
export PATH=/usr/local/go/bin:$PATH
bins=$("$here/build.sh" kube-apiserver kube-controller-manager kube-scheduler etcd kubeadm)
key=$(cat "$0" "$repo/hack/pause/main.go" "$repo/hack/mkimage/main.go" "$repo/runtime/images/imagebuild/build.go" |
  { cat; echo "$bins"; } | sha256sum | cut -c1-12)
out="$bins/images-$key"
if [ -f "$out/.done" ]; then echo "$out"; exit 0; fi
exec 9>"$bins/.images.lock"
flock 9
if [ -f "$out/.done" ]; then echo "$out"; exit 0; fi
work=$(mktemp -d "$bins/.images-work.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/out"
(cd "$repo" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$work/pause" ./hack/pause &&
  go build -o "$work/mkimage" ./hack/mkimage)
n=0
while read -r ref; do
  [ -n "$ref" ] || continue
  repo_name=${ref%:*}; tag=${ref##*:}; name=${repo_name##*/}
  case $name in
    kube-apiserver|kube-controller-manager|kube-scheduler|etcd) src=$bins/$name ;;
    pause) src=$work/pause ;;
    *) echo "images.sh: skipping $ref (an add-on minikubelet does not run)" >&2; continue ;;
  esac
  root=$work/root-$name
  mkdir -p "$root/usr/local/bin" "$root/etc" "$root/tmp" "$root/var/run"
  chmod 1777 "$root/tmp"
  ln "$src" "$root/usr/local/bin/$name" 2>/dev/null || cp "$src" "$root/usr/local/bin/$name"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n' > "$root/etc/passwd"
  printf 'root:x:0:\nnobody:x:65534:\n' > "$root/etc/group"
  args=(--dir "$root" --ref "$ref" --out "$work/out/${name}_$tag.tar" --env PATH=/usr/local/bin:/usr/bin:/bin)
  if [ "$name" = pause ]; then args+=(--entrypoint /usr/local/bin/pause); else args+=(--entrypoint "/usr/local/bin/$name"); fi
  echo "images.sh: $ref" >&2
  "$work/mkimage" "${args[@]}" >&2
  n=$((n + 1))
done < <("$bins/kubeadm" config images list --kubernetes-version v1.37.2)
[ "$n" -ge 5 ] || { echo "images.sh: only $n images made" >&2; exit 1; }
rm -rf "$out"
mv "$work/out" "$out"
touch "$out/.done"
echo "$out"
