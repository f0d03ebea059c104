"""Step 0: can this machine run the workshop? (Guard tests: they check the machine, not your code.)"""

import pytest

from workshop import environment

pytestmark = pytest.mark.guard


def _expect_ok(check: environment.Check):
    assert check.ok, f"{check.name}: {check.detail}\nfix: {check.fix}"


@pytest.mark.parametrize("check", [c for c in environment.CHECKS if c is not environment.check_rootfs],
                         ids=lambda c: c.__name__.removeprefix("check_"))
def test_machine(check):
    _expect_ok(check())


def test_machine_rootfs(rootfs):
    # the tests build their own rootfs (the session's); `workshop doctor` checks the installed one
    _expect_ok(environment.check_rootfs(rootfs))
