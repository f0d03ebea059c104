"""Where things are: the repository root, the step folders, the state folder.

The root is the folder above this package; ``WORKSHOP_HOME`` overrides it (the
tool's own tests point it at a miniature repository).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def _looks_like_the_repo(path: Path) -> bool:
    return (path / "steps").is_dir() or (path / "reference").is_dir()


def root() -> Path:
    """The repository: WORKSHOP_HOME, else the folder above this package (an
    editable install), else the nearest folder above the current one that
    holds steps/ or reference/."""
    home = os.environ.get("WORKSHOP_HOME")
    if home:
        return Path(home).expanduser().resolve()
    if _looks_like_the_repo(PACKAGE_DIR.parent):
        return PACKAGE_DIR.parent
    here = Path.cwd()
    for folder in (here, *here.parents):
        if _looks_like_the_repo(folder) and (folder / "workshop").is_dir():
            return folder
    return PACKAGE_DIR.parent


def give_to_owner(path: Path, recursive: bool = False) -> None:
    """Under sudo, files the tool writes in the repository (state, backups, a
    reset step folder) would belong to root and lock the learner out: give
    them to the repository's owner."""
    if os.geteuid() != 0:
        return
    try:
        st = root().stat()
    except OSError:
        return
    if st.st_uid == 0:
        return
    targets = [Path(path)]
    if recursive:
        for dirpath, dirnames, filenames in os.walk(path):
            targets += [Path(dirpath, n) for n in dirnames + filenames]
    for t in targets:
        try:
            os.chown(t, st.st_uid, st.st_gid, follow_symlinks=False)
        except OSError:
            pass


def step_folders(kind: str) -> dict[int, Path]:
    """{N: KIND/stepN} for every step of steps.toml whose folder holds a udocker package
    (KIND: "solutions" or "steps"), in step order."""
    from . import meta

    folders = {n: root() / kind / f"step{n}" for n in meta.numbers()}
    return {n: folder for n, folder in folders.items() if (folder / "udocker").is_dir()}


_SUITE = re.compile(r"(?:^|/)tests/step(\d+)(?:/|$)")


def suite_step(test: str | os.PathLike) -> int | None:
    """N for a test of tests/stepN (a path or a pytest node id), None for any other test."""
    path = str(test).replace("\\", "/").split("::", 1)[0]
    if not path.startswith("/"):
        path = "/" + path
    found = _SUITE.findall(path)
    return int(found[-1]) if found else None


def state_dir() -> Path:
    return root() / ".workshop"


def steps_dir(step: int) -> Path:
    return root() / "steps" / f"step{step}"


def solution_dir(step: int) -> Path:
    return root() / "solutions" / f"step{step}"


def tests_dir(step: int) -> Path:
    return root() / "tests" / f"step{step}"


def guide() -> Path:
    return root() / "workshop.md"


def rel(path: Path) -> str:
    """PATH relative to the repository root when it lies inside it."""
    try:
        return str(Path(path).resolve().relative_to(root()))
    except ValueError:
        return str(path)


_STEP_RE = re.compile(r"^(?:step)?(\d+)$", re.IGNORECASE)


def parse_step(text: str | int) -> int:
    """'5', 'step5', 'steps/step5', 'solutions/step5/' -> 5; ValueError otherwise."""
    if isinstance(text, int):
        return text
    s = str(text).strip().rstrip("/")
    s = s.rsplit("/", 1)[-1]
    m = _STEP_RE.match(s)
    if not m:
        raise ValueError(f"not a step: {text!r} (write a number, like 3, or step3)")
    return int(m.group(1))


def udocker_root() -> Path:
    """Where the runtime keeps its state (the contract: UDOCKER_ROOT, else
    /var/lib/udocker as root, ~/.local/share/udocker otherwise)."""
    env = os.environ.get("UDOCKER_ROOT")
    if env:
        return Path(env)
    if os.geteuid() == 0:
        return Path("/var/lib/udocker")
    return Path.home() / ".local" / "share" / "udocker"
