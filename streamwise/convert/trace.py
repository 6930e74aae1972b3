"""Trace a model with ``torch.fx`` and learn, for every value in the graph, where time is.

The model runs three times on probe inputs: the example, the example made longer in time, and the
example with one more batch row.  An axis whose size follows the length is the value's time axis,
one that follows the batch is its batch axis.  Values that do not depend on the input are static
(weights, fixed bases); values that depend on it but have no time axis are sizes (``x.shape[-1]``)
or, when they are tensors, reductions over time, which no stream can compute before the end.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import torch
from torch import Tensor, fx, nn

from streamwise.convert.length_trace import recorded_builtins, source_line
from streamwise.convert.probe_inputs import PROBE_EXTRA, length_probes, probe_inputs
from streamwise.convert.sized_trace import ShapeRefusal, SizedTracer
from streamwise.convert.wrapped_calls import recorded_calls, script_of
from streamwise.core.protocol import NotStreamableError


class ConversionError(NotStreamableError):
    """The model cannot be converted as it is; ``problems`` lists every op at fault.

    With problems, the message gives each distinct reason once with the places it occurs, the
    model's own reasons before converter limits (``refusal_text``); file paths are shortened
    (an installed package's from the package, the working directory's relative to it)."""

    def __init__(self, message: str, problems: list[Problem] | None = None,
                 report: Any = None) -> None:
        from streamwise.convert.refusal_text import refusal, short_paths

        self.problems = problems or []
        self.report = report
        text = short_paths(message)
        super().__init__(refusal(text.split("\n", 1)[0], self.problems) if self.problems
                         else text)

    @property
    def verdict(self) -> str:
        """One line: ``"REFUSED: 2 reasons in the model itself, 1 converter limit"``."""
        return f"REFUSED: {self.summary}"

    @property
    def summary(self) -> str:
        """How many distinct reasons are the model's own and how many converter limits."""
        from streamwise.convert.refusal_text import MODEL, message_kind, summary

        if self.problems:
            return summary(self.problems)
        text = str(self)
        if text.startswith("verification failed"):
            return ("verification failed: the stream differs from the model (a converter "
                    "defect: please report it with the model)")
        if message_kind(text) == MODEL:
            return "1 reason in the model itself"
        return "1 converter limit (tracing stops at the first)"


@dataclass
class Problem:
    """An op that cannot stream exactly: where it is, why, and what to do.

    ``kind`` is whose reason it is: ``"model"`` where the model itself needs the whole sequence
    (a norm over time, a bidirectional RNN), ``"converter"`` where streamwise cannot follow its
    code; left empty, it is read from ``why`` (``refusal_text.classify``)."""

    where: str
    why: str
    fix: str
    kind: str = ""

    def __post_init__(self) -> None:
        from streamwise.convert.refusal_text import classify, short_paths

        self.where = short_paths(self.where)
        self.kind = self.kind or classify(self.why)

    def __str__(self) -> str:
        return f"{self.where}: {self.why}; {self.fix}"


@dataclass
class ValueInfo:
    """What the probes saw of one node's value."""

    kind: str  # "input" | "static" | "shape" | "stream" | "reduced" | "folded" | "output"
    time_axis: int | None = None
    batch_axis: int | None = None
    lengths: tuple[int, int] = (0, 0)  # time length at the example and the longer probe
    values: list[Any] = field(default_factory=list)  # the value in each probe run
    length_size: bool = False  # a tensor without time built from the input's length


class Unstreamable(Exception):
    """Raised while mapping a node: why it cannot stream and what to do instead."""

    def __init__(self, why: str, fix: str) -> None:
        super().__init__(why)
        self.why, self.fix = why, fix


def target(gm: fx.GraphModule, node: fx.Node) -> Callable:
    """What a call node calls: its module, a method call, or its function."""
    if node.op == "call_module":
        return gm.get_submodule(str(node.target))
    if node.op == "call_method":
        name = str(node.target)
        return lambda self, *a, **k: getattr(self, name)(*a, **k)
    assert callable(node.target)  # attributes are static: ``Statics`` reads them live
    return node.target


def node_name(gm: fx.GraphModule, node: fx.Node) -> str:
    """A node's module class name or function name (the key of the "cannot stream" advice)."""
    if node.op == "call_module":
        return type(gm.get_submodule(str(node.target))).__name__
    if script_of(node.target) is not None:
        return "ScriptFunction"
    return getattr(node.target, "__name__", str(node.target))


def bind_args(node: fx.Node, names: list[str], defaults: dict[str, Any]) -> dict[str, Any]:
    """The node's arguments by name (positional ones matched to ``names``)."""
    out = dict(defaults)
    out.update(zip(names, node.args))
    out.update(node.kwargs)
    return out


def nodes_in(a: Any) -> list[fx.Node]:
    """The graph nodes inside an argument (sizes a slice bound was computed from)."""
    found: list[fx.Node] = []
    fx.node.map_arg(a, found.append)
    return found


def trace(model: nn.Module, example: Tensor | None = None, time_axis: int = -1,
          extra: int = PROBE_EXTRA, min_length: int | None = None) -> fx.GraphModule:
    """``torch.fx`` graph of ``model``, or a ``ConversionError`` saying where tracing stopped.

    Given the example, sizes that follow neither time nor batch (``x.dim()``, ``x.shape[1]``)
    and defaulted arguments are constants of the graph (``sized_trace``); given ``min_length``
    (streams are at least that long), so are branches on the length that go the same way at
    every probe length, that one included."""
    runs = None
    if example is not None:
        axis = time_axis % example.dim()
        runs = probe_inputs(example, axis, extra) + length_probes(example, axis, min_length)
    tracer = SizedTracer(runs, branches=min_length is not None)
    try:
        with recorded_calls(model), recorded_builtins(model) if runs else nullcontext():
            graph = tracer.trace(model)
    except ShapeRefusal as e:
        from streamwise.convert.refusals import evident_problems  # refusals imports this module

        text = f"cannot trace {type(model).__name__} at {_user_frame(e)}: {e.why}; {e.fix}"
        evident = evident_problems(model, tracer.graph)
        if evident:  # the model's own reasons, met before the line tracing stopped at
            raise ConversionError(text, [Problem(f"tracing stopped at {_user_frame(e)}", e.why,
                                                 e.fix), *evident]) from e
        raise ConversionError(text) from e
    except Exception as e:  # fx raises many types; all mean "cannot trace"
        raise ConversionError(
            f"cannot trace {type(model).__name__} with torch.fx at {_user_frame(e)}: "
            f"{type(e).__name__}: {e}. torch.fx cannot follow `if`/loops on tensor values, "
            "nor factory functions given traced sizes (write x.new_zeros(...) instead of "
            "torch.zeros(x.shape[0], ...)); rewrite that line, or stream the model with "
            "sw.WindowStream"
        ) from e
    inputs = [n for n in graph.nodes if n.op == "placeholder"]
    # a placeholder's args hold its default; `*args` and `**kwargs` are empty
    required = [n.name for n in inputs if not n.args and not str(n.target).startswith("*")]
    if len(required) > 1:
        raise ConversionError(
            f"{type(model).__name__}.forward takes {len(required)} inputs ({', '.join(required)})"
            "; convert streams one: wrap the model so the others are fixed (or give them defaults)")
    gm = fx.GraphModule(model, graph, type(model).__name__)
    gm.meta["length_notes"] = tracer.folds.notes() if tracer.folds is not None else []
    return gm


def _user_frame(e: BaseException) -> str:
    """The innermost traceback frame outside torch: where the model's code failed."""
    frames = [f for f in traceback.extract_tb(e.__traceback__) if "/torch/" not in f.filename
              and "/streamwise/convert/" not in f.filename]
    if not frames:
        return "an unknown place"
    f = frames[-1]
    return f"{f.filename}:{f.lineno} `{(f.line or '').strip()}`"


def where(node: fx.Node, gm: fx.GraphModule | None = None) -> str:
    """A readable place in the graph: the node, its module path or function, its source line."""
    if node.op == "call_module" and gm is not None:
        what = f"module `{node.target}` ({type(gm.get_submodule(str(node.target))).__name__})"
    elif node.op == "call_method":
        what = f"`.{node.target}()`"
    elif script_of(node.target) is not None:
        what = f"TorchScript function `{getattr(node.target, '__name__', '?')}`"
    elif node.op == "call_function":
        what = f"`{getattr(node.target, '__name__', str(node.target))}`"
    else:
        what = node.op
    stack = node.meta.get("nn_module_stack") if node.op != "call_module" else None
    if stack:  # the function or method ran inside a module's forward: name it too
        path, kind = list(stack.values())[-1]
        what += f" in module `{path}` ({getattr(kind, '__name__', kind)})"
    src = source_line(node)
    return f"node `{node.name}`, {what}" + (f", {src}" if src else "")


class _Recorder(fx.Interpreter):
    """Runs the graph and keeps every node's output."""

    def __init__(self, gm: fx.GraphModule) -> None:
        super().__init__(gm)
        self.seen: dict[fx.Node, Any] = {}

    def run_node(self, n: fx.Node) -> Any:
        self.current = n
        out = super().run_node(n)
        self.seen[n] = out
        return out


def _first_tensor(v: Any) -> Tensor | None:
    if isinstance(v, Tensor):
        return v
    if isinstance(v, (tuple, list)) and v and all(isinstance(t, Tensor) for t in v):
        return v[0]
    return None


def stream_tensor(node: fx.Node, value: Any, gm: fx.GraphModule) -> Tensor | None:
    """The tensor of a value that carries time: itself, a tuple's first, an RNN's sequence."""
    if node.op == "call_module" and isinstance(gm.get_submodule(str(node.target)), nn.RNNBase):
        return value[0]
    return _first_tensor(value)


@torch.no_grad()
def analyse(gm: fx.GraphModule, example: Tensor, time_axis: int,
            extra: int = PROBE_EXTRA) -> dict[fx.Node, ValueInfo]:
    """Run the probes and describe every node the output depends on."""
    runs = []
    for x in probe_inputs(example, time_axis, extra):
        rec = _Recorder(gm)
        try:
            rec.run(x)
        except Exception as e:
            node = getattr(rec, "current", None)
            at = (source_line(node) if node is not None else "") or _user_frame(e)
            said = str(e).split("\n\nWhile executing")[0]  # fx appends the graph and its trace
            raise ConversionError(
                f"the model fails on an input of shape {list(x.shape)} (the example, made longer "
                f"or given one more batch row) at {at}: {type(e).__name__}: {said}. "
                "convert needs a model that takes any length and batch"
            ) from e
        runs.append(rec.seen)
    needed = _needed(gm)
    reads = _reads_values(gm)
    info: dict[fx.Node, ValueInfo] = {}
    for node in gm.graph.nodes:
        if node not in needed:
            continue
        vals = [r.get(node) for r in runs]
        if node.op == "placeholder" and not info:
            info[node] = ValueInfo("input", time_axis, 0, (example.shape[time_axis],
                                                           example.shape[time_axis] + extra), vals)
            continue
        if node.op == "output":
            info[node] = ValueInfo("output", values=vals)
            continue
        deps = [info[a] for a in node.all_input_nodes if a in info]
        if not any(d.kind in ("input", "stream", "shape", "reduced", "folded") for d in deps):
            info[node] = ValueInfo("static", values=vals)
            continue
        info[node] = _describe(node, vals, gm, reads[node])
    return info


#: methods and functions that read only the dtype, device or sizes of their tensor arguments
_META_METHODS = {"size", "dim", "numel", "new_zeros", "new_ones", "new_empty", "new_full", "to",
                 "type_as"}
_META_FUNCTIONS = {torch.zeros_like, torch.ones_like, torch.empty_like}


def _reads_values(gm: fx.GraphModule) -> dict[fx.Node, bool]:
    """Whether each node's value depends on the input's values (not only its sizes or dtype).

    A tensor without a time axis that reads values is a reduction over time (refused); one that
    reads only sizes (``x.new_zeros(B, H)``, a ``.to(x)`` cast) is a constant or a per-batch size.
    """
    out: dict[fx.Node, bool] = {}
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    for node in gm.graph.nodes:
        if node.op == "placeholder":
            out[node] = node is placeholders[0]
            continue
        args = list(node.all_input_nodes)
        if node.op == "call_method" and node.target in _META_METHODS:
            if node.target in ("to", "type_as"):  # `w.to(x)` reads w's values, x's dtype only
                args = [node.args[0]] if isinstance(node.args[0], fx.Node) else []
            else:  # the tensor gives dtype, device or sizes; the other arguments may read values
                args = []
                fx.node.map_arg((node.args[1:], node.kwargs), args.append)
        elif node.op == "call_function" and (node.target in _META_FUNCTIONS or (
                node.target is getattr and node.args[1] in ("shape", "dtype", "device", "ndim"))):
            args = []
        out[node] = any(out.get(a, False) for a in args)
    return out


def _describe(node: fx.Node, vals: list[Any], gm: fx.GraphModule, reads: bool) -> ValueInfo:
    t = [stream_tensor(node, v, gm) for v in vals]
    if any(v is None for v in t):
        return ValueInfo("shape", values=vals)
    t0, t1, t2 = t
    assert t0 is not None and t1 is not None and t2 is not None
    if t0.dim() != t1.dim() or t0.dim() != t2.dim():
        raise ConversionError(f"{where(node, gm)}: the rank of its output changes with the input "
                              f"length ({t0.dim()} vs {t1.dim()}); streams need a fixed rank")
    time = [d for d in range(t0.dim()) if t0.shape[d] != t1.shape[d]]
    batch = [d for d in range(t0.dim()) if t0.shape[d] != t2.shape[d]]
    if not time:
        if reads:
            return ValueInfo("reduced", values=vals)
        if not _same(t0, t1):  # built from the length: a stream has none
            return ValueInfo("reduced", values=vals, length_size=True)
        if _same(t0, t2):  # reads only the input's dtype, device or fixed sizes
            return ValueInfo("static", values=vals)
        return ValueInfo("shape", values=vals)  # built from the batch: recomputed per chunk
    if len(time) > 1:
        raise ConversionError(
            f"{where(node, gm)}: more than one axis of its output follows the input length "
            f"({list(t0.shape)} vs {list(t1.shape)}); keep time on one axis of its own"
        )
    if batch and batch[0] == time[0]:  # time folded into the batch (refusals.folded_problem)
        return ValueInfo("folded", values=vals)
    return ValueInfo("stream", time[0], batch[0] if len(batch) == 1 else None,
                     (t0.shape[time[0]], t1.shape[time[0]]), vals)


def _same(a: Tensor, b: Tensor) -> bool:
    return a.shape == b.shape and bool(torch.equal(a, b))


def _needed(gm: fx.GraphModule) -> set[fx.Node]:
    """Nodes the output depends on (dead branches are not converted)."""
    out = next(n for n in gm.graph.nodes if n.op == "output")
    seen, todo = {out}, [out]
    while todo:
        for a in todo.pop().all_input_nodes:
            if a not in seen:
                seen.add(a)
                todo.append(a)
    return seen


def rate(info: ValueInfo, extra: int) -> Fraction:
    """Frames of this value per input frame, from the two probe lengths."""
    return Fraction(info.lengths[1] - info.lengths[0], extra)
