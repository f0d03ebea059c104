"""What a container runs: its command, environment, working directory and user.

An image's config (the OCI image spec's `config` object) holds defaults for
them; the command line overrides them, with the same rules as `docker run`:

    argv     = (--entrypoint, else Entrypoint) + (COMMAND [ARG...], else Cmd)
    env      = Env, then each -e KEY=VALUE (a bare -e KEY copies ours)
    workdir  = -w, else WorkingDir, else /   (created if missing)
    user     = -u, else User ("name", "uid", "uid:gid" or "name:group"), else root
"""
import os

from udocker.errors import UdockerError

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class Process:
    """argv, env, working directory and user: a plain class, since dataclasses costs 25 ms to import."""

    def __init__(self, argv, env, workdir="/", user=""):
        self.argv, self.env, self.workdir, self.user = argv, env, workdir, user


def from_image(config, args):
    """The process an image runs, given its config and the `udocker run` options."""
    # TODO(step 8): Combine the image's config with the command line: argv from
    #   Entrypoint and Cmd (COMMAND replaces Cmd, --entrypoint replaces Entrypoint and
    #   drops Cmd), env from Env then -e, the working directory from WorkingDir then -w,
    #   the user from User then -u.
    raise UdockerError("running images is not implemented yet: that is step 8")


def from_directory(args):
    """The process for a root filesystem directory: the command, our environment plus -e."""
    env = dict(os.environ)
    env.update(parse_env(args.env))
    argv = ([args.entrypoint] if args.entrypoint else []) + args.command
    if not argv:
        raise UdockerError("nothing to run: give a COMMAND after the IMAGE directory")
    return Process(argv, env, args.workdir or "/", args.user or "")


def parse_env(pairs):
    """["A=1", "B"] -> {"A": "1", "B": <our B>}, as `docker run -e` reads them."""
    env = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not key:
            raise UdockerError(f"invalid environment variable {pair!r}: use KEY=VALUE")
        if sep:
            env[key] = value
        elif key in os.environ:
            env[key] = os.environ[key]
    return env


def become(process, hostname):
    """In the container, after pivot_root: take on the process's user, directory and environment."""
    # TODO(step 8): Become the image's process: set the environment (with PATH, HOSTNAME
    #   and HOME defaults), create its working directory (as root), switch to its user
    #   (setgid before setuid), then enter the working directory.


def lookup_user(user):
    """'name[:group]' or 'uid[:gid]' -> (uid, gid, home), from the image's /etc/passwd and /etc/group."""
    name, _, group = user.partition(":")
    uid, gid, home = 0, 0, "/root"
    if name:
        entry = find_entry("/etc/passwd", name)
        if entry:
            uid, gid, home = int(entry[2]), int(entry[3]), entry[5] or "/"
        elif name.isdigit():
            uid, gid, home = int(name), int(name), "/"
        else:
            raise UdockerError(f"user {name!r} is not in the image's /etc/passwd")
    if group:
        entry = find_entry("/etc/group", group)
        if entry:
            gid = int(entry[2])
        elif group.isdigit():
            gid = int(group)
        else:
            raise UdockerError(f"group {group!r} is not in the image's /etc/group")
    return uid, gid, home


def find_entry(path, key):
    """The fields of the line of /etc/passwd or /etc/group whose name or id is key."""
    try:
        with open(path) as file:
            for line in file:
                fields = line.rstrip("\n").split(":")
                if len(fields) > 2 and key in (fields[0], fields[2]):
                    return fields
    except FileNotFoundError:
        pass
    return None


def can_setgroups():
    """False in a rootless container, where setgroups(2) was given up for good."""
    try:
        with open("/proc/self/setgroups") as file:
            return file.read().strip() == "allow"
    except OSError:
        return True
