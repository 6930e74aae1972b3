import json

import torch

from streamwise.bench.conv import WindowRecompute, run_conv_bench
from streamwise.models.seanet import seanet


def test_window_recompute_baseline_gives_the_offline_output():
    model = seanet(base=8, bottleneck=16).eval()
    x = torch.randn(1, 1, 640)
    w = WindowRecompute(model)
    with torch.inference_mode():
        y = torch.cat([w.push(x[..., a : a + 37]) for a in range(0, 640, 37)], -1)
        ref = model(x)
    n = y.shape[-1]
    assert n == 640 - w.lookahead
    torch.testing.assert_close(y, ref[..., :n], atol=1e-5, rtol=1e-5)


def test_bench_smoke_writes_json_and_png(tmp_path):
    # a tiny model and onnx only, so the export before the rounds takes seconds, not minutes;
    # the time budget must let every method pass its warm-up even on a loaded machine
    model = seanet(base=8, bottleneck=16).eval()
    result = run_conv_bench(tmp_path, seconds=0.2, budget_s=2.0, chunks=(2, 16), rounds=1,
                            progress=False, model=model, runtimes=("onnx",))
    data = json.loads((tmp_path / "conv.json").read_text())
    assert (tmp_path / "conv.png").stat().st_size > 5_000
    rows = {(r["method"], r["chunk"]): r for r in data["rows"]}
    for m in ("streamwise", "onnx", "window", "cached_conv"):
        for c in (2, 16):
            assert rows[(m, c)]["samples"] > 0, (m, c)
    # 2 is not a multiple of the period: pushes of 2 accumulate to the exported chunk
    assert rows[("onnx", 2)]["buffered_to"] == model.period
    assert rows[("cached_conv", 2)]["buffered_to"] == model.period
    assert "buffered_to" not in rows[("onnx", 16)] and "buffered_to" not in rows[("streamwise", 2)]
    for r in data["rows"]:
        if r.get("samples") and not r["method"].startswith("cached_conv"):
            assert r["max_abs_error"] < 1e-4, r  # every method produced the offline output
    assert "16" in result["ratios"] and "onnx_streamwise_over_cached_conv_speed" in (
        result["ratios"]["16"])
    assert set(result["targets"]) == {"2", "16"}
    assert result["targets"]["2"]["best"] in ("streamwise", "onnx")


def test_refused_export_is_a_skipped_row():
    from streamwise.bench.conv_exported import ExportedRows, export_chunk

    assert export_chunk(16, 2) == 16 and export_chunk(16, 160) == 160 and export_chunk(4, 6) == 8
    rows = ExportedRows(seanet(base=8, bottleneck=16).eval(), (16,), 1, ("nope",), False)
    assert rows.maker("nope", 16) is None
    assert "runtime must be one of" in str(rows.status("nope", 16)[1])


def test_window_recompute_handles_strided_models():
    import streamwise as sw

    torch.manual_seed(0)
    model = sw.Sequential(sw.Conv1d(1, 4, 5, padding="same"), sw.MaxPool1d(4),
                          sw.Conv1d(4, 2, 3, stride=2, padding=1)).eval()
    x = torch.randn(1, 1, 400)
    w = WindowRecompute(model)
    with torch.inference_mode():
        y = torch.cat([w.push(x[..., a : a + 13]) for a in range(0, 400, 13)], -1)
        ref = model(x)
    assert y.shape[1] == 2 and y.shape[-1] >= ref.shape[-1] - 3
    torch.testing.assert_close(y, ref[..., : y.shape[-1]], atol=1e-5, rtol=1e-5)
