"""Build a model from a ``pkg.module:factory`` spec (used by verify, convert, serve and load)."""

from __future__ import annotations

import importlib

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
        obj = getattr(importlib.import_module(mod_name), attr)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"cannot load {spec!r} (expected pkg.module:factory): {e}") from e
    model = obj() if callable(obj) and not isinstance(obj, torch.nn.Module) else obj
    if not isinstance(model, torch.nn.Module):
        raise ValueError(f"{spec} gave {type(model).__name__}, not a torch.nn.Module")
    return model
