"""workshop.md and workshop/steps.toml describe the same steps, with the same names.

The guide is read with workshop.guide, the parser `workshop show` uses; the repository is
paths.root()'s (WORKSHOP_HOME, else this checkout). (Static: `workshop dev check` runs these.)
"""
import re

from workshop import guide, meta, paths

REPO = paths.root()
SECTIONS = guide.sections()


def test_every_step_has_a_section_titled_as_in_the_metadata():
    headings = {n: section.title for n, section in SECTIONS.items()}
    titles = {number: step["title"] for number, step in meta.load().items()}
    assert headings == titles, "workshop.md's '## Step N: Title' headings differ from workshop/steps.toml's titles"


def enclosing_function(source, offset):
    """The name of the function whose body holds `offset`, or None at module level."""
    line_start = source.rfind("\n", 0, offset) + 1
    indent = offset - line_start
    for match in reversed(list(re.finditer(r"^(\s*)def (\w+)", source[:line_start], re.M))):
        if len(match.group(1)) < indent:
            return match.group(2)
    return None


def test_the_guide_names_every_function_the_learner_writes():
    """Each TODO of steps/stepN inside a function: the guide's section for step N names that function."""
    unnamed = set()
    for number, section in SECTIONS.items():
        text = section.text
        for path in (REPO / "steps" / f"step{number}").rglob("*.py"):
            source = path.read_text()
            for match in re.finditer(rf"# TODO\(step {number}\)", source):
                name = enclosing_function(source, match.start())
                if name and name not in text:
                    unnamed.add(f"step {number}: {name}() in {path.relative_to(REPO)}")
    assert not unnamed, "the guide's section never names: " + "; ".join(sorted(unnamed))


def subsections(text):
    """{### heading: its text} of one chapter, and the headings in order."""
    parts = re.split(r"^### (.+)$", text, flags=re.M)
    headings = parts[1::2]
    return dict(zip(headings, parts[2::2], strict=True)), headings


def test_every_chapter_has_its_own_build_check_and_troubleshooting_parts():
    """Once each, in this order, `workshop check N` in its own "Check it", and its code fences closed:
    a chapter that lost a part to its neighbour (a merge gone wrong) shows here, not in `workshop show`."""
    problems = []
    for number, section in SECTIONS.items():
        parts, headings = subsections(section.text)
        wanted = ["What to build", "Check it", "When it goes wrong"]
        if [h for h in headings if h in wanted] != wanted:
            problems.append(f"step {number}: {[h for h in headings if h in wanted]}, expected {wanted} once each")
        elif f"workshop check {number}\n" not in parts["Check it"]:
            problems.append(f"step {number}: its \"Check it\" never shows `workshop check {number}`")
        if len(re.findall(r"^\s*```", section.text, re.M)) % 2:
            problems.append(f"step {number}: a code fence is never closed")
    assert not problems, "; ".join(problems)


def test_the_step_tables_of_the_guide_and_the_readme_have_a_row_per_step():
    for name in ("workshop.md", "README.md"):
        table = re.search(r"^\| step \|.*\n((?:\|.*\n)+)", (REPO / name).read_text(), re.M)
        rows = re.findall(r"^\| (\d+) \|", table.group(1) if table else "", re.M)
        assert [int(r) for r in rows] == meta.numbers(), f"{name}'s step table has the rows {rows}"
