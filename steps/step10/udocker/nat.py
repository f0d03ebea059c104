"""Outbound NAT for bridge-mode containers: forwarding on, and one masquerade rule.

A container's address (10.88.0.2) is private: it means nothing outside this
machine, and a reply to it would never find its way back. So two things are
needed for a container to reach the world through the host:

1. Forwarding: the host must pass packets from one interface (udocker0) to
   another (its uplink, eth0). Linux does not route for others by default;
   /proc/sys/net/ipv4/ip_forward = 1 turns it on (for this network namespace).
2. Masquerading: as a packet from the subnet leaves the host by any interface
   other than the bridge, the kernel rewrites its source address to that
   interface's own address (source NAT, "masquerade": the address is looked
   up at that moment, so it follows DHCP changes) and remembers the
   connection (conntrack), so that replies are rewritten back to the
   container's address and sent into the bridge. The rule, as nftables says it:

       table ip udocker {
           chain postrouting {
               type nat hook postrouting priority srcnat; policy accept;
               ip saddr 10.88.0.0/24 oifname != "udocker0" masquerade
           }
       }

   and as iptables does (what Docker adds for docker0):

       iptables -t nat -A POSTROUTING -s 10.88.0.0/24 ! -o udocker0 -j MASQUERADE

   Traffic between containers stays on the bridge (oifname udocker0), so it
   keeps its real source addresses.

The rule goes through `nft` when it is installed, else through `iptables`. It
is added once: enable() looks for it first, under a lock, so a second
container changes nothing; remove() (for `workshop clean`) takes it away. ip_forward stays on
after remove(): other software on the host may rely on it, and Docker leaves
it on too. A firewall whose FORWARD policy drops packets (Docker sets one)
still drops the containers' traffic: that needs an accept rule of its own.
"""
import os

from udocker import ipam
from udocker.errors import UdockerError

TABLE = "udocker"  # the nftables table that holds our one chain and rule


def backend():
    """'nft' when nftables' command is installed, else 'iptables'; UdockerError if neither is."""
    import shutil

    for tool in ("nft", "iptables"):
        if shutil.which(tool):
            return tool
    raise UdockerError(
        "--network bridge needs nft or iptables to masquerade the containers' traffic;"
        " install nftables (apt-get install nftables)"
    )


def enable(subnet, bridge="udocker0", tool=None):
    """Turn on forwarding and add the masquerade rule for subnet, unless it is there. Return True if added."""
    with open("/proc/sys/net/ipv4/ip_forward", "w") as file:
        file.write("1")
    tool = tool or backend()
    # Look, then add, under a lock: two runtimes starting at once add the rule once.
    with ipam.locked(os.path.join(ipam.run_dir(), "nat")):
        if enabled(subnet, bridge, tool):
            return False
        if tool == "nft":  # one file, one transaction: the table, its chain and the rule
            _run(["nft", "-f", "-"], input=(
                f"table ip {TABLE} {{\n"
                f"  chain postrouting {{\n"
                f"    type nat hook postrouting priority srcnat; policy accept;\n"
                f"    {_nft_rule(subnet, bridge)}\n"
                f"  }}\n"
                f"}}\n"
            ))
        else:
            _run(["iptables", "-w", "-t", "nat", "-A", "POSTROUTING", *_iptables_rule(subnet, bridge)])
    return True


def enabled(subnet, bridge="udocker0", tool=None):
    """Is the masquerade rule for subnet in place?"""
    tool = tool or backend()
    if tool == "nft":
        found = _run(["nft", "list", "table", "ip", TABLE], check=False)
        return found.returncode == 0 and _nft_rule(subnet, bridge) in found.stdout
    check = ["iptables", "-w", "-t", "nat", "-C", "POSTROUTING", *_iptables_rule(subnet, bridge)]
    return _run(check, check=False).returncode == 0


def remove(bridge="udocker0", tool=None):
    """Take udocker's masquerade rules away (whatever their subnet). Return True if there were any."""
    tool = tool or backend()
    if tool == "nft":
        return _run(["nft", "delete", "table", "ip", TABLE], check=False).returncode == 0
    removed = False
    listing = _run(["iptables", "-w", "-t", "nat", "-S", "POSTROUTING"]).stdout
    for line in listing.splitlines():
        # -A POSTROUTING -s 10.88.0.0/24 ! -o udocker0 -j MASQUERADE
        words = line.split()
        if words[:2] == ["-A", "POSTROUTING"] and words[4:] == ["!", "-o", bridge, "-j", "MASQUERADE"]:
            _run(["iptables", "-w", "-t", "nat", "-D", *words[1:]])
            removed = True
    return removed


def _nft_rule(subnet, bridge):
    return f'ip saddr {subnet} oifname != "{bridge}" masquerade'


def _iptables_rule(subnet, bridge):
    return ["-s", str(subnet), "!", "-o", bridge, "-j", "MASQUERADE"]


def _run(argv, input=None, check=True):
    """Run nft or iptables; a failure becomes one UdockerError line with the tool's own message."""
    import subprocess

    result = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=30)
    if check and result.returncode != 0:
        message = (result.stderr.strip().splitlines() or ["failed"])[-1]
        raise UdockerError(f"cannot set up NAT: {' '.join(argv[:3])}...: {message}")
    return result
