"""Think While Watching: watch and think at once, under a segment-level causal mask.

The watched stream is real text: each sentence of Pride and Prejudice is a segment (of its own
length), each word a frame.  While the next sentence arrives, the model writes 4 notes about the
last one in the same step calls.  ``SegmentMemory(watch=1, memory=8)`` lets a note read its own
segment's words and the notes of the segments before it, never the words already arriving; raw
words are dropped once no one can see them, the notes stay as the segments' memory.
"""

import torch

from streamwise.attention import SegmentMemory, StreamingAttention
from streamwise.bench.segment_memory import embed, overlapped, sentences

segs = sentences(20)
calls = overlapped(segs, notes=4)
print(f"{len(segs)} sentences, {sum(map(len, segs))} words, {len(calls)} step calls; "
      f"first call: {calls[0]}, call 30: {calls[30]}")

torch.manual_seed(0)
m = StreamingAttention(32, 4, cache=SegmentMemory(watch=1, memory=8)).double().eval()
flat = [e for call in calls for e in call]
x = torch.stack([embed(w, 32) for _, w in flat]).double()[None]
names = [n for n, _ in flat]
with torch.no_grad():
    ref = m(x, segment=names)
    state, ys, most, at = m.init_state(1, dtype=torch.float64), [], 0, 0
    for call in calls:
        y, state = m.step(x[:, at : at + len(call)], state, segment=names[at : at + len(call)])
        ys.append(y)
        at += len(call)
        most = max(most, state["cache"]["pos"].shape[1])
err = float((torch.cat(ys, 1) - ref).abs().max())
print(f"streamed vs offline: max abs error {err:.1e}; cache held at most {most} of "
      f"{len(flat)} entries")

# the notes about sentence 0 do not change when the words of sentence 1 (already arrived) do
first_notes = [i for i, n in enumerate(names) if n.startswith("think")][:4]
seg1 = [i for i, n in enumerate(names) if n.startswith("watch")][len(segs[0]):][:len(segs[1])]
x2 = x.clone()
x2[:, seg1] += 1.0
with torch.no_grad():
    moved = float((m(x2, segment=names)[:, first_notes] - ref[:, first_notes]).abs().max())
print(f"changing sentence 1's words moves the notes about sentence 0 by {moved:.1e}")
