"""SPLASH-style node property prediction on an edge stream (Lee et al., ICDE 2025), TGB's
``tgbn-genre`` task shape on a user-item stream.

The stream is cut into periods ``p`` (e.g. days).  A user ``u`` active in period ``p`` has the
property ``y_{u,p}``, the genre distribution of the items it rated then (an item with ``g``
genres adds ``1/g`` to each; the vector is normalised to sum 1).  At the end of period ``p``,
for every user active in ``p + 1``, predict ``y_{u,p+1}`` from the edges of periods ``<= p``;
the score is TGB's NDCG@10 over the genres, with linear gains (scikit-learn's ``ndcg_score``:
equal predictions share the mean gain of their tie group):

    DCG@k(y, s) = sum_{r <= k} y_{pi(r)} / log2(r + 1),   NDCG@k = DCG@k(y, s) / DCG@k(y, y),

``pi`` the genres sorted by the prediction ``s``.  TGB's baselines: persistence (``y`` of the
user's last active period) and the moving average of its last ``w`` properties; a user with no
past gets the global genre distribution of the last period.

SPLASH's recipe: (1) augment node features from the stream alone: *random* (a fixed random
vector per user), *positional* (the mean of fixed random item vectors over the user's items, a
sketch of where in the graph it lives), *structural* (log degree, log recency, active periods,
a decayed recent degree), next to property aggregates (the moving average and EMA of ``y``, the
genre profile of all its items, the global distribution); (2) select feature groups that
generalise across time: a ridge regression ``W = (X'X + lambda I)^-1 X'Y`` is fitted on the
periods before each of several split points and scored (NDCG@10) on the periods after, and
groups are added greedily while the mean over the splits improves; (3) a small MLP on the
selected features, ``softmax(MLP(x))``, trained by the soft cross-entropy
``-sum_g y_g log p_g`` first on the selection window, then online: each period's new labels are
learned (with a replay sample) only after they were predicted.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np
import torch

from streamwise.learn.base import check_matrix
from streamwise.learn.two_tower import check_indices

GROUPS = ("ma", "ema", "last", "profile", "global", "structural", "positional", "random")


def genre_ndcg(true: Any, pred: Any, k: int = 10) -> np.ndarray:
    """NDCG@k of each row of ``pred`` against the relevance row ``true`` (linear gains, ties
    of ``pred`` averaged as scikit-learn does); rows with no relevance give NaN."""
    y, s = np.atleast_2d(np.asarray(true, float)), np.atleast_2d(np.asarray(pred, float))
    if y.shape != s.shape:
        raise ValueError(f"expected true and pred of one shape, got {y.shape} and {s.shape}")
    disc = np.zeros(y.shape[1])
    disc[:k] = 1.0 / np.log2(np.arange(2, min(k, y.shape[1]) + 2))
    ideal = (-np.sort(-y, axis=1) * disc).sum(1)
    out = np.empty(len(y))
    for r in range(len(y)):
        order = np.argsort(-s[r], kind="stable")
        ps, gs = s[r][order], y[r][order]
        dcg, a = 0.0, 0
        while a < len(ps):
            b = a + 1
            while b < len(ps) and ps[b] == ps[a]:
                b += 1
            dcg += gs[a:b].mean() * disc[a:b].sum()
            a = b
        out[r] = dcg / ideal[r] if ideal[r] > 0 else np.nan
    return out


def period_labels(users: Any, items: Any, periods: Any, genres: np.ndarray
                  ) -> list[tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
    """Per period (in order): ``(p, active users, their labels (n, g), edge rows)``."""
    u, it, per = np.asarray(users), np.asarray(items), np.asarray(periods)
    share = genres / genres.sum(1, keepdims=True).clip(min=1e-12)
    out = []
    for p in np.unique(per):
        rows = np.flatnonzero(per == p)
        act, inv = np.unique(u[rows], return_inverse=True)
        lab = np.zeros((len(act), genres.shape[1]))
        np.add.at(lab, inv, share[it[rows]])
        out.append((int(p), act, lab / lab.sum(1, keepdims=True).clip(min=1e-12), rows))
    return out


class StreamState:
    """Every user's candidate features, kept incrementally from the periods seen so far."""

    def __init__(self, n_users: int, n_items: int, genres: np.ndarray, window: int = 7,
                 alpha: float = 0.3, decay: float = 0.8, dim: int = 16, seed: int = 0) -> None:
        g = genres.shape[1]
        self.n_users, self.genres, self.window, self.alpha, self.decay = (
            n_users, genres, window, alpha, decay)
        rng = np.random.default_rng(seed)
        self.item_rand = rng.standard_normal((n_items, dim)) / np.sqrt(dim)
        self.user_rand = rng.standard_normal((n_users, dim))
        self.last = np.zeros((n_users, g))
        self.ema = np.zeros((n_users, g))
        self.hist: list[deque[np.ndarray]] = [deque(maxlen=window) for _ in range(n_users)]
        self.profile = np.zeros((n_users, g))
        self.pos = np.zeros((n_users, dim))
        self.degree = np.zeros(n_users)
        self.recent = np.zeros(n_users)
        self.active = np.zeros(n_users)
        self.last_p = np.full(n_users, -1)
        self.glob = np.full(g, 1.0 / g)
        self.label_sum, self.label_n = np.zeros(g), 0
        self.p = -1

    def update(self, p: int, users: np.ndarray, labels: np.ndarray, edge_users: np.ndarray,
               edge_items: np.ndarray) -> None:
        """Take in period ``p``: its active users' labels and its edges."""
        self.recent *= self.decay ** (p - self.p) if self.p >= 0 else 1.0
        self.p = p
        seen = self.active[users] > 0
        self.ema[users] = np.where(seen[:, None], (1 - self.alpha) * self.ema[users]
                                   + self.alpha * labels, labels)
        self.last[users] = labels
        for u, y in zip(users.tolist(), labels):
            self.hist[u].append(y)
        self.active[users] += 1
        self.last_p[users] = p
        np.add.at(self.profile, edge_users, self.genres[edge_items])
        np.add.at(self.pos, edge_users, self.item_rand[edge_items])
        np.add.at(self.degree, edge_users, 1.0)
        np.add.at(self.recent, edge_users, 1.0)
        self.glob = labels.mean(0)
        self.label_sum += labels.sum(0)
        self.label_n += len(labels)

    @property
    def mean_label(self) -> np.ndarray:
        """The mean of every label so far (uniform before any)."""
        return self.label_sum / self.label_n if self.label_n else self.glob

    def _fallback(self, users: np.ndarray, x: np.ndarray) -> np.ndarray:
        return np.where((self.active[users] > 0)[:, None], x, self.mean_label)

    def persistence(self, users: Any) -> np.ndarray:
        u = check_indices(users, self.n_users, "user")
        return self._fallback(u, self.last[u])

    def moving_average(self, users: Any) -> np.ndarray:
        u = check_indices(users, self.n_users, "user")
        ma = np.array([np.mean(self.hist[k], 0) if self.hist[k] else self.mean_label
                       for k in u])
        return ma.reshape(len(u), -1)

    def candidates(self, users: Any) -> dict[str, np.ndarray]:
        """Each candidate feature group for ``users``, ``(n, width)`` each."""
        u = check_indices(users, self.n_users, "user")
        deg = self.degree[u].clip(min=1.0)[:, None]
        prof = self.profile[u]
        since = np.where(self.last_p[u] >= 0, self.p - self.last_p[u], 1000.0)
        return {
            "ma": self.moving_average(u), "ema": self._fallback(u, self.ema[u]),
            "last": self.persistence(u),
            "profile": self._fallback(u, prof / prof.sum(1, keepdims=True).clip(min=1e-12)),
            "global": np.broadcast_to(self.glob, (len(u), len(self.glob))).copy(),
            "structural": np.stack([np.log1p(self.degree[u]), np.log1p(since),
                                    np.log1p(self.active[u]), np.log1p(self.recent[u])], 1),
            "positional": self.pos[u] / deg, "random": self.user_rand[u]}


def stack(groups: dict[str, np.ndarray], chosen: list[str]) -> np.ndarray:
    return np.concatenate([groups[g] for g in chosen], 1) if chosen else np.zeros(
        (len(next(iter(groups.values()))), 0))


def ridge_ndcg(train: dict[str, np.ndarray], y_train: np.ndarray, val: dict[str, np.ndarray],
               y_val: np.ndarray, chosen: list[str], lam: float = 1.0, k: int = 10) -> float:
    """Mean NDCG@k on ``val`` of the ridge regression of ``y`` on the ``chosen`` groups (plus
    an intercept, standardised on ``train``)."""
    a, b = stack(train, chosen), stack(val, chosen)
    mu, sd = a.mean(0), a.std(0) + 1e-6
    a = np.concatenate([(a - mu) / sd, np.ones((len(a), 1))], 1)
    b = np.concatenate([(b - mu) / sd, np.ones((len(b), 1))], 1)
    w = np.linalg.solve(a.T @ a + lam * np.eye(a.shape[1]), a.T @ y_train)
    return float(np.nanmean(genre_ndcg(y_val, b @ w, k)))


def select_groups(X: dict[str, np.ndarray], Y: np.ndarray, periods: np.ndarray,
                  splits: int = 3, candidates: tuple[str, ...] = GROUPS, tol: float = 1e-4,
                  lams: tuple[float, ...] = (1.0, 30.0, 1000.0)
                  ) -> tuple[list[str], list[dict[str, Any]]]:
    """Greedy forward selection of feature groups by the mean ridge NDCG@10 over ``splits``
    time splits (train: periods before the split point; validate: up to the next one), each
    set scored at its best ridge strength in ``lams``."""
    ps = np.unique(periods)
    edges = [ps[int(len(ps) * f)] for f in np.linspace(0.4, 1.0, splits + 1)[:-1]] + [ps[-1] + 1]
    folds = [(periods < lo, (periods >= lo) & (periods < hi)) for lo, hi in zip(edges, edges[1:])]

    def score(chosen: list[str]) -> float:  # the best ridge strength for these groups
        return max(float(np.mean([ridge_ndcg({g: v[tr] for g, v in X.items()}, Y[tr],
                                             {g: v[va] for g, v in X.items()}, Y[va], chosen,
                                             lam) for tr, va in folds]))
                   for lam in lams)

    chosen: list[str] = []
    best, trace = score(chosen), []
    trace.append({"groups": [], "val_ndcg": best})
    while True:
        trials = {g: score([*chosen, g]) for g in candidates if g not in chosen}
        if not trials:
            break
        g = max(trials, key=trials.__getitem__)
        trace.append({"groups": [*chosen, g], "val_ndcg": trials[g], "trials": trials})
        if trials[g] <= best + tol:
            break
        chosen, best = [*chosen, g], trials[g]
    return chosen, trace


class GenrePredictor:
    """``softmax(MLP(x))`` over the genres, standardised inputs, soft cross-entropy, Adam."""

    def __init__(self, n_features: int, n_genres: int, hidden: int = 64, lr: float = 3e-3,
                 replay: int = 256, seed: int = 0) -> None:
        torch.manual_seed(seed)
        # no features selected: one constant input, so the MLP is a learned correction alone
        last = torch.nn.Linear(hidden, n_genres)
        with torch.no_grad():  # starts at the prior: logits = log prior + MLP(x), MLP(x) = 0
            last.weight.zero_()
            last.bias.zero_()
        self.net = torch.nn.Sequential(torch.nn.Linear(max(n_features, 1), hidden),
                                       torch.nn.ReLU(), last)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=lr)
        self.n_features, self.n_genres, self.replay = n_features, n_genres, replay
        self.mu, self.sd = np.zeros(n_features), np.ones(n_features)
        self.past: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.rng = np.random.default_rng(seed)
        self.names = [f"f{i}" for i in range(n_features)]

    def _check(self, X: Any, Y: Any) -> tuple[np.ndarray, np.ndarray]:
        a = check_matrix(X, self.n_features)
        y = check_matrix(Y, self.n_genres)
        if len(y) != len(a):
            raise ValueError(f"expected one label row per feature row ({len(a)}), got {len(y)}")
        if (y < 0).any() or not np.allclose(y.sum(1), 1.0, atol=1e-6):
            raise ValueError("expected labels that are distributions (>= 0, rows summing to 1)")
        return a, y

    def standardise(self, X: Any) -> None:
        a = check_matrix(X, self.n_features)
        self.mu, self.sd = a.mean(0), a.std(0) + 1e-6

    def _prior(self, prior: Any, n: int) -> np.ndarray:
        if prior is None:
            return np.full((n, self.n_genres), 1.0 / self.n_genres)
        q = check_matrix(prior, self.n_genres)
        if len(q) != n or (q < 0).any():
            raise ValueError(f"expected a non-negative ({n}, {self.n_genres}) prior")
        return q

    def _logits(self, a: np.ndarray, q: np.ndarray) -> torch.Tensor:
        x = torch.as_tensor((a - self.mu) / self.sd if self.n_features else np.ones((len(a), 1)),
                            dtype=torch.float32)
        return torch.log(torch.as_tensor(q, dtype=torch.float32) + 1e-4) + self.net(x)

    def learn_many(self, X: Any, Y: Any, prior: Any = None, steps: int = 1, batch: int = 256
                   ) -> None:
        """``steps`` passes over the rows (each mini-batch with a replay sample of past rows);
        ``prior`` the distributions the logits start from (uniform when ``None``)."""
        a, y = self._check(X, Y)
        q = self._prior(prior, len(a))
        self.past.extend(zip(a, y, q))
        for _ in range(steps):
            for k in range(0, len(a), batch):
                rows = [(a[j], y[j], q[j]) for j in range(k, min(k + batch, len(a)))]
                if self.replay:
                    rows += [self.past[j] for j in self.rng.integers(0, len(self.past),
                                                                     self.replay)]
                xa, ya, qa = (np.stack(c) for c in zip(*rows))
                self.opt.zero_grad()
                logp = torch.log_softmax(self._logits(xa, qa), 1)
                loss = -(torch.as_tensor(ya, dtype=torch.float32) * logp).sum(1).mean()
                loss.backward()
                self.opt.step()

    def predict_proba_many(self, X: Any, prior: Any = None) -> np.ndarray:
        a = check_matrix(X, self.n_features)
        q = self._prior(prior, len(a))
        with torch.no_grad():
            return torch.softmax(self._logits(a, q), 1).double().numpy()

    def predict_many(self, X: Any) -> np.ndarray:
        """The most probable genre of each row."""
        return self.predict_proba_many(X).argmax(1)

    def predict_proba_one(self, x: dict[str, Any]) -> dict[int, float]:
        from streamwise.learn.base import feature_vector

        return dict(enumerate(self.predict_proba_many(feature_vector(x, self.names)[None])[0]
                              .tolist()))

    def predict_one(self, x: dict[str, Any]) -> int:
        p = self.predict_proba_one(x)
        return max(p, key=p.__getitem__)


def run_stream(users: Any, items: Any, periods: Any, genres: np.ndarray, n_users: int,
               n_items: int, *, select_frac: float = 0.3, window: int = 7, epochs: int = 30,
               steps: int = 2, k: int = 10, seed: int = 0) -> dict[str, Any]:
    """Test-then-learn over the periods: the first ``select_frac`` of them only collect
    instances (features at the end of ``p - 1``, label of ``p``) for the selection and the
    predictor's first fit; every later period is predicted by each model and scored, and only
    then learned.  Returns per-model NDCG@k per instance, their periods and the selection."""
    u = check_indices(users, n_users, "user")
    it = check_indices(items, n_items, "item")
    per = check_indices(periods, np.iinfo(np.int64).max, "period")
    if not len(u) == len(it) == len(per):
        raise ValueError("expected users, items and periods of one length")
    labels = period_labels(u, it, per, genres)
    state = StreamState(n_users, n_items, genres, window=window, seed=seed)
    n_sel = max(2, int(len(labels) * select_frac))
    store: list[tuple[int, dict[str, np.ndarray], np.ndarray, np.ndarray]] = []
    models: dict[str, GenrePredictor] = {}
    chosen: list[str] = []
    trace: list[dict[str, Any]] = []
    names = ["persistence", f"moving average (last {window})", "EMA", "global mean",
             "SPLASH", "MLP, all features"]
    scores: dict[str, list[np.ndarray]] = {n: [] for n in names}
    when: list[np.ndarray] = []
    for idx, (p, act, lab, rows) in enumerate(labels):
        if idx > 0:
            groups = state.candidates(act)
            prior = state.mean_label[None].repeat(len(act), 0)
            if idx < n_sel:
                store.append((p, groups, lab, prior))
            else:
                if not models:
                    X = {g: np.concatenate([s[1][g] for s in store]) for g in GROUPS}
                    Y = np.concatenate([s[2] for s in store])
                    ps = np.concatenate([np.full(len(s[2]), s[0]) for s in store])
                    Q = np.concatenate([s[3] for s in store])
                    chosen, trace = select_groups(X, Y, ps)
                    for name, gs in (("SPLASH", chosen),
                                     ("MLP, all features", list(GROUPS))):
                        m = GenrePredictor(stack(X, gs).shape[1], genres.shape[1], seed=seed)
                        m.standardise(stack(X, gs))
                        m.learn_many(stack(X, gs), Y, Q, steps=epochs)
                        models[name] = m
                preds = {"persistence": groups["last"], names[1]: groups["ma"],
                         "EMA": groups["ema"], "global mean": prior}
                gs_of = {"SPLASH": chosen, "MLP, all features": list(GROUPS)}
                for name, m in models.items():
                    preds[name] = m.predict_proba_many(stack(groups, gs_of[name]), prior)
                for name in names:
                    scores[name].append(genre_ndcg(lab, preds[name], k))
                when.append(np.full(len(act), p))
                for name, m in models.items():  # learned only after it was scored
                    m.learn_many(stack(groups, gs_of[name]), lab, prior, steps=steps)
        state.update(p, act, lab, u[rows], it[rows])
    return {"ndcg": {n: np.concatenate(v) if v else np.zeros(0) for n, v in scores.items()},
            "periods": np.concatenate(when) if when else np.zeros(0, dtype=np.int64),
            "selected": chosen, "selection": trace, "n_periods": len(labels),
            "first_scored_period": labels[n_sel][0] if len(labels) > n_sel else None}
