"""The guide, workshop.md, cut into its steps: the one parser of it.

`workshop show N` prints a step's section; tests/tooling/test_guide.py checks
that the sections and workshop/steps.toml agree. A step's section is its
heading ``## Step N: Title`` and everything up to the next heading of level
1 or 2 (headings inside fenced code blocks do not count).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from . import paths

STEP_HEADING = re.compile(r"^##\s+Step\s+(\d+)\s*:\s*(.+?)\s*$", re.IGNORECASE)
_TOP_HEADING = re.compile(r"^#{1,2}\s")


@dataclass(frozen=True)
class Section:
    step: int
    title: str
    text: str  # the heading line and the body


def sections(text: str | None = None) -> dict[int, Section]:
    """{N: the section of step N} of TEXT (default: the repository's workshop.md; none without one)."""
    if text is None:
        try:
            text = paths.guide().read_text(encoding="utf-8")
        except OSError:
            return {}
    found: dict[int, Section] = {}
    current: tuple[int, str] | None = None
    lines: list[str] = []
    fence = False

    def close():
        if current is not None:
            found.setdefault(current[0], Section(current[0], current[1], "\n".join(lines).strip()))

    for line in text.splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            fence = not fence
        elif not fence and _TOP_HEADING.match(line):
            close()
            match = STEP_HEADING.match(line)
            current, lines = ((int(match[1]), match[2]) if match else None), []
        if current is not None:
            lines.append(line)
    close()
    return found


def section(step: int) -> str | None:
    """The text of `## Step N: ...` in workshop.md, or None."""
    found = sections().get(step)
    return found.text if found else None
