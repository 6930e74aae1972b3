"""Stream TD(lambda), stream Q(lambda) and stream AC(lambda): one sample at a time.

Each agent owns its networks and optimizers.  ``optimizer`` picks the update rule applied to the
eligibility traces: ``"obgd"`` (the paper's), ``"sgd"`` (``w += lr * delta * z``, the naive
streaming learner) or ``"adam"`` (Adam fed with ``-delta * z`` as the gradient).
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch
from torch import Tensor

from streamwise.learn.obgd import AdaptiveObGD, ObGD
from streamwise.learn.streamx.nets import mlp

OPTIMIZERS = ("obgd", "adaptive-obgd", "sgd", "adam")


class TraceLearner:
    """Eligibility traces plus an update rule, for one network."""

    def __init__(self, params: list[Tensor], kind: str, lr: float, gamma: float, lamda: float,
                 kappa: float) -> None:
        if kind not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {kind!r}; choose one of {OPTIMIZERS}")
        self.kind, self.params = kind, params
        self.gamma, self.lamda, self.lr = gamma, lamda, lr
        self.opt: torch.optim.Optimizer | None = None
        if kind == "obgd":
            self.opt = ObGD(params, lr, gamma, lamda, kappa)
        elif kind == "adaptive-obgd":
            self.opt = AdaptiveObGD(params, lr, gamma, lamda, kappa)
        else:
            self.traces = [torch.zeros_like(p) for p in params]
            if kind == "adam":
                self.opt = torch.optim.Adam(params, lr=lr)

    def update(self, delta: float, reset: bool) -> None:
        """Apply one TD error to the gradients already in ``.grad`` (of the prediction)."""
        if isinstance(self.opt, ObGD):
            self.opt.step(delta, reset=reset)
        else:
            with torch.no_grad():
                for p, z in zip(self.params, self.traces):
                    z.mul_(self.gamma * self.lamda)
                    if p.grad is not None:
                        z.add_(p.grad)
                    if self.kind == "sgd":
                        p.add_(z, alpha=self.lr * delta)
                    else:
                        p.grad = -delta * z
                if self.kind == "adam" and self.opt is not None:
                    self.opt.step()
                if reset:
                    for z in self.traces:
                        z.zero_()
        for p in self.params:
            p.grad = None


def _tensor(obs: Any) -> Tensor:
    return torch.as_tensor(np.asarray(obs, dtype=np.float32)).flatten()


class StreamTD:
    """Prediction: v(s) learned by TD(lambda) from (s, r, s') one sample at a time."""

    def __init__(self, obs_dim: int, hidden: tuple[int, ...] = (128, 128), lr: float = 1.0,
                 gamma: float = 0.99, lamda: float = 0.8, kappa: float = 2.0,
                 optimizer: str = "obgd", seed: int = 0, sparsity: float = 0.9) -> None:
        torch.manual_seed(seed)
        self.v = mlp(obs_dim, 1, hidden, seed, sparsity)
        self.gamma = gamma
        self.learner = TraceLearner(list(self.v.parameters()), optimizer, lr, gamma, lamda, kappa)

    def predict(self, obs: Any) -> float:
        with torch.no_grad():
            return float(self.v(_tensor(obs)))

    def update(self, obs: Any, reward: float, next_obs: Any, terminated: bool,
               truncated: bool = False) -> float:
        """One TD(lambda) step; returns the TD error."""
        v = self.v(_tensor(obs))[0]
        with torch.no_grad():
            target = reward + (0.0 if terminated else self.gamma * float(self.v(_tensor(next_obs))))
        delta = target - float(v.detach())
        v.backward()
        self.learner.update(delta, reset=terminated or truncated)
        return delta


class StreamQ:
    """Control with discrete actions: Watkins-style Q(lambda), epsilon-greedy, one sample at a
    time; traces reset at episode ends and after exploratory (non-greedy) actions."""

    def __init__(self, obs_dim: int, n_actions: int, hidden: tuple[int, ...] = (128, 128),
                 lr: float = 1.0, gamma: float = 0.99, lamda: float = 0.8, kappa: float = 2.0,
                 eps_start: float = 1.0, eps_end: float = 0.01, explore_steps: int = 10_000,
                 optimizer: str = "obgd", seed: int = 0) -> None:
        torch.manual_seed(seed)
        self.q = mlp(obs_dim, n_actions, hidden, seed)
        self.n_actions, self.gamma = n_actions, gamma
        self.eps_start, self.eps_end, self.explore_steps = eps_start, eps_end, explore_steps
        self.steps = 0
        self.rng = random.Random(seed)
        self.learner = TraceLearner(list(self.q.parameters()), optimizer, lr, gamma, lamda, kappa)

    @property
    def epsilon(self) -> float:
        frac = min(1.0, self.steps / max(1, self.explore_steps))
        return self.eps_start + frac * (self.eps_end - self.eps_start)

    def act(self, obs: Any) -> tuple[int, bool]:
        """(action, was it greedy)."""
        with torch.no_grad():
            greedy = int(self.q(_tensor(obs)).argmax())
        if self.rng.random() < self.epsilon:
            a = self.rng.randrange(self.n_actions)
            return a, a == greedy
        return greedy, True

    def update(self, obs: Any, action: int, reward: float, next_obs: Any, terminated: bool,
               truncated: bool, greedy: bool) -> float:
        q = self.q(_tensor(obs))[action]
        with torch.no_grad():
            nxt = 0.0 if terminated else float(self.q(_tensor(next_obs)).max())
        delta = reward + self.gamma * nxt - float(q.detach())
        q.backward()
        self.learner.update(delta, reset=terminated or truncated or not greedy)
        self.steps += 1
        return delta


class StreamAC:
    """Actor-critic with traces for both: softmax policy (discrete) or Gaussian (continuous),
    entropy bonus signed by the TD error, as in the stream-x paper."""

    def __init__(self, obs_dim: int, action_space: Any, hidden: tuple[int, ...] = (128, 128),
                 lr_actor: float = 1.0, lr_critic: float = 1.0, gamma: float = 0.99,
                 lamda: float = 0.8, kappa_actor: float = 3.0, kappa_critic: float = 2.0,
                 entropy: float = 0.01, optimizer: str = "obgd", seed: int = 0) -> None:
        import gymnasium as gym

        torch.manual_seed(seed)
        self.discrete = isinstance(action_space, gym.spaces.Discrete)
        if self.discrete:
            out = int(action_space.n)
        elif isinstance(action_space, gym.spaces.Box) and len(action_space.shape) == 1:
            out = 2 * action_space.shape[0]
            self.low = torch.as_tensor(action_space.low, dtype=torch.float32)
            self.high = torch.as_tensor(action_space.high, dtype=torch.float32)
        else:
            raise ValueError(f"StreamAC handles Discrete or 1-D Box actions, not {action_space}")
        self.pi = mlp(obs_dim, out, hidden, seed)
        self.v = mlp(obs_dim, 1, hidden, seed + 1)
        self.gamma, self.entropy = gamma, entropy
        self.actor = TraceLearner(list(self.pi.parameters()), optimizer, lr_actor, gamma, lamda,
                                  kappa_actor)
        self.critic = TraceLearner(list(self.v.parameters()), optimizer, lr_critic, gamma, lamda,
                                   kappa_critic)
        self.gen = torch.Generator().manual_seed(seed)

    def _dist(self, obs: Any) -> torch.distributions.Distribution:
        out = self.pi(_tensor(obs))
        if self.discrete:
            return torch.distributions.Categorical(logits=out)
        mean, log_std = out.chunk(2)
        return torch.distributions.Normal(mean, log_std.clamp(-5, 2).exp())

    def act(self, obs: Any) -> tuple[Any, bool]:
        with torch.no_grad():
            d = self._dist(obs)
            if self.discrete:
                probs = d.probs  # type: ignore[attr-defined]
                return int(torch.multinomial(probs, 1, generator=self.gen)), True
            a = d.mean + d.stddev * torch.randn(d.mean.shape, generator=self.gen)
            return a.numpy(), True

    def env_action(self, action: Any) -> Any:
        """The action sent to the environment (continuous actions clipped to the box)."""
        if self.discrete:
            return action
        return torch.clamp(torch.as_tensor(action), self.low, self.high).numpy()

    def update(self, obs: Any, action: Any, reward: float, next_obs: Any, terminated: bool,
               truncated: bool, greedy: bool = True) -> float:
        v = self.v(_tensor(obs))[0]
        with torch.no_grad():
            nxt = 0.0 if terminated else float(self.v(_tensor(next_obs)))
        delta = reward + self.gamma * nxt - float(v.detach())
        v.backward()
        self.critic.update(delta, reset=terminated or truncated)
        d = self._dist(obs)
        logp = d.log_prob(torch.as_tensor(action)).sum()
        ent = d.entropy().sum()
        (logp + self.entropy * float(np.sign(delta)) * ent).backward()
        self.actor.update(delta, reset=terminated or truncated)
        return delta
