"""`streamwise convert` and save/load: report printed, weights + config saved, no partial files."""

from __future__ import annotations

import sys
import textwrap

import pytest
import torch

from streamwise.cli import main
from streamwise.convert.saved import load

FACTORIES = textwrap.dedent('''
    import torch
    from torch import nn

    class Denoiser(nn.Module):
        def __init__(self):
            super().__init__()
            self.down = nn.Conv1d(1, 8, 8, stride=4, padding=2)
            self.gru = nn.GRU(8, 8, batch_first=True)
            self.up = nn.ConvTranspose1d(8, 1, 8, stride=4, padding=2)

        def forward(self, x):
            h = torch.relu(self.down(x))
            r, _ = self.gru(h.transpose(1, 2))
            return x * torch.sigmoid(self.up(h + r.transpose(1, 2)))

    class Bad(nn.Module):
        def __init__(self):
            super().__init__()
            self.norm = nn.GroupNorm(1, 1)

        def forward(self, x):
            return self.norm(x)

    class LogMag(nn.Module):
        def __init__(self):
            super().__init__()
            self.c = nn.Conv1d(4, 4, 3, padding=1)

        def forward(self, x):
            return self.c(torch.log(x.abs() + 1e-3))

    def logmag():
        torch.manual_seed(0)
        return LogMag()

    def denoiser():
        torch.manual_seed(0)
        return Denoiser()

    def bad():
        return Bad()
''')


@pytest.fixture()
def factories(tmp_path, monkeypatch):
    (tmp_path / "sw_convert_factories.py").write_text(FACTORIES)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "sw_convert_factories"
    sys.modules.pop("sw_convert_factories", None)


def test_cli_converts_prints_and_saves(factories, tmp_path, capsys):
    out = tmp_path / "m.pt"
    code = main(["convert", f"{factories}:denoiser", "--shape", "1,1,1600", "--sample-rate",
                 "16000", "--out", str(out)])
    text = capsys.readouterr().out
    assert code == 0 and out.exists()
    assert "algorithmic latency" in text and "ms at 16000 Hz" in text and "PASS" in text
    assert "recurrent (GRU" in text
    stream = load(out)
    model = __import__(factories).denoiser().eval()
    x = torch.randn(2, 1, 1000)
    s = stream.stream(2)
    y = torch.cat([s.push(x[..., :500]), s.push(x[..., 500:]), s.close()], -1)
    assert torch.allclose(y, model(x), atol=1e-5)
    assert stream.report.sample_rate == 16000


def test_cli_refuses_unstreamable_model_without_writing(factories, tmp_path, capsys):
    out = tmp_path / "bad.pt"
    code = main(["convert", f"{factories}:bad", "--shape", "1,1,100", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 1 and "GroupNorm" in err and "normalizes over time" in err
    assert not list(tmp_path.glob("*.pt")) and not list(tmp_path.glob(".bad.pt*"))


def test_load_refuses_other_files(tmp_path):
    p = tmp_path / "x.pt"
    torch.save({"weights": torch.zeros(2)}, p)
    with pytest.raises(ValueError, match="not a streamwise convert file"):
        load(p)


def test_saved_model_reloads_with_its_example(factories, tmp_path, capsys):
    """The probes need the example's values (zeros would send log to -inf): it is saved."""
    out = tmp_path / "log.pt"
    assert main(["convert", f"{factories}:logmag", "--shape", "1,4,100", "--out", str(out)]) == 0
    stream = load(out, verify=True)
    assert stream.report.verified
