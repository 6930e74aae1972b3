"""``streamwise.bench.stream_bp`` at toy size: a model trained on tinyshakespeare, every method
measured in its own process, the same loss from all three, JSON + PNG."""

import json

import pytest

from streamwise.bench.stream_bp import METHODS, run
from streamwise.core.data_paths import shared_data

pytestmark = pytest.mark.skipif(not (shared_data() / "text" / "tinyshakespeare.txt").exists(),
                                reason="../shared/data/text/tinyshakespeare.txt is absent")


def test_stream_bp_bench_small(tmp_path, capsys):
    res = run(tmp_path, budget=1e6, start=96, longest=96, chunk=32, steps=3, progress=False)
    assert json.loads((tmp_path / "stream_bp.json").read_text()) == json.loads(json.dumps(res))
    assert (tmp_path / "stream_bp.png").stat().st_size > 10_000
    assert set(res["rows"]) == set(METHODS)
    losses = [r["loss"] for m in METHODS for r in res["rows"][m]]
    assert len(losses) == 3 and max(losses) - min(losses) < 1e-5  # one gradient, three ways
    assert res["longest_within_budget"] == {m: 96 for m in METHODS}
    for rows in res["rows"].values():
        assert all(r["peak_mib"] >= 0 and r["seconds"] > 0 for r in rows)
    assert "longest within" in capsys.readouterr().out
