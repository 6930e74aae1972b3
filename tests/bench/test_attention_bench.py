"""The attention benchmark runs end to end on a short stream and writes its report."""

import json

from streamwise.bench.attention import run_attention_bench


def test_attention_bench_writes_json_and_png(tmp_path):
    r = run_attention_bench(str(tmp_path), tokens=400, dim=16, heads=2, layers=1, bucket=100)
    assert (tmp_path / "attention.png").stat().st_size > 0
    saved = json.loads((tmp_path / "attention.json").read_text())
    assert set(saved["policies"]) == set(r["policies"])
    for name in ("sinks 4+252", "window 256", "linear absorb 256"):
        # bounded caches: after the window is full the state no longer grows
        assert saved["policies"][name]["state_bytes"][-1] == saved["policies"][name][
            "state_bytes"][-2]
