"""What `sw.convert` tells a user: refusals grouped by reason, the model's own reasons before the
converter's limits, short file paths; a success report that opens with a verdict, states the
error relative to the output scale and folds per-frame rows into one line (``to_dict`` keeps
them all)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import streamwise as sw
from streamwise.convert.refusal_text import CONVERTER, MODEL, place, short_path
from streamwise.convert.report import ConvertReport
from streamwise.convert.trace import ConversionError, Problem

ROOT = Path(__file__).resolve().parents[2]


def refusal(model: nn.Module, x: torch.Tensor | None = None) -> ConversionError:
    with pytest.raises(ConversionError) as err:
        sw.convert(model, torch.randn(1, 1, 40) if x is None else x)
    return err.value


def test_identical_reasons_are_one_line_naming_every_place():
    model = nn.Sequential(nn.Conv1d(1, 2, 3), *(nn.GroupNorm(1, 2) for _ in range(5)),
                          nn.PReLU())
    e = refusal(model)
    text = str(e)
    assert len(e.problems) == 5  # every op is still a problem of its own
    assert text.count("normalizes over time as well as channels") == 1, text
    assert text.count("use LayerNorm over channels") == 1, text
    line = next(ln for ln in text.splitlines() if "GroupNorm" in ln)
    assert "5 places: 1, 2, 3 (+2 more)" in line, line
    assert e.verdict == "REFUSED: 1 reason in the model itself"


class BiGRU(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.GRU(1, 2, batch_first=True, bidirectional=True)

    def forward(self, x):
        return self.rnn(x.transpose(1, 2))[0].transpose(1, 2)


class CatTime(nn.Module):
    def forward(self, x):
        return torch.cat([x, x], -1)


class FixedResample(nn.Module):
    def forward(self, x):
        return F.interpolate(x, size=16)


class GlobalNorm(nn.Module):
    def forward(self, x):
        return (x - x.mean((1, 2), keepdim=True)) / (x.std((1, 2), keepdim=True) + 1e-8)


@pytest.mark.parametrize(("model", "why"), [
    (BiGRU(), "bidirectional"),
    (CatTime(), "concatenates along time"),
    (FixedResample(), "reduces over time"),  # its output has a fixed length
    (GlobalNorm(), "global layer norm"),
    (nn.Sequential(nn.Conv1d(1, 2, 3), nn.GroupNorm(1, 2)), "normalizes over time"),
])
def test_a_model_that_reads_the_whole_sequence_is_refused_for_its_own_reason(model, why):
    e = refusal(model)
    own = [p for p in e.problems if p.kind == MODEL]
    assert own and any(why in p.why for p in own), str(e)
    assert str(e).splitlines()[1].startswith("  - in the model: "), str(e)


def test_the_models_own_reason_comes_before_a_converter_limit():
    # graph order: the pool (a converter limit) comes first, the GroupNorm (the model's) second
    model = nn.Sequential(nn.AvgPool1d(3, 1, padding=1, count_include_pad=False),
                          nn.GroupNorm(1, 1))
    e = refusal(model)
    assert [p.kind for p in e.problems] == [CONVERTER, MODEL]
    lines = str(e).splitlines()
    assert lines[0].endswith(": 1 reason in the model itself, 1 converter limit (2 ops)"), lines
    assert lines[1].startswith("  - in the model: ") and "GroupNorm" in lines[1], lines
    assert lines[3].startswith("  - converter limit: ") and "count_include_pad" in lines[3]
    assert e.verdict == "REFUSED: 1 reason in the model itself, 1 converter limit"


def test_a_call_site_may_say_whose_reason_it_is():
    assert Problem("x", "is odd", "fix it").kind == CONVERTER
    assert Problem("x", "is odd", "fix it", kind=MODEL).kind == MODEL
    assert Problem("x", "is bidirectional: it reads the sequence backwards", "f").kind == MODEL


class BatchLoop(nn.Module):
    def forward(self, x):
        for _ in range(x.shape[0]):  # Python on the batch size: the trace stops here
            x = x + 1
        return x


def test_python_the_trace_cannot_follow_is_a_converter_limit_at_a_relative_path(monkeypatch):
    monkeypatch.chdir(ROOT)
    e = refusal(BatchLoop())
    text = str(e)
    here = os.path.relpath(__file__, ROOT)
    assert re.search(re.escape(here) + r":\d+ `for _ in range\(x.shape\[0\]\):", text), text
    assert str(ROOT) not in text
    assert e.verdict.startswith("REFUSED: 1 converter limit")


def test_installed_packages_are_named_from_the_package():
    site = "/home/u/.venv/lib/python3.11/site-packages/encodec/modules/conv.py"
    e = ConversionError(f"cannot trace SEANetEncoder at {site}:85 `assert padding_left >= 0`")
    assert str(e) == "cannot trace SEANetEncoder at encodec/modules/conv.py:85 `assert " \
                     "padding_left >= 0`"
    p = Problem(f"node `pad`, `pad`, {site}:85 `x`", "pads", "fix")
    assert p.where == "node `pad`, `pad`, encodec/modules/conv.py:85 `x`"
    assert short_path("/usr/lib/python3/dist-packages/torch/nn/f.py") == "torch/nn/f.py"
    assert short_path("/work/proj/models/net.py", cwd="/work/proj") == "models/net.py"
    assert short_path("/opt/other/net.py", cwd="/work/proj") == "/opt/other/net.py"


def test_where_is_taken_apart_into_node_op_module_and_source():
    p = place("node `mean_3`, `.mean()` in module `masker.TCN.1.norm` (GlobLN), norms.py:14 "
              "`mean = x.mean(dim=dims, keepdim=True)`")
    assert (p.node, p.op, p.module, p.cls) == ("mean_3", "`.mean()`", "masker.TCN.1.norm",
                                               "GlobLN")
    assert p.source == "norms.py:14 `mean = x.mean(dim=dims, keepdim=True)`"
    m = place("node `enc_3`, module `enc.3` (GroupNorm), net.py:9 `h = n(h)`")
    assert (m.op, m.module, m.cls) == ("", "enc.3", "GroupNorm")
    assert place("the model's output").module == "the model's output"


def streamed() -> sw.StreamingModule:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv1d(1, 4, 5), nn.GELU(), nn.Conv1d(4, 4, 1), nn.ReLU(),
                          nn.Conv1d(4, 1, 3, padding=1), nn.ReLU())
    return sw.convert(model.double(), 100 * torch.randn(2, 1, 64, dtype=torch.float64),
                      fuse_frames=False)


def test_per_frame_rows_fold_into_one_line_and_every_row_is_kept():
    r = streamed().report
    assert r is not None
    short, full = str(r), r.text(ops=True)
    frame_rows = [o for o in r.ops if o.how.startswith("per frame")]
    assert len(frame_rows) == 3
    assert "3 per-frame ops (ReLU 2, GELU 1), no state (--ops lists every row)" in short, short
    assert "(ReLU)" not in short and "(GELU)" not in short
    assert "(Conv1d)" in short  # windows keep their rows
    assert full.count("(ReLU)") == 2 and "(GELU)" in full and "per-frame ops" not in full
    d = r.to_dict()
    assert len(d["ops"]) == len(r.ops) == 6 and d["verdict"] == r.verdict()


def test_the_report_opens_with_a_verdict_and_states_the_error_of_the_scale():
    r = streamed().report
    assert r is not None
    r.dtype = "float64"
    first = str(r).splitlines()[0]
    assert re.fullmatch(r"OK: streams exactly \(float64 error \d\.\de-\d+ of the output scale\)"
                        r", latency \d+ frames, \d+(\.\d)? (B|KiB) state per stream", first), first
    assert f"latency {r.latency_frames:g} frames, {r.state_bytes} B state" in first
    assert f"max error {r.max_abs_error / r.output_scale:.1e} of the output scale" in str(r)


def report(**kw) -> ConvertReport:
    base = {"model": "M", "input_shape": [1, 1, 8], "time_axis": 2, "output_shape": [1, 1, 8],
            "out_time_axis": 2, "stride": "1", "latency_frames": 3.0, "receptive_field": 7,
            "state_bytes": 12 * 1024}
    return ConvertReport(**{**base, **kw})


def test_verdicts_for_failed_and_unverified_conversions():
    ok = report(verified=True, trials=3, max_abs_error=2e-15, output_scale=4.0, tolerance=1e-10,
                sample_rate=1000.0)
    assert ok.verdict() == ("OK: streams exactly (error 5.0e-16 of the output scale), latency 3 "
                            "frames (3.00 ms at 1000 Hz), 12.0 KiB state per stream")
    bad = report(verified=True, trials=3, max_abs_error=0.5, output_scale=4.0, tolerance=1e-5)
    assert bad.verdict().startswith("FAILED: the stream differs from the model by 1.2e-01 of")
    assert "verified             FAIL" in str(bad)
    small = report(verified=True, trials=3, max_abs_error=1e-7, output_scale=0.25,
                   tolerance=1e-5)  # passes: the tolerance is of max(scale, 1)
    assert small.verdict().startswith("OK: streams exactly (error 4.0e-07 of the output scale)")
    zero = report(verified=True, trials=3, max_abs_error=0.0, output_scale=0.0, tolerance=1e-5)
    assert "(error 0.0e+00 absolute (the output is zero))" in zero.verdict()
    assert report().verdict().startswith("CONVERTED, NOT VERIFIED: latency 3 frames")
