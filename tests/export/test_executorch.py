"""Models exported to ExecuTorch ``.pte`` files stream like their offline forward through
``OnnxStream(ExecutorchModel(path))``: random chunkings (sizes 0 and 1), batches 1-3, from the
first sample to the last; a refused export writes nothing."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("executorch", reason="the export extra (pip install -e .[export]) is absent")

import streamwise as sw  # noqa: E402
from streamwise.core.state import clock  # noqa: E402
from streamwise.export import NotExportableError  # noqa: E402
from streamwise.export.executorch_file import executorch  # noqa: E402
from streamwise.runtime import OnnxStream  # noqa: E402
from streamwise.runtime.executorch_model import ExecutorchModel, contract_path  # noqa: E402
from tests.export.exported import Exported, assert_onnx_streams_like_offline  # noqa: E402
from tests.strategies import chunkings  # noqa: E402

_DIR = Path(tempfile.mkdtemp(prefix="streamwise-executorch-tests-"))


CASES = {  # name: (factory, chunk, example shape, backend)
    "conv_same": (lambda: sw.Conv1d(3, 4, 5, padding="same"), 4, (1, 3, 9), "xnnpack"),
    "conv_same_portable": (lambda: sw.Conv1d(3, 4, 5, padding="same"), 4, (1, 3, 9),
                           "portable"),
    "strided_transpose": (lambda: sw.Sequential(
        sw.Conv1d(3, 6, 4, stride=2, padding=1), sw.ELU(),
        sw.ConvTranspose1d(6, 3, 4, stride=2, padding=1)), 4, (1, 3, 9), "xnnpack"),
    # a layer stepped then flushed in one flush program (a weight in two convolutions), causal
    # strided convs and ELU: the stacks XNNPACK's 1-D conv pass could not lower in flush
    "conv_stack": (lambda: sw.Sequential(sw.Conv1d(3, 4, 5, padding="same"), sw.Tanh(),
                                         sw.Conv1d(4, 2, 3, padding="same")), 4, (1, 3, 9),
                   "xnnpack"),
    "causal_strided_elu": (lambda: sw.Sequential(
        sw.Conv1d(3, 4, 7, padding="causal"), sw.ELU(), sw.Conv1d(4, 4, 4, stride=2,
                                                                   padding="causal"),
        sw.ELU(), sw.Conv1d(4, 2, 3, padding="causal")), 4, (1, 3, 9), "xnnpack"),
    # zero-frame state tensors (MaxPool1d's start-up buffer): given ExecuTorch with torch strides
    "max_pool": (lambda: sw.MaxPool1d(3, 2, padding=1), 4, (1, 3, 9), "xnnpack"),
    "conv_gru": (lambda: sw.Sequential(sw.Conv1d(3, 4, 5, padding="same"), sw.GRU(4, 5),
                                       sw.Linear(5, 2)), 4, (1, 3, 9), "xnnpack"),
}
_CACHE: dict[str, Exported] = {}


def _exported(name: str) -> Exported:
    if name not in _CACHE:
        build, chunk, shape, backend = CASES[name]
        torch.manual_seed(0)
        model = build().eval()
        path = _DIR / f"{name}.pte"
        example = torch.randn(shape)
        contract = executorch(model, path, chunk=chunk, example=example, backend=backend)
        _CACHE[name] = Exported(model, contract, ExecutorchModel(path), example, path)
    return _CACHE[name]


@pytest.mark.parametrize("name", sorted(CASES))
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_executorch_export_streams_like_offline(name, data):
    e = _exported(name)
    batch = data.draw(st.integers(1, 3), label="batch")
    length = e.length(data.draw(st.integers(0, 4), label="chunks after start"))
    x = e.input(batch, length, seed=data.draw(st.integers(0, 9)))
    assert_onnx_streams_like_offline(e, x, data.draw(chunkings(length), label="sizes"))


def test_files_and_contract_sidecar():
    e = _exported("conv_same")
    names = sorted(p.name for p in _DIR.glob("conv_same.*"))
    assert names == ["conv_same.contract.json", "conv_same.flush.pte", "conv_same.pte",
                     "conv_same.start.pte"]
    assert e.runtime.contract["extra"]["max_batch"] == 64
    assert e.contract.files == {"start": "conv_same.start.pte", "step": "conv_same.pte",
                                "flush": "conv_same.flush.pte"}
    assert contract_path(e.path).exists()
    s = OnnxStream(e.runtime, 2)
    assert s.push(e.input(2, 3).numpy()).shape[-1] == 0  # buffered below the prologue


def test_batch_past_max_batch_is_refused_by_name():
    e = _exported("conv_same")
    s = OnnxStream(e.runtime, 65)
    with pytest.raises(ValueError, match="at most 64 rows"):
        s.push(e.input(65, e.length(1)).numpy())


class _Ramp(sw.StreamingModule):
    """Adds each frame's absolute index: its step reads a Python clock, which an export fixes."""

    def state_spec(self, in_channels=None):
        return {"t": clock(rebase=False)}

    def forward(self, x):
        return x + torch.arange(x.shape[-1], dtype=x.dtype)

    def step(self, x, state):
        t = state["t"]
        return x + torch.arange(t, t + x.shape[-1], dtype=x.dtype), {"t": t + x.shape[-1]}


def test_refused_export_writes_nothing(tmp_path):
    with pytest.raises(NotExportableError, match="reproduce its offline forward"):
        executorch(sw.Sequential(sw.Conv1d(3, 3, 3, padding="causal"), _Ramp()),
                   tmp_path / "m.pte", chunk=4, example=torch.randn(1, 3, 9))
    assert list(tmp_path.iterdir()) == []


def test_wrong_suffix_and_backend_are_refused(tmp_path):
    with pytest.raises(ValueError, match=r"ends in \.pte"):
        executorch(sw.Conv1d(3, 4, 3), tmp_path / "m.onnx", chunk=4)
    with pytest.raises(ValueError, match="backend must be one of"):
        executorch(sw.Conv1d(3, 4, 3), tmp_path / "m.pte", chunk=4, backend="coreml")
