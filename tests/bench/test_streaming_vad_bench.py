"""The silero-vad latency-aware scoring benchmark on a short scene."""

import json

import numpy as np

from streamwise.bench.streaming_vad import run, scene


def test_the_scene_truth_is_silent_in_the_gaps():
    clips = {"a": torch_tone(0.5), "b": torch_tone(0.3)}
    x, truth = scene(clips, 512, repeats=1)
    assert x.shape[-1] == truth.size * 512
    assert 0.2 < truth.mean() < 0.8 and not truth[0]  # the scene opens with a gap


def torch_tone(seconds):
    import torch

    t = torch.arange(int(seconds * 16000)) / 16000
    return torch.sin(2 * np.pi * 440 * t)


def test_a_short_run_reports_f1_per_chunk_and_compute(tmp_path):
    r = run(tmp_path, chunks=(512, 8192), scales=(0.0, 100.0), max_seconds=8.0, progress=False)
    saved = json.loads((tmp_path / "streaming_vad.json").read_text())
    assert len(saved["runs"]) == 4 and 0 < saved["offline_f1"] <= 1
    by = {(x["chunk"], x["compute_scale"]): x for x in r["runs"]}
    assert all(x["same_outputs_as_offline"] < 1e-4 for x in r["runs"])  # streaming is exact
    assert by[(512, 0.0)]["delay_ms_p50"] == 0.0 and by[(8192, 0.0)]["delay_ms_p50"] > 100
    assert by[(512, 100.0)]["delay_ms_p50"] > 0
    # a frame emitted when it ends, with free compute, is scored as offline
    assert abs(by[(512, 0.0)]["streaming_f1"] - r["offline_f1"]) < 1e-9
    assert (tmp_path / "streaming_vad.png").stat().st_size > 10_000
