#!/usr/bin/env bash
# Prepare the pure cgroup-v2 qemu lane: qemu, a Debian kernel and a busybox
# initramfs, cached in $WORKSHOP_VM_CACHE (default /var/cache/container-workshop/vm).
# Idempotent; called by `setup.sh --with-vm-lane` and by tests/vm/test_cgroup_v2.py.
# Debian 12 amd64 hosts only (that is what CI runs). Options: --refresh (fetch
# the current kernel again), --quiet (print only what changes).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${WORKSHOP_VM_CACHE:-/var/cache/container-workshop/vm}
# Load order matters (dependencies first); all are =m in Debian's 6.1 kernel.
# The second line is step 9's network: veth pairs, bridges, nftables' masquerade.
MODULES="virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci
  virtio_mmio virtio-rng netfs fscache 9pnet 9pnet_virtio 9p overlay
  veth llc stp bridge crc32c_generic libcrc32c nfnetlink nf_tables nf_defrag_ipv4 nf_defrag_ipv6
  nf_conntrack nf_nat nft_chain_nat nft_masq"
REFRESH=0 QUIET=0
for arg in "$@"; do
  case $arg in
    --refresh) REFRESH=1 ;;
    --quiet) QUIET=1 ;;
    *) echo "vm/prepare.sh: unknown option $arg" >&2; exit 2 ;;
  esac
done

say() { echo "vm-lane: $*"; }
die() { echo "vm-lane: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (it installs qemu and writes $CACHE)"
arch=$(dpkg --print-architecture 2>/dev/null || uname -m)
[ "$arch" = amd64 ] || die "the cgroup-v2 lane boots an amd64 Debian kernel; this host is $arch"
grep -qs '^ID=debian' /etc/os-release || die "the cgroup-v2 lane takes its kernel from Debian's packages; run it on Debian 12"

# 1. qemu and busybox-static
need=""
command -v qemu-system-x86_64 >/dev/null || need="$need qemu-system-x86"
dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q "ok installed" || need="$need busybox-static"
if [ -n "$need" ]; then
  say "installing$need"
  apt-get install -y -qq --no-install-recommends $need >/dev/null 2>&1 ||
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends $need >/dev/null; } ||
    die "could not install$need with apt-get"
fi

# 2. the kernel: vmlinuz + the dozen modules, from linux-image-amd64's current target
mkdir -p "$CACHE"
modules_missing() { for m in $MODULES; do [ -s "$CACHE/modules/$m.ko" ] || return 0; done; return 1; }
if [ "$REFRESH" = 1 ] || [ ! -s "$CACHE/vmlinuz" ] || [ ! -s "$CACHE/kernel-version" ] || modules_missing; then
  kernel_pkg() { apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}'; }
  download() { (cd "$tmp" && apt-get download -qq "$pkg" >/dev/null 2>&1); }
  pkg=$(kernel_pkg)
  [ -n "$pkg" ] || { say "apt-get update (apt knows no linux-image-amd64 yet)"; apt-get update -qq >/dev/null 2>&1 || true; pkg=$(kernel_pkg); }
  [ -n "$pkg" ] || die "apt knows no linux-image-amd64, even after apt-get update: is this Debian's archive?"
  say "downloading $pkg (about 70 MB) into $CACHE"
  tmp=$(mktemp -d "$CACHE/tmp.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  if ! download; then  # stale lists name a kernel the mirror no longer has
    say "apt-get update and retry"; apt-get update -qq >/dev/null 2>&1 || true
    pkg=$(kernel_pkg); download || die "apt-get download ${pkg:-linux-image-amd64} failed (no network to Debian's archive?)"
  fi
  deb=$(ls "$tmp"/*.deb)
  wanted="./boot/vmlinuz-*"
  for m in $MODULES; do wanted="$wanted ./lib/modules/*/$m.ko"; done
  members=$(dpkg-deb --fsys-tarfile "$deb" | tar -t | while read -r p; do
    # shellcheck disable=SC2254  # $w is a glob pattern on purpose
    for w in $wanted; do case $p in $w) echo "$p" ;; esac; done; done)
  dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$tmp" $members
  rm -rf "$CACHE/modules" && mkdir "$CACHE/modules"
  for m in $MODULES; do
    f=$(find "$tmp/lib/modules" -name "$m.ko" | head -n1)
    [ -n "$f" ] || die "$m.ko is not in $pkg"
    cp "$f" "$CACHE/modules/"
  done
  cp "$tmp"/boot/vmlinuz-* "$CACHE/vmlinuz"
  echo "${pkg#linux-image-}" > "$CACHE/kernel-version"
  rm -rf "$tmp"; trap - EXIT
elif [ "$QUIET" = 0 ]; then
  say "kernel $(cat "$CACHE/kernel-version") already in $CACHE"
fi

# 3. the initramfs: busybox + modules + vm/init; rebuilt when one of them changes
stamp=$( (cat "$HERE/init"; echo "$MODULES"; cat "$CACHE/kernel-version"; sha256sum /bin/busybox) | sha256sum | cut -c1-16)
if [ "$(cat "$CACHE/initrd.stamp" 2>/dev/null)" != "$stamp" ] || [ ! -s "$CACHE/initrd.gz" ]; then
  say "building the initramfs $CACHE/initrd.gz"
  tmp=$(mktemp -d "$CACHE/tmp.XXXXXX")
  trap 'rm -rf "$tmp" "$tmp.gz"' EXIT
  mkdir -p "$tmp"/bin "$tmp"/lib/modules "$tmp"/dev "$tmp"/proc "$tmp"/sys "$tmp"/mnt "$tmp"/host "$tmp"/newroot
  cp /bin/busybox "$tmp/bin/busybox"
  ln -s busybox "$tmp/bin/sh"
  for m in $MODULES; do cp "$CACHE/modules/$m.ko" "$tmp/lib/modules/"; done
  printf '%s\n' $MODULES > "$tmp/lib/modules/order"  # load order, for init
  install -m 0755 "$HERE/init" "$tmp/init"
  (cd "$tmp" && find . | /bin/busybox cpio -o -H newc 2>/dev/null) | gzip -1 > "$tmp.gz"
  mv "$tmp.gz" "$CACHE/initrd.gz"  # atomic: a VM booting meanwhile reads the old or the new one
  echo "$stamp" > "$CACHE/initrd.stamp"
  rm -rf "$tmp"; trap - EXIT
elif [ "$QUIET" = 0 ]; then
  say "initramfs up to date"
fi
