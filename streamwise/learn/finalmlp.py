"""FinalMLP (Mao et al., 2023): a two-stream MLP for click-through rate, learned from a stream.

A record ``x`` is a dict of ``F`` fields, each of a kind: ``"cat"`` (one categorical value),
``"multi"`` (a collection of them, e.g. a film's genres) or ``"num"`` (a number).  Each field
becomes a ``d``-vector, and the record their concatenation ``e = [e_1; ...; e_F]`` (``F d``):

    e_f = E[h(f, v)]                                     cat
    e_f = (1/|S|) sum_{v in S} E[h(f, v)]                multi (zero for an empty S)
    e_f = v E[h(f, "")]                                  num

``E`` is one table of ``buckets`` rows and ``h(f, v)`` a fixed hash (BLAKE2b of ``"f=v"``) into
it: the way a streaming CTR model meets ids it has never seen (a new user, a new film) without
a vocabulary.  A new value gets the row it hashes to, untrained at first; two values may share a
row (with ``buckets = 2**17`` and MovieLens's ~2,750 values, about 2% of them do).  Nothing
grows, so memory is fixed and predicting never changes the model.

Feature selection (one gate per stream): each stream is given its own view of ``e``,

    h_k = g_k * e,        g_k = 2 sigmoid( W_k2 relu(W_k1 c_k + a_k1) + a_k2 ),   k = 1, 2,

``c_k`` the concatenated embeddings of the stream's conditioning fields (``gate1``, e.g. the
user's; ``gate2``, e.g. the item's), or a learned ``d``-vector when none are named; ``g_k`` is 1
where the gate is neutral and lies in ``(0, 2)``.  Two MLPs of different sizes (ReLU after every
layer) map ``h_1``, ``h_2`` to ``o_1 = MLP_1(h_1)`` and ``o_2 = MLP_2(h_2)``.

Multi-head bilinear fusion: ``o_1`` and ``o_2`` are cut into ``H`` equal chunks ``o_1^j``,
``o_2^j`` and

    p(y = 1 | x) = sigmoid( sum_j  b_j + w1_j . o_1^j + w2_j . o_2^j + o_1^j' W3_j o_2^j ),

the paper's ``sigmoid(b + w1' o1 + w2' o2 + o1' W3 o2)`` with a block-diagonal ``W3`` (H blocks).
The paper's batch norm and dropout are left out (batches of one record).  ``PlainMLP`` is the
ablation: no gates, one stream, ``p = sigmoid(b + w' MLP_1(e))``.

Learning minimises the log loss with Adam (dense weights) and sparse Adam (the rows of ``E``
that the batch touched, so a step does not sweep the table).  ``learn_one(x, y)`` keeps the
record, and every ``every`` records takes one step on the last ``window`` records kept
(``window`` defaults to ``every``: each record in exactly one mini-batch; ``every=1``: one step
per record, on that record alone when ``window=1``).  Records kept but not yet stepped on wait
at most ``every - 1`` records: a step (forward, backward, two optimisers) costs several times a
prediction, and mini-batches trade fewer steps for a cheaper record.  ``learn_many(X, y)``
takes one step on the batch ``X`` (a sequence of dicts) and leaves the kept records as they are.
Invalid input raises ``ValueError`` naming the field, before anything changes.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import math
from collections import deque
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from streamwise.learn.base import Classifier

KINDS = ("cat", "multi", "num")
Encoded = tuple[list[int], list[float], list[int]]  # rows, weights, rows per field


@functools.lru_cache(maxsize=1 << 20)
def bucket(key: str, buckets: int) -> int:
    """The table row of a ``"field=value"`` key: BLAKE2b, modulo ``buckets``."""
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") % buckets


def _category(field: str, v: Any) -> str:
    if isinstance(v, str):
        return v
    if isinstance(v, int | np.integer):  # bool too: True is "True"
        return str(v) if isinstance(v, bool | np.bool_) else str(int(v))
    raise ValueError(f"field {field!r}: expected a category (str or int), got "
                     f"{type(v).__name__} {v!r}")


def _mlp(sizes: Sequence[int], relu_last: bool, dtype: torch.dtype) -> torch.nn.Sequential:
    layers: list[torch.nn.Module] = []
    for k, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(torch.nn.Linear(a, b, dtype=dtype))
        if relu_last or k < len(sizes) - 2:
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers)


class FinalMLPNet(torch.nn.Module):
    """The network on encoded batches: ``forward(rows, offsets, weights, n)`` -> logits."""

    def __init__(self, n_fields: int, dim: int, buckets: int, gate1: Sequence[int],
                 gate2: Sequence[int], stream1: Sequence[int], stream2: Sequence[int],
                 heads: int, gate_hidden: int, single: bool, dtype: torch.dtype) -> None:
        super().__init__()
        self.n_fields, self.dim, self.heads, self.single = n_fields, dim, heads, single
        width = n_fields * dim
        self.table = torch.nn.Parameter(0.01 * torch.randn(buckets, dim, dtype=dtype))
        self.stream1 = _mlp([width, *stream1], True, dtype)
        if single:
            self.head = torch.nn.Linear(stream1[-1], 1, dtype=dtype)
            return
        self.groups = [list(gate1), list(gate2)]
        self.context = torch.nn.ParameterList(  # the conditioning of a gate without fields
            [torch.nn.Parameter(0.01 * torch.randn(dim, dtype=dtype)) for g in self.groups
             if not g])
        self.gates = torch.nn.ModuleList(
            [_mlp([max(1, len(g)) * dim, gate_hidden, width], False, dtype)
             for g in self.groups])
        self.stream2 = _mlp([width, *stream2], True, dtype)
        d1, d2 = stream1[-1] // heads, stream2[-1] // heads
        self.b = torch.nn.Parameter(torch.zeros(heads, dtype=dtype))
        self.w1 = torch.nn.Parameter(torch.randn(heads, d1, dtype=dtype) / math.sqrt(d1))
        self.w2 = torch.nn.Parameter(torch.randn(heads, d2, dtype=dtype) / math.sqrt(d2))
        self.w3 = torch.nn.Parameter(torch.randn(heads, d1, d2, dtype=dtype) / (d1 * d2) ** .5)

    def embed(self, rows: torch.Tensor, offsets: torch.Tensor, weights: torch.Tensor,
              n: int) -> torch.Tensor:
        """``(n, F, d)`` field embeddings: one weighted bag of table rows per field."""
        bags = torch.nn.functional.embedding_bag(rows, self.table, offsets, mode="sum",
                                                 per_sample_weights=weights, sparse=True)
        return bags.view(n, self.n_fields, self.dim)

    def gate(self, k: int, e: torch.Tensor) -> torch.Tensor:
        """Stream ``k``'s gate ``g_k`` (``(n, F d)``) from the field embeddings ``e``."""
        group = self.groups[k]
        if group:
            c = e[:, group].flatten(1)
        else:
            c = self.context[sum(not g for g in self.groups[:k])].expand(len(e), -1)
        return 2 * torch.sigmoid(self.gates[k](c))

    def fusion(self, o1: torch.Tensor, o2: torch.Tensor) -> torch.Tensor:
        """The multi-head bilinear fusion's logit, ``(n,)``."""
        a, c = o1.view(len(o1), self.heads, -1), o2.view(len(o2), self.heads, -1)
        bilinear = torch.einsum("nhi,hij,nhj->nh", a, self.w3, c)
        return (self.b + (a * self.w1).sum(-1) + (c * self.w2).sum(-1) + bilinear).sum(-1)

    def forward(self, rows: torch.Tensor, offsets: torch.Tensor, weights: torch.Tensor,
                n: int) -> torch.Tensor:
        e = self.embed(rows, offsets, weights, n)
        flat = e.flatten(1)
        if self.single:
            return self.head(self.stream1(flat)).squeeze(-1)
        o1 = self.stream1(self.gate(0, e) * flat)
        o2 = self.stream2(self.gate(1, e) * flat)
        return self.fusion(o1, o2)


class FinalMLP(Classifier):
    """FinalMLP as a streaming binary classifier (labels ``False``/``True``)."""

    classes = [False, True]
    _single = False

    def __init__(self, fields: Mapping[str, str], gate1: Sequence[str] = (),
                 gate2: Sequence[str] = (), dim: int = 16,
                 stream1: Sequence[int] = (128, 64), stream2: Sequence[int] = (64,),
                 heads: int = 4, gate_hidden: int = 64, buckets: int = 1 << 17,
                 lr: float = 1e-3, embedding_lr: float | None = None, every: int = 1,
                 window: int | None = None,
                 seed: int = 0, dtype: torch.dtype = torch.float32) -> None:
        fields = dict(fields)
        bad = {f: k for f, k in fields.items() if k not in KINDS or not isinstance(f, str)}
        if not fields or bad:
            raise ValueError(f"expected fields as {{name: kind}} with kinds {KINDS}, got {bad}")
        index = {f: j for j, f in enumerate(fields)}
        for name, group in (("gate1", gate1), ("gate2", gate2)):
            unknown = [f for f in group if f not in index]
            if unknown or isinstance(group, str):
                raise ValueError(f"{name}: expected a sequence of field names from "
                                 f"{list(fields)}, got {group!r}")
        if not stream1 or (not self._single and not stream2):
            raise ValueError("expected at least one layer in each stream")
        window = every if window is None else window
        if window < every:
            raise ValueError(f"window ({window}) must be >= every ({every}): a record would "
                             f"be skipped")
        if min([dim, buckets, every, heads, gate_hidden, *stream1, *stream2]) < 1:
            raise ValueError("dim, buckets, every, heads, gate_hidden and layer sizes must "
                             "be >= 1")
        if not self._single and (stream1[-1] % heads or stream2[-1] % heads):
            raise ValueError(f"the streams' output sizes ({stream1[-1]}, {stream2[-1]}) must "
                             f"be multiples of heads={heads}")
        torch.manual_seed(seed)
        self.fields, self.buckets, self.every, self.window = fields, buckets, every, window
        self.net = FinalMLPNet(len(fields), dim, buckets, [index[f] for f in gate1],
                               [index[f] for f in gate2], stream1, stream2, heads,
                               gate_hidden, self._single, dtype)
        self.dtype = dtype
        dense = [p for n, p in self.net.named_parameters() if n != "table"]
        self.opt = torch.optim.Adam(dense, lr=lr, fused=True)  # one kernel for all tensors
        self.sparse_opt = torch.optim.SparseAdam([self.net.table],
                                                 lr=lr if embedding_lr is None else embedding_lr)
        self.recent: deque[tuple[Encoded, float]] = deque(maxlen=window)
        self.pending = 0  # records kept since the last step
        self.steps = 0

    # -- encoding (all validation happens here, before anything changes) --
    def encode(self, x: Any) -> Encoded:
        """``x``'s table rows, their weights and the number of rows per field."""
        if not isinstance(x, dict):
            raise ValueError(f"expected a dict with the fields {list(self.fields)}, got "
                             f"{type(x).__name__}")
        unknown = [str(k) for k in x if k not in self.fields]
        if unknown:
            raise ValueError(f"unknown fields {sorted(unknown)[:8]}; this model reads "
                             f"{list(self.fields)}")
        rows: list[int] = []
        weights: list[float] = []
        counts: list[int] = []
        for f, kind in self.fields.items():
            if f not in x:
                raise ValueError(f"missing field {f!r} (expected all of {list(self.fields)})")
            v = x[f]
            if kind == "cat":
                rows.append(bucket(f"{f}={_category(f, v)}", self.buckets))
                weights.append(1.0)
            elif kind == "multi":
                if isinstance(v, str | bytes) or not isinstance(v, list | tuple | set
                                                                | frozenset):
                    raise ValueError(f"field {f!r}: expected a list, tuple or set of "
                                     f"categories, got {type(v).__name__} {v!r}")
                keys = sorted({_category(f, u) for u in v})
                rows.extend(bucket(f"{f}={k}", self.buckets) for k in keys)
                weights.extend([1.0 / len(keys)] * len(keys) if keys else [])
            else:
                if isinstance(v, bool | np.bool_) or not isinstance(v, int | float | np.number):
                    raise ValueError(f"field {f!r}: expected a number, got "
                                     f"{type(v).__name__} {v!r}")
                if not math.isfinite(float(v)):
                    raise ValueError(f"field {f!r}: expected a finite number, got {v}")
                rows.append(bucket(f"{f}=", self.buckets))
                weights.append(float(v))
            counts.append(len(rows) - sum(counts))
        return rows, weights, counts

    def _encode_many(self, X: Any) -> list[Encoded]:
        if isinstance(X, dict) or not isinstance(X, Sequence):
            raise ValueError(f"expected a sequence of dicts (one per record), got "
                             f"{type(X).__name__}")
        return [self.encode(x) for x in X]

    @staticmethod
    def _label(y: Any) -> float:
        if isinstance(y, bool | np.bool_) or (isinstance(y, int | np.integer) and y in (0, 1)):
            return float(bool(y))
        raise ValueError(f"expected a boolean label (or 0/1), got {type(y).__name__} {y!r}")

    def _batch(self, encoded: Sequence[Encoded]) -> tuple[torch.Tensor, ...]:
        rows = [r for e in encoded for r in e[0]]
        weights = [w for e in encoded for w in e[1]]
        counts = [c for e in encoded for c in e[2]]
        offsets = [0, *itertools.accumulate(counts[:-1])]
        return (torch.tensor(rows, dtype=torch.int64), torch.tensor(offsets, dtype=torch.int64),
                torch.tensor(weights, dtype=self.dtype))

    def _logits(self, encoded: Sequence[Encoded]) -> torch.Tensor:
        return self.net(*self._batch(encoded), len(encoded))

    def _step(self, encoded: Sequence[Encoded], ys: Sequence[float]) -> None:
        target = torch.tensor(ys, dtype=self.dtype)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(self._logits(encoded),
                                                                    target)
        self.opt.zero_grad(set_to_none=True)
        self.sparse_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.sparse_opt.step()
        self.steps += 1

    # -- the verbs --
    def learn_one(self, x: dict[str, Any], y: Any = None) -> None:
        encoded, label = self.encode(x), self._label(y)
        self.recent.append((encoded, label))
        self.pending += 1
        if self.pending >= self.every:
            self.pending = 0
            self._step([e for e, _ in self.recent], [t for _, t in self.recent])

    def learn_many(self, X: Sequence[dict[str, Any]], y: Any) -> None:
        encoded = self._encode_many(X)
        labels = [self._label(t) for t in np.asarray(y, dtype=object).ravel()]
        if len(labels) != len(encoded) or not encoded:
            raise ValueError(f"expected one label per record ({len(encoded)}, at least one), "
                             f"got {len(labels)}")
        self._step(encoded, labels)

    def predict_proba_many(self, X: Sequence[dict[str, Any]]) -> np.ndarray:
        """``(n, 2)``: ``P(False)``, ``P(True)`` per record (the columns of ``classes``)."""
        encoded = self._encode_many(X)
        if not encoded:
            return np.zeros((0, 2))
        with torch.inference_mode():
            p = torch.sigmoid(self._logits(encoded)).double().numpy()
        return np.stack([1 - p, p], 1)

    def predict_proba_one(self, x: dict[str, Any]) -> dict[Hashable, float]:
        encoded = self.encode(x)
        with torch.inference_mode():
            p = float(torch.sigmoid(self._logits([encoded]))[0])
        return {True: p, False: 1.0 - p}

    def predict_one(self, x: dict[str, Any]) -> bool:
        return self.predict_proba_one(x)[True] >= 0.5


class PlainMLP(FinalMLP):
    """The ablation: FinalMLP without gates, second stream and fusion (``stream2``, ``heads``,
    ``gate*`` are ignored): ``p = sigmoid(b + w' MLP_1(e))``."""

    _single = True
