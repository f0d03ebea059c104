"""workshop.md and workshop/steps.toml describe the same steps, with the same names."""
import re
from pathlib import Path

from workshop import meta

REPO = Path(__file__).resolve().parents[2]
GUIDE = (REPO / "workshop.md").read_text()


def test_every_step_has_a_section_titled_as_in_the_metadata():
    headings = dict(re.findall(r"^## Step (\d+): (.+?)\s*$", GUIDE, re.M))
    titles = {str(number): step["title"] for number, step in meta.load().items()}
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
    sections = dict(re.findall(r"^## Step (\d+): .*?$(.*?)(?=^## |\Z)", GUIDE, re.M | re.S))
    unnamed = set()
    for number, text in sections.items():
        for path in (REPO / "steps" / f"step{number}").rglob("*.py"):
            source = path.read_text()
            for match in re.finditer(rf"# TODO\(step {number}\)", source):
                name = enclosing_function(source, match.start())
                if name and name not in text:
                    unnamed.add(f"step {number}: {name}() in {path.relative_to(REPO)}")
    assert not unnamed, "the guide's section never names: " + "; ".join(sorted(unnamed))
