"""The test harness: what runs the step suites, not what the learner runs.

The ``workshop`` command itself never imports it; `workshop check` only hands
pytest the report plugin (``-p workshop.harness.report``).

* :mod:`workshop.testing`: the API the step tests use (the runtime under test,
  its output, the host's /proc), and :class:`workshop.testing.CheckFailure`.
* :mod:`.shown`: how much of an output a failure shows (a few lines, no other
  process of the host).
* :mod:`.leaks`: what a test left on the host, and removing it.
* :mod:`.network`: does Docker Hub answer (for the `network` checks)?
* :mod:`.report`: the pytest plugin that writes results for `workshop check`.

``conftest.py`` at the repository's root holds the matrix and the fixtures.
"""
