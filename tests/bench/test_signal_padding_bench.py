"""``streamwise.bench.signal_padding`` briefly trained: streamed and windowed outputs differ only
in the edge zone, and every deviation is under its bound."""

import json

import pytest

from streamwise.bench.signal_padding import run
from streamwise.learn.series import nab_root

pytestmark = pytest.mark.skipif(not (nab_root() / "data").exists(),
                                reason="the NAB corpus in ../shared/data/nab is absent")


def test_signal_padding_bench_small(tmp_path, capsys):
    res = run(tmp_path, window=48, hop=12, steps=20, progress=False)
    assert json.loads((tmp_path / "signal_padding.json").read_text()) == json.loads(
        json.dumps(res))
    assert (tmp_path / "signal_padding.png").stat().st_size > 10_000
    assert res["receptive_radius"] == 9 and len(res["rows"]) == 4
    for row in res["rows"]:
        assert row["deviation_outside_edge_zone"] < 1e-12  # zeros reach no output there
        assert 0 < row["max_deviation"] <= row["max_bound"]
        assert row["min_bound_over_deviation"] >= 1.0  # the bound holds output by output
        assert 0 < row["nrmse_stream_vs_windowed"] < 1
    assert "NRMSE stream vs windowed" in capsys.readouterr().out
