"""``streamwise.bench.stream_dit`` at tiny settings: the report's keys, finite numbers, files."""

import json
import math
import shutil

import pytest

from streamwise.bench.stream_dit import VARIANTS, run

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None,
                                reason="espeak-ng (Debian package) is not installed")


def test_stream_dit_bench_tiny(tmp_path, capsys):
    res = run(tmp_path, steps=15, chunks=10, n_train=4, dim=16, layers=1, batch=6,
              repeats=1, progress=False)
    assert json.loads((tmp_path / "stream_dit.json").read_text()) == json.loads(json.dumps(res))
    assert (tmp_path / "stream_dit.png").stat().st_size > 10_000
    assert set(res["variants"]) == {*VARIANTS, "real_speech"}
    buffer = res["config"]["buffer"]
    for name in VARIANTS:
        r = res["variants"][name]
        for key in ("discontinuity", "discontinuity_prompt_to_stream", "drift_first_quarter",
                    "drift_last_quarter", "drift_mean", "speaker_match", "stats_gap",
                    "delta_ratio", "heldout_loss"):
            assert math.isfinite(r[key]) and r[key] >= 0, (name, key)
        assert len(r["drift_curve"]) == 10
        assert r["calls"] == 10 + buffer - 1  # one model call per chunk
    assert res["variants"]["short+anchor"]["state_bytes"] > res["variants"]["buffer"][
        "state_bytes"]
    assert 0.5 < res["variants"]["real_speech"]["discontinuity"] < 2.0
    assert "short+anchor" in capsys.readouterr().out
    with pytest.raises(ValueError, match=r"prompt \(5\) must be >= buffer \+ anchor \(8\)"):
        run(tmp_path, prompt=5, progress=False)
