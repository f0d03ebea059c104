#!/bin/sh
# Runs INSIDE the cgroup-v2 VM (started by tests/vm/test_cgroup_v2.py through
# vm/boot.sh), or natively on a pure cgroup-v2 machine: the lane's checks, in one boot.
#   sh vm/guest-suite.sh PYTHON CHECKS-FILE   (PYTHON: an interpreter that has pytest)
#   sh vm/guest-suite.sh --check FUNCTION      (one of the shell checks below)
# CHECKS-FILE holds the checks in order, one a line: NAME=@FUNCTION (a check of this
# script) or NAME=PYTEST ARGUMENTS. tests/vm/test_cgroup_v2.py writes it: the one list.
# vm/guest_pytest.py runs them all in one Python process; each prints
# "@@VMLANE BEGIN <name>", its output, "@@VMLANE END <name> rc=<N>".
cd "$(dirname "$0")/.." || exit 1

pure_v2() {  # the machine is what learners have: one cgroup v2 tree, no v1
  ok=0
  fs=$(stat -fc %T /sys/fs/cgroup); echo "/sys/fs/cgroup: $fs"
  [ "$fs" = cgroup2fs ] || ok=1
  v1=$(awk '$3 == "cgroup" {print $2}' /proc/mounts); echo "cgroup v1 mounts: ${v1:-none}"
  [ -z "$v1" ] || ok=1
  echo "/proc/self/cgroup: $(cat /proc/self/cgroup)"
  case $(cat /proc/self/cgroup) in 0::/?*) ;; *) ok=1 ;; esac
  echo "controllers: $(cat /sys/fs/cgroup/cgroup.controllers)"
  for c in cpu memory pids; do grep -qw $c /sys/fs/cgroup/cgroup.controllers || ok=1; done
  echo "root subtree_control: $(cat /sys/fs/cgroup/cgroup.subtree_control)"
  echo "swap: $(awk 'NR > 1' /proc/swaps | wc -l) device(s); kernel $(uname -r)"
  return $ok
}

no_leftovers() {  # every container cgroup is gone (the shared v2 parent "udocker" may stay)
  left=$(find /sys/fs/cgroup -mindepth 1 -type d -name 'udocker*' ! -path /sys/fs/cgroup/udocker 2>/dev/null)
  [ -z "$left" ] && { echo "no udocker cgroups left"; return 0; }
  echo "left behind:"; echo "$left"; return 1
}

if [ "$1" = --check ]; then
  case $2 in pure_v2|no_leftovers) "$2"; exit $? ;; esac
  echo "vm/guest-suite.sh: no check $2 (there are pure_v2 and no_leftovers)"; exit 2
fi
PY=${1:?usage: guest-suite.sh PYTHON CHECKS-FILE}
CHECKS=${2:?usage: guest-suite.sh PYTHON CHECKS-FILE}
echo "python: $PY"
# Under software emulation a pull or a container start is several times slower: allow for it.
export WORKSHOP_TEST_TIMEOUT=60
"$PY" vm/guest_pytest.py "$CHECKS" 2>&1
echo "@@VMLANE ALL-DONE"
