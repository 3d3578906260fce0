#!/usr/bin/env bash
# vm.sh — run commands inside a throwaway Debian 12 guest under QEMU whose
# PID 1 is systemd and whose cgroups are pure v2 (unified), like an ordinary
# systemd host. Made for testing software (minikubelet) that needs a real
# systemd over D-Bus when the machine it runs on has none (or runs cgroup v1).
#
#   vm.sh image                  build the guest image into $VM_DIR (idempotent)
#   vm.sh run DIR -- CMD [ARG...]
#                                boot the guest with host folder DIR shared at the
#                                same path (9p, read-write), run CMD as root with
#                                cwd DIR, stream its stdout/stderr here, power off,
#                                exit with CMD's exit code
#   vm.sh shell [DIR]            boot to a root shell on the serial console (debug;
#                                leave it with Ctrl-A X)
#   vm.sh check                  exit 0 when the image is built and QEMU is there,
#                                else print why not and exit 3 (nothing is installed)
#
# Needs: root on a Debian 12 host; the Debian mirror for `image` (it apt-get
# installs qemu-system-x86 qemu-utils debootstrap e2fsprogs xz-utils when missing). Uses KVM
# when /dev/kvm can run a stock kernel, else TCG (software emulation, multi-threaded):
# on a 2-core host a `run` of a trivial command takes ~10 s with TCG.
#
# Environment (all optional):
#   VM_DIR=~/.cache/minikubelet/vm   image cache (kernel, initrd, rootfs.img) and run folders
#   VM_MEM=2048              guest RAM in MiB
#   VM_CPUS=2                guest vCPUs
#   VM_TIMEOUT=900           seconds for one `run`, boot included; then qemu is killed, exit 124
#   VM_ACCEL=auto            auto | kvm | tcg (auto: KVM unless /dev/kvm is missing or is PVM)
#   VM_NET=none              none | user (QEMU user-mode NAT: guest eth0 10.0.2.15,
#                            host reachable as 10.0.2.2; only loopback with none)
#   VM_SHARES=               more host folders (space-separated) shared read-write at
#                            the same paths, e.g. "/usr/local/go /root/go/pkg/mod"
#   VM_MACHINE=q35           QEMU machine type
#   VM_DISK=8G               size of the guest's (sparse) root file system
#   VM_MIRROR=http://deb.debian.org/debian
#   VM_VERBOSE=0             1: print the accelerator and boot/command timings on stderr
#   VM_KEEP=0                1: keep the run folder (console.log, stdout, stderr, rc)
#   VM_STATE=                a qcow2 file: the guest's disk lives on in it across runs
#                            (created over the image's rootfs.img when missing), so a
#                            test can boot, set up, shut down or reboot, and boot again
#                            to check. Unset: every run starts pristine (snapshot=on).
#
# Inside the guest the command finds $VMCTL (the run's control folder). Writing
# "poweroff" or "reboot" to $VMCTL/shutdown makes the runner end the run with a
# graceful `systemctl poweroff|reboot` (every unit stopped, logind inhibitors
# honoured) instead of the immediate power-off; QEMU exits either way (-no-reboot).
# Every run prints one line on stderr saying which guest it was: kernel, systemd
# version, cgroup hierarchy, KVM or TCG.
#
# Exit codes of `run`: CMD's own; 124 timeout; 125 the guest never reported an
# exit code (boot failure, guest crash: the console log tail is printed).
#
# How it works: the root file system is an ext4 image opened with snapshot=on,
# so every run starts from the same pristine state and writes are discarded
# (or a qcow2 overlay with VM_STATE). Images live in $VM_DIR/img-<recipe hash>,
# so branches with different recipes do not rebuild each other's.
# The kernel and initrd are booted directly (-kernel/-initrd). Two 9p shares:
# "vmctl" (a per-run folder holding the command, its stdout/stderr and exit
# code) and "vmshare" (DIR). A unit baked into the image, vmrun.service, runs
# after multi-user.target when the kernel command line says vmsh.run=1: it
# mounts both, runs the command, writes the exit code and powers off at once.
# CMD runs in vmrun.service's cgroup (/system.slice/vmrun.service), stdin is
# /dev/null, stdout and stderr are files on the 9p share that this script tails.
set -euo pipefail

VM_DIR=${VM_DIR:-${HOME:-/root}/.cache/minikubelet/vm}
VM_MEM=${VM_MEM:-2048}
VM_CPUS=${VM_CPUS:-2}
VM_TIMEOUT=${VM_TIMEOUT:-900}
VM_NET=${VM_NET:-none}
VM_SHARES=${VM_SHARES:-}
VM_ACCEL=${VM_ACCEL:-auto}
VM_MACHINE=${VM_MACHINE:-q35}
VM_DISK=${VM_DISK:-8G}
VM_MIRROR=${VM_MIRROR:-http://deb.debian.org/debian}
VM_VERBOSE=${VM_VERBOSE:-0}
VM_KEEP=${VM_KEEP:-0}
VM_STATE=${VM_STATE:-}

# apparmor: Debian's kernel packages recommend it, so a stock Debian 12 host has AppArmor
# enabled with apparmor_parser installed (containers then get the RuntimeDefault profile).
GUEST_PKGS=systemd,systemd-sysv,systemd-resolved,dbus,udev,kmod,iproute2,iptables,containernetworking-plugins,busybox-static,procps,util-linux,make,apparmor,linux-image-amd64

die() { echo "vm.sh: $*" >&2; exit 2; }
log() { [ "$VM_VERBOSE" = 1 ] && echo "vm.sh: $*" >&2 || true; }

need_root() { [ "$(id -u)" = 0 ] || die "must run as root"; }

# Installs the host tools that are missing (Debian package names).
host_deps() {
  local missing=() p
  for p in qemu-system-x86 qemu-utils debootstrap e2fsprogs xz-utils; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ((${#missing[@]})); then
    echo "vm.sh: apt-get install ${missing[*]}" >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

# The stamp is a hash of this script: any change to the recipe rebuilds the image.
stamp_text() { echo "recipe=$(sed '/^[[:space:]]*#/d' "$0" | sha256sum | cut -c1-16) pkgs=$GUEST_PKGS disk=$VM_DISK"; }
IMG="$VM_DIR/img-$(stamp_text | sha256sum | cut -c1-12)"

image_ok() {
  [ -f "$IMG/image.stamp" ] && [ "$(cat "$IMG/image.stamp")" = "$(stamp_text)" ] &&
    [ -f "$IMG/vmlinux" ] && [ -f "$IMG/initrd.img" ] && [ -f "$IMG/rootfs.img" ]
}

# ---------------------------------------------------------------- image ----
# make_kernel ROOT OUT: OUT/vmlinux, the guest kernel as an uncompressed ELF.
# QEMU boots it through its PVH entry (Debian sets CONFIG_PVH=y), skipping the
# real-mode setup and the xz decompression, which under TCG saves ~3 s a boot.
# Falls back to the compressed bzImage (boots too, only slower).
make_kernel() {
  local r=$1 out=$2 bz off
  bz=$(ls "$r"/boot/vmlinuz-* | head -1)
  off=$(LC_ALL=C grep -obUaP '\xfd\x37\x7a\x58\x5a\x00' "$bz" | head -1 | cut -d: -f1)
  if [ -n "$off" ]; then
    # xz stops after the kernel's stream, so tail may die of SIGPIPE: judge by the result.
    tail -c +"$((off + 1))" "$bz" | xz -dc --single-stream > "$out/vmlinux" 2>/dev/null || true
    [ "$(head -c 4 "$out/vmlinux" | od -An -c | tr -d ' ')" = '177ELF' ] && return 0
  fi
  echo "vm.sh: could not extract an ELF vmlinux; booting the bzImage" >&2
  cp -L "$bz" "$out/vmlinux"
}

# make_initrd ROOT OUT: OUT/initrd.img, a 5 MB initrd of busybox plus the
# modules that mounting /dev/vda needs (virtio-pci, virtio-blk, ext4). Debian's
# initramfs-tools one is ~3 s slower to boot under TCG.
make_initrd() {
  local r=$1 out=$2 kver m f ird="$2/initrd"
  kver=$(ls "$r/lib/modules" | head -1)
  rm -rf "$ird"; mkdir -p "$ird"/{bin,dev,proc,sys,newroot,mods}
  cp "$r/bin/busybox" "$ird/bin/busybox"
  for m in virtio_pci virtio_blk crc32c_generic ext4; do
    chroot "$r" modprobe -S "$kver" --show-depends "$m"
  done | awk '$1 == "insmod" && !seen[$2]++ {print $2}' | while read -r f; do
    cp "$r$f" "$ird/mods/" && echo "${f##*/}" >> "$ird/mods/order"
  done
  [ -s "$ird/mods/order" ] || die "no kernel modules found for the initrd"
  cat > "$ird/init" <<'EOF2'
#!/bin/busybox sh
# vm.sh initrd: load virtio + ext4, mount /dev/vda, hand over to systemd.
B=/bin/busybox
$B mount -t proc proc /proc
$B mount -t devtmpfs devtmpfs /dev
for m in $($B cat /mods/order); do $B insmod /mods/$m 2>/dev/null; done
i=0
while [ ! -b /dev/vda ] && [ $i -lt 250 ]; do $B usleep 20000; i=$((i + 1)); done
if ! $B mount -t ext4 -o rw /dev/vda /newroot; then
  echo "vm.sh initrd: cannot mount /dev/vda"; $B cat /proc/modules; $B poweroff -f
fi
$B mount --move /dev /newroot/dev
$B umount /proc
exec $B switch_root /newroot /sbin/init "$@"
EOF2
  chmod 0755 "$ird/init"
  (cd "$ird" && find . | "$r/bin/busybox" cpio -o -H newc 2>/dev/null) > "$out/initrd.img"
  rm -rf "$ird"
}

cmd_image() {
  need_root
  mkdir -p "$VM_DIR"
  if image_ok; then echo "vm.sh: image up to date in $IMG"; return 0; fi
  # One build per recipe at a time: a second caller waits, then finds it done.
  exec 9>"$IMG.lock"
  flock 9
  if image_ok; then echo "vm.sh: image up to date in $IMG"; return 0; fi
  host_deps
  local t0=$SECONDS build="$IMG.build"
  rm -rf "$build"; mkdir -p "$build"
  local r="$build/root"
  echo "vm.sh: debootstrap bookworm into $r (a few minutes)" >&2
  debootstrap --variant=minbase --include="$GUEST_PKGS" bookworm "$r" "$VM_MIRROR" >"$build/debootstrap.log" 2>&1 ||
    { tail -20 "$build/debootstrap.log" >&2; die "debootstrap failed (log: $build/debootstrap.log)"; }

  echo vm > "$r/etc/hostname"
  printf '127.0.0.1 localhost\n127.0.1.1 vm\n::1 localhost ip6-localhost ip6-loopback\n' > "$r/etc/hosts"
  printf '/dev/vda / ext4 rw,noatime 0 1\n' > "$r/etc/fstab"
  passwd -R "$r" -d root >/dev/null 2>&1 || sed -i 's/^root:[^:]*:/root::/' "$r/etc/shadow"
  # A throwaway machine: journal in memory, no first-boot questions.
  mkdir -p "$r/etc/systemd/journald.conf.d"
  printf '[Journal]\nStorage=volatile\n' > "$r/etc/systemd/journald.conf.d/vm.conf"
  [ -s "$r/etc/machine-id" ] || tr -dc a-f0-9 </dev/urandom | head -c 32 > "$r/etc/machine-id"

  # A host as Debian 12 ships it with systemd-resolved: /etc/resolv.conf is the
  # stub (nameserver 127.0.0.53), the upstream list is /run/systemd/resolve/resolv.conf
  # (QEMU user-mode's DNS address, whether or not the run has a network).
  mkdir -p "$r/etc/systemd/resolved.conf.d"
  printf '[Resolve]\nDNS=10.0.2.3\nLLMNR=no\nMulticastDNS=no\n' > "$r/etc/systemd/resolved.conf.d/vm.conf"
  ln -sf ../run/systemd/resolve/stub-resolv.conf "$r/etc/resolv.conf"

  # Boot speed: plain multi-user, no timers, no tty1 (there is no screen).
  ln -sf /lib/systemd/system/multi-user.target "$r/etc/systemd/system/default.target"
  local u
  for u in apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer e2scrub_all.timer \
           e2scrub_reap.service fstrim.timer getty@tty1.service systemd-networkd-wait-online.service; do
    ln -sf /dev/null "$r/etc/systemd/system/$u"
  done
  rm -f "$r/etc/systemd/system/getty.target.wants/getty@tty1.service"
  # The serial console logs root in without a password (for `vm.sh shell`).
  mkdir -p "$r/etc/systemd/system/serial-getty@ttyS0.service.d"
  cat > "$r/etc/systemd/system/serial-getty@ttyS0.service.d/autologin.conf" <<'EOF'
[Service]
ExecStart=
ExecStart=-/sbin/agetty --autologin root --keep-baud 115200,57600,38400,9600 %I $TERM
EOF
  # In `run` mode no login prompt on the console (it only costs boot time).
  printf '[Unit]\nConditionKernelCommandLine=!vmsh.run=1\n' > "$r/etc/systemd/system/serial-getty@ttyS0.service.d/run-mode.conf"
  mkdir -p "$r/etc/systemd/system/multi-user.target.wants"
  # Modules the tests need, loaded at boot so nothing waits on autoloading.
  printf '%s\n' 9p 9pnet_virtio overlay veth bridge br_netfilter > "$r/etc/modules-load.d/vm.conf"

  # The runner: mounts the shares, runs the command, reports, powers off.
  cat > "$r/usr/local/sbin/vm-runner" <<'EOF'
#!/bin/bash
# Started by vmrun.service (kernel command line vmsh.run=1). See vm.sh.
ctl=/run/vmctl
opts=trans=virtio,version=9p2000.L,msize=262144
mkdir -p "$ctl"
mount -t 9p -o "$opts" vmctl "$ctl" || { echo "vm-runner: cannot mount vmctl" >&2; systemctl poweroff -ff; exit 1; }
# VM_NET=user: QEMU's user-mode network has fixed addresses; no DHCP client needed.
if [ -e /sys/class/net/eth0 ]; then
  ip link set eth0 up && ip addr add 10.0.2.15/24 dev eth0 && ip route add default via 10.0.2.2
fi
read -r up _ </proc/uptime; echo "boot_to_runner_s=$up" > "$ctl/timing"
# Which guest this is, for the host's report.
{
  echo "kernel=$(uname -r)"
  echo "systemd=$(systemctl --version | sed -n '1s/^systemd \([0-9]*\) (\(.*\))$/\1 (\2)/p')"
  echo "cgroupfs=$(stat -fc %T /sys/fs/cgroup)"
  echo "controllers=$(cat /sys/fs/cgroup/cgroup.controllers 2>/dev/null)"
  echo "state=$(systemctl is-system-running 2>/dev/null)"
  . /etc/os-release && echo "os=$PRETTY_NAME"
} > "$ctl/guest"
dir=$(cat "$ctl/dir")
mkdir -p "$dir"
if ! mount -t 9p -o "$opts,cache=mmap" vmshare "$dir"; then
  echo "vm-runner: cannot mount the shared folder at $dir" > "$ctl/stderr"; echo 125 > "$ctl/rc"
  sync; systemctl poweroff -ff; exit 1
fi
# VM_SHARES: more folders, one "TAG PATH" a line.
while read -r tag path; do
  [ -n "$tag" ] || continue
  mkdir -p "$path" && mount -t 9p -o "$opts,cache=mmap" "$tag" "$path" ||
    echo "vm-runner: cannot mount $tag at $path" >> "$ctl/stderr"
done < "$ctl/extra"
cd "$dir"
read -r up _ </proc/uptime; echo "cmd_start_s=$up" >> "$ctl/timing"
HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin VMCTL=$ctl \
  bash "$ctl/cmd" </dev/null >"$ctl/stdout" 2>>"$ctl/stderr"
rc=$?
read -r up _ </proc/uptime; echo "cmd_end_s=$up" >> "$ctl/timing"
free -m | awk '/^Mem:/ {print "guest_mem_used_mib=" $3}' >> "$ctl/timing"
echo "$rc" > "$ctl/rc.tmp" && mv "$ctl/rc.tmp" "$ctl/rc"
sync
# The command asked for a real shutdown (VM_STATE runs: reboot or graceful
# power-off scenarios): every unit is stopped as on any host. QEMU exits on
# either (-no-reboot); the host boots again if the test wants a second boot.
case "$(cat "$ctl/shutdown" 2>/dev/null)" in
  reboot) systemctl reboot; exit 0 ;;
  poweroff) systemctl poweroff; exit 0 ;;
esac
# Immediate power-off: the root disk is a throwaway snapshot, and a clean
# shutdown could wait up to 90 s for some unit the test left behind.
systemctl poweroff -ff
EOF
  chmod 0755 "$r/usr/local/sbin/vm-runner"
  cat > "$r/etc/systemd/system/vmrun.service" <<'EOF'
[Unit]
Description=vm.sh command runner
ConditionKernelCommandLine=vmsh.run=1
After=multi-user.target dbus.service systemd-logind.service systemd-modules-load.service

[Service]
Type=exec
ExecStart=/usr/local/sbin/vm-runner
StandardOutput=journal+console
StandardError=journal+console
TasksMax=infinity
LimitNOFILE=1048576
LimitMEMLOCK=infinity

[Install]
WantedBy=multi-user.target
EOF
  ln -sf /etc/systemd/system/vmrun.service "$r/etc/systemd/system/multi-user.target.wants/vmrun.service"

  make_kernel "$r" "$build"
  make_initrd "$r" "$build"
  rm -rf "$r"/var/cache/apt/archives/*.deb "$r"/var/lib/apt/lists/*

  echo "vm.sh: making the ext4 root image ($VM_DISK, sparse)" >&2
  rm -f "$build/rootfs.img"; truncate -s "$VM_DISK" "$build/rootfs.img"
  mkfs.ext4 -q -F -L vmroot -E lazy_itable_init=1 -d "$r" "$build/rootfs.img"
  mkdir -p "$IMG"
  mv -f "$build/vmlinux" "$build/initrd.img" "$build/rootfs.img" "$IMG/"
  stamp_text > "$IMG/image.stamp"
  rm -rf "$build"
  echo "vm.sh: image ready in $IMG ($((SECONDS - t0)) s)"
}

# ------------------------------------------------------------ boot/run ----
qemu_pid=
run_dir=
cleanup() {
  set +e
  # qemu_pid is timeout(1)'s: it forwards the TERM to qemu and waits for it.
  if [ -n "$qemu_pid" ]; then kill "$qemu_pid" 2>/dev/null; wait "$qemu_pid" 2>/dev/null; fi
  local p
  for p in $(jobs -p); do kill "$p" 2>/dev/null; done
  if [ -n "$run_dir" ] && [ "$VM_KEEP" != 1 ]; then rm -rf "$run_dir"; fi
}

# qemu_args MODE: the common QEMU command line (MODE run or shell).
qemu_args() {
  local accel=(-accel tcg,thread=multi -cpu max)
  case "$VM_ACCEL" in
    kvm) accel=(-enable-kvm -cpu host) ;;
    tcg) ;;
    auto)
      # /dev/kvm served by kvm_pvm (PVM, e.g. inside a Firecracker VM with
      # nested_pvm=1) boots only PVM-patched guest kernels: a stock Debian
      # kernel hangs before its first console line. Use TCG there.
      if [ -w /dev/kvm ] && [ ! -d /sys/module/kvm_pvm ]; then accel=(-enable-kvm -cpu host); fi ;;
    *) die "VM_ACCEL must be auto, kvm or tcg" ;;
  esac
  log "accelerator: ${accel[*]}"
  ACCEL_NAME=TCG
  [ "${accel[0]}" = -enable-kvm ] && ACCEL_NAME=KVM
  local append="root=/dev/vda rw console=ttyS0 panic=-1 net.ifnames=0 systemd.unified_cgroup_hierarchy=1"
  [ "$1" = run ] && append+=" quiet loglevel=4 systemd.show_status=false vmsh.run=1"
  Q=(qemu-system-x86_64 "${accel[@]}" -M "$VM_MACHINE" -smp "$VM_CPUS" -m "$VM_MEM"
     -nodefaults -no-user-config -display none -no-reboot
     -kernel "$IMG/vmlinux" -initrd "$IMG/initrd.img" -append "$append"
     -device virtio-rng-pci)
  if [ -n "$VM_STATE" ]; then
    # A disk that outlives the run: written back (graceful shutdowns flush it).
    Q+=(-drive "file=$VM_STATE,format=qcow2,if=virtio,cache=writeback")
  else
    Q+=(-drive "file=$IMG/rootfs.img,format=raw,if=virtio,snapshot=on,cache=unsafe")
  fi
  if [ "$VM_NET" = user ]; then Q+=(-nic user,model=virtio-net-pci); else Q+=(-nic none); fi
}

share_args() { # share_args TAG HOSTDIR
  Q+=(-fsdev "local,id=$1,path=$2,security_model=passthrough"
      -device "virtio-9p-pci,fsdev=$1,mount_tag=$1")
}

check_dir() {
  [ -d "$1" ] || die "not a folder: $1"
  case "$1" in
    /|/bin|/boot|/dev|/etc|/etc/*|/lib|/lib/*|/lib64|/proc|/proc/*|/run|/sbin|/sys|/sys/*|/usr|/usr/local|/var|/var/lib|/var/tmp|/root|/tmp|\
    /usr/bin*|/usr/sbin*|/usr/lib*|/usr/share*|/usr/libexec*|/usr/include*)
      die "refusing to share $1 over the guest's own $1" ;;
  esac
}

cmd_run() {
  need_root
  (($#)) || die "usage: vm.sh run DIR -- CMD [ARG...]"
  local dir; dir=$(realpath -e "$1") || die "no such folder: $1"; shift
  [ "${1:-}" = -- ] && shift
  (($#)) || die "usage: vm.sh run DIR -- CMD [ARG...]"
  check_dir "$dir"
  image_ok || die "no image in $IMG: run 'vm.sh image' first"
  trap cleanup EXIT
  trap 'exit 130' INT TERM
  mkdir -p "$VM_DIR/runs"
  run_dir=$(mktemp -d "$VM_DIR/runs/run.XXXXXX")
  printf '%s\n' "$dir" > "$run_dir/dir"
  { printf 'cd %q || exit 125\nexec' "$dir"; printf ' %q' "$@"; printf '\n'; } > "$run_dir/cmd"
  : > "$run_dir/stdout"; : > "$run_dir/stderr"

  if [ -n "$VM_STATE" ] && [ ! -f "$VM_STATE" ]; then
    qemu-img create -q -f qcow2 -F raw -b "$IMG/rootfs.img" "$VM_STATE" ||
      die "cannot create the state disk $VM_STATE"
  fi
  qemu_args run
  share_args vmctl "$run_dir"
  share_args vmshare "$dir"
  local i=0 extra
  : > "$run_dir/extra"
  for extra in $VM_SHARES; do
    extra=$(realpath -e "$extra") || die "VM_SHARES: no such folder: $extra"
    check_dir "$extra"
    i=$((i + 1)); share_args "vmx$i" "$extra"
    echo "vmx$i $extra" >> "$run_dir/extra"
  done
  Q+=(-serial "file:$run_dir/console.log" -monitor none)
  local t0; t0=$(date +%s.%N)
  # timeout(1) bounds the whole boot+command+poweroff; it passes our TERM on to qemu.
  # TMPDIR: where snapshot=on puts its (already unlinked) overlay of the guest's writes.
  # setpriv --pdeathsig: if this script is killed outright (no trap runs),
  # timeout dies with it and qemu with timeout: no QEMU is ever left behind.
  TMPDIR="$run_dir" setpriv --pdeathsig KILL timeout -k 10 "$VM_TIMEOUT" \
    setpriv --pdeathsig KILL "${Q[@]}" </dev/null >"$run_dir/qemu.log" 2>&1 &
  qemu_pid=$!
  # Stream the command's output while it runs; tail reads once more after qemu exits.
  tail -c +1 -f --pid="$qemu_pid" "$run_dir/stdout" &
  local tail_out=$!
  tail -c +1 -f --pid="$qemu_pid" "$run_dir/stderr" >&2 &
  local tail_err=$!
  local qrc=0
  wait "$qemu_pid" || qrc=$?
  qemu_pid=
  wait "$tail_out" "$tail_err" 2>/dev/null || true
  local t1; t1=$(date +%s.%N)

  guest_line "$run_dir/guest"
  if [ "$VM_VERBOSE" = 1 ]; then
    echo "vm.sh: host wall $(awk "BEGIN{printf \"%.1f\", $t1-$t0}") s; guest: $(tr '\n' ' ' < "$run_dir/timing" 2>/dev/null)" >&2
  fi
  if [ "$qrc" = 124 ] || [ "$qrc" = 137 ]; then
    echo "vm.sh: timed out after ${VM_TIMEOUT}s; console log tail:" >&2
    tail -n 30 "$run_dir/console.log" >&2 || true
    exit 124
  fi
  if [ ! -f "$run_dir/rc" ]; then
    echo "vm.sh: the guest reported no exit code (qemu rc $qrc); qemu said:" >&2
    cat "$run_dir/qemu.log" >&2 || true
    echo "vm.sh: console log tail:" >&2
    tail -n 40 "$run_dir/console.log" >&2 || true
    exit 125
  fi
  exit "$(cat "$run_dir/rc")"
}

# guest_line FILE: one line on stderr naming the guest the run used.
guest_line() {
  [ -f "$1" ] || { echo "vm.sh: guest: (it did not report; accelerator $ACCEL_NAME)" >&2; return 0; }
  local kernel systemd cgroupfs controllers os state
  kernel=$(sed -n 's/^kernel=//p' "$1"); systemd=$(sed -n 's/^systemd=//p' "$1")
  cgroupfs=$(sed -n 's/^cgroupfs=//p' "$1"); controllers=$(sed -n 's/^controllers=//p' "$1")
  os=$(sed -n 's/^os=//p' "$1"); state=$(sed -n 's/^state=//p' "$1")
  local cg="cgroup $cgroupfs"
  [ "$cgroupfs" = cgroup2fs ] && cg="cgroup v2 only ($controllers)"
  local why=""
  [ "$ACCEL_NAME" = TCG ] && [ -d /sys/module/kvm_pvm ] && why=" (/dev/kvm is PVM: stock kernels hang there)"
  [ "$ACCEL_NAME" = TCG ] && [ ! -e /dev/kvm ] && why=" (no /dev/kvm)"
  echo "vm.sh: guest: $os, kernel $kernel, systemd $systemd, PID 1 systemd ($state), $cg, $ACCEL_NAME$why" >&2
}

# check: can a run happen right now, without installing or building anything?
cmd_check() {
  [ "$(id -u)" = 0 ] || { echo "vm.sh: not root"; exit 3; }
  command -v qemu-system-x86_64 >/dev/null || { echo "vm.sh: qemu-system-x86_64 is not installed"; exit 3; }
  if [ -n "$VM_STATE" ]; then command -v qemu-img >/dev/null || { echo "vm.sh: qemu-img (qemu-utils) is not installed"; exit 3; }; fi
  image_ok || { echo "vm.sh: no image for this recipe in $IMG (vm.sh image builds it)"; exit 3; }
  echo "vm.sh: ready ($IMG)"
}

cmd_shell() {
  need_root
  image_ok || die "no image in $IMG: run 'vm.sh image' first"
  qemu_args shell
  if (($#)); then
    local dir; dir=$(realpath -e "$1"); check_dir "$dir"
    share_args vmshare "$dir"
    echo "vm.sh: in the guest: mkdir -p $dir && mount -t 9p -o trans=virtio,version=9p2000.L vmshare $dir" >&2
  fi
  Q+=(-serial mon:stdio)
  exec "${Q[@]}"
}

case "${1:-}" in
  image) shift; cmd_image "$@" ;;
  run) shift; cmd_run "$@" ;;
  shell) shift; cmd_shell "$@" ;;
  check) shift; cmd_check "$@" ;;
  *) sed -n '2,22p' "$0" >&2; exit 2 ;;
esac
