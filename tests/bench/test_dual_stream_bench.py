"""``streamwise.bench.dual_stream`` at toy size: the report's keys, finite numbers, equal sizes."""

import json
import math

from streamwise.bench.dual_stream import VARIANTS, run


def test_dual_stream_bench_small(tmp_path, capsys):
    res = run(tmp_path, steps=4, dim=16, heads=2, layers=1, length=16, batch=4, eval_every=2,
              val_windows=16, progress=False)
    assert json.loads((tmp_path / "dual_stream.json").read_text()) == json.loads(json.dumps(res))
    assert (tmp_path / "dual_stream.png").stat().st_size > 10_000
    assert set(res) == {"config", "paper_ratio_vs_dense", "variants"}
    assert tuple(res["variants"]) == VARIANTS
    base = res["variants"]["standard"]["parameters"]
    for r in res["variants"].values():
        for key in ("val_loss", "ratio_vs_standard", "ratio_vs_dense", "train_seconds",
                    "stream_max_abs_error", "stream_max_rel_error"):
            assert math.isfinite(r[key]), key
        assert abs(r["parameters"] / base - 1) < 0.02
        assert r["curve"]["step"] == [2, 4] and len(r["curve"]["val"]) == 2
        assert r["stream_max_rel_error"] < 1e-5
    assert res["variants"]["standard"]["ratio_vs_standard"] == 1.0
    assert "kronecker" in capsys.readouterr().out
