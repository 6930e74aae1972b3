"""Map every graph node that carries time to its streaming form, or say why it cannot stream.

Ops that read neighbouring frames are recognised by what they are (convs, pools, pads, crops,
unfold, recurrent layers, streamwise modules).  Everything else must work frame by frame; that is
not assumed but probed: the node runs on slices of its recorded inputs and must give the same
slices of its recorded output.  What fails gets a ``Problem``: where, why, and what to do.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, fx, nn

from streamwise.convert.node_ops import (
    Call,
    Chunk,
    Crop,
    Framewise,
    ModuleOp,
    NodeOp,
    Pad,
    Recurrent,
    Sliding,
    pad_fn,
)
from streamwise.convert.trace import ValueInfo, stream_tensor
from streamwise.core.protocol import StreamingModule
from streamwise.layers.conv_transpose import ConvTranspose1d
from streamwise.layers.unstreamable import CANNOT_STREAM, WINDOW_FIX
from streamwise.layers.upsample import Upsample


class Unstreamable(Exception):
    """Raised while mapping a node: why it cannot stream and what to do instead."""

    def __init__(self, why: str, fix: str) -> None:
        super().__init__(why)
        self.why, self.fix = why, fix


class Statics:
    """Values that do not depend on the input (weights, a weight-normalised kernel, an STFT
    basis), read live from the model: recomputed only when a parameter or buffer they come from
    changed (cast with ``.double()``, moved with ``.to()``, or updated in place by training)."""

    def __init__(self, gm: fx.GraphModule, info: dict[fx.Node, ValueInfo]) -> None:
        self.gm, self.info = gm, info
        self.nodes = {n for n, v in info.items() if v.kind == "static"}
        # each node's attribute leaves and each attribute's owner module, found once here
        self._owners = {n: _owner(gm, n) for n in self.nodes if n.op == "get_attr"}
        self._leaves = {n: self._find_leaves(n) for n in self.nodes}
        #: node -> (versions of its leaves, value): the one thing a step may write, a memo of a
        #: pure function of the parameters; an entry is replaced whole (one atomic dict store),
        #: so concurrent steps read either the old pair or the new one, never a mix
        self._cache: dict[fx.Node, tuple[tuple, Any]] = {}

    def __contains__(self, node: object) -> bool:
        return node in self.nodes

    def get(self, node: fx.Node) -> Any:
        key = tuple([_version(self._attr(leaf)) for leaf in self._leaves[node]])
        hit = self._cache.get(node)
        if hit is not None and hit[0] == key:
            return hit[1]
        value = self._eval(node)
        self._cache[node] = (key, value)
        return value

    def _attr(self, node: fx.Node) -> Any:
        """The attribute's current value: its owner module was found once (``.double()`` and
        ``.to()`` keep modules and replace tensors), the tensor is read from its dicts."""
        module, name = self._owners[node]
        if isinstance(module, nn.Module):
            if name in module._parameters:
                return module._parameters[name]
            if name in module._buffers:
                return module._buffers[name]
        return getattr(module, name)

    def _find_leaves(self, node: fx.Node) -> list[fx.Node]:
        found, todo, seen = [], [node], set()
        while todo:
            n = todo.pop()
            if n in seen:
                continue
            seen.add(n)
            if n.op == "get_attr":
                found.append(n)
            todo.extend(a for a in n.all_input_nodes if a in self.nodes)
        return found

    def _eval(self, node: fx.Node) -> Any:
        if node.op == "get_attr":
            return self._attr(node)
        if node.op == "placeholder":
            return self.info[node].values[0]
        args, kwargs = fx.node.map_arg(
            (node.args, node.kwargs),
            lambda a: self.get(a) if a in self.nodes else self.info[a].values[0])
        with torch.no_grad():
            return _target(self.gm, node)(*args, **kwargs)


def _owner(gm: fx.GraphModule, node: fx.Node) -> tuple[Any, str]:
    """The object holding attribute ``node`` and the attribute's name there."""
    *path, name = str(node.target).split(".")
    module: Any = gm
    for part in path:
        module = getattr(module, part)
    return module, name


def _version(t: Any) -> tuple:
    if not isinstance(t, Tensor):
        return (id(t),)
    try:
        version = t._version
    except RuntimeError:  # inference tensors keep no version counter
        version = -1
    return (id(t), version, t.dtype, t.device)


def make_call(gm: fx.GraphModule, node: fx.Node, stream_args: list[fx.Node],
              info: dict[fx.Node, ValueInfo], statics: Statics) -> Call:
    """The node's own function, with its streamed inputs given per call and its sizes recomputed
    from them (``x.shape[-1]`` is the chunk's length); other streams it reads sizes from come
    from the call's ``Chunk``."""
    fn = _target(gm, node)
    index = {a: i for i, a in enumerate(stream_args)}
    fast = _fast_call(fn, node, index, statics)
    if fast is not None:
        return fast

    def call(ins: list[Any], chunk: Chunk) -> Any:
        sub: dict[fx.Node, Any] = dict(zip(stream_args, ins))

        def resolve(a: fx.Node) -> Any:
            if a in sub:
                return sub[a]
            if a in statics:
                return statics.get(a)
            if info[a].kind == "shape":
                args, kwargs = fx.node.map_arg((a.args, a.kwargs), resolve)
                sub[a] = _target(gm, a)(*args, **kwargs)
                return sub[a]
            value = chunk.values.get(a)
            return value if value is not None else chunk.empty(a)

        args, kwargs = fx.node.map_arg((node.args, node.kwargs), resolve)
        return fn(*args, **kwargs)

    return call


def _fast_call(fn: Callable, node: fx.Node, index: dict[fx.Node, int],
               statics: Statics) -> Call | None:
    """A call that places the streamed inputs by position, for nodes whose arguments hold no
    sizes (most of them): no graph lookups per chunk.  None where sizes must be recomputed."""
    args = [_binder(a, index, statics) for a in node.args]
    kwargs = {k: _binder(v, index, statics) for k, v in node.kwargs.items()}
    if any(b is None for b in args) or any(b is None for b in kwargs.values()):
        return None
    arg_fns = tuple(b for b in args if b is not None)
    kw_fns = tuple((k, b) for k, b in kwargs.items() if b is not None)
    if not kw_fns:
        return lambda ins, chunk: fn(*[f(ins) for f in arg_fns])
    return lambda ins, chunk: fn(*[f(ins) for f in arg_fns], **{k: f(ins) for k, f in kw_fns})


def _binder(a: Any, index: dict[fx.Node, int],
            statics: Statics) -> Callable[[list[Any]], Any] | None:
    """A function of the streamed inputs giving argument ``a`` (None if ``a`` holds sizes)."""
    if isinstance(a, fx.Node):
        if a in index:
            return operator.itemgetter(index[a])
        if a in statics:
            node = a
            return lambda ins: statics.get(node)
        return None
    if isinstance(a, (list, tuple)):
        subs = [_binder(b, index, statics) for b in a]
        if any(b is None for b in subs):
            return None
        kind = type(a)
        if all(not isinstance(b, (fx.Node, list, tuple)) for b in a):
            return lambda ins: a  # a constant sequence
        return lambda ins: kind(f(ins) for f in subs if f is not None)
    if isinstance(a, (dict, slice)) and _nodes_in(a):
        return None
    return lambda ins: a


def _target(gm: fx.GraphModule, node: fx.Node) -> Callable:
    if node.op == "call_module":
        return gm.get_submodule(str(node.target))
    if node.op == "call_method":
        name = str(node.target)
        return lambda self, *a, **k: getattr(self, name)(*a, **k)
    assert callable(node.target)  # attributes are static: ``Statics`` reads them live
    return node.target


def _name(gm: fx.GraphModule, node: fx.Node) -> str:
    if node.op == "call_module":
        return type(gm.get_submodule(str(node.target))).__name__
    return getattr(node.target, "__name__", str(node.target))


def _bind(node: fx.Node, names: list[str], defaults: dict[str, Any]) -> dict[str, Any]:
    """The node's arguments by name (positional ones matched to ``names``)."""
    out = dict(defaults)
    out.update(zip(names, node.args))
    out.update(node.kwargs)
    return out


class Mapper:
    """Builds the streaming op of every node that carries time."""

    def __init__(self, gm: fx.GraphModule, info: dict[fx.Node, ValueInfo], extra: int,
                 statics: Statics) -> None:
        self.gm, self.info, self.extra, self.statics = gm, info, extra, statics

    def static(self, a: Any) -> Any:
        """A value known at conversion: a constant, or a node that does not depend on the input."""
        if isinstance(a, fx.Node):
            v = self.info[a]
            if v.kind != "static":
                raise Unstreamable(f"argument `{a.name}` depends on the input",
                                   "only the data argument may stream; pass a fixed value")
            return v.values[0]
        if isinstance(a, (list, tuple)):
            return type(a)(self.static(b) for b in a)
        return a

    def live(self, a: Any) -> Callable[[], Any]:
        """A getter of a static argument's current value (None stays None)."""
        statics = self.statics
        if isinstance(a, fx.Node) and a in statics:
            return lambda: statics.get(a)
        value = self.static(a)
        return lambda: value

    def concrete(self, a: Any, run: int) -> Any:
        """An argument's value in probe run ``run`` (sizes differ between runs)."""
        return fx.node.map_arg(a, lambda n: self.info[n].values[run])

    # -- entry ---------------------------------------------------------------------------------
    def op_for(self, node: fx.Node, stream_args: list[fx.Node]) -> NodeOp:
        axis = self.info[stream_args[0]].time_axis if stream_args else None
        if node.op == "call_module":
            m = self.gm.get_submodule(str(node.target))
            special = self._module(node, m, axis)
        elif node.op in ("call_function", "call_method"):
            special = self._function(node, stream_args, axis)
        else:
            special = None
        return special if special is not None else self.probe(node, stream_args)

    # -- modules -------------------------------------------------------------------------------
    def _module(self, node: fx.Node, m: nn.Module, axis: int | None) -> NodeOp | None:
        ndim = self._ndim(node.args[0]) if node.args else None
        if isinstance(m, StreamingModule):
            own = m.time_axis % ndim if ndim else m.time_axis
            if axis is not None and ndim and axis % ndim != own:
                raise Unstreamable(f"takes time on axis {own} but time is on axis {axis} here",
                                   "move the time axis (transpose) before this module")
            return ModuleOp(m, f"streaming module ({type(m).__name__})")
        if isinstance(m, nn.RNNBase):
            if m.bidirectional:
                raise Unstreamable("is bidirectional: it reads the sequence backwards",
                                   "use a unidirectional RNN " + WINDOW_FIX)
            hx = node.args[1] if len(node.args) > 1 else node.kwargs.get("hx")
            if any(bool(torch.as_tensor(v).any()) for n in _nodes_in(hx)
                   for v in self.info[n].values):
                raise Unstreamable("starts from a given nonzero hidden state",
                                   "leave hx out (zeros), or add the initial state's effect "
                                   "as an input")
            if axis != (1 if m.batch_first else 0):
                raise Unstreamable(f"expects time on axis {1 if m.batch_first else 0}, found "
                                   f"it on axis {axis}", "transpose the input")
            return Recurrent(m)
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            return self._conv(node, m.weight, lambda: (m.weight, m.bias), m.stride, m.padding,
                              m.dilation, m.groups, m.padding_mode, axis, f"{type(m).__name__}")
        if isinstance(m, nn.ConvTranspose1d):
            if ndim and axis != ndim - 1:
                raise Unstreamable("runs over an axis that is not time", "put time last")
            return ModuleOp(ConvTranspose1d.from_torch(m), "transposed conv (overlap-add)")
        if isinstance(m, (nn.MaxPool1d, nn.MaxPool2d, nn.AvgPool1d, nn.AvgPool2d)):
            pars = {k: getattr(m, k, d) for k, d in (("kernel_size", 1), ("stride", None),
                    ("padding", 0), ("dilation", 1), ("ceil_mode", False),
                    ("count_include_pad", True), ("return_indices", False),
                    ("divisor_override", None))}
            return self._pool(node, "max" if "Max" in type(m).__name__ else "avg", pars, axis)
        if isinstance(m, nn.Upsample):
            return self._upsample(node, m.scale_factor, m.mode, m.align_corners, axis)
        return None

    # -- functions -----------------------------------------------------------------------------
    def _function(self, node: fx.Node, stream_args: list[fx.Node],
                  axis: int | None) -> NodeOp | None:
        t = node.target
        if t in (F.conv1d, F.conv2d, torch.conv1d, torch.conv2d):
            a = _bind(node, ["input", "weight", "bias", "stride", "padding", "dilation", "groups"],
                      {"bias": None, "stride": 1, "padding": 0, "dilation": 1, "groups": 1})
            weight, bias = self.live(a["weight"]), self.live(a["bias"])
            return self._conv(node, self.static(a["weight"]), lambda: (weight(), bias()),
                              a["stride"], a["padding"], a["dilation"], a["groups"], "zeros",
                              axis, _name(self.gm, node))
        if t in (F.max_pool1d, F.max_pool2d, F.avg_pool1d, F.avg_pool2d):
            names = (["input", "kernel_size", "stride", "padding", "dilation", "ceil_mode",
                      "return_indices"] if "max" in t.__name__ else
                     ["input", "kernel_size", "stride", "padding", "ceil_mode",
                      "count_include_pad", "divisor_override"])
            a = _bind(node, names, {"stride": None, "padding": 0, "dilation": 1,
                                    "ceil_mode": False, "count_include_pad": True})
            return self._pool(node, "max" if "max" in t.__name__ else "avg", a, axis)
        if t is F.pad:
            return self._pad(node, stream_args, axis)
        src = node.args[0] if node.args else None
        src_value = self.info[src].values[0] if isinstance(src, fx.Node) else None
        if t is operator.getitem and stream_args and isinstance(node.args[1], int) and \
                isinstance(src_value, (tuple, list)):
            # one element of a tuple of streams (an RNN's sequence, a chunk along channels)
            return Framewise(make_call(self.gm, node, stream_args, self.info, self.statics))
        if t is operator.getitem and stream_args and isinstance(src_value, Tensor):
            return self._getitem(node, stream_args, axis)
        if node.op == "call_method" and t == "unfold":
            a = _bind(node, ["self", "dimension", "size", "step"], {})
            ndim = self._ndim(node.args[0])
            if ndim and a["dimension"] % ndim == axis:
                size, step = int(a["size"]), int(a["step"])
                if axis != ndim - 1:
                    raise Unstreamable("unfolds time on an axis that is not last", "put time last")
                return ModuleOp(Sliding(lambda w: w.unfold(-1, size, step), size, step, (0, 0),
                                        out_axis=-2, empty_shape=self._empty_shape(node)),
                                f"sliding windows (unfold {size} every {step})")
        if t in (F.interpolate, F.upsample):
            a = _bind(node, ["input", "size", "scale_factor", "mode", "align_corners"],
                      {"size": None, "scale_factor": None, "mode": "nearest",
                       "align_corners": None})
            if a["size"] is not None:
                raise Unstreamable("resamples to a fixed size (depends on the sequence length)",
                                   "use scale_factor")
            return self._upsample(node, a["scale_factor"], a["mode"], a["align_corners"], axis)
        if t in (torch.cat, torch.stack, torch.concat):
            dim = _bind(node, ["tensors", "dim"], {"dim": 0})["dim"]
            out_axis = self.info[node].time_axis
            if t is not torch.stack and out_axis is not None and dim % self._out_ndim(
                    node) == out_axis:
                raise Unstreamable("concatenates along time", "concatenate along channels "
                                   "(a stream has no end to append to) " + WINDOW_FIX)
        return None

    # -- windows: convs and pools ----------------------------------------------------------------
    def _conv(self, node: fx.Node, weight: Tensor, params: Callable[[], tuple[Tensor, Any]],
              stride: Any, padding: Any, dilation: Any, groups: int, padding_mode: str,
              axis: int | None, name: str) -> NodeOp | None:
        """``weight`` gives the shapes; ``params`` the live weight and bias at each call."""
        nd = weight.dim() - 2
        ndim = nd + 2
        k, s, d = (_tup(v, nd) for v in (list(weight.shape[2:]), stride, dilation))
        pads = _conv_pads(padding, k, d, nd)
        if axis != ndim - 1:
            j = (axis or 0) - 2
            if 0 <= j < nd and k[j] == s[j] == 1 and pads[j] == (0, 0):
                return None  # kernel 1 along time: per frame wherever time is (probed)
            raise Unstreamable(f"convolves over time on axis {axis}, not the last axis",
                               "put time last ([B, C, T] or [B, C, F, T])")
        pl, pr = pads[-1]
        if padding_mode not in ("zeros", "replicate") and (pl or pr):
            raise Unstreamable(f"pads time with {padding_mode!r} (reads the far end)",
                               "use zeros or replicate padding")
        flat = [v for pair in reversed(pads[:-1]) for v in pair]
        mode = "constant" if padding_mode == "zeros" else padding_mode
        pre = pad_fn([0, 0, *flat], mode, 0.0)
        conv = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[nd]

        def fn(w: Tensor) -> Tensor:
            kernel, b = params()
            return conv(pre(w) if pre else w, kernel, b, s, 0, d, groups)

        span = d[-1] * (k[-1] - 1) + 1
        op = Sliding(fn, span, s[-1], (pl, pr), replicate=padding_mode == "replicate",
                     empty_shape=self._empty_shape(node))
        return ModuleOp(op, f"sliding window ({name}: kernel {k[-1]}, stride {s[-1]}, "
                        f"dilation {d[-1]}, time padding {pl}+{pr})")

    def _pool(self, node: fx.Node, kind: str, a: dict[str, Any],
              axis: int | None) -> NodeOp | None:
        ndim = self._ndim(node.args[0]) or 3
        nd = ndim - 2
        if axis != ndim - 1:
            j = (axis or 0) - 2
            one = (_tup(a["kernel_size"], nd), _tup(a["stride"] or 1, nd), _tup(a["padding"], nd))
            if 0 <= j < nd and one[0][j] == one[1][j] == 1 and one[2][j] == 0:
                return None  # window 1 along time: per frame (probed)
            raise Unstreamable(f"pools over time on axis {axis}, not the last axis",
                               "put time last")
        if a.get("return_indices"):
            raise Unstreamable("returns pooling indices (positions from the sequence start)",
                               "use return_indices=False")
        if a.get("divisor_override"):
            raise Unstreamable("uses divisor_override", "divide explicitly after the pool")
        if a.get("ceil_mode"):
            raise Unstreamable("uses ceil_mode (the last window depends on the end)",
                               "use ceil_mode=False and pad explicitly")
        k = _tup(a["kernel_size"], nd)
        s = _tup(a["stride"] if a["stride"] not in (None, []) else a["kernel_size"], nd)
        d = _tup(a.get("dilation", 1), nd)
        p = _tup(a["padding"], nd)
        if kind == "avg" and not a.get("count_include_pad", True) and any(p):
            raise Unstreamable("averages with count_include_pad=False",
                               "use count_include_pad=True")
        value = float("-inf") if kind == "max" else 0.0
        flat = [0, 0] + [v for q in reversed(p[:-1]) for v in (q, q)]
        pre = pad_fn(flat, "constant", value)
        pool: Any = {("max", 1): F.max_pool1d, ("max", 2): F.max_pool2d,
                     ("avg", 1): F.avg_pool1d, ("avg", 2): F.avg_pool2d}[(kind, nd)]
        extra = {"dilation": d} if kind == "max" else {}

        def fn(w: Tensor) -> Tensor:
            return pool(pre(w) if pre else w, k, s, 0, **extra)

        span = d[-1] * (k[-1] - 1) + 1
        return ModuleOp(Sliding(fn, span, s[-1], (p[-1], p[-1]), pad_value=value,
                                empty_shape=self._empty_shape(node)),
                        f"sliding window ({kind} pool: kernel {k[-1]}, stride {s[-1]}, time "
                        f"padding {p[-1]}+{p[-1]})")

    def _upsample(self, node: fx.Node, scale: Any, mode: str, align: Any,
                  axis: int | None) -> NodeOp | None:
        ndim = self._ndim(node.args[0]) or 3
        if mode == "nearest":
            return None  # per frame with a rate: the probe checks it
        if mode != "linear" or align or ndim != 3 or axis != 2:
            raise Unstreamable(f"interpolates with mode {mode!r}, align_corners={align}",
                               "use mode 'nearest', or 'linear' with align_corners=False on "
                               "[B, C, T]")
        f = scale[0] if isinstance(scale, (list, tuple)) else scale
        if f is None or int(f) != f:
            raise Unstreamable(f"scales by {f}", "use an integer scale_factor")
        return ModuleOp(Upsample(int(f), "linear"), f"linear upsampling x{int(f)}")

    # -- pads and crops ------------------------------------------------------------------------
    def _pad(self, node: fx.Node, stream_args: list[fx.Node], axis: int | None) -> NodeOp:
        a = _bind(node, ["input", "pad", "mode", "value"], {"mode": "constant", "value": None})
        ndim = self._ndim(node.args[0]) or 3
        pads = [list(self.concrete(a["pad"], r)) for r in (0, 1)]
        if pads[0] != pads[1]:
            raise Unstreamable(f"pads by amounts that depend on the sequence length ({pads[0]} "
                               f"vs {pads[1]})", "pad by fixed amounts (a stream has no length)")
        pad = [int(v) for v in pads[0]]
        assert axis is not None
        i = ndim - 1 - axis
        pl, pr = (pad[2 * i], pad[2 * i + 1]) if 2 * i + 1 < len(pad) else (0, 0)
        mode, value = a["mode"], float(a["value"] or 0.0)
        if pl == pr == 0:
            return self.probe(node, stream_args)  # pads other axes only: per frame
        if pl < 0 or pr < 0:
            raise Unstreamable("crops time with a negative pad", "slice instead")
        if mode not in ("constant", "replicate", "reflect"):
            raise Unstreamable(f"pads time with mode {mode!r}", "use constant, replicate or "
                               "reflect")
        rest_pad = list(pad)
        if 2 * i + 1 < len(pad):
            rest_pad[2 * i] = rest_pad[2 * i + 1] = 0
        rest = pad_fn(rest_pad, mode, value)
        entries = list(a["pad"])[2 * i: 2 * i + 2] if isinstance(a["pad"], (list, tuple)) else []
        if (pl or pr) and any(self.time_sizes(n) for n in _nodes_in(entries)):
            raise Unstreamable("pads time by an amount computed from the input's size (it "
                               "depends on where the stream ends)", "pad by fixed amounts, "
                               "or pad the input before streaming")
        op = Pad(axis, pl, pr, mode, value, rest)
        op.out_axis = self.info[node].time_axis or axis
        return op

    def _getitem(self, node: fx.Node, stream_args: list[fx.Node], axis: int | None) -> NodeOp:
        src = node.args[0]
        assert isinstance(src, fx.Node) and axis is not None
        ndim = self.info[src].values[0].dim()
        idx = node.args[1]
        parts = list(idx) if isinstance(idx, tuple) else [idx]
        pos = _axis_entry(parts, ndim, axis)
        entry = parts[pos] if pos is not None else slice(None)
        if isinstance(entry, slice) and entry == slice(None):
            return self.probe(node, stream_args)
        if not isinstance(entry, slice):
            raise Unstreamable("indexes one time frame (or a fixed set of frames)",
                               "slice a range instead, or reduce over channels")
        lengths = self.info[src].lengths
        spans = []
        for run, length in enumerate(lengths):
            sl = self.concrete(entry, run)
            start, stop, step = slice(sl.start, sl.stop, sl.step).indices(length)
            spans.append((start, length - stop, step))
        if spans[0] != spans[1] or spans[0][2] < 1:
            raise Unstreamable(f"slices time at places that depend on its length ({spans[0]} vs "
                               f"{spans[1]} as (drop at start, drop at end, step))",
                               "crop a fixed number of frames from either end")
        start, end_drop, step = spans[0]
        rest = None
        if len([p for p in parts if p is not Ellipsis and p is not None]) > 1 or any(
                p is None for p in parts):
            parts2 = list(parts)
            parts2[pos] = slice(None)  # type: ignore[index]
            statics: Any = fx.node.map_arg(tuple(parts2), lambda n: self.info[n].values[0])

            def rest(x: Tensor) -> Tensor:
                return x[statics]

        crop = Crop(axis, start, step, end_drop, rest)
        crop.out_axis = self.info[node].time_axis or axis
        crop.from_sizes = any(self.time_sizes(n) for n in _nodes_in(entry))
        return crop

    # -- the per-frame probe ---------------------------------------------------------------------
    def probe(self, node: fx.Node, stream_args: list[fx.Node]) -> NodeOp:
        """Framewise if the node, run on slices of its inputs, gives the slices of its output."""
        info = self.info
        # streams whose sizes the node reads come in as inputs too, aligned with the others
        stream_args = stream_args + [a for a in self.size_sources(node) if a not in stream_args]
        call = make_call(self.gm, node, stream_args, info, self.statics)
        # probed on the longer run: a short example could leave a value one frame long
        ref = stream_tensor(node, info[node].values[1], self.gm)
        assert ref is not None
        out_axis = info[node].time_axis
        base = stream_args[0] if stream_args else None
        if base is not None:
            if len({info[a].lengths for a in stream_args}) > 1:
                raise Unstreamable("combines streams of different lengths "
                                   f"{[info[a].lengths[0] for a in stream_args]}",
                                   "crop or pad them to equal lengths first")
            l_in = info[base].lengths
        else:
            l_in = info[node].lengths
        l_out = info[node].lengths
        r = l_out[0] // max(l_in[0], 1)
        if r < 1 or l_out[0] != r * l_in[0] or l_out[1] != r * l_in[1]:
            raise self._mixes(node, f"changes the number of frames ({l_in[0]} -> {l_out[0]}) "
                              "in a way that is not a window, crop or pad")
        n = l_in[1]
        # empty chunks never reach a per-frame op (the executor emits an empty template)
        windows = sorted({(0, min(1, n)), (0, min(3, n)), (n // 2, min(n, n // 2 + 4)),
                          (n // 3, min(n, n // 3 + 17)), (max(0, n - 3), n)})
        # sizes read from streams of other lengths (the batch, channels) come from empty frames
        def empty(m: fx.Node) -> Tensor:
            return _narrow(info[m].values[1], info[m].time_axis, 0, 0)

        for a, b in windows:
            values = {m: _narrow(v.values[1], v.time_axis, a, b) for m, v in info.items()
                      if v.kind in ("stream", "input") and v.lengths == l_in
                      and isinstance(v.values[1], Tensor)}
            ins = [values.get(s, info[s].values[1]) for s in stream_args]
            try:
                out = call(ins, Chunk(values, empty))
            except Exception as e:
                raise self._mixes(node, f"fails on a slice of its input ({type(e).__name__}: "
                                  f"{e})") from e
            got = stream_tensor(node, out, self.gm)
            want = _narrow(ref, out_axis, r * a, r * b)
            if got is None or got.shape != want.shape or not _close(got, want):
                raise self._mixes(node, "mixes time frames (its output on a slice of the input "
                                  "differs from the slice of its output)")
        op = Framewise(call, r)
        op.args = stream_args
        return op

    def size_sources(self, node: fx.Node) -> list[fx.Node]:
        """Streams whose length reaches ``node`` through size computations (``x.shape[-1]``):
        they must come in aligned.  Other sizes (the batch, channels) read from any chunk."""
        found: list[fx.Node] = []
        for a in node.all_input_nodes:
            if self.info[a].kind == "shape":
                for src in self.time_sizes(a):
                    if src not in found:
                        found.append(src)
        return found

    def time_sizes(self, a: fx.Node, seen: set[fx.Node] | None = None) -> list[fx.Node]:
        """The streams whose time length the size computation ``a`` reads."""
        seen = set() if seen is None else seen
        if a in seen or self.info[a].kind != "shape":
            return []
        seen.add(a)
        whole = self._shape_of(a)
        if whole is not None:  # the whole shape, used as it is: its length too
            return [whole]
        if a.op == "call_function" and a.target is operator.getitem:
            src = self._shape_of(a.args[0]) if isinstance(a.args[0], fx.Node) else None
            if src is not None:
                idx = a.args[1]
                ndim = self.info[src].values[0].dim()
                return [src] if isinstance(idx, int) and idx % ndim == self.info[src].time_axis \
                    else ([src] if not isinstance(idx, int) else [])
        owner: Any = a.args[0] if a.args else None
        if not (isinstance(owner, fx.Node) and self.info[owner].kind in ("stream", "input")):
            owner = None
        if a.op == "call_method" and a.target == "size" and len(a.args) > 1 and owner:
            dim, ndim = a.args[1], self.info[owner].values[0].dim()
            return [owner] if not isinstance(dim, int) or (
                dim % ndim == self.info[owner].time_axis) else []
        if a.op == "call_method" and a.target == "numel" and owner:
            return [owner]
        out: list[fx.Node] = []
        for b in a.all_input_nodes:
            out.extend(self.time_sizes(b, seen))
        return out

    def _shape_of(self, a: Any) -> fx.Node | None:
        """The stream whose whole shape ``a`` is (``x.shape`` or ``x.size()``), else None."""
        if not isinstance(a, fx.Node):
            return None
        src = a.args[0] if a.args else None
        is_shape = ((a.op == "call_function" and a.target is getattr and len(a.args) > 1
                     and a.args[1] == "shape")
                    or (a.op == "call_method" and a.target == "size" and len(a.args) == 1))
        if is_shape and isinstance(src, fx.Node) and self.info[src].kind in ("stream", "input"):
            return src
        return None

    def _mixes(self, node: fx.Node, why: str) -> Unstreamable:
        name = _name(self.gm, node)
        if name in CANNOT_STREAM:
            return Unstreamable(CANNOT_STREAM[name][0], CANNOT_STREAM[name][1])
        return Unstreamable(why, "write this op with streamwise layers " + WINDOW_FIX)

    # -- helpers -------------------------------------------------------------------------------
    def _ndim(self, a: Any) -> int | None:
        if isinstance(a, fx.Node) and a in self.info:
            t = stream_tensor(a, self.info[a].values[0], self.gm)
            return t.dim() if t is not None else None
        return None

    def _empty_shape(self, node: fx.Node) -> tuple[list[int], int | None]:
        """The node's output with no frames, and its batch axis (a window op's, as in its input)."""
        v = self.info[node]
        shape = list(v.values[0].shape)
        assert v.time_axis is not None
        shape[v.time_axis] = 0
        return shape, v.batch_axis

    def _out_ndim(self, node: fx.Node) -> int:
        t = stream_tensor(node, self.info[node].values[0], self.gm)
        return t.dim() if t is not None else 1



def _narrow(t: Tensor, axis: int | None, a: int, b: int) -> Tensor:
    assert axis is not None
    return t.narrow(axis, a, b - a)


def _close(a: Tensor, b: Tensor) -> bool:
    if not a.is_floating_point():
        return bool(torch.equal(a, b))
    scale = max(float(b.abs().max()) if b.numel() else 0.0, 1.0)
    tol = (1e-9 if b.dtype == torch.float64 else 1e-4) * scale
    return bool(((a - b).abs() <= tol).all()) if b.numel() else True


def _tup(v: Any, n: int) -> tuple[int, ...]:
    if isinstance(v, (list, tuple)):
        return tuple(int(x) for x in v) if len(v) == n else tuple(int(v[0]) for _ in range(n))
    return tuple(int(v) for _ in range(n))


def _conv_pads(padding: Any, k: tuple[int, ...], d: tuple[int, ...],
               nd: int) -> list[tuple[int, int]]:
    """(left, right) padding per spatial axis for torch's padding argument."""
    if padding == "valid":
        return [(0, 0)] * nd
    if padding == "same":
        out = []
        for ki, di in zip(k, d):
            total = di * (ki - 1)
            out.append((total // 2, total - total // 2))
        return out
    return [(p, p) for p in _tup(padding, nd)]


def _nodes_in(a: Any) -> list[fx.Node]:
    """The graph nodes inside an argument (sizes a slice bound was computed from)."""
    found: list[fx.Node] = []
    fx.node.map_arg(a, found.append)
    return found


def _axis_entry(parts: list[Any], ndim: int, axis: int) -> int | None:
    """Index into ``parts`` of the entry that addresses tensor axis ``axis``."""
    consumed = [p for p in parts if p is not None and p is not Ellipsis]
    dim = 0
    for i, p in enumerate(parts):
        if p is None:
            continue
        if p is Ellipsis:
            skip = ndim - len(consumed)
            if dim <= axis < dim + skip:
                return None
            dim += skip
            continue
        if dim == axis:
            return i
        dim += 1
    return None
