"""Run a stream-x agent on a gymnasium environment: one sample at a time, returns per episode."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from tqdm import tqdm

from streamwise.learn.streamx.agents import OPTIMIZERS, StreamAC, StreamQ
from streamwise.learn.streamx.wrappers import NormalizeObservation, ScaleReward

AGENTS = ("stream-q", "stream-ac")
#: step sizes: the paper's for ObGD; for the baselines, the winners of the sweep that
#: `streamwise rl compare` ran on CartPole and Acrobot (README)
DEFAULT_LR = {"obgd": 1.0, "adaptive-obgd": 1.0, "sgd": 1e-4, "adam": 1e-5}


def make_env(name: str, seed: int, gamma: float = 0.99) -> gym.Env:
    """The environment with raw-return bookkeeping, reward scaling and observation norm."""
    try:
        env = gym.make(name)
    except gym.error.Error as e:
        known = ", ".join(sorted(k for k in gym.registry if "-v" in k and "/" not in k)[:40])
        raise ValueError(f"unknown environment {name!r} ({e}); some known ones: {known}") from e
    if not isinstance(env.observation_space, gym.spaces.Box):
        raise ValueError(f"{name} has a {env.observation_space} observation space; the stream-x "
                         "agents here take vector (Box) observations")
    env = gym.wrappers.RecordEpisodeStatistics(env)
    env = ScaleReward(env, gamma)
    env = NormalizeObservation(env)
    env.action_space.seed(seed)
    return env


def make_agent(agent: str, env: gym.Env, seed: int, optimizer: str = "obgd",
               lr: float | None = None, steps: int = 100_000) -> StreamQ | StreamAC:
    """An agent for the environment, checked before any training starts."""
    if agent not in AGENTS:
        raise ValueError(f"unknown agent {agent!r}; choose one of {AGENTS}")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; choose one of {OPTIMIZERS}")
    obs_dim = int(np.prod(env.observation_space.shape or (1,)))
    step = DEFAULT_LR[optimizer] if lr is None else lr
    if agent == "stream-q":
        if not isinstance(env.action_space, gym.spaces.Discrete):
            raise ValueError(f"stream-q needs a discrete action space; this environment has "
                             f"{env.action_space}: use stream-ac")
        return StreamQ(obs_dim, int(env.action_space.n), lr=step, optimizer=optimizer, seed=seed,
                       explore_steps=max(1, steps // 5))
    return StreamAC(obs_dim, env.action_space, lr_actor=step, lr_critic=step,
                    optimizer=optimizer, seed=seed)


def train(agent: str, env_name: str, steps: int, seed: int = 0, optimizer: str = "obgd",
          lr: float | None = None, progress: bool = True) -> dict[str, Any]:
    """Learn for ``steps`` environment steps; returns episode returns and where they ended."""
    # one sample at a time through a small network: extra threads only add synchronisation, and
    # several runs sharing the cores would oversubscribe them (measured: 10-50x slower)
    torch.set_num_threads(1)
    env = make_env(env_name, seed)
    learner = make_agent(agent, env, seed, optimizer, lr, steps)
    obs, _ = env.reset(seed=seed)
    returns: list[float] = []
    ends: list[int] = []
    diverged = False
    t0 = time.perf_counter()
    bar = tqdm(range(steps), desc=f"{agent} {env_name} seed {seed}", disable=not progress,
               mininterval=1.0)
    for t in bar:
        action, greedy = learner.act(obs)
        env_action = learner.env_action(action) if isinstance(learner, StreamAC) else action
        nxt, reward, terminated, truncated, info = env.step(env_action)
        delta = learner.update(obs, action, float(reward), nxt, terminated, truncated, greedy)
        if not np.isfinite(delta):
            diverged = True
            break
        obs = nxt
        if terminated or truncated:
            returns.append(float(info["episode"]["r"]))
            ends.append(t + 1)
            if progress and len(returns) % 10 == 0:
                bar.set_postfix(ret=f"{np.mean(returns[-20:]):.1f}")
            obs, _ = env.reset()
    seconds = time.perf_counter() - t0
    return {"agent": agent, "env": env_name, "seed": seed, "optimizer": optimizer,
            "lr": DEFAULT_LR[optimizer] if lr is None else lr, "steps": steps,
            "returns": returns, "episode_ends": ends, "diverged": diverged,
            "steps_per_second": (ends[-1] if diverged and ends else steps) / seconds,
            "final_mean_return": float(np.mean(returns[-20:])) if returns else float("nan")}


def plot_curves(runs: list[dict[str, Any]], path: Path, title: str) -> None:
    """Episode return against environment steps, one line per run (20-episode moving mean)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5), constrained_layout=True)
    colors = {"obgd": "C0", "adaptive-obgd": "C4", "sgd": "C3", "adam": "C2"}
    seen = set()
    for r in runs:
        if not r["returns"]:
            continue
        ret = np.asarray(r["returns"])
        smooth = np.convolve(ret, np.ones(20) / 20, mode="valid") if len(ret) >= 20 else ret
        label = f"{r['optimizer']} (lr {r['lr']:g})"
        ax.plot(r["episode_ends"][len(ret) - len(smooth):], smooth, color=colors[r["optimizer"]],
                alpha=0.8, lw=1, label=None if label in seen else label)
        seen.add(label)
    ax.set_xlabel("environment steps")
    ax.set_ylabel("episode return (20-episode mean)")
    ax.set_title(title)
    ax.legend()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def save_runs(runs: list[dict[str, Any]], path: Path) -> None:
    path.write_text(json.dumps(runs))
