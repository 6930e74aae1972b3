import json

from streamwise.cli import main


def test_demo_runs_end_to_end(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--quiet"]) == 0
    text = capsys.readouterr().out
    result = json.loads((tmp_path / "demo.json").read_text())
    assert (tmp_path / "demo.png").stat().st_size > 10_000
    assert result["max_rel_error"] <= 1e-5
    assert result["state_bytes"] <= result["state_bytes_bound"]
    assert result["chunk_samples"] == 160
    assert result["snr_out_db"] > result["snr_in_db"] + 2  # the shipped weights do denoise
    for words in ("equivalence", "lookahead", "state", "real-time factor"):
        assert words in text
