"""Declared state: every leaf of a module's state named, shaped and typed before a chunk arrives.

A module's ``state_spec(in_channels)`` is a tree of the same structure as its state (dicts,
tuples, lists) with a ``Leaf`` wherever the state holds a value.  A leaf says what the value is:

- ``tensor``: its shape, with ``"B"`` for the batch size and ``None`` for a size fixed by the
  first chunk (frequency bins, channels a layer does not know); its dtype (``None``: the stream's);
  its batch axis (``None``: shared by every row); at most one ``grows`` axis whose length changes
  while streaming, with its bound in ``shape`` (``INF``: unbounded); ``lazy`` when it is ``None``
  until the first chunk shows the frame's shape; ``per_stream`` for counters that a batched step
  would add up (streams holding one never share a step); ``fill``, its value in a fresh state.
- ``clock``: a Python int counting absolute frames.  Past warm-up only its increments matter, so
  streams of one batch may be at different clocks (``rebase``), unless outputs read the clock's
  value itself (``rebase=False``: attention sinks, a prefix mean).  Tensors that hold frames of
  a clock (a KV cache's positions) say so with ``frames_of``, and move with it.  With a fixed
  chunk a clock advances by a fixed amount per step, so an exported graph derives it from the
  frame count.
- ``restart``: an int, the latest frame at which some row restarts (``reset_rows``); while it is
  past 0 the rows' starts are absolute, so the stream steps alone.
- ``counter``: a Python int this stream counts for itself (transmissions, say); a batched step
  would add the streams' counts up, so streams holding one never share a step.
- ``const``: any other value, equal for every stream that shares a step.

``build`` makes a fresh state from a spec, ``nbytes`` bounds its bytes, ``conforms`` checks a live
state against its declaration (the tests run it after random chunkings of every module).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor

Dim = int | str | None
INF = math.inf  # bound of a ``grows`` axis that is not bounded
ANY = ...  # in a shape: any number of axes of any size here (a converted graph's values)
Path = tuple[Any, ...]


@dataclass(frozen=True)
class Leaf:
    """The declaration of one value of a state (see the module docstring)."""

    kind: Literal["tensor", "clock", "restart", "counter", "const"]
    shape: tuple[Any, ...] = ()  # sizes: int, "B", None, INF (a bound), ANY
    dtype: torch.dtype | None = None
    batch_axis: int | None = 0
    grows: int | None = None
    lazy: bool = False
    per_stream: bool = False
    rebase: bool = True
    fill: Any = 0
    frames_of: Path | None = None


def tensor(*shape: Any, dtype: torch.dtype | None = None, batch_axis: int | None = 0,
           grows: int | None = None, lazy: bool = False, per_stream: bool = False,
           fill: float = 0.0, frames_of: Path | None = None) -> Leaf:
    """A tensor leaf: ``tensor("B", 4, 10, grows=-1)`` holds up to 10 frames of 4 channels.

    ``frames_of=(up, *names)``: the values are absolute frames of the clock found by leaving
    ``up`` levels of this leaf's path and following ``names`` (a batch of streams at different
    clocks shifts each row's values onto the batch's clock, and back)."""
    if batch_axis is not None and shape[batch_axis] != "B":
        raise ValueError(f"batch axis {batch_axis} of {shape} must be 'B'")
    return Leaf("tensor", tuple(shape), dtype, batch_axis, grows, lazy, per_stream, True, fill,
                frames_of)


def clock_path(path: Path, leaf: Leaf) -> Path | None:
    """Where the clock of a ``frames_of`` leaf at ``path`` lives (None: not on a clock)."""
    if leaf.frames_of is None:
        return None
    up, *names = leaf.frames_of
    return (*path[: len(path) - int(up)], *names)


def clock(start: int = 0, *, rebase: bool = True) -> Leaf:
    """An absolute frame counter (a Python int), ``start`` in a fresh state."""
    return Leaf("clock", rebase=rebase, fill=start)


def restart(start: int = 0) -> Leaf:
    """The latest row-restart frame (a Python int), ``start`` in a fresh state."""
    return Leaf("restart", fill=start)


def counter() -> Leaf:
    """A per-stream count (a Python int, 0 in a fresh state)."""
    return Leaf("counter", per_stream=True, fill=0)


def const(value: Any) -> Leaf:
    """A fixed value every stream sharing a step has equal."""
    return Leaf("const", fill=value)


Spec = Any  # a tree of Leaf with the state's structure


def leaves(tree: Any, path: Path = ()) -> list[tuple[Path, Any]]:
    """Every leaf of a tree with its path (dict keys and list indices), in a fixed order."""
    if isinstance(tree, dict):
        return [kv for k in tree for kv in leaves(tree[k], (*path, k))]
    if isinstance(tree, (list, tuple)):
        return [kv for i, v in enumerate(tree) for kv in leaves(v, (*path, i))]
    return [(path, tree)]


def rebuild(tree: Any, new: dict[Path, Any], path: Path = ()) -> Any:
    """``tree``'s structure with each leaf replaced by ``new[path]``."""
    if isinstance(tree, dict):
        return {k: rebuild(v, new, (*path, k)) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(rebuild(v, new, (*path, i)) for i, v in enumerate(tree))
    return new[path]


def get(tree: Any, path: Path) -> Any:
    """The value at ``path`` in ``tree``."""
    for k in path:
        tree = tree[k]
    return tree


def spec_map(fn: Any, spec: Spec) -> Any:
    """``spec``'s structure with ``fn(leaf)`` at every leaf."""
    return rebuild(spec, {p: fn(leaf) for p, leaf in leaves(spec)})


def _initial_shape(leaf: Leaf, batch: int) -> tuple[int, ...]:
    out = []
    for i, d in enumerate(leaf.shape):
        if leaf.grows is not None and i == leaf.grows % len(leaf.shape):
            out.append(0)  # a growing axis starts empty
        elif d == "B":
            out.append(batch)
        elif isinstance(d, int):
            out.append(d)
        else:
            raise ValueError(f"a fresh tensor needs every size; {leaf.shape} has {d!r}: make it "
                             "lazy (made on the first chunk)")
    return tuple(out)


def build(spec: Spec, batch_size: int, device: torch.device, dtype: torch.dtype) -> Any:
    """A fresh state from its declaration (lazy tensors are None)."""
    def make(leaf: Leaf) -> Any:
        if leaf.kind != "tensor":
            return leaf.fill
        if leaf.lazy:
            return None
        return torch.full(_initial_shape(leaf, batch_size), leaf.fill, device=device,
                          dtype=leaf.dtype or dtype)
    return spec_map(make, spec)


def nbytes(spec: Spec, batch_size: int, dtype: torch.dtype = torch.float32) -> int | None:
    """Upper bound on the bytes of a state's tensors (None: some leaf grows without bound).

    Sizes fixed only by the first chunk count as 1."""
    total = 0
    for _, leaf in leaves(spec):
        if leaf.kind != "tensor":
            continue
        n = 1
        for d in leaf.shape:
            if d == INF:
                return None
            n *= batch_size if d == "B" else d if isinstance(d, int) else 1  # None, ANY: 1
        total += n * torch.empty((), dtype=leaf.dtype or dtype).element_size()
    return total


def batch_axes(spec: Spec) -> dict[Path, int | None]:
    """Path -> batch axis of every tensor leaf (None: shared by the rows)."""
    return {p: leaf.batch_axis for p, leaf in leaves(spec) if leaf.kind == "tensor"}


def conforms(spec: Spec, state: Any, batch_size: int, dtype: torch.dtype,
             in_channels: int | None = None) -> list[str]:
    """What in ``state`` breaks its declaration (an empty list: nothing)."""
    problems: list[str] = []
    want = dict(leaves(spec))
    got = dict(leaves(state))
    if set(want) != set(got):
        return [f"paths differ: declared only {sorted(map(str, set(want) - set(got)))}, "
                f"present only {sorted(map(str, set(got) - set(want)))}"]
    for path, leaf in want.items():
        v = got[path]
        if leaf.kind != "tensor":
            if not isinstance(v, int) and leaf.kind in ("clock", "restart", "counter"):
                problems.append(f"{path}: a {leaf.kind} must be an int, got {type(v).__name__}")
            continue
        if v is None:
            if not leaf.lazy:
                problems.append(f"{path}: None but not declared lazy")
            continue
        if not isinstance(v, Tensor):
            problems.append(f"{path}: expected a tensor, got {type(v).__name__}")
            continue
        rank = len(leaf.shape) - (ANY in leaf.shape)
        wrong_rank = v.dim() < rank if ANY in leaf.shape else v.dim() != rank
        if wrong_rank:
            problems.append(f"{path}: expected {rank} dims {leaf.shape}, got {tuple(v.shape)}")
            continue
        if v.dtype != (leaf.dtype or dtype):
            problems.append(f"{path}: expected dtype {leaf.dtype or dtype}, got {v.dtype}")
        cut = leaf.shape.index(ANY) if ANY in leaf.shape else len(leaf.shape)
        for i, d in enumerate(leaf.shape):
            if d is ANY:
                continue
            s = v.shape[i if i < cut else i - len(leaf.shape)]
            grows = leaf.grows is not None and i == leaf.grows % len(leaf.shape)
            if d == "B":
                ok = s == batch_size
            elif grows:
                ok = s <= d
            else:
                ok = d is None or s == d
            if not ok:
                problems.append(f"{path}: axis {i} is {s}, declared {d!r}"
                                f"{' (bound)' if grows else ''} in {leaf.shape}")
    return problems
