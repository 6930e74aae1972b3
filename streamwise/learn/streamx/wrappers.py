"""Running observation normalisation and reward scaling, as gymnasium wrappers.

Streaming learners see each sample once, so inputs and rewards are normalised online: observations
by a running (Welford) mean and variance, rewards by the running standard deviation of the
discounted return (the return's scale, not the reward's, is what sets the TD error's scale).
"""

from __future__ import annotations

from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np

from streamwise.learn.running_stats import RunningStats

__all__ = ["NormalizeObservation", "RunningStats", "ScaleReward"]


class NormalizeObservation(gym.ObservationWrapper):
    """Observations minus their running mean, over their running standard deviation."""

    def __init__(self, env: gym.Env, eps: float = 1e-8) -> None:
        super().__init__(env)
        space = env.observation_space
        if not isinstance(space, gym.spaces.Box) or space.shape is None:
            raise ValueError(f"NormalizeObservation needs a Box observation space, got {space}")
        shape = space.shape
        self.stats, self.eps = RunningStats(shape), eps

    def observation(self, observation: Any) -> np.ndarray:
        self.stats.update(observation)
        out = (observation - self.stats.mean) / np.sqrt(self.stats.var + self.eps)
        return out.astype(np.float32)


class ScaleReward(gym.Wrapper):
    """Rewards over the running standard deviation of the discounted return."""

    def __init__(self, env: gym.Env, gamma: float = 0.99, eps: float = 1e-8) -> None:
        super().__init__(env)
        self.gamma, self.eps = gamma, eps
        self.stats = RunningStats()
        self.ret = 0.0

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.ret = self.gamma * self.ret + float(reward)
        self.stats.update(self.ret)
        if terminated or truncated:
            self.ret = 0.0
        scaled = float(reward) / float(np.sqrt(self.stats.var + self.eps))
        return obs, scaled, terminated, truncated, info
