"""Generate every step folder from the one annotated reference runtime.

    python3 -m workshop.generate            # write solutions/stepN and steps/stepN
    python3 -m workshop.generate --check    # exit 1 if a committed folder is out of date
    python3 -m workshop.generate --only steps/step4 --out /tmp/pristine

The reference (`reference/udocker/`) is ordinary Python with markers, the way
Crafting Interpreters builds each chapter's snapshot from its final source:

    # >>> step 4: <the learner's task, one sentence or two>
    ...code of step 4...
    # --- before
    ...what stands here before step 4 (optional; may hold earlier blocks)...
    # <<<

A file whose first line is `# udocker: from step N` exists from step N on.
`solutions/stepK` has each block's code when K >= its step, else its `before`
part. `steps/stepK` (the learner's start) is `solutions/step(K-1)` with every
step-K block shown as `# TODO(step K): <task>` followed by its `before` part.
"""
import argparse
import dataclasses
import filecmp
import re
import shutil
import sys
import tempfile
import textwrap
from pathlib import Path

from workshop import paths

REPO = paths.root()  # WORKSHOP_HOME, else the checkout this package is in
REFERENCE = REPO / "reference"
KINDS = ("solutions", "steps")

OPEN = re.compile(r"^(?P<indent>\s*)# >>> step (?P<step>\d+)(?::\s*(?P<todo>.*\S))?\s*$")
BEFORE = re.compile(r"^\s*# --- before\s*$")
CLOSE = re.compile(r"^\s*# <<<\s*$")
FROM_STEP = re.compile(r"^# udocker: from step (\d+)\s*$")
TODO_WIDTH = 88


class MarkerError(Exception):
    """A malformed marker in the reference, with its file and line."""


@dataclasses.dataclass
class Block:
    step: int
    todo: str
    indent: str
    code: list  # lines and Blocks: the step's code
    before: list  # lines and Blocks: what stands there before the step


@dataclasses.dataclass
class Source:
    path: Path  # relative to reference/
    first_step: int
    items: list


def parse(path, text):
    """Parse one reference file into a Source (lines and nested Blocks)."""
    lines = text.splitlines()
    first_step = 0
    if lines and (match := FROM_STEP.match(lines[0])):
        first_step, lines = int(match.group(1)), lines[1:]
    # A stack of (block, which list we are filling); the file itself is the bottom.
    top = []
    stack = [(None, top)]
    for number, line in enumerate(lines, start=2 if first_step else 1):
        where = f"{path}:{number}"
        if match := OPEN.match(line):
            if not match.group("todo"):
                raise MarkerError(f"{where}: a step block needs a TODO text: '# >>> step N: <task>'")
            block = Block(int(match.group("step")), match.group("todo"), match.group("indent"), [], [])
            stack[-1][1].append(block)
            stack.append((block, block.code))
        elif BEFORE.match(line):
            block, current = stack[-1]
            if block is None or current is block.before:
                raise MarkerError(f"{where}: '# --- before' outside a step block")
            stack[-1] = (block, block.before)
        elif CLOSE.match(line):
            if len(stack) == 1:
                raise MarkerError(f"{where}: '# <<<' closes no step block")
            stack.pop()
        elif "# >>>" in line or "# <<<" in line or "# --- before" in line:
            raise MarkerError(f"{where}: malformed marker: {line.strip()}")
        else:
            stack[-1][1].append(line)
    if len(stack) > 1:
        raise MarkerError(f"{path}: a step block opened at step {stack[-1][0].step} is never closed")
    return Source(path, first_step, top)


def todo_comment(block):
    """The TODO that replaces a block in the learner's starting code."""
    prefix = f"{block.indent}# "
    return textwrap.wrap(
        f"TODO(step {block.step}): {block.todo}",
        width=TODO_WIDTH,
        initial_indent=prefix,
        subsequent_indent=prefix + "  ",
        break_on_hyphens=False,
        break_long_words=False,
    )


def render_items(items, kind, step):
    out = []
    for item in items:
        if isinstance(item, str):
            out.append(item)
        elif kind == "solutions":
            out += render_items(item.code if step >= item.step else item.before, kind, step)
        elif item.step < step:
            out += render_items(item.code, kind, step)
        elif item.step > step:
            out += render_items(item.before, kind, step)
        else:
            out += todo_comment(item) + render_items(item.before, kind, step)
    return out


def tidy(lines):
    """Drop the blank lines that removed blocks leave behind (at most two in a row)."""
    out = []
    for line in lines:
        if not line.strip():
            line = ""
            if len(out) >= 2 and out[-1] == out[-2] == "":
                continue
        out.append(line)
    while out and out[-1] == "":
        out.pop()
    return "\n".join(out) + "\n"


def render(source, kind, step):
    """The text of `source` in kind/step{step}, or None when it does not exist yet."""
    if source.first_step > step:
        return None
    return tidy(render_items(source.items, kind, step))


def load_sources():
    sources = []
    for path in sorted(REFERENCE.rglob("*.py")):
        relative = path.relative_to(REFERENCE)
        sources.append(parse(relative, path.read_text()))
    return sources


def last_step(sources):
    def steps(items):
        for item in items:
            if isinstance(item, Block):
                yield item.step
                yield from steps(item.code)
                yield from steps(item.before)

    return max(max(steps(s.items), default=0) for s in sources) if sources else 0


def targets(sources):
    """Every (kind, step) folder the reference produces, e.g. ("steps", 4)."""
    return [(kind, step) for kind in KINDS for step in range(last_step(sources) + 1)]


def write_folder(sources, kind, step, destination):
    """Write kind/step{step} into destination (replacing what was there)."""
    if destination.exists():
        shutil.rmtree(destination)
    for source in sources:
        text = render(source, kind, step)
        if text is not None:
            target = destination / source.path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)


def same_tree(left, right):
    """Do two folders hold the same files with the same contents (caches aside)?"""

    def files(root):
        return {
            p.relative_to(root)
            for p in root.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts
        }

    if not (left.is_dir() and right.is_dir()) or files(left) != files(right):
        return False
    return all(filecmp.cmp(left / f, right / f, shallow=False) for f in files(left))


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python3 -m workshop.generate", description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="only check that the folders are up to date")
    parser.add_argument("--only", metavar="KIND/stepN", help="one folder, e.g. steps/step4")
    parser.add_argument("--out", metavar="DIR", type=Path, default=REPO, help="where to write (default: the repo)")
    args = parser.parse_args(argv)
    try:
        sources = load_sources()
    except MarkerError as error:
        print(f"generate: {error}", file=sys.stderr)
        return 2
    wanted = targets(sources)
    if args.only:
        wanted = [(k, s) for k, s in wanted if f"{k}/step{s}" == args.only.strip("/")]
        if not wanted:
            print(f"generate: no folder {args.only!r}; use e.g. steps/step4", file=sys.stderr)
            return 2
    stale = []
    with tempfile.TemporaryDirectory() as scratch:
        for kind, step in wanted:
            name = f"{kind}/step{step}"
            fresh = Path(scratch) / name
            write_folder(sources, kind, step, fresh)
            current = args.out / name
            if same_tree(fresh, current):
                continue
            stale.append(name)
            if not args.check:
                if current.exists():
                    shutil.rmtree(current)
                shutil.copytree(fresh, current)
    if args.check:
        if stale:
            print(
                "generate: out of date: " + ", ".join(stale)
                + "\nrun `python3 -m workshop.generate` and commit the result",
                file=sys.stderr,
            )
            return 1
        print(f"generate: all {len(wanted)} folders are up to date")
        return 0
    print(f"generate: wrote {len(stale)} of {len(wanted)} folders" + (f": {', '.join(stale)}" if stale else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
