"""The runtime's errors name what really failed (issue: a failed uid_map write was reported as 'unshare')."""
import importlib.util
import sys

import pytest

from workshop import paths


def _container_module(folder):
    """udocker.container of FOLDER, imported on its own (without replacing this process's udocker)."""
    saved = {name: module for name, module in sys.modules.items() if name == "udocker" or name.startswith("udocker.")}
    for name in saved:
        del sys.modules[name]
    sys.path.insert(0, str(folder))
    try:
        spec = importlib.util.find_spec("udocker.container")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(folder))
        for name in [n for n in sys.modules if n == "udocker" or n.startswith("udocker.")]:
            del sys.modules[name]
        sys.modules.update(saved)


@pytest.mark.parametrize("step", [n for n in paths.step_folders("solutions") if n >= 5])
def test_a_failed_map_write_names_the_map(step):
    """Writing a uid_map that is set already fails in write(), not open(): the error still names the file."""
    container = _container_module(paths.step_folders("solutions")[step])
    with pytest.raises(OSError) as raised:
        container.write_file("/proc/self/uid_map", "0 0 1")  # our own map is written already: EPERM
    assert raised.value.filename == "/proc/self/uid_map", raised.value
