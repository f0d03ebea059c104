"""Addresses for bridge-mode containers: one lease per container, no two alike.

The bridge's subnet is UDOCKER_SUBNET (default 10.88.0.0/24). Its first host
address (10.88.0.1) is the gateway, on the bridge; containers get the others,
the lowest free one first.

A lease is a file named after the address, in a directory of leases:

    /run/udocker/leases/10.88.0.0-24/10.88.0.2   "<container id> <pid> <start time> <boot id>"

Allocation runs under an exclusive flock(2) on the directory's lock file, so
that two runtimes starting at once cannot pick the same address. The lease
names the process that holds it (the runtime waiting for its container), with
that process's start time and the boot's id: a lease whose holder is gone (it
was killed with SIGKILL, or the machine rebooted) is reclaimed by the next
allocation, even if its pid has been reused since. A lease is released (its
file removed) when the container exits.

The leases live under /run (UDOCKER_RUN_DIR, default /run/udocker), not with
the images: /run is a tmpfs, emptied at boot, like the bridge and the
addresses themselves, so leases never outlive what they describe.
"""
import fcntl
import os

from udocker.errors import UdockerError

DEFAULT_SUBNET = "10.88.0.0/24"


def run_dir():
    """Where udocker keeps its runtime state (leases, locks): UDOCKER_RUN_DIR or /run/udocker."""
    return os.environ.get("UDOCKER_RUN_DIR", "/run/udocker")


def subnet():
    """The bridge's subnet: UDOCKER_SUBNET, checked, as an ipaddress.IPv4Network."""
    import ipaddress  # 5 ms: only bridge mode needs it

    text = os.environ.get("UDOCKER_SUBNET", DEFAULT_SUBNET)
    try:
        network = ipaddress.IPv4Network(text)
    except ValueError as error:
        raise UdockerError(
            f"UDOCKER_SUBNET={text!r} is not an IPv4 subnet ({error}); use a private one such as {DEFAULT_SUBNET}"
        ) from None
    if network.prefixlen > 30:
        raise UdockerError(f"UDOCKER_SUBNET={text!r} is too small; use a /30 or larger, such as {DEFAULT_SUBNET}")
    return network


class Lease:
    """An address held by one container: address, gateway, prefix; release() when done."""

    def __init__(self, network, address, container_id, path):
        self.network = network
        self.address = str(address)
        self.gateway = str(network.network_address + 1)
        self.prefix = network.prefixlen
        self.container_id = container_id
        self.path = path

    @property
    def cidr(self):
        """The container's address with the subnet's prefix: 10.88.0.2/24."""
        return f"{self.address}/{self.prefix}"

    @property
    def gateway_cidr(self):
        """The bridge's address: 10.88.0.1/24."""
        return f"{self.gateway}/{self.prefix}"

    def release(self):
        """Give the address back (if the lease is still ours)."""
        with locked(os.path.dirname(self.path)):
            holder = _read_lease(self.path)
            if holder is not None and holder[0] == self.container_id:
                os.unlink(self.path)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()

    def __repr__(self):
        return f"Lease({self.cidr} for {self.container_id})"


def allocate(container_id, pid=None, network=None):
    """Lease the lowest free address of the subnet to container_id, held by process pid (us)."""
    network = network or subnet()
    pid = pid or os.getpid()
    directory = lease_dir(network)
    with locked(directory):
        gateway = network.network_address + 1
        for address in network.hosts():
            if address == gateway:
                continue
            path = os.path.join(directory, str(address))
            holder = _read_lease(path)
            if holder is not None and _alive(*holder[1:]):
                continue
            record = f"{container_id} {pid} {_start_time(pid)} {_boot_id()}\n"
            with open(path, "w") as file:  # replaces a dead holder's lease, if any
                file.write(record)
            return Lease(network, address, container_id, path)
    raise UdockerError(
        f"no free address left in {network} (every one is leased to a running container);"
        " stop a container, or set UDOCKER_SUBNET to a larger subnet"
    )


def lease_dir(network):
    """The directory of the leases of one subnet: RUN_DIR/leases/10.88.0.0-24."""
    return os.path.join(run_dir(), "leases", str(network).replace("/", "-"))


def leases(network=None):
    """[(address, container id, holder alive?)] for every lease file of the subnet."""
    directory = lease_dir(network or subnet())
    found = []
    for name in sorted(_listdir(directory)):
        if name != "lock":
            holder = _read_lease(os.path.join(directory, name))
            found.append((name, holder[0] if holder else None, bool(holder) and _alive(*holder[1:])))
    return found


def reclaim(network=None):
    """Remove the leases whose holder is gone (for `workshop clean`); return their addresses."""
    directory = lease_dir(network or subnet())
    removed = []
    if not os.path.isdir(directory):
        return removed
    with locked(directory):
        for name in sorted(_listdir(directory)):
            path = os.path.join(directory, name)
            holder = _read_lease(path)
            if name != "lock" and not (holder and _alive(*holder[1:])):
                os.unlink(path)
                removed.append(name)
    return removed


# --------------------------------------------------------------- the lock and the lease files


class locked:
    """with locked(directory): an exclusive flock(2) on directory/lock, made if need be.

    The kernel drops the lock when its holder dies: a crash never leaves it taken.
    """

    def __init__(self, directory):
        self.directory = directory

    def __enter__(self):
        os.makedirs(self.directory, mode=0o755, exist_ok=True)
        self.fd = os.open(os.path.join(self.directory, "lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        fcntl.flock(self.fd, fcntl.LOCK_EX)  # waits for the other runtimes; freed if we die
        return self

    def __exit__(self, *exc):
        os.close(self.fd)  # closing the file releases the lock


def _listdir(directory):
    try:
        return os.listdir(directory)
    except FileNotFoundError:
        return []


def _read_lease(path):
    """(container id, pid, start time, boot id) from a lease file; None if there is none.

    A file that cannot be read back (cut short by a crash) holds nothing: ("", 0, "", "").
    """
    try:
        with open(path) as file:
            fields = file.read().split()
    except FileNotFoundError:
        return None
    if len(fields) != 4 or not fields[1].isdigit():
        return ("", 0, "", "")
    return fields[0], int(fields[1]), fields[2], fields[3]


def _alive(pid, start_time, boot_id):
    """Is the lease's holder still the process that took it (same boot, same pid, same start)?"""
    return pid > 0 and boot_id == _boot_id() and _start_time(pid) == start_time


def _start_time(pid):
    """When process pid started, in clock ticks since boot (field 22 of /proc/PID/stat).

    '' when it is gone, or dead and not yet reaped (a zombie).
    """
    try:
        with open(f"/proc/{pid}/stat") as file:
            stat = file.read()
    except (FileNotFoundError, ProcessLookupError):
        return ""
    # The command name (field 2) may hold spaces and parentheses: count from its end.
    fields = stat.rsplit(")", 1)[1].split()
    return "" if fields[0] in ("Z", "X") else fields[19]


def _boot_id():
    with open("/proc/sys/kernel/random/boot_id") as file:
        return file.read().strip()
