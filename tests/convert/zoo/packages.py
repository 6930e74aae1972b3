"""Import a model's own module from a package installed with ``pip install --no-deps``.

Several audio packages import heavy dependencies (torchaudio, audiotools, hyperpyyaml, h5py) in
their ``__init__`` or at the top of a module, for loading, metrics or I/O that the model classes
never call.  ``load`` imports the module with its parent packages registered bare (their
``__init__`` not run) and, for names listed as stand-ins, placeholder modules that exist only
while the import runs: a placeholder attribute is a class that raises if anything instantiates
it, so a model that really needed one fails loudly instead of running on a fake.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

# the exact versions the zoo is written against (scripts/setup.sh installs them with --no-deps)
PINS = {
    "asteroid": "asteroid==0.7.0",
    "asteroid_filterbanks": "asteroid-filterbanks==0.4.0",
    "dac": "descript-audio-codec==1.0.0",
    "demucs": "demucs==4.1.0",
    "denoiser": "denoiser==0.1.5",
    "encodec": "encodec==0.1.1",
    "julius": "julius==0.2.8",
    "parallel_wavegan": "parallel-wavegan==0.6.1",
    "pytorch_tcn": "pytorch-tcn==1.2.3",
    "snac": "snac==1.2.1",
    "speechbrain": "speechbrain==1.1.2",
    "vocos": "vocos==0.1.0",
}


class Missing(ImportError):
    """The package is not installed (run scripts/setup.sh)."""


class _Absent:
    """Stands for a name of a dependency that is not installed; using it is an error."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError(f"{type(self).__name__} belongs to a package the zoo does not "
                           "install; the model under test must not use it")


class _Placeholder(types.ModuleType):
    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return type(name, (_Absent,), {})


def version(top: str) -> str:
    """``package==version`` as pinned, for the table."""
    return PINS[top]


@contextmanager
def _stand_ins(names: Sequence[str]) -> Iterator[None]:
    added = []
    for name in names:
        parts = name.split(".")
        for i in range(1, len(parts) + 1):
            sub = ".".join(parts[:i])
            if sub not in sys.modules:
                mod = _Placeholder(sub)
                mod.__path__ = []
                sys.modules[sub] = mod
                added.append(sub)
                if i > 1:
                    setattr(sys.modules[".".join(parts[:i - 1])], parts[i - 1], mod)
    try:
        yield
    finally:
        for sub in added:
            del sys.modules[sub]


def _bare(package: str) -> None:
    if package in sys.modules:
        return
    parent, _, _ = package.rpartition(".")
    if parent:
        _bare(parent)
    spec = importlib.util.find_spec(package)
    if spec is None or spec.submodule_search_locations is None:
        pin = PINS.get(package.split(".")[0], package)
        raise Missing(f"{package} is not installed: pip install --no-deps {pin}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[package] = module
    if parent:
        setattr(sys.modules[parent], package.rpartition(".")[2], module)


@contextmanager
def _aliases(aliases: Mapping[str, str]) -> Iterator[None]:
    added = []
    for new, old in aliases.items():
        module, _, attr = new.rpartition(".")
        source, _, source_attr = old.rpartition(".")
        target = importlib.import_module(module)
        if attr not in vars(target):
            setattr(target, attr, getattr(importlib.import_module(source), source_attr))
            added.append((target, attr))
    try:
        yield
    finally:
        for target, attr in added:
            delattr(target, attr)


def load(name: str, bare: Sequence[str] = (), stand_ins: Sequence[str] = (),
         aliases: Mapping[str, str] | None = None) -> types.ModuleType:
    """Import module ``name``; the packages in ``bare`` are registered without running their
    ``__init__``, the modules in ``stand_ins`` exist as placeholders during the import only, and
    ``aliases`` (``{"scipy.signal.kaiser": "scipy.signal.windows.kaiser"}``) restore names that a
    newer release of a dependency moved, during the import only."""
    top = name.split(".")[0]
    if importlib.util.find_spec(top) is None:
        raise Missing(f"{top} is not installed: pip install --no-deps {PINS.get(top, top)} "
                      "(scripts/setup.sh does)")
    for package in bare:
        _bare(package)
    with _stand_ins(stand_ins), _aliases(aliases or {}):
        return importlib.import_module(name)
