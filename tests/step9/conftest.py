"""Fixtures of step 9: the sandbox network (tests/networksupport.py), and the image registry of steps 7-8."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from imagesupport import cli, image_registry, registry_service, store  # noqa: E402,F401
from networksupport import net, sandbox, www  # noqa: E402,F401
