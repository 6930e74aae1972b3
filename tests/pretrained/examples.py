"""Load a script of ``examples/pretrained`` as a module (the scripts are not a package)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

FOLDER = Path(__file__).resolve().parents[2] / "examples" / "pretrained"


def load_example(script: str) -> ModuleType:
    """``examples/pretrained/<script>.py``, imported under a name that hides no vendor package."""
    spec = importlib.util.spec_from_file_location(f"{script}_example", FOLDER / f"{script}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
