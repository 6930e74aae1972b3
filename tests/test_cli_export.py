"""``streamwise export``: files written only when they reproduce the model; refusals and
mismatches exit non-zero and leave nothing behind."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime", reason="the export extra (pip install -e .[export]) is absent")

from streamwise.cli import main  # noqa: E402
from streamwise.runtime import OnnxModel, OnnxStream  # noqa: E402

FACTORIES = '''
import torch
from torch import nn
import streamwise as sw
from streamwise.core.state import clock


def layers():
    torch.manual_seed(0)
    return sw.Sequential(sw.Conv1d(2, 4, 3, padding="causal"), sw.ELU(),
                         sw.Conv1d(4, 4, 4, stride=2, padding="causal"), sw.GRU(4, 3))


def plain():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv1d(2, 4, 5, padding=2), nn.Tanh(), nn.Conv1d(4, 2, 3, padding=1))


class Ramp(sw.StreamingModule):
    """Adds each frame's absolute index: its step reads a Python clock's value."""

    def state_spec(self, in_channels=None):
        return {"t": clock(rebase=False)}

    def forward(self, x):
        return x + torch.arange(x.shape[-1], dtype=x.dtype)

    def step(self, x, state):
        t = state["t"]
        return x + torch.arange(t, t + x.shape[-1], dtype=x.dtype), {"t": t + x.shape[-1]}


def ramp():
    return sw.Sequential(sw.Conv1d(2, 2, 3, padding="causal"), Ramp())


def strided():
    return sw.Conv1d(2, 2, 4, stride=2, padding="causal")
'''


@pytest.fixture
def factories(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request) -> str:
    """A module of factories importable under a name unique to the test."""
    name = "cli_export_models_" + request.node.name.replace("[", "_").replace("]", "")
    name = "".join(c if c.isalnum() or c == "_" else "_" for c in name)
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(FACTORIES))
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.suffix in (".onnx", ".pte"))


def test_layer_model_exports_prints_the_contract_and_the_files_stream(factories, tmp_path,
                                                                       capsys):
    out = tmp_path / "out"
    out.mkdir()
    rc = main(["export", f"{factories}:layers", "--shape", "1", "2", "16", "--chunk", "4",
               "--out", str(out / "m.onnx"), "--trials", "3"])
    printed = capsys.readouterr().out
    assert rc == 0, printed
    assert _files(out) == ["m.flush.onnx", "m.onnx", "m.start.onnx"]
    assert "chunk 4 frames" in printed and "state." in printed and "OK: 3 random" in printed
    model = OnnxModel(out / "m.onnx")
    assert model.chunk == 4 and model.contract["stride"] == "1/2"
    import importlib

    torch_model = importlib.import_module(factories).layers().eval()
    x = torch.randn(2, 2, 23)
    s = OnnxStream(model, 2)
    y = np.concatenate([s.push(x[..., :9].numpy()), s.push(x[..., 9:].numpy()), s.close()], -1)
    with torch.inference_mode():
        np.testing.assert_allclose(y, torch_model(x).numpy(), atol=1e-5)


def test_plain_torch_model_is_converted_then_exported(factories, tmp_path, capsys):
    rc = main(["export", f"{factories}:plain", "--shape", "1,2,32", "--chunk", "8",
               "--out", str(tmp_path / "p.onnx"), "--trials", "2"])
    printed = capsys.readouterr().out
    assert rc == 0, printed
    assert "converting it with sw.convert" in printed
    assert _files(tmp_path) == ["p.flush.onnx", "p.onnx", "p.start.onnx"]


def test_chunk_not_a_multiple_of_the_period_is_refused_and_writes_nothing(factories, tmp_path,
                                                                          capsys):
    rc = main(["export", f"{factories}:strided", "--shape", "1", "2", "16", "--chunk", "3",
               "--out", str(tmp_path / "s.onnx")])
    err = capsys.readouterr().err
    assert rc == 2
    assert "REFUSED, nothing written" in err and "period" in err
    assert _files(tmp_path) == [] and not [p for p in tmp_path.iterdir() if p.is_dir()]


def test_a_step_reading_a_python_clock_is_a_mismatch_and_writes_nothing(factories, tmp_path,
                                                                        capsys):
    rc = main(["export", f"{factories}:ramp", "--shape", "1", "2", "16", "--chunk", "4",
               "--out", str(tmp_path / "r.onnx")])
    err = capsys.readouterr().err
    assert rc == 1
    assert "MISMATCH, nothing written" in err and "clock" in err
    assert _files(tmp_path) == [] and not [p for p in tmp_path.iterdir() if p.is_dir()]


@pytest.mark.parametrize("args, match", [
    (["--chunk", "4", "--out", "{tmp}/x.pte"], "must end in .onnx"),
    (["--chunk", "4", "--out", "{tmp}/missing/x.onnx"], "does not exist"),
    (["--chunk", "4", "--out", "{tmp}/x.onnx", "--time-dim", "5"], "--time-dim"),
    (["--chunk", "0", "--out", "{tmp}/x.onnx"], "chunk"),
])
def test_bad_arguments_exit_2_with_a_message(factories, tmp_path, capsys, args, match):
    argv = ["export", f"{factories}:layers", "--shape", "1", "2", "16",
            *[a.format(tmp=tmp_path) for a in args]]
    try:
        rc = main(argv)
    except SystemExit as e:  # argparse's own refusals
        rc = int(e.code or 0)
    captured = capsys.readouterr()
    assert rc == 2
    assert match in captured.err + captured.out
    assert _files(tmp_path) == []


def test_executorch_export_writes_pte_files(factories, tmp_path, capsys):
    pytest.importorskip("executorch", reason="the export extra (executorch) is absent")
    rc = main(["export", f"{factories}:plain", "--shape", "1", "2", "32", "--chunk", "8",
               "--format", "executorch", "--out", str(tmp_path / "e.pte")])
    printed = capsys.readouterr()
    assert rc == 0, printed.err
    assert _files(tmp_path) == ["e.flush.pte", "e.pte", "e.start.pte"]
