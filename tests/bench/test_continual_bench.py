"""``streamwise bench continual`` end to end on small data: both experiments, every learner,
JSON + PNGs, and the measures keep the properties they must have."""

import json

from streamwise.bench.continual import run


def test_continual_bench_small(tmp_path):
    res = run(tmp_path, progress=False, limit=400, keys=32)
    assert json.loads((tmp_path / "continual.json").read_text()) == json.loads(json.dumps(res))
    for png in ("continual_digits.png", "continual_tasks.png"):
        assert (tmp_path / png).stat().st_size > 10_000
    digits = {r["learner"]: r for r in res["digits_class_incremental"]["reports"]}
    assert set(digits) == {"fine-tuned MLP", "DKVB", "River Hoeffding tree"}
    assert digits["fine-tuned MLP"]["forgetting"] > digits["DKVB"]["forgetting"]
    assert res["digits_class_incremental"]["dkvb_fit_keys_macs"] > 0
    stream = {r["learner"]: r for r in res["task_stream"]["reports"]}
    for r in stream.values():
        assert len(r["accuracy"]) == 8 and len(r["scratch"]) == 8
        assert 0 <= r["average_accuracy"] <= 1 and r["forward_transfer"] is not None
    assert stream["River Hoeffding tree"]["macs"] is None and stream["DKVB"]["macs"][-1] > 0
