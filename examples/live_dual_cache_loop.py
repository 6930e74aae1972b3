"""A language model that keeps reading while it writes: one dual cache, two position groups.

Every call takes all input tokens that arrived since the last call plus the last written token,
in one chunk (Think-as-You-See's decoupled input encoding, StreamingThinker's parallel caches,
Speak While Watching's parallel perception and generation).  Input and output are two segments
of one cache, each with its own sinks + window, and count positions apart (Group Position
Encoding): input 0, 1, 2, ... and output from an offset.  A tiny random Llama stands in for a
real model here (``streamwise live`` runs SmolLM2-135M on Pride and Prejudice).
"""

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from streamwise.live.loop import LiveLoop, dual_cache

torch.manual_seed(0)
cfg = LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, vocab_size=100,
                  max_position_embeddings=4096)
model = LlamaForCausalLM(cfg).eval()
model.config._attn_implementation = "eager"
loop = LiveLoop(model, [1, 2, 3], cache=dual_cache(model, input_window=32, output_window=16,
                                                   sinks=2, offset=1000))
gen = torch.Generator().manual_seed(1)
cache = loop.cache
cache.segment = ["input"] * 3 + ["output"]
print("positions of a chunk of 3 input tokens and 1 output token before any call:",
      cache.position_ids(4)[0].tolist())
written, most = [], 0
for call in range(200):
    arrived = [int(t) for t in torch.randint(0, 100, (int(call % 3 == 0) * 4,), generator=gen)]
    written.append(loop.step(arrived))  # reads what arrived and writes one token, one call
    most = max(most, cache.stored_tokens())
print(f"{loop.calls} calls: read {sum(4 for c in range(200) if c % 3 == 0)} input tokens while "
      f"writing {len(written)}; the cache never held more than {most} entries "
      f"(bound {cache.policy.bound})")
cache.segment = ["input", "output"]
print("next input and output positions:", cache.position_ids(2)[0].tolist())
