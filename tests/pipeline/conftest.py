"""Makes the helper modules of this folder importable by name: ``report_fixtures``
(hand-written version-2 board reports) and ``sharing_checks`` (sharing invariants of a
run). pytest runs in importlib mode, so this folder is not a package."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

for _name in ("report_fixtures", "sharing_checks"):
    if _name not in sys.modules:
        _spec = importlib.util.spec_from_file_location(
            _name, Path(__file__).with_name(f"{_name}.py"))
        _module = importlib.util.module_from_spec(_spec)
        _spec.loader.exec_module(_module)
        sys.modules[_name] = _module
