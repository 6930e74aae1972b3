"""``streamwise.bench.retrieval`` on the first ratings of MovieLens-100K: every model, JSON +
PNG, metrics in range."""

import json

from streamwise.bench.retrieval import run


def test_retrieval_bench_small(tmp_path, capsys):
    res = run(tmp_path, limit=1200, progress=False, epochs=1)
    assert json.loads((tmp_path / "retrieval.json").read_text()) == json.loads(json.dumps(res))
    assert (tmp_path / "retrieval.png").stat().st_size > 10_000
    assert res["setting"]["interactions"] == 1200 and res["setting"]["refit_period"] == 300
    assert len(res["models"]) == 4
    for m in res["models"].values():
        for part in ("all", "after 300"):
            assert 0 <= m[part]["ndcg@10"] <= m[part]["recall@10"] <= 1
        assert len(m["curve"]["end"]) == 10
    assert "popularity" in capsys.readouterr().out
