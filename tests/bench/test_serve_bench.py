"""The load benchmark's pieces on a tiny load: a server process, real-time clients, the report."""

from __future__ import annotations

import json

import numpy as np

from streamwise.assets import speech
from streamwise.bench.report import write_report
from streamwise.bench.serve import Server, _levels, held, plot, run_level, table


def test_levels_cover_the_floor():
    lv = _levels(240.0)
    assert lv[0] == 12 and lv[-1] == 240 and lv == sorted(set(lv))
    assert _levels(3.0)[0] == 1


def test_a_small_level_runs_and_is_reported(tmp_path):
    clip, _ = speech()
    audio = np.tile(clip.numpy().astype(np.float32), (1, 2))
    server = Server(["--checkpoint-every", "10"])
    try:
        r = run_level(server.url, "tiny_vad", 3, 1.0, audio, server)
    finally:
        server.stop()
    assert r["errors"] == 0 and r["chunks"] == r["expected"] == 3 * 50
    assert 0 < r["p50_ms"] <= r["p99_ms"]
    assert r["held"] == (r["p99_ms"] < 100.0)  # no timing threshold here: the rule, not the speed
    assert not server.tmp.exists(), "the benchmark's session store is cleaned up"
    result = {"p99_limit_ms": 100.0, "models": {"tiny_vad": {
        "n_floor": 240.0, "batching": [r], "no_batching": [r],
        "held_batching": held([r]), "held_no_batching": held([r]), "batching_ratio": 1.0}}}
    write_report(tmp_path, "serve", result, lambda p: plot(result, p), table(result))
    assert json.loads((tmp_path / "serve.json").read_text())["models"]["tiny_vad"]
    assert (tmp_path / "serve.png").stat().st_size > 10_000
    n = 3 if r["held"] else 0
    assert f"| tiny_vad | 240 | {n} | {n} | 1.00 |" in table(result)


def test_the_soak_with_sigkills_reports_every_chunk(tmp_path):
    from streamwise.bench.serve_soak import run_kill_soak

    clip, _ = speech()
    audio = np.tile(clip.numpy().astype(np.float32), (1, 3))
    r = run_kill_soak("tiny_vad", 3, 0.2, 5.0, audio, ["--checkpoint-every", "10"], tmp_path)
    assert r["kills"] == 2 and r["errors"] == 0, r["error_kinds"]
    assert r["answered"] == r["chunks"] == 3 * 600 and r["lost"] == r["duplicates"] == 0
    assert r["exact_streams"] == 3 and r["resumes"] >= 3
    assert sum(m["answered"] for m in r["per_minute"]) == r["answered"]
    saved = json.loads((tmp_path / "serve-faults.json").read_text())
    assert saved["per_minute"][0]["rss_mb"] > 0 and (tmp_path / "serve-faults.png").exists()


def test_the_slo_comparison_runs_a_server_with_slo_batching(tmp_path):
    clip, _ = speech()
    audio = np.tile(clip.numpy().astype(np.float32), (1, 2))
    server = Server(["--slo-batching", "--checkpoint-every", "10"])
    try:
        r = run_level(server.url, "tiny_vad", 4, 1.0, audio, server)
    finally:
        server.stop()
    assert r["errors"] == 0 and r["chunks"] == r["expected"] == 4 * 50
    result = {"p99_limit_ms": 100.0, "compare": "slo_batching", "models": {"tiny_vad": {
        "n_floor": 240.0, "batching": [r], "slo_batching": [r], "ratio": 1.0,
        "held_batching": held([r]), "held_slo_batching": held([r])}}}
    write_report(tmp_path, "serve", result, lambda p: plot(result, p), table(result))
    n = 4 if r["held"] else 0
    assert "held (slo batching)" in table(result)
    assert f"| tiny_vad | 240 | {n} | {n} | 1.00 |" in table(result)
