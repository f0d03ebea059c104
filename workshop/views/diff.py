"""How `workshop diff` (and `workshop solution --diff`) print a diff: coloured, or as --stat."""

from __future__ import annotations

from ..diffs import counts


def render(diffs: list[tuple[str, list[str]]], stat: bool = False) -> None:
    from rich.text import Text

    from ..ui import console

    con = console()
    if stat:
        width = max((len(rel) for rel, _ in diffs), default=0)
        numbers = [counts(lines) for _, lines in diffs]
        scale = max(1.0, max((a + d for a, d in numbers), default=0) / 40)
        for (rel, _), (add, dele) in zip(diffs, numbers):
            t = Text(f" {rel:<{width}} | ")
            t.append("+" * (round(add / scale) or (1 if add else 0)), style="green")
            t.append("-" * (round(dele / scale) or (1 if dele else 0)), style="red")
            t.append(f"  +{add} -{dele}", style="dim")
            con.print(t)
        files = "1 file" if len(diffs) == 1 else f"{len(diffs)} files"
        con.print(f" {files} changed, {sum(a for a, _ in numbers)} insertions(+), "
                  f"{sum(d for _, d in numbers)} deletions(-)")
        return
    for _, lines in diffs:
        for line in "".join(lines).splitlines():
            if line.startswith(("+++", "---")):
                style = "bold"
            elif line.startswith("@@"):
                style = "cyan"
            elif line.startswith("+"):
                style = "green"
            elif line.startswith("-"):
                style = "red"
            else:
                style = ""
            con.print(Text(line, style=style), soft_wrap=True)
