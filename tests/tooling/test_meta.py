"""Lookups in this repository's steps.toml: hints, what to read, the kinds of failure."""
from workshop import meta


def test_check_hint_lookup():
    hint = meta.check_hint(4, "test_mounts_do_not_leak_to_the_host")
    assert hint and "MS_PRIVATE" in hint
    assert meta.check_hint(4, "tests/step4/test_pid_mount.py::test_mounts_do_not_leak_to_the_host[steps/step4]") == hint
    assert meta.check_hint(4, "test_no_such_thing") is None
    assert meta.check_hint(99, "test_x") is None
    assert meta.check_read(4, "test_mounts_do_not_leak_to_the_host") == ["man 7 mount_namespaces", "man 2 mount"]
    assert meta.check_read(4, "test_command_is_pid_1") == meta.step(4)["read"]


def test_a_leak_has_the_leak_hint_whatever_the_check():
    left = meta.hint_for(4, "test_command_is_pid_1", "left-behind")
    assert "workshop clean" in left and left != meta.check_hint(4, "test_command_is_pid_1")
    assert meta.hint_for(4, "test_command_is_pid_1") == meta.check_hint(4, "test_command_is_pid_1")


def test_failure_kinds_have_hints():
    for kind in ("left-behind", "hung"):
        assert meta.hint_for(0, "test_x", kind), f"[failure.{kind}] needs a hint in steps.toml"
