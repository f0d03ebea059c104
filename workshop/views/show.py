"""`workshop show N`: a step's lesson from the guide, or its summary from steps.toml."""

from __future__ import annotations

from .. import guide, meta, paths


def lesson(step: int) -> str:
    """The Markdown to show: the guide's section with what to do next, else the metadata's summary."""
    section = guide.section(step)
    if section is not None:
        return (section + f"\n\n---\n\nWhen you are ready: `workshop check {step}` (`--watch` re-runs on save); "
                f"stuck: `workshop hint {step}`.")
    info = meta.step(step)
    where = ("there is no workshop.md yet" if not paths.guide().exists()
             else f"workshop.md has no `## Step {step}` section")
    lines = [f"## Step {step}: {info['title']}", ""]
    if info["goal"]:
        lines += [f"**Goal:** {info['goal']}", ""]
    if info["learn"]:
        lines += ["You will learn to:", ""] + [f"- {x}" for x in info["learn"]] + [""]
    if info["read"]:
        lines += ["Read:", ""] + [f"- `{x}`" if x.startswith("man ") else f"- {x}" for x in info["read"]] + [""]
    lines += [f"_The guide has no section for step {step} ({where}); this is the summary from steps.toml._"]
    return "\n".join(lines)


def render(step: int, raw: bool = False, pager: bool = False) -> None:
    text = lesson(step)
    if raw:
        print(text)
        return
    from rich.markdown import Markdown

    from ..ui import console

    con = console()
    md = Markdown(text, code_theme="ansi_dark", hyperlinks=False)
    if pager:
        with con.pager(styles=True):
            con.print(md)
    else:
        con.print(md)
