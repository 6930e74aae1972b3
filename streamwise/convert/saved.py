"""Save a converted model as weights + how to rebuild it; load it back as a stream.

The file holds no streaming state and no pickled code: the factory spec (``pkg.module:factory``),
the example input (the probes need real values: zeros would send ``log`` to -inf), the time axis,
the model's ``state_dict`` and the report.  Loading
imports the factory, loads the weights and converts again (the conversion is deterministic).
It is written to a temporary file first and renamed, so an error never leaves a partial file.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from streamwise.convert.convert import convert
from streamwise.convert.graph_stream import GraphStream
from streamwise.core.factory import load_factory

FORMAT = "streamwise.convert/1"


def save(stream: GraphStream, model: nn.Module, path: str | Path, factory: str,
         example: Tensor) -> None:
    """Write ``path`` atomically: the factory, the weights of ``model``, the example it was
    converted with, and the report."""
    report = stream.report
    if report is None:
        raise ValueError("only a stream built by convert (it has a report) can be saved")
    payload: dict[str, Any] = {
        "format": FORMAT,
        "factory": factory,
        "dtype": str(next(model.parameters()).dtype).removeprefix("torch.")
        if any(True for _ in model.parameters()) else "float32",
        "time_dim": report.time_axis,
        "example": example.detach().cpu(),  # the probes run on it again when loading
        "sample_rate": report.sample_rate,
        "state_dict": model.state_dict(),
        "report": report.to_dict(),
    }
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent or Path("."))
    os.close(fd)
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load(path: str | Path, *, verify: bool = False) -> GraphStream:
    """The streaming model saved at ``path`` (its factory must be importable)."""
    payload = torch.load(path, weights_only=True, map_location="cpu")
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path} is not a streamwise convert file (expected format {FORMAT})")
    model = load_factory(payload["factory"])
    dtype = getattr(torch, payload["dtype"])
    model = model.to(dtype)
    model.load_state_dict(payload["state_dict"])
    example = payload["example"].to(dtype)
    return convert(model, example, payload["time_dim"], verify=verify,
                   sample_rate=payload["sample_rate"])
