"""What a container runs: its command, environment, working directory and user.

An image's config (the OCI image spec's `config` object) holds defaults for
them; the command line overrides them, with the same rules as `docker run`:

    argv     = (--entrypoint, else Entrypoint) + (COMMAND [ARG...], else Cmd)
    env      = Env, then each -e KEY=VALUE (a bare -e KEY copies ours)
    workdir  = -w, else WorkingDir, else /   (created if missing)
    user     = -u, else User ("name", "uid", "uid:gid" or "name:group"), else root
    umask    = 022, whatever ours is
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
    if args.entrypoint is not None:
        entrypoint = [args.entrypoint] if args.entrypoint else []
        cmd = args.command  # docker drops the image's Cmd along with its Entrypoint
    else:
        entrypoint = config.get("Entrypoint") or []
        cmd = args.command or config.get("Cmd") or []
    argv = entrypoint + cmd
    if not argv:
        raise UdockerError("the image has no Entrypoint or Cmd: give a COMMAND after the IMAGE")
    env = parse_env(config.get("Env") or [])
    env.update(parse_env(args.env))
    workdir = args.workdir or config.get("WorkingDir") or "/"
    return Process(argv, env, workdir, args.user or config.get("User") or "")


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
    user = lookup_user(process.user)
    env = {"PATH": DEFAULT_PATH, "HOSTNAME": hostname, "HOME": user.home, **process.env}
    os.environ.clear()
    os.environ.update(env)  # what os.execvp searches PATH in and passes on
    os.umask(0o022)  # docker's, whatever the caller's was
    os.makedirs(process.workdir, exist_ok=True)
    try:
        os.chdir(process.workdir)
        entered = True
    except PermissionError:  # root of a rootless container may not search it, the user may
        entered = False
    switch_user(user, process.user)
    if not entered:
        os.chdir(process.workdir)


class User:
    """Who the container's process runs as: ids, supplementary groups, home directory."""

    def __init__(self, uid, gid, groups, home):
        self.uid, self.gid, self.groups, self.home = uid, gid, groups, home


def switch_user(user, spec):
    """setgroups, setgid, then setuid: after setuid we could no longer change our groups."""
    try:
        if can_setgroups():
            os.setgroups(user.groups)
        os.setgid(user.gid)
        os.setuid(user.uid)
    except OSError:  # EINVAL: the id is not mapped in our user namespace
        raise UdockerError(
            f"cannot become user {spec or 'root'!r} (uid {user.uid}, gid {user.gid}): a rootless"
            " container maps uid 0 only; run as root, or pass --user 0"
        ) from None


def lookup_user(spec):
    """'name[:group]' or 'uid[:gid]' -> User, from the image's /etc/passwd and /etc/group, as runc does.

    A user found in /etc/passwd gets its gid and home, and as supplementary
    groups every group of /etc/group that lists it. A uid that /etc/passwd lacks
    gets gid 0 and home /. An explicit :group replaces the gid and adds no
    groups. Like docker, the gid is always the first of the groups.
    """
    name, _, group = spec.partition(":")
    uid, gid, home, found = 0, 0, "/", None
    passwd = find_entry("/etc/passwd", name or "0", by_id=not name or name.isdigit())
    if passwd:
        found, uid, gid, home = passwd[0], int(passwd[2]), int(passwd[3]), passwd[5] or "/"
    elif not name or name.isdigit():  # root, or a uid the image does not name
        uid = int(name or 0)
    else:
        raise UdockerError(f"user {name!r} is not in the image's /etc/passwd")
    groups = []
    if group:
        entry = find_entry("/etc/group", group, by_id=group.isdigit())
        if entry:
            gid = int(entry[2])
        elif group.isdigit():
            gid = int(group)
        else:
            raise UdockerError(f"group {group!r} is not in the image's /etc/group")
    elif found:
        groups = [int(entry[2]) for entry in entries("/etc/group") if found in entry[3].split(",")]
    for number in (uid, gid):
        if number > 2**31 - 2:
            raise UdockerError(f"user {spec!r}: id {number} is out of range")
    return User(uid, gid, [gid] + [g for g in groups if g != gid], home)


def entries(path):
    """The fields of each line of /etc/passwd or /etc/group (nothing when the file is missing)."""
    try:
        with open(path) as file:
            lines = file.read().splitlines()
    except FileNotFoundError:
        return []
    return [fields for fields in (line.split(":") for line in lines) if len(fields) > 3]


def find_entry(path, key, by_id):
    """The first entry of /etc/passwd or /etc/group whose id (by_id) or name is key."""
    for fields in entries(path):
        if fields[2 if by_id else 0] == key:
            return fields
    return None


def can_setgroups():
    """False in a rootless container, where setgroups(2) was given up for good."""
    try:
        with open("/proc/self/setgroups") as file:
            return file.read().strip() == "allow"
    except OSError:
        return True
