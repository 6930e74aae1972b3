"""The shipped recogniser exported to ONNX at 160 ms chunks gives the eager transcript
(onnxruntime beside the eager stream, the bench's own comparison)."""

import pytest

from streamwise.bench.asr import run_exported
from streamwise.speech.recognizer import load_recognizer
from streamwise.speech.streams import timed_streams

pytest.importorskip("onnxruntime", reason="needs onnxruntime (the export extra)")


def test_exported_recogniser_transcribes_like_eager(tmp_path):
    model = load_recognizer(chunk=4)
    streams = list(timed_streams(2, "test", seed=21, words=(3, 4)))
    res = run_exported(model, streams, tmp_path)
    assert res["transcripts_equal"] == res["streams"] == 2
    assert res["max_abs_logp_diff"] < 1e-2  # float32 log-softmax of very unlikely labels
    assert res["rtf_onnx"] > 0 and res["rtf_eager"] > 0
    assert (tmp_path / "asr.onnx").exists()
