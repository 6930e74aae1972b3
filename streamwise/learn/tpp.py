"""A neural temporal point process with marks, and the batch form of event sequences it reads.

A sequence is events ``(t_1, k_1), ..., (t_n, k_n)``: times and marks (``K`` kinds).  A GRU reads
each event (mark embedding, log of the gap since the previous one) into a history ``h_i``.  Until
the next event the intensity of mark ``k`` is RMTPP's (Du et al. 2016) history-driven term, which
decays, over a base rate (as a Hawkes process has):

    lambda_k(t) = mu_k + exp(a_k + w (t - t_i)),   a_k = v_k . h_i + b_k,
    mu_k = softplus(m_k),   w = -softplus(omega) < 0,

and its integral over a gap ``d`` has a closed form:

    int_{t_i}^{t_i + d} sum_k lambda_k = (sum_k mu_k) d + sum_k exp(a_k) (1 - exp(w d)) / (-w).

The log-likelihood of event ``i + 1`` (given the history) is ``log lambda_{k_{i+1}}(t_{i+1})``
minus that integral over the gap.  The first event of a sequence is its context and is not scored.
The next-mark prediction is the mark of highest intensity just after event ``i``,
``argmax_k log(mu_k + exp(a_k))``.

``Events`` pads sequences into a batch; ``prefix`` lets a caller feed extra input vectors (such
as prompts) before the events, which is how ``prompt_tpp`` conditions a frozen model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F


@dataclass
class Events:
    """A padded batch: times ``(B, L)`` (float64), marks ``(B, L)``, a mask of real events."""

    times: torch.Tensor
    marks: torch.Tensor
    mask: torch.Tensor

    @staticmethod
    def pad(seqs: list[tuple[np.ndarray, np.ndarray]], n_marks: int) -> Events:
        if not seqs:
            raise ValueError("expected at least one sequence")
        length = max(len(t) for t, _ in seqs)
        times = torch.zeros(len(seqs), length, dtype=torch.float64)
        marks = torch.zeros(len(seqs), length, dtype=torch.long)
        mask = torch.zeros(len(seqs), length, dtype=torch.bool)
        for b, (t, k) in enumerate(seqs):
            t, k = np.asarray(t, dtype=np.float64), np.asarray(k)
            if len(t) != len(k) or len(t) < 1:
                raise ValueError(f"sequence {b}: expected as many times as marks (>= 1), "
                                 f"got {len(t)} and {len(k)}")
            if not np.isfinite(t).all() or (np.diff(t) < 0).any():
                raise ValueError(f"sequence {b}: expected finite, non-decreasing times")
            if k.size and (k.min() < 0 or k.max() >= n_marks):
                raise ValueError(f"sequence {b}: expected marks in [0, {n_marks}), got "
                                 f"{k.min()}..{k.max()}")
            times[b, : len(t)] = torch.as_tensor(t)
            marks[b, : len(k)] = torch.as_tensor(k)
            mask[b, : len(t)] = True
        return Events(times, marks, mask)

    @property
    def gaps(self) -> torch.Tensor:
        """``t_i - t_{i-1}`` (0 for the first event and the padding), float32."""
        g = torch.zeros_like(self.times)
        g[:, 1:] = (self.times[:, 1:] - self.times[:, :-1]).clamp(min=0)
        return (g * self.mask).float()

    @property
    def scored(self) -> torch.Tensor:
        """The events that are scored: every real event after the first."""
        s = self.mask.clone()
        s[:, 0] = False
        return s


class NeuralTPP(torch.nn.Module):
    def __init__(self, n_marks: int, hidden: int = 32, embed: int = 16, seed: int = 0) -> None:
        super().__init__()
        if n_marks < 1 or hidden < 1 or embed < 1:
            raise ValueError("need n_marks, hidden, embed >= 1")
        torch.manual_seed(seed)
        self.n_marks, self.embed_dim = n_marks, embed
        self.embed = torch.nn.Embedding(n_marks, embed)
        self.rnn = torch.nn.GRU(embed + 1, hidden, batch_first=True)
        self.head = torch.nn.Linear(hidden, n_marks)  # v_k . h + b_k
        self.omega = torch.nn.Parameter(torch.tensor(0.0))
        self.raw_mu = torch.nn.Parameter(torch.full((n_marks,), -4.0))

    def inputs(self, ev: Events) -> torch.Tensor:
        """Each event's input vector: mark embedding and log(1 + gap)."""
        return torch.cat([self.embed(ev.marks), torch.log1p(ev.gaps)[..., None]], 2)

    def histories(self, ev: Events, prefix: torch.Tensor | None = None) -> torch.Tensor:
        """``h_i`` after each event, ``(B, L, hidden)``; ``prefix`` ``(B, P, embed + 1)`` is read
        first."""
        x = self.inputs(ev)
        if prefix is not None:
            x = torch.cat([prefix, x], 1)
        h, _ = self.rnn(x)
        return h[:, h.shape[1] - ev.times.shape[1]:]

    def log_likelihood(self, ev: Events, prefix: torch.Tensor | None = None
                       ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-event log-likelihood ``(B, L - 1)`` of events 2..L (0 where not scored) and the
        log intensities just after the event before each, ``(B, L - 1, K)`` (the next-mark
        scores)."""
        h = self.histories(ev, prefix)[:, :-1]
        a = self.head(h)
        w = -F.softplus(self.omega) - 1e-3
        mu = F.softplus(self.raw_mu)
        d = ev.gaps[:, 1:]
        log_mu = torch.log(mu).expand_as(a)
        a_k = a.gather(2, ev.marks[:, 1:, None])[..., 0]
        log_intensity = torch.logaddexp(log_mu.gather(2, ev.marks[:, 1:, None])[..., 0],
                                        a_k + w * d)
        integral = mu.sum() * d + torch.logsumexp(a, 2).exp() * (-torch.expm1(w * d)) / (-w)
        ll = (log_intensity - integral) * ev.scored[:, 1:]
        return ll, torch.logaddexp(log_mu, a)


def tpp_metrics(model: Any, ev: Events, prefix: torch.Tensor | None = None
                ) -> dict[str, float]:
    """Mean log-likelihood per scored event and next-mark accuracy of any model with
    ``log_likelihood(ev) -> (per-event ll, next-mark logits)``."""
    with torch.no_grad():
        ll, logits = model.log_likelihood(ev, prefix)
    scored = ev.scored[:, 1:]
    n = int(scored.sum())
    right = (logits.argmax(2) == ev.marks[:, 1:]) & scored
    return {"log_likelihood": float(ll.sum()) / max(n, 1),
            "mark_accuracy": float(right.sum()) / max(n, 1), "events": n}


def train(model: Any, seqs: list[tuple[np.ndarray, np.ndarray]], n_marks: int,
          params: list[torch.nn.Parameter], epochs: int = 5, lr: float = 1e-2, batch: int = 32,
          seed: int = 0, extra_loss: Any = None) -> None:
    """Adam on ``params`` maximising the log-likelihood of ``seqs`` (``extra_loss(ev)``, if
    given, is added to the loss)."""
    opt = torch.optim.Adam(params, lr=lr)
    rng = np.random.default_rng(seed)
    for _ in range(epochs):
        for group in batches(seqs, batch, rng):
            ev = Events.pad(group, n_marks)
            ll, _ = model.log_likelihood(ev)
            loss = -ll.sum() / max(int(ev.scored.sum()), 1)
            if extra_loss is not None:
                loss = loss + extra_loss(ev)
            opt.zero_grad()
            loss.backward()
            opt.step()


def batches(seqs: list[tuple[np.ndarray, np.ndarray]], size: int, rng: np.random.Generator
            ) -> list[list[tuple[np.ndarray, np.ndarray]]]:
    """``seqs`` shuffled into batches of ``size``."""
    order = rng.permutation(len(seqs))
    return [[seqs[i] for i in order[k:k + size]] for k in range(0, len(seqs), size)]
