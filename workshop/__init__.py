"""container-workshop: build your own container runtime, step by step.

The ``workshop`` command lives in :mod:`workshop.cli`. This package is imported
by the command, by the test suites (``workshop.meta``) and by the pytest
plugin (``workshop.pytest_report``), so it must stay cheap to import: nothing
here imports anything.
"""

__version__ = "0.1.0"
