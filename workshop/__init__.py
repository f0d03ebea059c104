"""container-workshop: build your own container runtime, step by step.

Two parts live in this package:

* the ``workshop`` command, for learners: :mod:`workshop.cli` (the entry point),
  :mod:`workshop.commands` (the click commands only), and what they use: meta
  (steps.toml: the steps, hints, diagnoses), paths, state (progress), grading
  (runs the suites), diagnosis, guide (workshop.md), diffs, reset, pristine,
  watch, the views in :mod:`workshop.views`, environment (the machine checks),
  clean, demo, rootfs, generate (maintainers: the step folders);
* the test harness, for the step suites: :mod:`workshop.testing` (the API the
  step tests use) and :mod:`workshop.harness` (failures as data, the report
  plugin, the leak check). The command only hands the report plugin to pytest.

Nothing here imports anything: the package is imported by the command, by the
suites and by the pytest plugin, so it must stay cheap to import.
"""

__version__ = "0.1.0"
