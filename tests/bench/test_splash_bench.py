"""``streamwise.bench.splash`` on the first ratings of MovieLens-100K: every model, JSON + PNG,
NDCG@10 in range."""

import json

import numpy as np

from streamwise.bench.splash import run


def test_splash_bench_small(tmp_path, capsys):
    res = run(tmp_path, limit=15_000, progress=False)
    assert json.loads((tmp_path / "splash.json").read_text()) == json.loads(json.dumps(res))
    assert (tmp_path / "splash.png").stat().st_size > 10_000
    assert set(res["ndcg@10"]) == {"persistence", "moving average (last 7)", "EMA",
                                   "global mean", "SPLASH", "MLP, all features"}
    assert res["setting"]["scored_instances"] > 50
    for v in res["ndcg@10"].values():
        assert 0 < v <= 1
    assert all(len(v) == len(res["per_period"]["period"]) for v in res["per_period"].values())
    assert np.isfinite(res["per_period"]["SPLASH"]).all()
    assert "SPLASH" in capsys.readouterr().out
