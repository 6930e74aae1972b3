"""A multilayer perceptron classifier trained by fine-tuning: the baseline that forgets.

On every ``learn_many(X, y)`` it runs ``epochs`` passes of Adam over the batch in mini-batches of
``batch`` (``learn_one`` is one step on one record); the output layer grows by a row when a new
label arrives, so it can meet a stream of tasks.  Nothing protects what was learned before: on a
class-incremental stream its old classes' logits are pushed down by every new task.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import numpy as np
import torch

from streamwise.learn.base import BatchClassifier, Labels, check_matrix


class MLPClassifier(BatchClassifier):
    def __init__(self, n_features: int, hidden: tuple[int, ...] = (128,), lr: float = 1e-3,
                 epochs: int = 10, batch: int = 32, seed: int = 0) -> None:
        if n_features < 1 or epochs < 1 or batch < 1:
            raise ValueError("need n_features, epochs, batch >= 1")
        torch.manual_seed(seed)
        layers: list[torch.nn.Module] = []
        width = n_features
        for h in hidden:
            layers += [torch.nn.Linear(width, h), torch.nn.ReLU()]
            width = h
        self.trunk = torch.nn.Sequential(*layers)
        self.width = width
        self.head: torch.nn.Linear | None = None  # made, then grown, as labels arrive
        self.n_features, self.lr, self.epochs, self.batch = n_features, lr, epochs, batch
        self.labels = Labels()
        self.rng = np.random.default_rng(seed)
        self.names = [f"f{i}" for i in range(n_features)]
        self._optimiser()

    @property
    def classes(self) -> list[Hashable]:
        return self.labels.classes

    def _optimiser(self) -> None:
        head = [] if self.head is None else list(self.head.parameters())
        self.opt = torch.optim.Adam([*self.trunk.parameters(), *head], lr=self.lr)

    def _grow(self, n: int) -> None:
        old = self.head
        if old is not None and n == old.out_features:
            return
        self.head = torch.nn.Linear(self.width, n)
        if old is not None:
            with torch.no_grad():
                self.head.weight[: old.out_features] = old.weight
                self.head.bias[: old.out_features] = old.bias
        self._optimiser()  # the head's parameters are new tensors

    def _logits(self, X: np.ndarray) -> torch.Tensor:
        assert self.head is not None
        return self.head(self.trunk(torch.as_tensor(X, dtype=torch.float32)))

    def learn_many(self, X: Any, y: Any) -> None:
        a = check_matrix(X, self.n_features)
        ys = list(np.asarray(y, dtype=object))
        if len(ys) != len(a):
            raise ValueError(f"expected one label per row ({len(a)}), got {len(ys)}")
        target = torch.as_tensor(self.labels.index(ys))
        self._grow(len(self.classes))
        for _ in range(self.epochs):
            order = self.rng.permutation(len(a))
            for k in range(0, len(a), self.batch):
                idx = order[k:k + self.batch]
                loss = torch.nn.functional.cross_entropy(self._logits(a[idx]), target[idx])
                self.opt.zero_grad()
                loss.backward()
                self.opt.step()

    def predict_proba_many(self, X: Any) -> np.ndarray:
        a = check_matrix(X, self.n_features)
        if not self.classes:
            return np.zeros((len(a), 0))
        with torch.no_grad():
            return torch.softmax(self._logits(a), 1).double().numpy()
