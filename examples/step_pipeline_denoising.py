"""StreamDiffusionV2's pipeline across denoising steps: chunk after chunk of a 4-step iterative
denoiser, the steps of successive chunks batched into one call.

``StepPipeline(step, steps)`` brings each new chunk in at step 0 and moves every chunk in flight
one step on, in one batched call per push.  Printed: that each chunk's output equals its four
steps run in turn, the calls made, and the wall time of both ways on this machine.
"""

import time

import torch

from streamwise.core.step_pipeline import StepPipeline

torch.manual_seed(0)
torch.set_num_threads(1)
net = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.GELU(), torch.nn.Linear(256, 64))
levels = torch.linspace(1.0, 0.25, 4)


@torch.no_grad()
def step(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:  # x [B, frames, 64], k [B]
    return x - levels[k].view(-1, 1, 1) * 0.2 * net(x)


chunks = [torch.randn(1, 16, 64) for _ in range(40)]
t0 = time.perf_counter()
one_by_one = []
for c in chunks:
    x = c
    for k in range(4):
        x = step(x, torch.full((1,), k))
    one_by_one.append(x)
t1 = time.perf_counter()
pipe = StepPipeline(step, steps=4)
piped = [y for c in chunks if (y := pipe.push(c)) is not None] + pipe.flush()
t2 = time.perf_counter()
err = max(float((a - b).abs().max()) for a, b in zip(one_by_one, piped))
print(f"{len(chunks)} chunks x 4 steps: max difference {err:.1e}; calls {4 * len(chunks)} one "
      f"by one vs {pipe.calls} pipelined; {t1 - t0:.3f} s vs {t2 - t1:.3f} s; the pipeline "
      f"returns each chunk 3 pushes later")
