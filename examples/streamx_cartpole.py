"""Streaming deep RL (stream-x): Q(lambda) learned from each sample once, with no replay buffer
and no batches, made stable by ObGD's bounded step, sparse initialisation and normalisation.

A short run of ``StreamQ`` on CartPole-v1 (gymnasium); the full benchmark against SGD and Adam on
the same traces is ``streamwise rl compare`` (README).  Printed: the mean return of the first and
the last ten episodes.
"""

import numpy as np

from streamwise.learn.streamx.train import train

run = train("stream-q", "CartPole-v1", steps=6000, seed=0, progress=False)
returns = run["returns"]
print(f"{len(returns)} episodes in 6,000 steps, one sample at a time: mean return of the first "
      f"10 {np.mean(returns[:10]):.1f}, of the last 10 {np.mean(returns[-10:]):.1f}")
