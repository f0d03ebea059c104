#!/usr/bin/env bash
# Boot the cgroup-v2 lane's VM once and run COMMAND in it (as root, cwd /, the
# host's root file system read-only with a tmpfs overlay; /tmp is a fresh tmpfs:
# name with --keep the host folders under /tmp that the command needs).
# The guest's output is this script's stdout.
#   vm/boot.sh [--timeout SECONDS] [--keep DIR]... COMMAND
# Example: vm/boot.sh 'cat /proc/self/cgroup; cat /sys/fs/cgroup/cgroup.controllers'
# Runs vm/prepare.sh --quiet first. Software emulation (TCG): ~14 s of boot.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${WORKSHOP_VM_CACHE:-/var/cache/container-workshop/vm}
TIMEOUT=900 KEEP=""
while [ $# -gt 1 ]; do
  case $1 in
    --timeout) TIMEOUT=$2; shift 2 ;;
    --keep) case $2 in *[[:space:]\"]*) echo "vm/boot.sh: --keep $2: no spaces or quotes, please" >&2; exit 2 ;; esac
            KEEP="$KEEP $2"; shift 2 ;;
    *) break ;;
  esac
done
[ $# = 1 ] || { echo "usage: vm/boot.sh [--timeout SECONDS] [--keep DIR]... COMMAND" >&2; exit 2; }
case $1 in *'"'*) echo "vm/boot.sh: COMMAND cannot contain double quotes (it travels on the kernel command line)" >&2; exit 2 ;; esac
"$HERE/prepare.sh" --quiet
exec timeout --foreground -k 10 "$TIMEOUT" qemu-system-x86_64 \
  -accel tcg,thread=multi -cpu max -m 2048 -smp 2 \
  -nodefaults -no-user-config -display none -serial stdio -no-reboot \
  -device virtio-rng-pci \
  -kernel "$CACHE/vmlinuz" -initrd "$CACHE/initrd.gz" \
  -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
  -append "console=ttyS0 quiet loglevel=1 panic=-1 ws.keep=\"${KEEP# }\" ws.cmd=\"$1\""
