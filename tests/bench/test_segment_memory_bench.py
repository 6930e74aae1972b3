"""The Think While Watching benchmark on a few sentences: report keys, lag, exactness."""

import json

import pytest

from streamwise.bench.segment_memory import ingestion_lag, interleaved, overlapped, run
from streamwise.core.data_paths import shared_data

pytestmark = pytest.mark.skipif(
    not (shared_data() / "text" / "pride_and_prejudice.txt").exists(),
    reason=f"needs the shipped text under {shared_data()}")


def test_the_plans_take_every_entry_once_and_lag_as_counted():
    segs = [["a", "b", "c"], ["d"], ["e", "f"]]
    over, inter = overlapped(segs, 2), interleaved(segs, 2)
    for calls in (over, inter):
        flat = [e for c in calls for e in c]
        assert [w for n, w in flat if n.startswith("watch")] == list("abcdef")
        assert sum(n == "think_end" for n, _ in flat) == 3
    assert over[0] == [("watch", "a")] and over[3] == [("watch_end", "d"), ("think", "#note0")]
    assert ingestion_lag(segs, [[("watch", w)] for w in "abcdef"]) == 0.0
    assert ingestion_lag(segs, inter) == pytest.approx((0 + 0 + 0 + 2 + 4 + 4) / 6)


def test_a_small_run_reports_and_streams_exactly(tmp_path):
    r = run(tmp_path, sentences_n=6, notes=3, dim=16, layers=1, progress=False)
    saved = json.loads((tmp_path / "segment_memory.json").read_text())
    assert set(saved["variants"]) == {"overlapped, segment memory", "overlapped, full",
                                      "interleaved, segment memory", "interleaved, full"}
    v = r["variants"]
    assert v["overlapped, segment memory"]["ingestion_lag_calls"] < \
        v["interleaved, segment memory"]["ingestion_lag_calls"]
    assert v["overlapped, segment memory"]["entries_max"] < v["overlapped, full"]["entries_max"]
    assert r["stream_vs_offline_max_abs"] < 1e-5 and r["full_mask_is_causal"]
    assert (tmp_path / "segment_memory.png").stat().st_size > 10_000
