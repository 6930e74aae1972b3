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


def _rewrite_line(root, line_no, text):
    path = root / "shared" / "data" / "nab" / "data" / "demo" / "b.csv"
    lines = path.read_text().splitlines()
    lines[line_no - 1] = text
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("text, message", [
    ("2024-01-01 00:03:00,", "line 5 is not timestamp,value"),
    ("2024-01-01 00:03:00,nan", "line 5 has a non-finite value"),
    ("yesterday,1.0", "line 5 is not timestamp,value"),
])
def test_nab_run_names_the_bad_line(tiny_nab, capsys, text, message):
    _rewrite_line(tiny_nab, 5, text)
    out = tiny_nab / "results"
    assert main(["nab", "run", "--detector", "windowedGaussian", "--out", str(out),
                 "--quiet"]) == 2
    err = capsys.readouterr().err
    assert message in err and "b.csv" in err


def test_nab_score_names_missing_result_files(tiny_nab, capsys):
    out = tiny_nab / "results"
    assert main(["nab", "run", "--detector", "windowedGaussian", "--out", str(out),
                 "--quiet"]) == 0
    (out / "windowedGaussian" / "demo" / "windowedGaussian_b.csv").unlink()
    assert main(["nab", "score", "--results", str(out), "--detector", "windowedGaussian"]) == 2
    err = capsys.readouterr().err
    assert "1 of 2 result files missing" in err and "windowedGaussian_b.csv" in err


def test_nab_run_in_parallel_writes_the_same_results(tiny_nab):
    one, two = tiny_nab / "one", tiny_nab / "two"
    for out, jobs in ((one, "1"), (two, "2")):
        assert main(["nab", "run", "--detector", "htm", "--out", str(out), "--quiet",
                     "--jobs", jobs]) == 0
    for name in ("a.csv", "b.csv"):
        rel = f"htm/demo/htm_{name}"
        assert (one / rel).read_text() == (two / rel).read_text()


def test_nab_run_counts_timestamps_that_go_back(tiny_nab, capsys):
    _rewrite_line(tiny_nab, 5, "2024-01-01 00:01:00,1.0")
    out = tiny_nab / "results"
    assert main(["nab", "run", "--detector", "windowedGaussian", "--out", str(out),
                 "--quiet"]) == 0
    assert "1 rows with a timestamp earlier than the row before" in capsys.readouterr().out


def test_strict_loading_refuses_timestamps_that_go_back(tiny_nab):
    from streamwise.learn.series import load_series, nab_root

    _rewrite_line(tiny_nab, 5, "2024-01-01 00:01:00,1.0")
    with pytest.raises(ValueError, match="line 5 timestamp 2024-01-01 00:01:00 is before"):
        load_series("demo/b.csv", nab_root(), strict=True)


def test_nab_forecast_and_plot(tiny_nab, capsys):
    out = tiny_nab / "fc"
    assert main(["nab", "forecast", "--series", "demo/a.csv", "--warmup", "300", "--out",
                 str(out), "--forecasters", "neural,persistence", "--quiet"]) == 0
    summary = json.loads((out / "forecast.json").read_text())
    assert [r["forecaster"] for r in summary["runs"]] == ["neural", "persistence"]
    assert all(r["scored"] == 100 and r["nrmse"] > 0 for r in summary["runs"])
    assert (out / "forecast.png").stat().st_size > 10_000
    res = tiny_nab / "results"
    assert main(["nab", "run", "--detector", "windowedGaussian", "--out", str(res),
                 "--quiet"]) == 0
    png = tiny_nab / "plot.png"
    assert main(["nab", "plot", "--results", str(res), "--detectors", "windowedGaussian",
                 "--file", "demo/a.csv", "--out", str(png)]) == 0
    assert png.stat().st_size > 10_000
