"""Bounded KV for a transformers language model: attention sinks + a window (StreamingLLM).

``StreamingCache(model, Sinks(4, 60))`` is a ``transformers.Cache``: pass it as
``past_key_values`` and the model keeps 4 sinks and the last 60 tokens, however long it runs.
One-token steps write into a preallocated ring (``hf/ring.py``).  A tiny random Llama stands in
for a real model (``streamwise demo llm`` and ``streamwise bench llm-cache`` use SmolLM2-135M).
Here the bounded cache decodes 300 tokens; its logits are compared with a full cache on the
first 64 (identical: nothing has been evicted yet) and the cache size is printed as it runs.
"""

import torch
from transformers import DynamicCache, LlamaConfig, LlamaForCausalLM

from streamwise.attention import Sinks
from streamwise.hf import StreamingCache

torch.manual_seed(0)
cfg = LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, vocab_size=100,
                  max_position_embeddings=4096)
model = LlamaForCausalLM(cfg).eval()
tokens = torch.randint(0, 100, (1, 300))
bounded = StreamingCache(model, Sinks(4, 60, positions="absolute"))
full = DynamicCache()
worst = 0.0
with torch.inference_mode():
    for i in range(tokens.shape[1]):
        x = tokens[:, i:i + 1]
        a = model(input_ids=x, past_key_values=bounded).logits
        if i < 64:  # the full cache only while nothing is evicted
            b = model(input_ids=x, past_key_values=full).logits
            worst = max(worst, float((a - b).abs().max()))
        if i in (10, 63, 64, 299):
            print(f"token {i:3d}: bounded cache holds {bounded.stored_tokens()} entries")
print(f"first 64 tokens, bounded vs full cache: max |logit difference| {worst:.2e}")
