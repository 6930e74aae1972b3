"""Tiny random-initialised decoders of the four architectures (no downloads)."""

from __future__ import annotations

import pytest
import torch

transformers = pytest.importorskip("transformers", reason="streamwise[hf] extra not installed")

COMMON = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
              vocab_size=100, max_position_embeddings=256)


def tiny(arch: str, attn: str = "eager") -> torch.nn.Module:
    """A 2-layer random model; eager attention (SDPA on CPU does not check K/V lengths)."""
    t = transformers
    torch.manual_seed(0)
    if arch == "llama":
        cfg = t.LlamaConfig(num_key_value_heads=2, **COMMON)
        model = t.LlamaForCausalLM(cfg)
    elif arch == "gpt_neox":
        model = t.GPTNeoXForCausalLM(t.GPTNeoXConfig(rotary_pct=0.25, **COMMON))
    elif arch == "qwen2":
        model = t.Qwen2ForCausalLM(t.Qwen2Config(num_key_value_heads=2, **COMMON))
    else:
        model = t.MistralForCausalLM(t.MistralConfig(num_key_value_heads=2, **COMMON))
    model.config._attn_implementation = attn
    model.generation_config.eos_token_id = None  # compare generate with loops token for token
    return model.eval()


ARCHS = ["llama", "gpt_neox", "qwen2", "mistral"]
