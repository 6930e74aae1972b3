"""The Stream2LLM benchmark end to end on a tiny random Llama and a word-level encoder."""

from __future__ import annotations

import json
import zlib

import pytest

pytest.importorskip("transformers", reason="streamwise[hf] extra not installed")

from streamwise.bench.stream2llm import run, sentences, workload  # noqa: E402
from tests.hf.conftest import tiny  # noqa: E402


def _encode(text: str) -> list[int]:
    return [zlib.crc32(w.encode()) % 100 for w in text.split()]


def test_workload_appends_corrects_and_swaps_passages():
    sents = sentences("Chapter 1\n" + " ".join(f"Sentence number {i} is here." for i in range(900)))
    texts = workload(sents, sessions=2, updates=12, start=2, passage=1, seed=0)
    assert [len(t) for t in texts] == [13, 13]
    grew = sum(len(b) > len(a) and b.startswith(a[: a.find("Transcript:")]) for ts in texts
               for a, b in zip(ts, ts[1:]))
    assert 0 < grew < 24                    # mostly appends, not only


def test_run_writes_the_report_and_reuse_prefills_less(tmp_path):
    res = run(tmp_path, loads=(0.5, 2.0), budgets=(0.5, 1.0), sessions=3, updates=3, k=4,
              chunk=16, start=1, passage=1, progress=False, model=tiny("llama"), encode=_encode)
    saved = json.loads((tmp_path / "stream2llm.json").read_text())
    assert (tmp_path / "stream2llm.png").stat().st_size > 0
    assert saved["requests"] == 12 and len(saved["runs"]) == 4
    for row in saved["runs"]:
        for mode in ("reuse", "recompute"):
            m = row[mode]
            for key in ("ttft_s_p50", "ttft_s_p90", "tokens_per_s", "prefilled", "preemptions",
                        "reused", "generated"):
                assert key in m
            assert m["generated"] == 12 * 4 and m["ttft_s_p90"] >= m["ttft_s_p50"] > 0
        assert row["reuse"]["prefilled"] < row["recompute"]["prefilled"]
        assert row["recompute"]["reused"] == 0 < row["reuse"]["reused"]
        assert row["ratios"]["prefilled_reuse_over_recompute"] < 1
        assert row["budget_tokens"] <= res["kv_total_tokens"]
    assert res["context_tokens_max"] < 256
