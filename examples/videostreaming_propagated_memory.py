"""A long stream in a constant number of tokens: clip-wise encoding with a propagated memory,
then the clips a question is about (VideoStreaming).

A stream of frame features (here a synthetic video: 3 scenes, each a prototype feature vector
plus noise, cut in and out for 480 frames) is encoded 8 frames at a time; each clip is encoded
with the memory the previous clip left and leaves 4 memory tokens, so the whole stream up to
now is 4 tokens plus one memory per clip to select from.  The stream is pushed in irregular
chunks and checked against the offline forward.  A question (here: the memory of a reference
clip of one scene, encoded on its own) selects the k clips whose memory is most similar: what a
language model would read instead of the whole stream.  The encoder is randomly initialised:
similar clips still leave similar memories.
"""

import torch

from streamwise.models.propagated_memory import PropagatedMemory, select

torch.manual_seed(0)
C, CLIP, SCENE_CLIPS = 12, 8, 4
protos = torch.randn(3, C) * 2
order = [0, 1, 2, 1, 0, 2, 0, 1, 2, 2, 1, 0, 1, 0, 2]  # 15 scenes of 4 clips: 480 frames
scene_of_clip = torch.tensor(order).repeat_interleave(SCENE_CLIPS)
frames = protos[scene_of_clip].repeat_interleave(CLIP, 0) + 0.5 * torch.randn(480, C)
x = frames[None]

model = PropagatedMemory(C, dim=32, clip=CLIP, memory=4, heads=4, layers=2).eval()
with torch.inference_mode():
    offline = model(x)
    stream, outs, pos = model.stream(1), [], 0
    for n in [5, 1, 30, 0, 64, 3, 100, 77, 200]:
        outs.append(stream.push(x[:, pos:pos + n]))
        pos += n
    streamed = torch.cat(outs, 1)
print(f"{x.shape[1]} frames -> {streamed.shape[1]} clip memories of {model.memory} tokens; "
      f"streamed vs offline max error {float((streamed - offline).abs().max()):.1e}; state "
      f"{model.state_nbytes(1)} bytes whatever the length")

with torch.inference_mode():
    for scene in range(3):
        ref = protos[scene] + 0.5 * torch.randn(CLIP, C)  # a new clip of the scene
        question = model(ref[None]).view(1, model.memory, -1).mean(1)
        idx, picked = select(offline, question, k=SCENE_CLIPS * 5)
        hits = float((scene_of_clip[idx[0]] == scene).float().mean())
        print(f"question about scene {scene}: {picked.shape[1]} clips selected, "
              f"{hits:.0%} of them from that scene (chance {1 / 3:.0%})")
