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
    # the time budget must let every method pass its warm-up even on a loaded machine
    result = run_conv_bench(tmp_path, seconds=0.2, budget_s=2.0, chunks=(1, 16),
                            rounds=1, progress=False)
    data = json.loads((tmp_path / "conv.json").read_text())
    assert (tmp_path / "conv.png").stat().st_size > 5_000
    methods = {(r["method"], r["chunk"]) for r in data["rows"]}
    assert {("streamwise", 1), ("window", 16), ("cached_conv", 16)} <= methods
    skipped = [r for r in data["rows"] if r.get("skipped")]
    assert skipped and skipped[0]["chunk"] == 1  # cached_conv cannot take 1-sample chunks
    for r in data["rows"]:
        if r.get("samples") and r["method"] != "cached_conv":
            assert r["max_abs_error"] < 1e-4  # every method produced the offline output
    assert "16" in result["ratios"]


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
