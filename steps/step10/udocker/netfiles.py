"""The container's /etc/hostname, /etc/hosts and /etc/resolv.conf, as Docker writes them.

A program finds its own name in /etc/hostname and /etc/hosts, and its DNS
servers in /etc/resolv.conf. The image's copies (if it has any) know nothing
of this container, so, like Docker, the runtime writes its own and
bind-mounts each one over the image's file (the image itself is unchanged):

    files = netfiles.write(scratch, hostname, address="10.88.0.2", resolv=True)
    netfiles.bind(files, rootfs)   # in the container's mount namespace, before pivot_root

write() puts the files in a directory of the container's own (the tmpfs of the
container's private mount namespace, so they vanish with it); bind() mounts
them on ROOTFS/etc/NAME. A mount point must exist: bind() creates a missing
/etc/NAME only when asked (create_missing, right on an overlay's writable
layer, wrong on a root filesystem directory the user gave us).

resolv.conf: the host's nameservers, except loopback ones (127.0.0.53 is
systemd-resolved, 127.0.0.1 a local dnsmasq: inside the container's network
namespace, 127.0.0.1 is the container itself, where no DNS server listens)
and IPv6 ones (the container has no IPv6 route). On a systemd-resolved host
the real upstream servers are in /run/systemd/resolve/resolv.conf, which is
read instead (as Docker does). If no nameserver is left, Docker's fallback is
used: Google's public DNS, 8.8.8.8 and 8.8.4.4. `search` and `options` lines
are kept.
"""
import os

HOST_RESOLV_CONF = "/etc/resolv.conf"
SYSTEMD_RESOLV_CONF = "/run/systemd/resolve/resolv.conf"  # systemd-resolved's upstream servers
FALLBACK_NAMESERVERS = ("8.8.8.8", "8.8.4.4")  # Docker's defaults when the host has none to give

# What Docker's /etc/hosts holds before the container's own line.
LOCALHOST_LINES = (
    "127.0.0.1\tlocalhost\n"
    "::1\tlocalhost ip6-localhost ip6-loopback\n"
    "fe00::0\tip6-localnet\n"
    "ff00::0\tip6-mcastprefix\n"
    "ff02::1\tip6-allnodes\n"
    "ff02::2\tip6-allrouters\n"
)


def hostname_file(hostname):
    """/etc/hostname: the container's name, one line."""
    return f"{hostname}\n"


def hosts_file(hostname, address=None):
    """/etc/hosts: localhost, and the container's name on its address (when it has one)."""
    return LOCALHOST_LINES + (f"{address}\t{hostname}\n" if address else "")


def resolv_conf(host_text):
    """A container's /etc/resolv.conf from the host's: no loopback or IPv6 nameserver, a fallback if none is left."""
    kept, nameservers = [], []
    for line in host_text.splitlines():
        words = line.split()
        if not words or words[0].startswith(("#", ";")):
            continue
        if words[0] == "nameserver" and len(words) > 1:
            if _usable_nameserver(words[1]):
                nameservers.append(words[1])
        elif words[0] in ("search", "domain", "options"):
            kept.append(" ".join(words))
    servers = nameservers or FALLBACK_NAMESERVERS
    return "".join(f"nameserver {server}\n" for server in servers) + "".join(f"{line}\n" for line in kept)


def host_resolv_conf():
    """The text of the host's resolv.conf; systemd-resolved's upstream list when the host's names only 127.0.0.53."""
    text = _read(HOST_RESOLV_CONF)
    servers = [line.split()[1] for line in text.splitlines() if line.split()[:1] == ["nameserver"] and len(line.split()) > 1]
    if servers and not any(_usable_nameserver(server) for server in servers):
        text = _read(SYSTEMD_RESOLV_CONF) or text
    return text


def _usable_nameserver(address):
    """An IPv4 nameserver the container can reach: not on 127.0.0.0/8, not IPv6."""
    return ":" not in address and not address.startswith("127.")


def write(directory, hostname, address=None, resolv=True):
    """Write the files in directory; return {container path: file}, e.g. {'/etc/hosts': directory/hosts}.

    resolv: True for a resolv.conf made from the host's (resolv_conf), "host"
    for a copy of the host's as it is (--network host: its loopback servers are
    the container's too), False for none.
    """
    contents = {
        "/etc/hostname": hostname_file(hostname),
        "/etc/hosts": hosts_file(hostname, address),
    }
    if resolv == "host":
        contents["/etc/resolv.conf"] = _read(HOST_RESOLV_CONF)
    elif resolv:
        contents["/etc/resolv.conf"] = resolv_conf(host_resolv_conf())
    os.makedirs(directory, exist_ok=True)
    files = {}
    for target, text in contents.items():
        path = os.path.join(directory, os.path.basename(target))
        with open(path, "w") as file:
            file.write(text)
        os.chmod(path, 0o644)
        files[target] = path
    return files


def bind(files, rootfs, create_missing=False):
    """Bind-mount each file over ROOTFS + its container path; return the targets left alone.

    A target is left alone when it has no mount point (and create_missing is
    False), is a directory, or lies outside rootfs once symlinks are resolved:
    an image whose /etc is a symlink to / must not make us touch the host's files.
    """
    from udocker import syscalls

    root = os.path.realpath(rootfs)
    skipped = []
    for target, source in files.items():
        directory = os.path.realpath(os.path.join(root, os.path.dirname(target).lstrip("/")))
        mount_point = os.path.join(directory, os.path.basename(target))
        if not (directory == root or directory.startswith(root + "/")) or os.path.isdir(mount_point):
            skipped.append(target)
            continue
        if os.path.islink(mount_point) or not os.path.exists(mount_point):
            if not create_missing or not os.path.isdir(directory):
                skipped.append(target)
                continue
            if os.path.islink(mount_point):  # never follow an image's symlink: replace it
                os.unlink(mount_point)
            open(mount_point, "a").close()
        syscalls.mount(source, mount_point, None, syscalls.MS_BIND)
    return skipped


def _read(path):
    try:
        with open(path) as file:
            return file.read()
    except OSError:
        return ""
