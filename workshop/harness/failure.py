"""A failed check, as data: what was expected, what came instead, what ran and what it printed.

The step tests raise :class:`CheckFailure` (through ``Result.check`` and the
``expect_*`` methods of workshop.testing); the report plugin
(workshop.harness.report) writes its :meth:`~CheckFailure.record` for
`workshop check`, which shows the fields; ``str()`` is what plain pytest
shows. Every field is bounded to a few lines and never shows another process
of the host (:mod:`workshop.harness.shown`).
"""

from __future__ import annotations

import dataclasses
import signal
from dataclasses import dataclass

from workshop.harness.shown import bounded, foreign_secrets, redact, shown


@dataclass(frozen=True)
class Output:
    """What a finished runtime printed, as a failure shows it: each stream bounded to a few
    lines, stdout's first and stderr's last (``*_more``: how many lines were left out), other
    processes of the host hidden."""

    exit_code: int | None
    stdout: str
    stderr: str
    timed_out: float | None = None
    stdout_more: int = 0
    stderr_more: int = 0

    @classmethod
    def of(cls, exit_code: int | None, stdout: str, stderr: str, timed_out: float | None = None) -> "Output":
        (out, out_more), (err, err_more) = bounded(stdout), bounded(stderr, tail=True)
        secrets = foreign_secrets() if out or err else set()
        return cls(exit_code, redact(out, secrets), redact(err, secrets), timed_out, out_more, err_more)

    def lines(self) -> list[str]:
        lines = []
        if self.timed_out is not None:
            lines.append(f"timed out after {self.timed_out:g} s (killed it and all its processes)")
        if self.exit_code is not None and self.exit_code < 0:
            lines.append(f"exit code: the runtime itself died of signal {-self.exit_code} "
                         f"({signal.Signals(-self.exit_code).name})")
        else:
            lines.append(f"exit code: {self.exit_code}")
        lines.append(f"stdout: {self.stdout!r}" + (f" ... {self.stdout_more} more lines" if self.stdout_more else ""))
        lines.append("stderr: " + (f"{self.stderr_more} lines, then: " if self.stderr_more else "") + repr(self.stderr))
        return lines


class CheckFailure(AssertionError):
    """A failed check, as data: EXPECTED and GOT (or a PROBLEM in words), the COMMAND that
    was run (as a learner would type it) and its OUTPUT. ``str()`` is what pytest shows.

    KIND says what failed: "check" (the test's own expectation), "left-behind" (the
    leak check), "hung" (the test's deadline).
    """

    def __init__(self, expected: str | None = None, got: str | None = None, *, problem: str | None = None,
                 command: str | None = None, output: Output | None = None, kind: str = "check"):
        secrets = foreign_secrets() if got or problem else set()
        self.expected = shown(expected, secrets=secrets)
        self.got = shown(got, secrets=secrets)
        self.problem = shown(problem, max_lines=20, secrets=secrets)
        self.command = command
        self.output = output
        self.kind = kind
        super().__init__(self.text())

    def text(self) -> str:
        lines = [self.problem] if self.problem else []
        if self.expected is not None or self.got is not None:
            lines.append(f"expected {self.expected}, got {self.got}")
        if self.command:
            lines.append(f"$ {self.command}")
        if self.output:
            lines += self.output.lines()
        return "\n".join(lines)

    def record(self) -> dict:
        """The fields, for the report plugin (workshop.harness.report)."""
        return {"kind": self.kind, "expected": self.expected, "got": self.got, "problem": self.problem,
                "command": self.command, "output": dataclasses.asdict(self.output) if self.output else None}
