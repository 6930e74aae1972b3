"""Where the files of an export lie, and reading the contract out of one (no torch needed)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

KEY = "streamwise.contract"


def sibling(path: str | Path, kind: str) -> Path:
    """The file of program ``kind`` next to the step file ``path`` (``m.onnx`` ->
    ``m.start.onnx``, ``m.flush.onnx``)."""
    path = Path(path)
    if kind == "step":
        return path
    return path.with_name(f"{path.stem}.{kind}{path.suffix}")


def read_contract(path: str | Path) -> dict[str, Any]:
    """The contract (``streamwise.export.contract``) stored in an exported ONNX file."""
    import onnxruntime as ort

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no exported model at {path}")
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    meta = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"]
                                ).get_modelmeta().custom_metadata_map
    if KEY not in meta:
        raise ValueError(f"{path} was not written by streamwise.export (no {KEY} metadata)")
    return dict(json.loads(meta[KEY]))
