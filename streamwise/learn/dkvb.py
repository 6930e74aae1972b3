"""Discrete Key-Value Bottleneck (Träuble et al. 2023): learning that stays where it happened.

A frozen encoder gives ``z = E(x)`` (``d`` numbers).  ``C`` fixed random projections cut it into
heads ``z_c = P_c z`` (``key_dim`` each); codebook ``c`` holds ``K`` keys ``k_{c,i}``, fitted by
k-means on *unlabeled* inputs and then frozen, and one learnable value ``v_{c,i}`` (a logit per
class) under each key.  A record selects one key per codebook and reads its value:

    i_c(x) = argmin_i |z_c - k_{c,i}|^2,        logits(x) = (1/C) sum_c v_{c, i_c(x)}

(the non-parametric decoder: average pooling, nothing else to learn).  Training minimises the
cross-entropy by SGD on the values alone.  With ``g = softmax(logits) - onehot(y)`` the gradient
of the loss with respect to ``v_{c,i}`` is ``g / C`` for the selected ``i = i_c(x)`` and zero for
every other key, so a step moves only the ``C`` values the record selected:

    v_{c, i_c(x)} <- v_{c, i_c(x)} - lr * g / C

A new class changes only the values its own inputs select; the values under keys that other
classes' inputs select, and so what those classes predict, are left as they were.  That is what
keeps class-incremental learning from overwriting old classes (the paper's claim, measured here by
the task-stream benchmark).  The encoder and the keys never change after ``fit_keys``.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

import numpy as np
import torch

from streamwise.learn.base import BatchClassifier, Labels, check_matrix


def pca_encoder(X: Any, dim: int) -> torch.nn.Linear:
    """A frozen linear encoder onto the ``dim`` leading principal components of unlabeled
    ``X`` (centred), as a ``Linear`` layer."""
    a = torch.as_tensor(check_matrix(X))
    if not 1 <= dim <= min(a.shape):
        raise ValueError(f"need 1 <= dim <= {min(a.shape)}, got {dim}")
    mean = a.mean(0)
    _, _, vh = torch.linalg.svd(a - mean, full_matrices=False)
    enc = torch.nn.Linear(a.shape[1], dim)
    with torch.no_grad():
        enc.weight.copy_(vh[:dim].float())
        enc.bias.copy_(-(vh[:dim] @ mean).float())
    enc.requires_grad_(False)
    return enc


class DKVB(BatchClassifier):
    def __init__(self, n_features: int, encoder: Callable[[torch.Tensor], torch.Tensor] | None
                 = None, codebooks: int = 64, keys: int = 64, key_dim: int = 8,
                 lr: float = 30.0, epochs: int = 5, batch: int = 32, seed: int = 0) -> None:
        if min(n_features, codebooks, keys, key_dim, epochs, batch) < 1 or not lr > 0:
            raise ValueError("need n_features, codebooks, keys, key_dim, epochs, batch >= 1 "
                             "and lr > 0")
        gen = torch.Generator().manual_seed(seed)
        self.encoder = encoder or torch.nn.Identity()
        with torch.no_grad():
            d = self.encoder(torch.zeros(1, n_features)).shape[1]
        self.proj = torch.randn(codebooks, d, key_dim, generator=gen) / d ** 0.5
        self.keys: torch.Tensor | None = None  # (C, K, key_dim) once fitted
        self.values = torch.zeros(codebooks, keys, 0)
        self.n_features, self.C, self.K = n_features, codebooks, keys
        self.lr, self.epochs, self.batch = lr, epochs, batch
        self.labels = Labels()
        self.seed, self.rng = seed, np.random.default_rng(seed)
        self.names = [f"f{i}" for i in range(n_features)]

    @property
    def classes(self) -> list[Hashable]:
        return self.labels.classes

    # -- the bottleneck ----------------------------------------------------------------------------
    def _heads(self, X: np.ndarray) -> torch.Tensor:
        """``z_c`` for every row: ``(C, n, key_dim)``."""
        with torch.no_grad():
            z = self.encoder(torch.as_tensor(X, dtype=torch.float32))
            return torch.matmul(z[None], self.proj)

    @staticmethod
    def _nearest(heads: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        """Index of the nearest key per codebook and row, ``(C, n)`` (|z|^2 - 2 z.k + |k|^2)."""
        d = (keys * keys).sum(2)[:, None, :] - 2 * torch.bmm(heads, keys.transpose(1, 2))
        return d.argmin(2)

    def fit_keys(self, X: Any, iterations: int = 20) -> DKVB:
        """k-means of each codebook's heads of unlabeled ``X``; the keys are then frozen."""
        heads = self._heads(check_matrix(X, self.n_features))
        gen = torch.Generator().manual_seed(self.seed + 1)
        n = heads.shape[1]
        if n < self.K:
            raise ValueError(f"need at least {self.K} unlabeled rows to fit {self.K} keys, "
                             f"got {n}")
        keys = heads[:, torch.randperm(n, generator=gen)[: self.K]].clone()
        for _ in range(iterations):
            idx = self._nearest(heads, keys)
            sums = torch.zeros_like(keys).scatter_add_(
                1, idx[..., None].expand_as(heads), heads)
            counts = torch.zeros(self.C, self.K).scatter_add_(1, idx, torch.ones_like(idx,
                                                                                  dtype=torch.float))
            empty = counts == 0  # an empty cluster restarts at a random head
            refill = heads[:, torch.randint(n, (self.K,), generator=gen)]
            keys = torch.where(empty[..., None], refill, sums / counts.clamp(min=1)[..., None])
        self.keys = keys
        return self

    def _select(self, X: np.ndarray) -> torch.Tensor:
        if self.keys is None:
            raise ValueError("the keys are not fitted: call fit_keys(unlabeled X) first")
        return self._nearest(self._heads(X), self.keys)

    def _logits(self, idx: torch.Tensor) -> torch.Tensor:
        """``(n, classes)``: the mean over codebooks of the selected values."""
        return self.values[torch.arange(self.C)[:, None], idx].mean(0)

    # -- verbs -------------------------------------------------------------------------------------
    def learn_many(self, X: Any, y: Any) -> None:
        a = check_matrix(X, self.n_features)
        ys = list(np.asarray(y, dtype=object))
        if len(ys) != len(a):
            raise ValueError(f"expected one label per row ({len(a)}), got {len(ys)}")
        idx = self._select(a)  # before any label is added: an unfitted model is left as it was
        target = torch.as_tensor(self.labels.index(ys))
        grow = len(self.classes) - self.values.shape[2]
        if grow:
            self.values = torch.cat([self.values, torch.zeros(self.C, self.K, grow)], 2)
        flat = self.values.view(self.C * self.K, -1)
        offsets = (torch.arange(self.C) * self.K)[:, None]
        for _ in range(self.epochs):
            order = torch.as_tensor(self.rng.permutation(len(a)))
            for k in range(0, len(a), self.batch):
                rows = order[k:k + self.batch]
                sel = idx[:, rows]
                g = torch.softmax(self._logits(sel), 1)
                g[torch.arange(len(rows)), target[rows]] -= 1.0
                # only the selected values move: v -= lr * g / C at each (c, i_c(x))
                flat.index_add_(0, (sel + offsets).reshape(-1),
                                (-self.lr / self.C) * g.repeat(self.C, 1))

    def predict_proba_many(self, X: Any) -> np.ndarray:
        a = check_matrix(X, self.n_features)
        if not self.classes:
            return np.zeros((len(a), 0))
        return torch.softmax(self._logits(self._select(a)), 1).double().numpy()
