"""A pytest plugin that writes machine-readable results for `workshop check`.

Use: ``python -m pytest -p workshop.harness.report --workshop-report FILE ...``
(without the option it does nothing). FILE gets::

    {"exitstatus": 1,
     "tests": [{"nodeid", "step", "name", "title", "outcome", "duration", "markers",
                "simulated", "message", "longrepr", "captured", "failure"}],
     "collect_errors": [{"nodeid", "step", "message", "longrepr"}],
     "deselected": 0,
     "offline": null | {"reason", "checks"}}

outcome is passed, failed, error (setup/teardown failed), skipped, xfailed or
xpassed. title is the first line of the test's docstring; simulated is the
reason of its ``@pytest.mark.simulated(REASON)`` (None for a check that ran
against the real kernel). failure holds the fields of the
:class:`workshop.testing.CheckFailure` the test raised (kind, expected, got,
problem, command, output); it is None for any other failure, whose text is in
message. captured is what the test printed (its stdout and stderr).

``--workshop-network auto`` leaves the checks marked ``network`` out when Docker
Hub does not answer (asked once, only when such checks are selected), ``off``
leaves them out without asking; offline then names them and why.
"""

from __future__ import annotations

import json

import pytest

from workshop.paths import suite_step


def _first_line(doc: str | None) -> str:
    doc = (doc or "").strip()
    return doc.splitlines()[0].strip() if doc else ""


def _simulated(item) -> str | None:
    marker = item.get_closest_marker("simulated")
    if marker is None:
        return None
    return str(marker.args[0] if marker.args else marker.kwargs.get("reason", "a simulation"))


class _Recorder:
    def __init__(self, path: str, network: str):
        self.path = path
        self.network = network
        self.items: dict[str, dict] = {}
        self.results: dict[str, dict] = {}
        self.collect_errors: list[dict] = []
        self.deselected = 0
        self.offline: dict | None = None

    # -- collection ---------------------------------------------------------
    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_modifyitems(self, config, items):
        if self.network not in ("auto", "off"):
            return
        needy = [item for item in items if item.get_closest_marker("network")]
        if not needy:
            return
        if self.network == "off":
            reason = "--offline was given"
        else:
            from workshop.harness.network import docker_hub_problem

            reason = docker_hub_problem()
        if reason:
            self.offline = {"reason": reason, "checks": [item.nodeid for item in needy]}
            items[:] = [item for item in items if item not in needy]
            config.hook.pytest_deselected(items=needy)

    @pytest.hookimpl(trylast=True)
    def pytest_collection_finish(self, session):
        for number, item in enumerate(session.items, 1):
            self.items[item.nodeid] = {
                "number": number,  # in the order they run: the progress `workshop check` shows
                "name": getattr(item, "originalname", None) or item.name.split("[", 1)[0],
                "title": _first_line(getattr(getattr(item, "function", None), "__doc__", None)),
                "markers": sorted({m.name for m in item.iter_markers()}),
                "simulated": _simulated(item),
            }

    # -- progress: `workshop check` shows which check runs (PATH.progress: "N TOTAL NAME") -----
    def pytest_runtest_logstart(self, nodeid, location):
        item = self.items.get(nodeid, {})
        try:
            with open(self.path + ".progress", "w", encoding="utf-8") as f:
                f.write(f"{item.get('number', 0)} {len(self.items)} {item.get('name', nodeid)}\n")
        except OSError:
            pass

    def pytest_deselected(self, items):
        self.deselected += len(items)

    def pytest_collectreport(self, report):
        if report.failed:
            self.collect_errors.append({
                "nodeid": report.nodeid,
                "step": suite_step(report.nodeid),
                "message": _crash_message(report),
                "longrepr": _text(report.longrepr),
            })

    # -- running ------------------------------------------------------------
    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, call):
        outcome = yield
        error = call.excinfo.value if call.excinfo is not None else None
        if error is not None and callable(getattr(error, "record", None)):
            outcome.get_result().workshop_failure = error.record()

    def pytest_runtest_logreport(self, report):
        r = self.results.setdefault(report.nodeid, {
            "nodeid": report.nodeid, "step": suite_step(report.nodeid),
            "outcome": None, "duration": 0.0, "message": "", "longrepr": "",
            "captured": {"stdout": "", "stderr": ""}, "failure": None,
        })
        r["duration"] += getattr(report, "duration", 0.0) or 0.0
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
                r["captured"] = {"stdout": getattr(report, "capstdout", "") or "",
                                 "stderr": getattr(report, "capstderr", "") or ""}
                r["failure"] = getattr(report, "workshop_failure", None)
            r["outcome"] = outcome

    def pytest_sessionfinish(self, exitstatus):
        tests = []
        for nodeid, r in self.results.items():
            if r["outcome"] is None:  # set up, never run: the session was interrupted
                r["outcome"] = "error"
                r["message"] = r["message"] or "the check was interrupted before it finished"
            info = self.items.get(nodeid, {})
            r.update(name=info.get("name") or nodeid.rsplit("::", 1)[-1].split("[", 1)[0],
                     title=info.get("title", ""), markers=info.get("markers", []),
                     simulated=info.get("simulated"))
            tests.append(r)
        data = {"exitstatus": int(exitstatus), "tests": tests, "collect_errors": self.collect_errors,
                "deselected": self.deselected - len((self.offline or {}).get("checks", [])),
                "offline": self.offline}
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
    group.addoption("--workshop-network", choices=("auto", "off", "on"), default="on",
                    help="checks marked `network`: auto = left out when Docker Hub does not answer; "
                         "off = left out; on = run (default)")


@pytest.hookimpl(trylast=True)
def pytest_configure(config):
    path = config.getoption("--workshop-report", default=None)
    if path and not hasattr(config, "workerinput"):
        config.pluginmanager.register(_Recorder(path, config.getoption("--workshop-network")),
                                      "workshop-report-recorder")
