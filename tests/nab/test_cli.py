import json
import math

import pytest

from streamwise.cli import main


@pytest.fixture()
def tiny_nab(tmp_path, monkeypatch):
    """A two-file NAB-shaped corpus: one window each, a spike inside it."""
    root = tmp_path / "shared" / "data" / "nab"
    (root / "data" / "demo").mkdir(parents=True)
    (root / "config").mkdir()
    (root / "labels").mkdir()
    windows = {}
    for name in ("a.csv", "b.csv"):
        rows = ["timestamp,value"]
        for i in range(400):
            v = math.sin(i / 5) + (8.0 if i == 300 else 0.0)
            rows.append(f"2024-01-01 {i // 60:02d}:{i % 60:02d}:00,{v}")
        (root / "data" / "demo" / name).write_text("\n".join(rows) + "\n")
        windows[f"demo/{name}"] = [["2024-01-01 04:50:00.000000", "2024-01-01 05:10:00.000000"]]
    (root / "labels" / "combined_windows.json").write_text(json.dumps(windows))
    cost = {"tpWeight": 1.0, "fpWeight": 0.11, "fnWeight": 1.0, "tnWeight": 1.0}
    profiles = {p: {"CostMatrix": cost} for p in
                ("standard", "reward_low_FP_rate", "reward_low_FN_rate")}
    (root / "config" / "profiles.json").write_text(json.dumps(profiles))
    monkeypatch.setenv("STREAMWISE_SHARED", str(tmp_path / "shared"))
    return tmp_path


def test_nab_run_then_score(tiny_nab, capsys):
    out = tiny_nab / "results"
    assert main(["nab", "run", "--detector", "windowedGaussian", "--out", str(out),
                 "--quiet"]) == 0
    assert (out / "windowedGaussian" / "demo" / "windowedGaussian_a.csv").exists()
    capsys.readouterr()
    assert main(["nab", "score", "--results", str(out), "--detector", "windowedGaussian"]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert set(scores) == {"standard", "reward_low_FP_rate", "reward_low_FN_rate"}
    assert scores["standard"] > 50  # the spike sits early in each window


def test_nab_run_refuses_unknown_detectors(tiny_nab, capsys):
    assert main(["nab", "run", "--detector", "nope", "--out", str(tiny_nab)]) == 2
    assert "unknown detector" in capsys.readouterr().err
