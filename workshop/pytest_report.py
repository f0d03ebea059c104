"""A pytest plugin that writes machine-readable results for `workshop check`.

Use: ``python -m pytest -p workshop.pytest_report --workshop-report FILE ...``
(without the option it does nothing). FILE gets::

    {"exitstatus": 1,
     "tests": [{"nodeid", "step", "name", "title", "outcome", "duration",
                "message", "longrepr", "stdout", "stderr",
                "command", "expected", "got", "output", "hint", "read", "markers"}],
     "collect_errors": [{"nodeid", "step", "message", "longrepr"}]}

outcome is passed, failed, error (setup/teardown failed), skipped, xfailed or
xpassed. title is the first line of the test's docstring.

How a test hands over what it ran, what it expected and what it got (both
ways work, the first wins):

* ``record_property("command", "udocker run ...")`` (also "expected", "got",
  "hint", "read"), i.e. pytest's ``user_properties``;
* lines in the assertion message or in the test's captured stdout, one key a
  line, continuation lines indented::

      command: PYTHONPATH=steps/step2 python3 -m udocker run --hostname box x hostname
      expected: box
      got: myhost

  Accepted keys: command/ran/$, expected/want, got/actual, hint, read/see.
"""

from __future__ import annotations

import json
import re

import pytest

KEYS = {
    "command": "command", "ran": "command", "run": "command", "cmd": "command", "$": "command",
    "expected": "expected", "expect": "expected", "want": "expected", "wanted": "expected",
    "got": "got", "actual": "got", "but got": "got",
    "hint": "hint", "read": "read", "see": "read",
}
_KEY_RE = re.compile(
    r"^\s*(?:E\s+)?(?:AssertionError:\s*)?"
    r"(command|ran|run|cmd|expected|expect|want|wanted|got|actual|but got|hint|read|see)\s*:\s?(.*)$"
    r"|^\s*(?:E\s+)?(?:AssertionError:\s*)?(\$)\s+(.*)$",
    re.IGNORECASE,
)
_EXPECTED_GOT_RE = re.compile(r"^\s*(?:E\s+)?(?:AssertionError:\s*)?expected (.+?), got (.*)$", re.IGNORECASE)
_OUTPUT_RE = re.compile(r"^\s*(?:E\s+)?(exit code|exit status|stdout|stderr|timed out)\b:?\s?(.*)$", re.IGNORECASE)
_STEP_RE = re.compile(r"(?:^|/)step(\d+)(?:/|\.py|::|$)")


def step_of(nodeid: str) -> int | None:
    m = _STEP_RE.search(nodeid.replace("\\", "/"))
    return int(m.group(1)) if m else None


def parse_fields(*texts: str) -> dict[str, str]:
    """Pick command/expected/got/hint/read out of free text (first one wins).

    Also understood: a line ``expected X, got Y`` (workshop.testing's messages)
    and, after a ``$ command`` line, the lines ``exit code: ...``,
    ``stdout: ...``, ``stderr: ...``, gathered as ``output``.
    """
    found: dict[str, str] = {}
    for text in texts:
        if not text:
            continue
        key = None
        output: list[str] = []
        for line in str(text).splitlines():
            m = _EXPECTED_GOT_RE.match(line)
            if m and "expected" not in found:
                found["expected"], found["got"] = m.group(1).strip(), m.group(2).strip()
                key = None
                continue
            m = _OUTPUT_RE.match(line)
            if m and "command" in found and "output" not in found:
                output.append(line.strip())
                key = None
                continue
            m = _KEY_RE.match(line)
            if m:
                word = (m.group(1) or m.group(3)).lower()
                value = m.group(2) if m.group(1) else m.group(4)
                key = KEYS[word] if word in KEYS else None
                if key and key not in found:
                    found[key] = value.rstrip()
                else:
                    key = None  # a repeated key: ignore it and its continuation
                continue
            if key and line[:1] in (" ", "\t") and line.strip():
                cont = re.sub(r"^\s*(?:E\s+)?", "", line).rstrip()
                if cont.startswith("assert "):  # pytest's own introspection
                    key = None
                    continue
                found[key] = (found[key] + "\n" + cont) if found[key] else cont
            else:
                key = None
        if output and "output" not in found:
            found["output"] = "\n".join(output)
    return found


class _Recorder:
    def __init__(self, path: str):
        self.path = path
        self.items: dict[str, dict] = {}
        self.results: dict[str, dict] = {}
        self.collect_errors: list[dict] = []

    # -- collection ---------------------------------------------------------
    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, items):
        for item in items:
            doc = getattr(getattr(item, "function", None), "__doc__", None) or ""
            title = doc.strip().splitlines()[0].strip() if doc.strip() else ""
            self.items[item.nodeid] = {
                "name": getattr(item, "originalname", None) or item.name.split("[", 1)[0],
                "title": title,
                "markers": sorted({m.name for m in item.iter_markers()}),
            }

    def pytest_collectreport(self, report):
        if report.failed:
            self.collect_errors.append({
                "nodeid": report.nodeid,
                "step": step_of(report.nodeid),
                "message": _crash_message(report),
                "longrepr": _text(report.longrepr),
            })

    # -- running ------------------------------------------------------------
    def pytest_runtest_logreport(self, report):
        r = self.results.setdefault(report.nodeid, {
            "nodeid": report.nodeid, "step": step_of(report.nodeid),
            "outcome": None, "duration": 0.0, "message": "", "longrepr": "",
            "stdout": "", "stderr": "", "properties": {},
        })
        r["duration"] += getattr(report, "duration", 0.0) or 0.0
        for k, v in getattr(report, "user_properties", []) or []:
            r["properties"].setdefault(str(k), v if isinstance(v, (str, int, float, bool)) else str(v))
        xfail = hasattr(report, "wasxfail")
        outcome = None
        if report.when == "call":
            if xfail:
                outcome = "xfailed" if report.skipped else "xpassed"
            elif report.failed:
                outcome = "failed"
            elif report.skipped:
                outcome = "skipped"
            else:
                outcome = "passed"
        elif report.failed:  # setup or teardown
            outcome = "error" if r["outcome"] in (None, "passed", "xpassed") else r["outcome"]
        elif report.skipped:  # skipped in setup (skip mark, skip() in a fixture)
            outcome = "xfailed" if xfail else "skipped"
        if outcome:
            if outcome in ("failed", "error", "skipped", "xfailed") and not r["message"]:
                r["message"] = _crash_message(report)
                r["longrepr"] = _text(report.longrepr)
                r["stdout"] = getattr(report, "capstdout", "") or ""
                r["stderr"] = getattr(report, "capstderr", "") or ""
            r["outcome"] = outcome

    def pytest_sessionfinish(self, session, exitstatus):
        tests = []
        for nodeid, r in self.results.items():
            if r["outcome"] is None:  # set up, never run: the session was interrupted
                r["outcome"] = "error"
                r["message"] = r["message"] or "the check was interrupted before it finished"
            info = self.items.get(nodeid, {})
            name = info.get("name") or nodeid.rsplit("::", 1)[-1].split("[", 1)[0]
            props = {k: str(v) for k, v in r.pop("properties").items()}
            fields = parse_fields(r["message"], r["stdout"]) if r["outcome"] != "passed" else {}
            for key in ("command", "expected", "got", "output", "hint", "read"):
                r[key] = props.get(key) or fields.get(key) or ""
            r.update(name=name, title=info.get("title", ""), markers=info.get("markers", []))
            tests.append(r)
        data = {"exitstatus": int(exitstatus), "tests": tests, "collect_errors": self.collect_errors}
        with open(self.path, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1)


def _text(longrepr) -> str:
    if longrepr is None:
        return ""
    if isinstance(longrepr, tuple) and len(longrepr) == 3:  # skip: (file, line, reason)
        return str(longrepr[2])
    return str(longrepr)


def _crash_message(report) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    crash = getattr(longrepr, "reprcrash", None)
    if crash is not None and getattr(crash, "message", None):
        return crash.message
    text = _text(longrepr).strip().splitlines()
    errors = [line[1:].strip() for line in text if line.startswith("E ")]
    return "\n".join(errors) if errors else (text[-1] if text else "")


def pytest_addoption(parser):
    group = parser.getgroup("workshop")
    group.addoption("--workshop-report", metavar="FILE", default=None,
                    help="write machine-readable results for `workshop check` to FILE")


@pytest.hookimpl(trylast=True)
def pytest_configure(config):
    path = config.getoption("--workshop-report", default=None)
    if path and not hasattr(config, "workerinput"):
        config.pluginmanager.register(_Recorder(path), "workshop-report-recorder")
