#!/bin/sh
# Runs INSIDE the cgroup-v2 VM (started by tests/vm/test_cgroup_v2.py through
# vm/boot.sh): the checks that need a pure cgroup v2 machine, in one boot.
#   sh vm/guest-suite.sh PYTHON       (PYTHON: an interpreter that has pytest)
# Each check prints "@@VMLANE BEGIN <name>", its output, "@@VMLANE END <name> rc=<N>";
# the host test turns every check into one test result.
PY=${1:?usage: guest-suite.sh PYTHON}
cd "$(dirname "$0")/.." || exit 1

check() {  # check NAME COMMAND...: run it, framed by marker lines
  name=$1; shift
  echo "@@VMLANE BEGIN $name uptime=$(cut -d' ' -f1 /proc/uptime)"
  "$@" 2>&1
  echo "@@VMLANE END $name rc=$? uptime=$(cut -d' ' -f1 /proc/uptime)"
}

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
  echo "swap: $(awk 'NR > 1' /proc/swaps | wc -l) device(s); kernel $(uname -r); python: $PY"
  return $ok
}

no_leftovers() {  # every container cgroup is gone (the shared v2 parent "udocker" may stay)
  left=$(find /sys/fs/cgroup -mindepth 1 -type d -name 'udocker*' ! -path /sys/fs/cgroup/udocker 2>/dev/null)
  [ -z "$left" ] && { echo "no udocker cgroups left"; return 0; }
  echo "left behind:"; echo "$left"; return 1
}

check pure-cgroup-v2 pure_v2
# The step suites, in one Python process (see vm/guest_pytest.py). Under software
# emulation a pull or a container start is several times slower: allow for it.
export WORKSHOP_TEST_TIMEOUT=60
# Step 9 on a distribution kernel (veth, bridge and nftables as modules): one check of
# each mechanism; the whole suite passes here too, but takes 4 more minutes (258 s).
STEP9="none_has_only or lo_down or rootless_container_has or eth0_has or internet_through_nat or two_containers"
STEP9="$STEP9 or after_exit or publish_in or publish_rootless or exit_status_with or stop_timeout"
"$PY" vm/guest_pytest.py \
  "step6-on-solutions-step6=tests/step6 --impl solutions/step6" \
  "step6-on-solutions-step8=tests/step6 --impl solutions/step8" \
  "step8-cgroups-on-solutions-step8=tests/step8 --impl solutions/step8 -k 'cgroup or memory or cpus or pids or limit'" \
  "step9-on-solutions-step9=tests/step9 --impl solutions/step9 -k '$STEP9'" 2>&1
check no-leftover-cgroups no_leftovers
echo "@@VMLANE ALL-DONE"
