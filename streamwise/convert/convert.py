"""``sw.convert``: rewrite a plain ``torch.nn`` model into an exact streaming model, and prove it.

Trace (``torch.fx``), find time in every value (probes at two lengths and two batch sizes), map
each node that carries time to its streaming form, propagate rate, delay and reach through the
graph, then stream the example in random irregular chunkings and compare with the original model.
Every op that cannot stream is reported at once, with where it is and what to do.
"""

from __future__ import annotations

import functools
from fractions import Fraction
from typing import Any

import numpy as np
import torch
from torch import Tensor, fx, nn

from streamwise.convert.fuse import fuse
from streamwise.convert.graph_stream import GraphStream, Layout, Plan, Template, Timing
from streamwise.convert.length_sizes import EndCrop, EndPad
from streamwise.convert.node_ops import Framewise, NodeOp, Pad
from streamwise.convert.recognise import op_for
from streamwise.convert.refusals import folded_problem, owner, reduced_problem
from streamwise.convert.report import ConvertReport, OpRow
from streamwise.convert.sizes import time_sizes
from streamwise.convert.statics import Statics, Traced
from streamwise.convert.trace import (
    PROBE_EXTRA,
    ConversionError,
    Problem,
    Unstreamable,
    ValueInfo,
    analyse,
    rate,
    trace,
    where,
)
from streamwise.core.protocol import lcm, tree_nbytes
from streamwise.core.verify import measured_delay, random_chunks


def convert(model: nn.Module, example_input: Tensor, time_dim: int = -1, *, verify: bool = True,
            trials: int = 3, seed: int = 0, sample_rate: float | None = None,
            tolerance: float | None = None, probe_extra: int = PROBE_EXTRA,
            fuse_frames: bool = True, min_length: int | None = None) -> GraphStream:
    """A ``StreamingModule`` that computes ``model`` chunk by chunk, with ``.report``.

    ``example_input`` is ``[B, ..., T, ...]`` with time on ``time_dim``; the model must accept
    other lengths and batch sizes.  ``fuse_frames`` runs consecutive per-frame nodes as one
    generated function (faster; off, every node runs alone).  ``min_length``: streams are at
    least that many frames long, so an ``if`` on the length that goes the same way at every probe
    length (that one included) is fixed, with a note, and a shorter stream raises at ``close``.
    Raises ``ConversionError`` (a
    ``ValueError``) listing every op that cannot stream, or when verification finds the stream
    differs from the model.
    """
    axis = _check_example(example_input, time_dim)
    model = model.eval()
    gm = trace(model, example_input, axis, probe_extra, min_length)
    info = analyse(gm, example_input, axis, probe_extra)
    statics = Statics(gm, info)
    traced = Traced(gm, info, probe_extra, statics)
    templates = {n: _template(v, example_input.dtype) for n, v in info.items()
                 if v.kind in ("stream", "input")}
    plans, problems = _plan(traced, templates)
    out_node = next(n for n in gm.graph.nodes if n.op == "output")
    out_v = info[out_node.args[0]] if isinstance(out_node.args[0], fx.Node) else None
    if out_v is None or out_v.kind != "stream" or not isinstance(out_v.values[0], Tensor):
        problems.append(Problem("the model's output", "is not one tensor with a time axis (a "
                                "tuple, or reduced over time)", "return one tensor that keeps "
                                "time (wrap the model)"))
    ndim = example_input.dim()
    if problems:
        lines = "\n".join(f"  - {p}" for p in problems)
        raise ConversionError(f"{type(model).__name__} cannot stream exactly "
                              f"({len(problems)} op(s)):\n{lines}", problems)
    assert out_v is not None and out_v.time_axis is not None
    timing = _timing(plans, info, probe_extra)
    in_axis = -1 if axis == ndim - 1 else axis
    out_ndim = out_v.values[0].dim()
    out_axis = -1 if out_v.time_axis == out_ndim - 1 else out_v.time_axis
    run_plans = (fuse(gm, plans, info, statics, functools.partial(time_sizes, info)) if fuse_frames
                 else plans)
    layout = Layout(tuple(example_input.shape), in_axis, out_axis, timing[out_node.args[0]],
                    {n: v.time_axis for n, v in info.items() if v.time_axis is not None},
                    templates)
    source = (example_input.detach().clone(), time_dim,
              {"sample_rate": sample_rate, "probe_extra": probe_extra, "fuse_frames": fuse_frames,
               "min_length": min_length})
    # the stream as it runs: its start-up lag, state and exactness are measured on it before the
    # converted model is built with everything it reports
    base = GraphStream(gm, run_plans, layout, source=source, min_length=min_length)
    startup = Fraction(0)
    if any(isinstance(p.op, Pad) and p.op.mode == "reflect" for p in plans):
        # reflect padding waits for `left + 1` frames before its first output, a start-up lag
        # that the per-op delays (steady state) do not add up to: measure it frame by frame
        one = example_input[:1]
        startup = Fraction(measured_delay(base, one, frames=min(one.shape[axis], 2048)))
    report = ConvertReport(
        model=type(model).__name__, input_shape=list(example_input.shape), time_axis=axis,
        output_shape=list(out_v.values[0].shape), out_time_axis=out_v.time_axis,
        stride=str(base.stride), latency_frames=float(max(base.delay, startup)),
        receptive_field=None if base.timing.past is None else base.receptive_field,
        sample_rate=sample_rate, dtype=str(example_input.dtype).removeprefix("torch."),
        ops=[OpRow(p.name, _op_name(gm, p.node), p.op.how, _frac(timing[p.node].delay),
                   str(timing[p.node].rate)) for p in plans if p.op is not None],
    )
    fused = [p for p in run_plans if p.outs]
    if fused:
        report.notes.append(
            f"{len(fused)} runs of per-frame ops "
            f"({len(plans) - len(run_plans) + len(fused)} nodes) execute as fused functions")
    sized = [p.name for p in plans if getattr(p.op, "from_sizes", False)]
    if sized:
        period = functools.reduce(lcm, (t.rate.denominator for t in timing.values()), 1)
        report.notes.append(
            f"crops at {', '.join(sized)} take their bounds from sizes; they were fixed for "
            f"inputs whose length leaves the example's remainder modulo {period} "
            f"({example_input.shape[axis] % period}); other lengths stream with these bounds")
    report.notes.extend(gm.meta.get("length_notes", []))
    ends = [p.name for p in plans if isinstance(p.op, EndPad | EndCrop)]
    if ends:
        report.notes.append(
            f"pads and crops at {', '.join(ends)} end where the sequence's length says: their "
            "amount is computed at the end of the stream from its total length (the model's "
            "own size arithmetic, evaluated again)")
    _measure_state(base, report, example_input, seed)
    if verify:
        _verify(base, report, model, example_input, trials, seed, tolerance)
    gs = GraphStream(gm, run_plans, layout, startup=startup, report=report, source=source,
                     min_length=min_length)
    return gs


def _check_example(x: Any, time_dim: int) -> int:
    if not isinstance(x, Tensor):
        raise ValueError(
            f"example_input must be a torch.Tensor [B, ..., T], got {type(x).__name__}")
    if x.dim() < 2:
        raise ValueError(f"example_input must have a batch axis and a time axis, got shape "
                         f"{list(x.shape)}")
    if not -x.dim() <= time_dim < x.dim():
        raise ValueError(f"time_dim {time_dim} is out of range for an example of shape "
                         f"{list(x.shape)}")
    axis = time_dim % x.dim()
    if axis == 0:
        raise ValueError("time_dim cannot be the batch axis (0)")
    if x.shape[axis] < 1 or x.shape[0] < 1:
        raise ValueError(f"example_input needs at least one batch row and one frame, got shape "
                         f"{list(x.shape)}")
    if x.is_floating_point() and not torch.isfinite(x).all():
        raise ValueError("example_input contains NaN or inf")
    return axis


def _plan(traced: Traced,
          templates: dict[fx.Node, Template | None]) -> tuple[list[Plan], list[Problem]]:
    gm, info, extra = traced.gm, traced.info, traced.extra
    plans: list[Plan] = []
    problems: list[Problem] = []
    reasons: set[tuple[str, str]] = set()
    for node in gm.graph.nodes:
        v = info.get(node)
        if v is None:
            continue
        args = list(dict.fromkeys(a for a in node.all_input_nodes
                                  if info[a].kind in ("stream", "input")))
        if v.kind == "input":
            plans.append(Plan(node, node.name, "input"))
        elif v.kind == "output":
            plans.append(Plan(node, node.name, "output", args=tuple(node.all_input_nodes[:1])))
        elif v.kind in ("reduced", "folded"):
            if any(info[a].kind == v.kind for a in node.all_input_nodes):
                continue  # reported where the reduction or the fold starts
            problem = (reduced_problem if v.kind == "reduced" else folded_problem)(gm, info, node)
            if (owner(node), problem.why) not in reasons:  # once per module (gLN: mean, var)
                reasons.add((owner(node), problem.why))
                problems.append(problem)
        elif v.kind == "stream":
            if any(info[a].kind in ("reduced", "folded") for a in node.all_input_nodes):
                continue  # reported where the reduction or the fold is
            rates = {rate(info[a], extra) for a in args}
            if len(rates) > 1:
                problems.append(Problem(where(node, gm), "combines streams at different frame "
                                        f"rates {sorted(str(r) for r in rates)}",
                                        "resample one of them to the other's rate first"))
                continue
            try:
                op = op_for(traced, node, args)
            except Unstreamable as u:
                problems.append(Problem(where(node, gm), u.why, u.fix))
                continue
            except ValueError as e:  # a streaming layer refused its settings
                problems.append(Problem(where(node, gm), str(e), "change that setting"))
                continue
            if isinstance(op, Framewise) and op.args is not None:
                args = list(op.args)
                if len({rate(info[a], extra) for a in args}) > 1:
                    problems.append(Problem(where(node, gm), "takes a size from a stream at "
                                            "another frame rate", "compute the size from the "
                                            "tensor itself"))
                    continue
            axes = tuple(info[a].time_axis or 0 for a in args)
            plans.append(Plan(node, node.name, "stream", op, tuple(args), axes,
                              templates[node]))
    return plans, problems


def _template(v: ValueInfo, dtype: torch.dtype | None) -> Template | None:
    """Empty output of a value for any batch, in the stream's dtype where the value is float."""
    t = v.values[0] if isinstance(v.values[0], Tensor) else None
    if t is None or v.time_axis is None:
        return None
    shape = list(t.shape)
    shape[v.time_axis] = 0
    # values in the input's dtype follow the stream's dtype; others (int ids, float weights
    # after an embedding of int ids) keep their own
    b_axis, follow = v.batch_axis, dtype is None or t.dtype == dtype

    def make(batch: int, proto: Tensor) -> Tensor:
        s = list(shape)
        if b_axis is not None:
            s[b_axis] = batch
        if follow:
            return proto.new_zeros(s)
        return torch.zeros(s, dtype=t.dtype, device=proto.device)

    return make


def _timing(plans: list[Plan], info: dict[fx.Node, ValueInfo],
            extra: int) -> dict[fx.Node, Timing]:
    """Rate, delay and reach of every streamed value, from the ops' own metadata."""
    out: dict[fx.Node, Timing] = {}
    zero = Fraction(0)
    for p in plans:
        if p.kind == "input":
            out[p.node] = Timing(Fraction(1), zero, zero, zero)
        elif p.kind == "output":
            continue
        else:
            assert p.op is not None
            ins = [out[a] for a in p.args]
            if not ins:
                out[p.node] = Timing(rate(info[p.node], extra), zero, zero, zero)
                continue
            s = ins[0].rate
            pasts = [t.past for t in ins]
            past_in = None if None in pasts else max(t for t in pasts if t is not None)
            op: NodeOp = p.op
            out[p.node] = Timing(
                s * op.stride,
                max(t.delay for t in ins) + op.delay / s,
                max(t.ahead for t in ins) + op.ahead / s,
                None if past_in is None or op.past is None else past_in + op.past / s,
            )
    return out


def _frac(f: Fraction) -> str:
    return str(f) if f.denominator != 1 else str(f.numerator)


def _op_name(gm: fx.GraphModule, node: fx.Node) -> str:
    if node.op == "call_module":
        return f"{node.target} ({type(gm.get_submodule(str(node.target))).__name__})"
    if node.op == "call_method":
        return f".{node.target}()"
    return getattr(node.target, "__name__", str(node.target))


@torch.no_grad()
def _measure_state(gs: GraphStream, report: ConvertReport, x: Tensor, seed: int) -> None:
    """Largest state of one stream while the example passes in chunks (total and per op)."""
    one = x[:1]
    rng = np.random.default_rng(seed)
    s = gs.stream(1, device=x.device, dtype=x.dtype)
    per = {r.node: 0 for r in report.ops}
    total = 0
    axis = gs.time_axis
    pos = 0
    for n in random_chunks(one.shape[axis], rng):
        s.push(one.narrow(axis, pos, n))
        pos += n
        total = max(total, tree_nbytes(s.state))
        for p in gs.plans:  # a fused run's alignment queue counts for its first node
            row = p.name.split("..")[0]
            if row in per:
                per[row] = max(per[row], tree_nbytes(s.state["nodes"].get(p.name))
                               + tree_nbytes(s.state["queues"].get(p.name)))
    report.state_bytes = total
    for r in report.ops:
        r.state_bytes = per[r.node]


@torch.no_grad()
def _verify(gs: GraphStream, report: ConvertReport, model: nn.Module, x: Tensor, trials: int,
            seed: int, tolerance: float | None) -> None:
    """Stream ``x`` in ``trials`` random chunkings; raise if any differs from ``model(x)``."""
    from streamwise.core.verify import stream_chunks

    ref = model(x)
    tol = tolerance if tolerance is not None else (1e-10 if x.dtype == torch.float64 else 1e-5)
    scale = float(ref.abs().max()) if ref.numel() and ref.is_floating_point() else 0.0
    rng = np.random.default_rng(seed)
    worst = 0.0
    sizes: list[int] = []
    for _ in range(trials):
        sizes = random_chunks(x.shape[gs.time_axis], rng)
        y, _ = stream_chunks(gs, x, sizes)
        if y.shape != ref.shape:
            raise ConversionError(f"verification failed: streamed output {list(y.shape)} vs "
                                  f"offline {list(ref.shape)} (chunks {sizes[:20]}...)")
        if y.numel():
            worst = max(worst, float((y.double() - ref.double()).abs().max()))
    report.verified, report.trials = True, trials
    report.max_abs_error, report.output_scale, report.tolerance = worst, scale, tol
    report.chunk_sizes = sizes[:50]
    if worst > tol * max(scale, 1.0):
        raise ConversionError(f"verification failed: streamed output differs from the model by "
                              f"{worst:.3e} (tolerance {tol:g} x scale {max(scale, 1.0):.3g})\n"
                              f"{report}", report=report)
