"""Makes ``report_fixtures.py`` (hand-written version-2 board reports) importable as
``report_fixtures``: pytest runs in importlib mode, so this folder is not a package."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

if "report_fixtures" not in sys.modules:
    _spec = importlib.util.spec_from_file_location(
        "report_fixtures", Path(__file__).with_name("report_fixtures.py"))
    _module = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(_module)
    sys.modules["report_fixtures"] = _module
