#!/usr/bin/env bash
# container-workshop set-up: the one script the README, CI and the Vagrant VM run.
#
#   sudo ./setup.sh                 packages, the `workshop` command, the busybox rootfs
#   sudo ./setup.sh --vm            + a local registry on 127.0.0.1:5000, the userns
#                                     sysctl (Ubuntu 24.04), no swap (the Vagrant VM)
#   sudo ./setup.sh --with-vm-lane  + qemu, kernel and initramfs of the cgroup-v2 test lane (CI)
#
# Debian 12 or Ubuntu 24.04, amd64 or arm64, as root. Safe to run again: it
# only does what is missing, one line per action.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
VENV=/opt/container-workshop/venv
STATE=/var/lib/container-workshop
REGISTRY=127.0.0.1:5000
VM=0 LANE=0
for arg in "$@"; do
  case $arg in
    --vm) VM=1 ;;
    --with-vm-lane) LANE=1 ;;
    -h|--help) sed -n '2,10s/^# \{0,1\}//p' "$0"; exit 0 ;;
    *) echo "setup.sh: unknown option $arg (see --help)" >&2; exit 2 ;;
  esac
done

say() { echo "setup: $*"; }
die() { echo "setup: $*" >&2; exit 1; }
quietly() {  # run a noisy command; show its output only when it fails
  local log; log=$(mktemp)
  if ! "$@" >"$log" 2>&1; then tail -n 25 "$log" >&2; rm -f "$log"; die "failed: $*"; fi
  rm -f "$log"
}

# --- 0. where are we? ---------------------------------------------------------
[ "$(id -u)" = 0 ] || die "run me as root: sudo $0 $*"
. /etc/os-release 2>/dev/null || die "no /etc/os-release: this is not Debian 12 or Ubuntu 24.04"
case "${ID:-}-${VERSION_ID:-}" in
  debian-12|ubuntu-24.04) ;;
  *) die "this is ${PRETTY_NAME:-an unknown system}; the workshop supports Debian 12 and Ubuntu 24.04 (use the Vagrant VM, see README)" ;;
esac
ARCH=$(dpkg --print-architecture)
case $ARCH in amd64|arm64) ;; *) die "architecture $ARCH is not supported (amd64 or arm64 only)" ;; esac
if [ "$LANE" = 1 ] && [ -e /sys/fs/cgroup/cgroup.controllers ]; then
  say "vm-lane: this machine is pure cgroup v2 itself: the lane's checks run here, no VM needed"
  LANE=0
elif [ "$LANE" = 1 ] && [ "$ID-$ARCH" != debian-amd64 ]; then
  die "--with-vm-lane boots an amd64 Debian kernel: it needs Debian 12 on amd64 (CI), not $ID on $ARCH"
fi
HAVE_SYSTEMD=0; [ -d /run/systemd/system ] && HAVE_SYSTEMD=1

# --- 1. Debian packages -------------------------------------------------------
# python3-requests: rootless runs use the system python, which pulls images (step 7).
# iproute2 and nftables: step 9's network (its tests' sandboxes, the NAT rule of --network bridge).
PKGS="python3 python3-venv python3-requests busybox-static util-linux docker-registry git less ca-certificates iproute2 nftables"
[ "$LANE" = 1 ] && PKGS="$PKGS qemu-system-x86"
missing=$(for p in $PKGS; do
  dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null | grep -q '^ii' || echo "$p"; done | xargs)
if [ -n "$missing" ]; then
  export DEBIAN_FRONTEND=noninteractive NEEDRESTART_MODE=a NEEDRESTART_SUSPEND=1
  say "apt-get update"
  quietly apt-get update
  say "apt-get install $missing"
  quietly apt-get install -y --no-install-recommends $missing
else
  say "packages already installed"
fi
# The package's own registry service listens on all interfaces with htpasswd
# auth: the workshop never uses it (tests start their own; --vm runs one below).
if [ "$HAVE_SYSTEMD" = 1 ] && systemctl -q is-enabled docker-registry.service 2>/dev/null; then
  say "disabling the packaged docker-registry.service (listens on :5000 on all interfaces)"
  systemctl disable --now -q docker-registry.service
fi

# --- 2. the workshop command, in a virtualenv made from the system python -----
PY=/usr/bin/python3
"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || die "$PY is older than 3.11"
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import sys; sys.exit(sys.base_prefix != "/usr")' 2>/dev/null \
   || [ "$("$VENV/bin/python" -V 2>&1)" != "$("$PY" -V 2>&1)" ]; then
  say "creating the virtualenv $VENV with $PY ($("$PY" -V 2>&1))"
  rm -rf "$VENV"
  quietly "$PY" -m venv "$VENV"
fi
stamp="$REPO $(sha256sum "$REPO/pyproject.toml" | cut -c1-16)"
if [ "$(cat "$VENV/.workshop-installed" 2>/dev/null)" != "$stamp" ] || [ ! -x "$VENV/bin/workshop" ]; then
  say "pip install -e $REPO (pytest, requests, click, rich, the workshop command)"
  quietly "$VENV/bin/pip" install --disable-pip-version-check -q -e "$REPO"
  echo "$stamp" > "$VENV/.workshop-installed"
else
  say "workshop already installed in $VENV from $REPO"
fi
if [ "$(readlink /usr/local/bin/workshop 2>/dev/null)" != "$VENV/bin/workshop" ]; then
  say "linking /usr/local/bin/workshop -> $VENV/bin/workshop"
  ln -sfn "$VENV/bin/workshop" /usr/local/bin/workshop
fi

# --- 3. the busybox root filesystem (refreshed in place; takes a moment) ------
out=$("$VENV/bin/python" -m workshop.rootfs 2>&1) || die "python3 -m workshop.rootfs failed: $out"
say "$out"

# --- 4. the Vagrant VM: registry, user namespaces, swap -----------------------
if [ "$VM" = 1 ]; then
  # A registry on loopback only, no auth, storage on the VM's own disk.
  mkdir -p /etc/container-workshop "$STATE/registry"
  chown docker-registry: "$STATE/registry"
  conf=/etc/container-workshop/registry.yml
  secret=$(sed -n 's/^  secret: //p' "$conf" 2>/dev/null || true); secret=${secret:-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')}
  want=$(printf '%s\n' "# written by setup.sh --vm: the workshop's local registry" "version: 0.1" \
    "log:" "  level: warn" "storage:" "  filesystem:" "    rootdirectory: $STATE/registry" \
    "  delete:" "    enabled: true" "http:" "  addr: $REGISTRY" "  secret: $secret")
  if [ "$(cat "$conf" 2>/dev/null)" != "$want" ]; then
    say "writing $conf (listens on $REGISTRY only, no auth)"; echo "$want" > "$conf"; changed=1
  fi
  registry_up() { "$VENV/bin/python" -c "import urllib.request as u; u.urlopen('http://$REGISTRY/v2/', timeout=2)" 2>/dev/null; }
  if [ "$HAVE_SYSTEMD" = 1 ]; then
    unit=/etc/systemd/system/container-workshop-registry.service
    want=$(printf '%s\n' "[Unit]" "Description=container-workshop local registry on $REGISTRY" "After=network.target" \
      "" "[Service]" "User=docker-registry" "ExecStart=/usr/bin/docker-registry serve $conf" "Restart=on-failure" \
      "" "[Install]" "WantedBy=multi-user.target")
    if [ "$(cat "$unit" 2>/dev/null)" != "$want" ]; then
      say "writing $unit"; echo "$want" > "$unit"; systemctl daemon-reload; changed=1
    fi
    if [ "${changed:-0}" = 1 ] || ! systemctl -q is-active container-workshop-registry.service; then
      say "(re)starting container-workshop-registry.service"
      systemctl enable -q container-workshop-registry.service
      systemctl restart container-workshop-registry.service
    fi
  else  # no systemd (a container, WSL without systemd): a plain background process
    pidfile=/run/container-workshop-registry.pid
    if [ "${changed:-0}" = 1 ] || ! registry_up; then
      if [ -s "$pidfile" ]; then kill "$(cat "$pidfile")" 2>/dev/null && sleep 0.5 || true; fi
      say "no systemd: starting docker-registry in the background (log /var/log/container-workshop-registry.log; not restarted at boot: run setup.sh --vm again)"
      setsid setpriv --reuid=docker-registry --regid=docker-registry --init-groups \
        /usr/bin/docker-registry serve "$conf" >>/var/log/container-workshop-registry.log 2>&1 < /dev/null &
      echo $! > "$pidfile"
    fi
  fi
  for _ in $(seq 50); do registry_up && break; sleep 0.2; done
  registry_up || die "the registry does not answer on http://$REGISTRY/v2/ (is another program using port 5000?)"
  out=$("$VENV/bin/python" -m workshop.images seed --registry "$REGISTRY" 2>&1) ||
    die "seeding the registry failed (python3 -m workshop.images seed --registry $REGISTRY): $out"
  say "registry on $REGISTRY seeded: $(echo "$out" | sed -n 's|^pushed [^/]*/\([^ ]*\).*|\1|p' | paste -sd' ' -)"

  # Ubuntu 24.04's AppArmor forbids unprivileged user namespaces (step 5 needs them).
  conf=/etc/sysctl.d/60-container-workshop.conf
  if [ -e /proc/sys/kernel/apparmor_restrict_unprivileged_userns ]; then
    want="kernel.apparmor_restrict_unprivileged_userns = 0"
    if [ "$(cat "$conf" 2>/dev/null)" != "$want" ] || [ "$(cat /proc/sys/kernel/apparmor_restrict_unprivileged_userns)" != 0 ]; then
      say "allowing unprivileged user namespaces ($want, in $conf)"
      echo "$want" > "$conf"; sysctl -q -p "$conf"
    fi
  fi
  # No swap: a memory limit (step 6) then means an OOM kill, never a slow swap-out.
  # (The runtime also sets memory.swap.max=0 per container on cgroup v2.)
  if [ -n "$(awk 'NR > 1' /proc/swaps)" ]; then say "turning swap off (swapoff -a)"; swapoff -a; fi
  if grep -Eq '^[^#].*[[:space:]]swap[[:space:]]' /etc/fstab; then
    say "commenting out the swap entries of /etc/fstab (backup: /etc/fstab.workshop-bak)"
    sed -i.workshop-bak -E '/^[^#].*[[:space:]]swap[[:space:]]/s/^/# (container-workshop: no swap) /' /etc/fstab
  fi
fi

# --- 5. CI: the cgroup-v2 qemu lane -------------------------------------------
if [ "$LANE" = 1 ]; then
  "$REPO/vm/prepare.sh"
fi
say "done. Next: sudo workshop doctor"
