"""StreamingVLM's cache: a short window for a fast stream (video frames) and sinks plus a long
window for a slow one (text), in one KV cache that never grows.

``Segments({"vision": Window(8), "text": Sinks(4, 60)})``: a burst of 2,000 vision frames does
not push the text out, and the cache stays at its bound however long the stream runs.
"""

import torch

from streamwise.attention import Segments, Sinks, StreamingAttention, Window

torch.manual_seed(0)
policy = Segments({"vision": Window(8), "text": Sinks(4, 60)})
m = StreamingAttention(16, 2, cache=policy)
state = m.init_state(1)
with torch.no_grad():
    _, state = m.step(torch.randn(1, 40, 16), state, segment="text")  # a prompt
    for _ in range(100):  # then frames arrive 20 at a time, with a text token now and then
        _, state = m.step(torch.randn(1, 20, 16), state, segment="vision")
        _, state = m.step(torch.randn(1, 1, 16), state, segment="text")
cache = state["cache"]
text = cache["seg"][0] == 1
print(f"after {int(state['t_in'])} frames: {int(cache['valid'].sum())} cached entries "
      f"(bound {policy.bound}): {int(text.sum())} text (the 4 sinks + the last "
      f"{int(text.sum()) - 4}), {int((~text).sum())} vision (the last frames only)")
print("text positions kept:", cache["lidx"][0][text].tolist()[:6], "...",
      cache["lidx"][0][text].tolist()[-3:])
