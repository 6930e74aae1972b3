"""The exported-models benchmark on a tiny run: both models exported, both checked against the
vendors' own models, JSON and PNG written (no timing thresholds)."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("onnxruntime", reason="the export extra (pip install -e .[export]) is absent")
pytest.importorskip("silero_vad", reason="silero-vad is not installed")
pytest.importorskip("omegaconf", reason="pesto-pitch's checkpoints need omegaconf")

from streamwise.bench.exported_models import run  # noqa: E402


def test_exported_models_bench_checks_outputs_and_writes_report(tmp_path):
    result = run(tmp_path, rounds=2, seconds=0.3)
    data = json.loads((tmp_path / "exported_models.json").read_text())
    assert (tmp_path / "exported_models.png").stat().st_size > 5_000
    assert data == json.loads(json.dumps(result))
    s, p = data["silero_vad"], data["pesto"]
    assert s["chunk"] == 512 and s["chunks"] == int(0.3 * 16000) // 512
    assert set(s["ms_per_chunk"]) == {"streamwise_onnx", "vendor_onnx"}
    assert all(len(v) == 2 and min(v) > 0 for v in s["ms_per_chunk_rounds"].values())
    # the exported stream gives the vendor ONNX model's probabilities
    assert s["equal_to_1e-5"] and s["max_abs_error_vs_vendor"] <= 1e-5
    assert s["max_abs_error_vs_offline_torch"] <= 1e-5
    assert p["chunk"] == 480 and p["chunks"] == 30
    assert set(p["ms_per_chunk"]) == {"streamwise_onnx", "vendor_streaming"}
    e = p["max_error_vs_vendor"]
    assert e["argmax_flips"] == 0 and e["activations"] < 1e-3 and e["confidence"] < 1e-5
    assert e["pitch"] < 1e-3  # semitones
