"""``streamwise.bench.laser`` on a short stream: layer-wise alignment exact, the others not."""

import json

from streamwise.bench.laser import SETTINGS, run


def test_laser_bench_small(tmp_path, capsys):
    res = run(tmp_path, length=300)
    assert json.loads((tmp_path / "laser.json").read_text()) == json.loads(json.dumps(res))
    assert (tmp_path / "laser.png").stat().st_size > 10_000
    assert len(res["rows"]) == 3 * len(SETTINGS)
    by = {(r["window"], r["hop"], r["align"]): r["max_relative_error"] for r in res["rows"]}
    for w, h in SETTINGS:
        assert by[w, h, "layer-wise (LASER)"] < 1e-12
        assert by[w, h, "one scale per window"] > 0.01
        assert by[w, h, "none"] > by[w, h, "one scale per window"]
    assert "layer-wise" in capsys.readouterr().out
