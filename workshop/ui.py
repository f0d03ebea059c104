"""Console helpers: one rich Console, colour only on a terminal, glyphs that
degrade to words when the output cannot carry them."""

from __future__ import annotations

import os
import sys


def is_utf8(stream) -> bool:
    enc = (getattr(stream, "encoding", None) or "").lower().replace("-", "")
    return enc in ("utf8", "utf8sig")


class _NoTrailingSpace:
    """A text stream that drops the spaces rich pads table cells with (CI logs, pipes)."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text: str) -> int:
        import re

        self._stream.write(re.sub(r"[ \t]+(?=\n)", "", text))
        return len(text)

    def __getattr__(self, name):
        return getattr(self._stream, name)


def console(stderr: bool = False):
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    tty = stream.isatty()
    width = None
    if not tty:
        try:
            width = int(os.environ.get("COLUMNS", "")) or None
        except ValueError:
            width = None
        width = width or 100
        stream = _NoTrailingSpace(stream)
    return Console(file=stream, stderr=stderr, highlight=False, width=width,
                   safe_box=not is_utf8(stream), emoji=False)


def glyphs() -> dict[str, str]:
    if is_utf8(sys.stdout):
        return {"ok": "✓", "fail": "✗", "todo": "·", "warn": "!", "arrow": "→", "dash": "–", "dot": "·"}
    return {"ok": "ok", "fail": "FAIL", "todo": "-", "warn": "!", "arrow": "->", "dash": "-", "dot": "-"}


def steps_range(first: int, last: int) -> str:
    if first == last:
        return f"step {first}"
    return f"steps {first}{glyphs()['dash']}{last}"
