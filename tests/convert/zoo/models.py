"""The zoo's configuration record and the one run every configuration gets.

A configuration is a factory taking no arguments (so ``streamwise convert
tests.convert.zoo.vocoders:hifigan`` builds it too), seeded, with random weights, plus the example
shape (batch 2, time last) and its true outcome: ``refused`` is ``None`` for a model that streams
exactly, otherwise a regular expression the refusal must match, naming a reason that is true for
that model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from streamwise.convert.convert import convert
from streamwise.core.protocol import NotStreamableError


@dataclass(frozen=True)
class Config:
    name: str
    family: str
    source: str  # "package==version module.Class" or "re-written from <paper>"
    factory: Callable[[], nn.Module]
    shape: tuple[int, ...]
    refused: str | None = None  # regex of the true reason, None: streams exactly
    note: str = ""
    kwargs: dict[str, Any] = field(default_factory=dict)  # extra sw.convert arguments

    @property
    def spec(self) -> str:
        return f"{self.factory.__module__}:{self.factory.__name__}"


def seeded(build: Callable[[], nn.Module]) -> nn.Module:
    """``build()`` under seed 0, in eval mode (dropout off, batch norm on running stats)."""
    torch.manual_seed(0)
    return build().eval()


def example(config: Config, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    gen = torch.Generator().manual_seed(1)
    return torch.randn(*config.shape, generator=gen, dtype=dtype)


def outcome(config: Config, dtype: torch.dtype = torch.float64) -> dict[str, Any]:
    """Convert (verification on) in ``dtype``: ``{"outcome": "exact", error, delay, state}`` or
    ``{"outcome": "refused" | "crashed", "error": message}``."""
    model = config.factory().to(dtype)
    x = example(config, dtype)
    try:
        stream = convert(model, x, -1, seed=0, **config.kwargs)
    except NotStreamableError as e:
        return {"outcome": "refused", "error": str(e)}
    except Exception as e:  # a crash is a defect to report, not an outcome to hide
        return {"outcome": "crashed", "error": f"{type(e).__name__}: {e}"}
    r = stream.report
    return {"outcome": "exact", "max_error": r.max_abs_error / max(r.output_scale, 1.0),
            "latency_frames": r.latency_frames, "state_bytes": r.state_bytes,
            "stride": r.stride, "params": sum(p.numel() for p in model.parameters())}


def params(config: Config) -> int:
    return sum(p.numel() for p in config.factory().parameters())
