#!/usr/bin/env bash
# container-workshop set-up: the one script the README, CI and the Vagrant VM run.
#
#   sudo ./setup.sh                 packages, the `workshop` command, the busybox rootfs
#   sudo ./setup.sh --vm            + a local registry on 127.0.0.1:5000, the userns
#                                     sysctl (Ubuntu 24.04), no swap (the Vagrant VM)
#        --mirror URL [--mirror-ca PEM]   + pull Docker Hub names through the room's cache
#                                     (also WORKSHOP_MIRROR=URL, WORKSHOP_MIRROR_CA=PEM)
#   sudo ./setup.sh --classroom-cache [HOST:PORT]   the instructor's machine: a pull-through
#                                     cache of Docker Hub on HOST:PORT (default 0.0.0.0:5050) and
#                                     the workshop's images on PORT+1
#        [--hub-credentials FILE] [--tls-cert PEM --tls-key PEM]
#   sudo ./setup.sh --with-vm-lane  + qemu, kernel and initramfs of the cgroup-v2 test lane, ruff (CI)
#
# Debian 12 or Ubuntu 24.04, amd64 or arm64, as root. Safe to run again: it
# only does what is missing, one line per action.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
VENV=/opt/container-workshop/venv
STATE=/var/lib/container-workshop
REGISTRY=127.0.0.1:5000
VM=0 LANE=0 DEV=0 CACHE=""
MIRROR=${WORKSHOP_MIRROR:-} MIRROR_CA=${WORKSHOP_MIRROR_CA:-} HUB_CREDENTIALS="" TLS_CERT="" TLS_KEY=""
value() {  # the value of an option given as --name=VALUE or --name VALUE
  case $1 in *=*) echo "${1#*=}" ;; *) [ -n "${2:-}" ] && [ "${2#--}" = "$2" ] || { echo "setup.sh: $1 needs a value" >&2; exit 2; }; echo "$2" ;; esac
}
while [ $# -gt 0 ]; do
  arg=$1; shift
  case $arg in
    --vm) VM=1 ;;
    --with-vm-lane) LANE=1 DEV=1 ;;  # DEV: the maintainers' tools too (ruff, for the reference's lint check)
    --mirror|--mirror=*) MIRROR=$(value "$arg" "${1:-}"); [ "${arg#*=}" != "$arg" ] || shift ;;
    --mirror-ca|--mirror-ca=*) MIRROR_CA=$(value "$arg" "${1:-}"); [ "${arg#*=}" != "$arg" ] || shift ;;
    --classroom-cache=*) CACHE=${arg#*=} ;;
    --classroom-cache) CACHE=0.0.0.0:5050; case ${1:-} in *:*) CACHE=$1; shift ;; esac ;;
    --hub-credentials|--hub-credentials=*) HUB_CREDENTIALS=$(value "$arg" "${1:-}"); [ "${arg#*=}" != "$arg" ] || shift ;;
    --tls-cert|--tls-cert=*) TLS_CERT=$(value "$arg" "${1:-}"); [ "${arg#*=}" != "$arg" ] || shift ;;
    --tls-key|--tls-key=*) TLS_KEY=$(value "$arg" "${1:-}"); [ "${arg#*=}" != "$arg" ] || shift ;;
    -h|--help) sed -n '2,18s/^# \{0,1\}//p' "$0"; exit 0 ;;
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
stamp="$REPO $(sha256sum "$REPO/pyproject.toml" | cut -c1-16) dev=$DEV"
if [ "$(cat "$VENV/.workshop-installed" 2>/dev/null)" != "$stamp" ] || [ ! -x "$VENV/bin/workshop" ]; then
  if [ "$DEV" = 1 ]; then
    say "pip install -e $REPO[dev] (pytest, requests, click, rich, the workshop command; ruff)"
    quietly "$VENV/bin/pip" install --disable-pip-version-check -q -e "$REPO[dev]"
  else
    say "pip install -e $REPO (pytest, requests, click, rich, the workshop command)"
    quietly "$VENV/bin/pip" install --disable-pip-version-check -q -e "$REPO"
  fi
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
# A registry service: `workshop registry start` (workshop/registry.py) with its files in DIR,
# wrapped in a systemd unit where there is systemd (Type=forking: start daemonizes, then exits).
registry_service() {  # NAME DIR DESCRIPTION START-OPTIONS...
  local name=$1 dir=$2 description=$3; shift 3
  local start="$VENV/bin/python -m workshop.registry start --dir $dir $*"
  if [ "$HAVE_SYSTEMD" = 1 ]; then
    local unit=/etc/systemd/system/$name.service want
    want=$(printf '%s\n' "[Unit]" "Description=container-workshop: $description" "After=network.target" \
      "" "[Service]" "Type=forking" "PIDFile=$dir/registry.pid" "ExecStart=$start" \
      "ExecStop=$VENV/bin/python -m workshop.registry stop --dir $dir" "TimeoutStartSec=120" \
      "" "[Install]" "WantedBy=multi-user.target")
    if [ "$(cat "$unit" 2>/dev/null)" != "$want" ]; then
      say "writing $unit"; echo "$want" > "$unit"; systemctl daemon-reload
      systemctl enable -q "$name.service"
      systemctl restart "$name.service" || die "$name.service does not start: journalctl -u $name"
    elif ! systemctl -q is-active "$name.service"; then
      systemctl start "$name.service" || die "$name.service does not start: journalctl -u $name"
    fi
    out=$($start 2>&1) || die "$start failed: $out"  # idempotent: pushes what is missing
  else  # no systemd (a container, WSL without systemd): the daemon alone; not restarted at boot
    out=$($start 2>&1) || die "$start failed: $out"
  fi
  say "$name: $(echo "$out" | tr '\n' ' ')"
}

if [ "$VM" = 1 ]; then
  # Setups before the registry command kept their data in $STATE/registry and their config in /etc.
  if [ -d "$STATE/registry/docker" ] && [ ! -e "$STATE/registry/data" ]; then
    mkdir -p "$STATE/registry/data" && mv "$STATE/registry/docker" "$STATE/registry/data/"
  fi
  rm -f /etc/container-workshop/registry.yml
  old=/run/container-workshop-registry.pid  # the background registry of those setups, without systemd
  if [ -s "$old" ]; then kill "$(cat "$old")" 2>/dev/null && sleep 0.5 || true; rm -f "$old"; fi
  registry_service container-workshop-registry "$STATE/registry" "local registry on $REGISTRY" --listen "$REGISTRY"

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

# --- 5. the room's pull-through cache for Docker Hub names (--mirror; workshop.md, "The classroom registry")
conf=/etc/udocker/config.json
if [ -n "$MIRROR" ]; then
  case $MIRROR in http://*|https://*) ;; *) die "--mirror $MIRROR: give a URL, http://HOST:PORT or https://HOST:PORT" ;; esac
  mirror_host=${MIRROR#*://}; mirror_host=${mirror_host%%/*}
  insecure="[]"
  case $MIRROR in http://127.*|http://localhost*) ;; http://*) insecure="[\"$mirror_host\"]" ;; esac
  want=$(printf '{\n  "registry-mirrors": ["%s"],\n  "insecure-registries": %s\n}' "$MIRROR" "$insecure")
  if [ "$(cat "$conf" 2>/dev/null)" != "$want" ]; then
    say "writing $conf (Docker Hub names through $MIRROR)"; mkdir -p /etc/udocker; echo "$want" > "$conf"
  fi
  if [ -n "$MIRROR_CA" ]; then
    case $MIRROR_CA in /*) ;; *) [ -f "$MIRROR_CA" ] || MIRROR_CA=$REPO/$MIRROR_CA ;; esac  # Vagrant: in this folder
    [ -f "$MIRROR_CA" ] || die "--mirror-ca $MIRROR_CA: no such file"
    ca=/usr/local/share/ca-certificates/container-workshop-mirror.crt
    if ! cmp -s "$MIRROR_CA" "$ca"; then
      say "trusting the cache's CA ($MIRROR_CA -> $ca)"; cp "$MIRROR_CA" "$ca"; quietly update-ca-certificates
    fi
  fi
  code=$("$VENV/bin/python" -c "import sys; from workshop.registry import answers; print(answers(sys.argv[1]) or '')" "$MIRROR")
  [ -n "$code" ] && say "the mirror $MIRROR answers (HTTP $code)" ||
    say "warning: the mirror $MIRROR does not answer now; pulls fall back to Docker Hub until it does"
fi

# --- 6. the instructor's machine: the classroom's cache --------------------------
if [ -n "$CACHE" ]; then
  case $CACHE in *:*) ;; *) die "--classroom-cache $CACHE: give HOST:PORT (0.0.0.0:5050)" ;; esac
  host=${CACHE%:*} port=${CACHE##*:}
  options="--classroom --listen $CACHE --proxy https://registry-1.docker.io"
  [ -z "$HUB_CREDENTIALS" ] || options="$options --credentials $(realpath "$HUB_CREDENTIALS")"
  [ -z "$TLS_CERT" ] || options="$options --tls-cert $(realpath "$TLS_CERT") --tls-key $(realpath "$TLS_KEY")"
  registry_service container-workshop-cache "$STATE/cache" "pull-through cache of Docker Hub on $CACHE" $options
  # a proxy refuses pushes: the workshop's own images live in a plain registry beside it
  options="--classroom --listen $host:$((port + 1)) --all"
  [ -z "$TLS_CERT" ] || options="$options --tls-cert $(realpath "$TLS_CERT") --tls-key $(realpath "$TLS_KEY")"
  registry_service container-workshop-classroom-registry "$STATE/classroom" "the workshop's images on $host:$((port + 1))" $options
  scheme=http; [ -z "$TLS_CERT" ] || scheme=https
  say "warm the cache (the day before): workshop registry warm $scheme://127.0.0.1:$port"
fi

# --- 7. CI: the cgroup-v2 qemu lane -------------------------------------------
if [ "$LANE" = 1 ]; then
  "$REPO/vm/prepare.sh"
fi
say "done. Next: sudo workshop doctor"
