"""Build a model from a ``pkg.module:factory`` spec (used by verify, convert, serve and load)."""

from __future__ import annotations

import importlib
import os
import sys

import torch


def load_factory(spec: str) -> torch.nn.Module:
    """Build a model from ``pkg.module:factory`` (a callable taking no arguments, or a module).

    Raises ``ValueError`` naming what was expected when the spec is malformed, cannot be
    imported, or does not give a ``torch.nn.Module``.
    """
    if ":" not in spec:
        raise ValueError(f"expected pkg.module:factory, got {spec!r}")
    mod_name, attr = spec.split(":", 1)
    try:
        obj = getattr(_import(mod_name), attr)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"cannot load {spec!r} (expected pkg.module:factory): {e}") from e
    model = obj() if callable(obj) and not isinstance(obj, torch.nn.Module) else obj
    if not isinstance(model, torch.nn.Module):
        raise ValueError(f"{spec} gave {type(model).__name__}, not a torch.nn.Module")
    return model


def _import(name: str) -> object:
    """Import ``name``; a module beside the working directory is found as ``python -m`` would
    find it (console scripts do not put the working directory on ``sys.path``)."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as e:
        here = os.getcwd()
        top = name.split(".")[0]
        if e.name != top or here in sys.path or not (
                os.path.exists(os.path.join(here, top + ".py"))
                or os.path.isdir(os.path.join(here, top))):
            raise
        sys.path.insert(0, here)
        return importlib.import_module(name)
