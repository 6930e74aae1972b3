"""``streamwise.bench.stream_fm`` at tiny settings: the report's keys, finite numbers, and the
latency split (algorithmic + compute = total; the flow model's lookahead grows with its steps)."""

import json
import math

import pytest

from streamwise.bench.stream_fm import run, sentences
from streamwise.core.data_paths import shared_data

pytestmark = pytest.mark.skipif(
    not (shared_data() / "text" / "pride_and_prejudice.txt").exists(),
    reason="the training text in ../shared/data/text is absent")


def test_sentences_are_not_the_demo_sentence():
    from streamwise.assets import SPEECH_TEXT

    got = sentences(5, skip=SPEECH_TEXT)
    assert len(got) == 5 and SPEECH_TEXT not in got and all(50 <= len(s) <= 150 for s in got)


def test_stream_fm_bench_tiny(tmp_path, capsys):
    res = run(tmp_path, steps=3, ode_steps=(1, 2), sentence_count=2, batch=2, seconds=0.25,
              width=8, excerpt_s=0.25, progress=False)
    assert json.loads((tmp_path / "stream_fm.json").read_text()) == json.loads(json.dumps(res))
    assert (tmp_path / "stream_fm.png").stat().st_size > 10_000
    assert set(res["models"]) == {"seanet", "flow_1", "flow_2", "flow_mid_1"}
    assert math.isfinite(res["snr_in_db"]) and abs(res["snr_in_db"] - 5.0) < 0.01
    for row in res["models"].values():
        for key in ("snr_out_db", "snr_gain_db", "algorithmic_ms", "compute_ms_p50",
                    "compute_ms_p99", "total_ms_p50", "total_ms_p99", "delay_samples"):
            assert math.isfinite(row[key]), key
        assert row["stream_passed"]
        assert row["total_ms_p50"] == pytest.approx(row["algorithmic_ms"] + row["compute_ms_p50"])
        assert row["algorithmic_ms"] == pytest.approx(
            (row["chunk_samples"] + row["delay_samples"]) / 16)
    flow1, flow2 = res["models"]["flow_1"], res["models"]["flow_2"]
    assert flow1["delay_samples"] == flow1["formula_delay_samples"] == 79 + 80
    assert flow2["delay_samples"] == flow2["measured_delay_samples"] == 79 + 2 * 80
    assert isinstance(res["flow_beats_seanet"], bool)
    assert "SEANet" in capsys.readouterr().out
    mid = res["models"]["flow_mid_1"]
    assert mid["network_calls_per_frame"] == 2 and mid["delay_samples"] == 79 + 2 * 80
