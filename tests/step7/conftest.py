"""Fixtures of step 7 (and 8): the test registry, the store, the CLI with UDOCKER_ROOT set.

They live in tests/imagesupport.py, shared with tests/step8.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from imagesupport import cli, image_registry, registry_service, shared_pull, store  # noqa: E402,F401
