"""The test harness: what runs the step suites, not what the learner runs.

The ``workshop`` command hands pytest the report plugin (``-p
workshop.harness.report``), reads failures in the format of :mod:`.failure`,
and sweeps up after an interrupted session with :func:`.leaks.sweep`.

* :mod:`workshop.testing`: the API the step tests use (the runtime under test,
  its output, the host's /proc).
* :mod:`.failure`: :class:`~.failure.CheckFailure`, a failed check as data (also
  ``workshop.testing.CheckFailure``); `workshop check` reads its fields.
* :mod:`.shown`: how much of an output a failure shows (a few lines, no other
  process of the host).
* :mod:`.leaks`: what a test left on the host, and removing it.
* :mod:`.network`: does Docker Hub answer (for the `network` checks)?
* :mod:`.report`: the pytest plugin that writes results for `workshop check`.

``conftest.py`` at the repository's root holds the matrix and the fixtures.
"""
