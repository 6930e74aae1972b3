"""Two-tower retrieval learned from an interaction stream, and the light graph of 2T-HGNN.

A user ``u`` and an item ``i`` are each mapped by a tower, an id embedding next to side features
(``s_u``: age, gender, occupation; ``s_i``: genres, year) through a small MLP:

    f_U(u) = W2 relu(W1 [e_u ; s_u] + c1) + c2,        f_I(i) likewise with its own weights,
    score(u, i) = <f_U(u), f_I(i)> + b_i

Retrieval ranks every item for ``u`` by its score.  Learning is the full softmax over all items
(the limit of sampled softmax; with 1682 items it is cheap): for a batch of interactions
``(u, i)`` (plus a replay sample of past ones) one Adam step on

    L = -(1/B) sum_(u,i) log( exp score(u, i) / sum_j exp score(u, j) ).

The graph variant (``graph=True``, after 2T-HGNN's heterogeneous aggregation, one light layer)
mixes each tower's output with the mean of its neighbours' tower outputs in the user-item graph
seen so far, and with genre nodes (``G``, a learned ``genres x d`` table):

    u* = w_0 f_U(u) + w_1 mean_{i in N(u)} f_I(i) + w_2 q_u G,
    i* = v_0 f_I(i) + v_1 mean_{u in N(i)} f_U(u) + v_2 h_i G,

``q_u`` the genre profile of the items ``u`` interacted with (normalised), ``h_i`` the item's
genres (normalised), ``w = softmax(a)``, ``v = softmax(c)`` learned type weights; an empty
neighbourhood contributes zero.  The neighbourhoods are edge counts kept incrementally: the edges
of a batch are added *after* its gradient step, so the model that predicts (and the one that
learns) an interaction never sees that interaction's edge.

``prequential_retrieval`` is the test-then-train loop: each batch of interactions is first ranked
by the model as it stands (every item, minus those the user interacted with before the batch),
recall@k and NDCG@k of the true item recorded, and only then learned.  ``Popularity`` (counts so
far) and ``Refit`` (towers retrained offline on all the past every ``period`` interactions,
frozen in between) are the baselines.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch


def check_indices(a: Any, n: int, what: str) -> np.ndarray:
    """``a`` as an int64 array of indices in ``[0, n)``, or a ``ValueError`` naming ``what``."""
    arr = np.atleast_1d(np.asarray(a))
    if arr.dtype == bool or arr.dtype.kind not in "iuf" or arr.ndim != 1:
        raise ValueError(f"expected a 1-d array of {what} indices, got {arr.dtype} {arr.shape}")
    if arr.dtype.kind == "f" and (not np.isfinite(arr).all() or (arr != np.round(arr)).any()):
        raise ValueError(f"expected integer {what} indices, got NaN/inf or fractions")
    out = arr.astype(np.int64)
    if len(out) and (out.min() < 0 or out.max() >= n):
        bad = out[(out < 0) | (out >= n)][:5].tolist()
        raise ValueError(f"unknown {what} indices {bad}: expected 0 <= index < {n}")
    return out


def _index_of(x: Any, key: str, n: int) -> int:
    if not isinstance(x, dict) or key not in x:
        raise ValueError(f"expected a dict with a {key!r} entry, got {x!r}")
    v = x[key]
    if isinstance(v, bool) or not isinstance(v, int | float | np.integer | np.floating):
        raise ValueError(f"{key}: expected an integer index, got {v!r}")
    return int(check_indices([v], n, key)[0])


def hit_and_ndcg(ranks: Any, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """recall@k (one relevant item: 1 if its 1-based rank <= k) and NDCG@k (its ideal DCG is 1,
    so NDCG = 1 / log2(rank + 1) within the top k, else 0), per rank."""
    r = np.asarray(ranks, dtype=np.float64)
    hit = r <= k
    return hit.astype(np.float64), np.where(hit, 1.0 / np.log2(r + 1.0), 0.0)


def rank_of_true(scores: np.ndarray, true: np.ndarray, excluded: np.ndarray,
                 priority: np.ndarray) -> np.ndarray:
    """1-based rank of ``true[r]`` in row ``r`` of ``scores`` among the items not ``excluded``;
    equal scores are broken by ``priority`` (lower first), a fixed random order of the items."""
    rows = np.arange(len(true))
    s_true = scores[rows, true][:, None]
    p_true = priority[true][:, None]
    ahead = (scores > s_true) | ((scores == s_true) & (priority[None] < p_true))
    return 1 + (ahead & ~excluded).sum(1)


class Retriever:
    """Scores every item for a batch of users; only ``learn_many`` changes the model."""

    n_users: int
    n_items: int

    def scores_many(self, users: Any) -> np.ndarray:
        raise NotImplementedError

    def learn_many(self, users: Any, items: Any) -> None:
        raise NotImplementedError

    def _pair(self, users: Any, items: Any) -> tuple[np.ndarray, np.ndarray]:
        u = check_indices(users, self.n_users, "user")
        i = check_indices(items, self.n_items, "item")
        if len(u) != len(i):
            raise ValueError(f"expected one item per user ({len(u)}), got {len(i)}")
        return u, i

    def predict_many(self, users: Any, k: int = 10) -> np.ndarray:
        """The ``k`` best-scored items of each user, best first: ``(n, k)``."""
        s = self.scores_many(users)
        return np.argsort(-s, axis=1, kind="stable")[:, :k]

    def predict_one(self, x: dict[str, Any]) -> int:
        """The best item for ``{"user": u}``."""
        return int(self.predict_many([_index_of(x, "user", self.n_users)], 1)[0, 0])

    def predict_proba_one(self, x: dict[str, Any]) -> dict[int, float]:
        """``{item: softmax probability}`` over all items for ``{"user": u}``."""
        s = self.scores_many([_index_of(x, "user", self.n_users)])[0]
        p = np.exp(s - s.max())
        return dict(enumerate((p / p.sum()).tolist()))

    def learn_one(self, x: dict[str, Any], y: Any = None) -> None:
        """Learn that ``{"user": u}`` interacted with item ``y``."""
        u = _index_of(x, "user", self.n_users)
        self.learn_many([u], check_indices([y] if y is not None else [], self.n_items, "item"))


class Popularity(Retriever):
    """Every user gets the items ranked by how often they were interacted with so far."""

    def __init__(self, n_users: int, n_items: int) -> None:
        self.n_users, self.n_items = n_users, n_items
        self.counts = np.zeros(n_items)

    def scores_many(self, users: Any) -> np.ndarray:
        u = check_indices(users, self.n_users, "user")
        return np.broadcast_to(self.counts, (len(u), self.n_items)).copy()

    def learn_many(self, users: Any, items: Any) -> None:
        _, i = self._pair(users, items)
        np.add.at(self.counts, i, 1.0)


def _tower(width_in: int, hidden: int, dim: int) -> torch.nn.Sequential:
    return torch.nn.Sequential(torch.nn.Linear(width_in, hidden), torch.nn.ReLU(),
                               torch.nn.Linear(hidden, dim))


class TwoTower(Retriever, torch.nn.Module):
    """User and item towers with a dot-product score, learned online (see the module
    docstring); ``user_features`` ``(n_users, fu)``, ``item_features`` ``(n_items, fi)``;
    ``genres`` ``(n_items, g)`` multi-hot for the graph variant's genre nodes."""

    su: torch.Tensor
    si: torch.Tensor
    genres: torch.Tensor

    def __init__(self, user_features: Any, item_features: Any, *, dim: int = 32,
                 hidden: int = 64, graph: bool = False, genres: Any = None, lr: float = 3e-3,
                 replay: int = 64, buffer: int = 20_000, seed: int = 0) -> None:
        torch.nn.Module.__init__(self)
        torch.manual_seed(seed)
        su = torch.as_tensor(np.asarray(user_features, dtype=np.float32))
        si = torch.as_tensor(np.asarray(item_features, dtype=np.float32))
        if su.ndim != 2 or si.ndim != 2 or not (su.isfinite().all() and si.isfinite().all()):
            raise ValueError("expected finite 2-d user_features and item_features")
        self.n_users, self.n_items = len(su), len(si)
        self.register_buffer("su", su)
        self.register_buffer("si", si)
        self.user_emb = torch.nn.Embedding(self.n_users, dim)
        self.item_emb = torch.nn.Embedding(self.n_items, dim)
        for e in (self.user_emb, self.item_emb):
            torch.nn.init.normal_(e.weight, std=0.1)
        self.user_tower = _tower(dim + su.shape[1], hidden, dim)
        self.item_tower = _tower(dim + si.shape[1], hidden, dim)
        self.item_bias = torch.nn.Parameter(torch.zeros(self.n_items))
        self.graph = graph
        if graph:
            g = torch.as_tensor(np.asarray(genres if genres is not None else item_features,
                                           dtype=np.float32))
            self.register_buffer("genres", g / g.sum(1, keepdim=True).clamp(min=1e-9))
            self.genre_emb = torch.nn.Parameter(0.1 * torch.randn(g.shape[1], dim))
            self.user_mix = torch.nn.Parameter(torch.tensor([1.0, 0.0, 0.0]))
            self.item_mix = torch.nn.Parameter(torch.tensor([1.0, 0.0, 0.0]))
        self.edge_u = np.zeros(0, dtype=np.int64)  # the stream's edges so far (repeats add)
        self.edge_i = np.zeros(0, dtype=np.int64)
        self._adj = self._adjacency() if graph else None
        self.opt = torch.optim.Adam(self.parameters(), lr=lr)
        self.replay, self.buffer = replay, buffer
        self.past_u: list[int] = []
        self.past_i: list[int] = []
        self.rng = np.random.default_rng(seed)

    # -- towers and the graph --------------------------------------------------------------------
    def _adjacency(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Row-normalised user->item and item->user mean operators of the edges so far."""
        ui = torch.as_tensor(np.stack([self.edge_u, self.edge_i]))
        w = torch.ones(ui.shape[1])
        du = torch.zeros(self.n_users).index_add_(0, ui[0], w)
        di = torch.zeros(self.n_items).index_add_(0, ui[1], w)
        shape = (self.n_users, self.n_items)
        pu = torch.sparse_coo_tensor(ui, w / du[ui[0]], shape, check_invariants=False).coalesce()
        pi = torch.sparse_coo_tensor(ui.flip(0), w / di[ui[1]], shape[::-1],
                                     check_invariants=False).coalesce()
        return pu, pi

    def towers(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(u*, i*)`` for every user and item: ``(n_users, d)``, ``(n_items, d)``."""
        fu = self.user_tower(torch.cat([self.user_emb.weight, self.su], 1))
        fi = self.item_tower(torch.cat([self.item_emb.weight, self.si], 1))
        if not self.graph:
            return fu, fi
        assert self._adj is not None
        pu, pi = self._adj
        q = torch.sparse.mm(pu, self.genres)  # the user's genre profile
        q = q / q.sum(1, keepdim=True).clamp(min=1e-9)
        wu, wi = torch.softmax(self.user_mix, 0), torch.softmax(self.item_mix, 0)
        u = wu[0] * fu + wu[1] * torch.sparse.mm(pu, fi) + wu[2] * (q @ self.genre_emb)
        i = wi[0] * fi + wi[1] * torch.sparse.mm(pi, fu) + wi[2] * (self.genres @ self.genre_emb)
        return u, i

    def _logits(self, users: torch.Tensor) -> torch.Tensor:
        u, i = self.towers()
        return u[users] @ i.T + self.item_bias

    # -- verbs -----------------------------------------------------------------------------------
    def scores_many(self, users: Any) -> np.ndarray:
        u = torch.as_tensor(check_indices(users, self.n_users, "user"))
        with torch.no_grad():
            return self._logits(u).double().numpy()

    def _step(self, u: np.ndarray, i: np.ndarray) -> float:
        self.opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(self._logits(torch.as_tensor(u)),
                                                 torch.as_tensor(i))
        loss.backward()
        self.opt.step()
        return float(loss.detach())

    def learn_many(self, users: Any, items: Any) -> None:
        """One step on the batch plus ``replay`` past interactions, then add its edges."""
        u, i = self._pair(users, items)
        if not len(u):
            return
        if self.replay and self.past_u:
            pick = self.rng.integers(0, len(self.past_u), self.replay)
            u_all = np.concatenate([u, np.asarray(self.past_u)[pick]])
            i_all = np.concatenate([i, np.asarray(self.past_i)[pick]])
        else:
            u_all, i_all = u, i
        self._step(u_all, i_all)
        self.past_u.extend(u.tolist())
        self.past_i.extend(i.tolist())
        if len(self.past_u) > self.buffer:  # keep the most recent ``buffer`` interactions
            del self.past_u[: -self.buffer], self.past_i[: -self.buffer]
        if self.graph:  # the batch's edges join the graph only after its step
            self.edge_u = np.concatenate([self.edge_u, u])
            self.edge_i = np.concatenate([self.edge_i, i])
            self._adj = self._adjacency()

    def fit(self, users: Any, items: Any, epochs: int = 3, batch: int = 256) -> TwoTower:
        """Offline training: ``epochs`` shuffled passes over all ``(users, items)``."""
        u, i = self._pair(users, items)
        for _ in range(epochs):
            order = self.rng.permutation(len(u))
            for k in range(0, len(u), batch):
                self._step(u[order[k:k + batch]], i[order[k:k + batch]])
        return self


class Refit(Retriever):
    """The refit baseline: ``make()`` towers trained offline (``epochs`` passes) on all the past
    each time another ``period`` interactions have arrived, frozen in between (before the
    first refit: the untrained towers)."""

    def __init__(self, make: Callable[[], TwoTower], period: int = 10_000, epochs: int = 3
                 ) -> None:
        self.make, self.period, self.epochs = make, period, epochs
        self.model = make()
        self.n_users, self.n_items = self.model.n_users, self.model.n_items
        self.users: list[int] = []
        self.items: list[int] = []
        self.refits: list[int] = []

    def scores_many(self, users: Any) -> np.ndarray:
        return self.model.scores_many(users)

    def learn_many(self, users: Any, items: Any) -> None:
        u, i = self._pair(users, items)
        self.users.extend(u.tolist())
        self.items.extend(i.tolist())
        if len(self.users) >= (len(self.refits) + 1) * self.period:
            self.model = self.make().fit(self.users, self.items, self.epochs)
            self.refits.append(len(self.users))


@dataclass
class RetrievalReport:
    model: str
    k: int
    steps: list[int] = field(default_factory=list)  # stream positions evaluated
    ranks: list[int] = field(default_factory=list)
    seconds: float = 0.0

    def metrics(self, start: int = 0) -> dict[str, float]:
        """recall@k and NDCG@k over the evaluated interactions at positions >= ``start``."""
        r = np.asarray(self.ranks)[np.asarray(self.steps, dtype=np.int64) >= start]
        hit, ndcg = hit_and_ndcg(r, self.k)
        return {f"recall@{self.k}": float(hit.mean()) if len(r) else math.nan,
                f"ndcg@{self.k}": float(ndcg.mean()) if len(r) else math.nan}

    def curve(self, window: int) -> dict[str, list[Any]]:
        """The metrics over consecutive windows of ``window`` stream positions."""
        steps = np.asarray(self.steps, dtype=np.int64)
        hit, ndcg = hit_and_ndcg(self.ranks, self.k)
        ends, rec, nd = [], [], []
        for lo in range(0, int(steps.max()) + 1 if len(steps) else 0, window):
            m = (steps >= lo) & (steps < lo + window)
            if m.any():
                ends.append(lo + window)
                rec.append(float(hit[m].mean()))
                nd.append(float(ndcg[m].mean()))
        return {"end": ends, f"recall@{self.k}": rec, f"ndcg@{self.k}": nd}


def prequential_retrieval(model: Retriever, users: Any, items: Any, *, batch: int = 64,
                          k: int = 10, every: int = 1, exclude_seen: bool = True,
                          name: str = "", seed: int = 0, progress: bool = False
                          ) -> RetrievalReport:
    """Test-then-train over the interaction stream ``(users[n], items[n])`` in batches of
    ``batch``: rank every ``every``-th interaction with the model as it stands before its batch,
    then learn the whole batch.  ``exclude_seen`` drops from the ranking the items the user
    interacted with before the batch."""
    import time

    from tqdm import tqdm

    u, i = model._pair(users, items)
    priority = np.random.default_rng(seed).permutation(model.n_items)
    seen = np.zeros((model.n_users, model.n_items), dtype=bool)
    report = RetrievalReport(name or type(model).__name__, k)
    start = time.perf_counter()
    for lo in tqdm(range(0, len(u), batch), disable=not progress, desc=name, leave=False):
        bu, bi = u[lo:lo + batch], i[lo:lo + batch]
        pos = np.arange(lo, lo + len(bu))
        ev = pos % every == 0
        if ev.any():
            scores = model.scores_many(bu[ev])
            excl = seen[bu[ev]] if exclude_seen else np.zeros_like(scores, dtype=bool)
            report.ranks.extend(rank_of_true(scores, bi[ev], excl, priority).tolist())
            report.steps.extend(pos[ev].tolist())
        model.learn_many(bu, bi)
        seen[bu, bi] = True
    report.seconds = time.perf_counter() - start
    return report
