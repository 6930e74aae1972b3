"""Time windows: convs, pools, unfold and linear upsampling recognised and streamed as windows.

Each reads windows of ``span`` frames every ``hop`` frames along time (the last axis); ``Sliding``
(the package's ``TimeWindow``) pads, buffers and aligns them to the absolute frame index, so the
op runs with no time padding of its own.  Settings no stream can follow are refused with advice.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, fx, nn

from streamwise.convert.node_ops import ModuleOp, NodeOp, Sliding, pad_fn
from streamwise.convert.statics import Traced
from streamwise.convert.trace import Unstreamable, bind_args
from streamwise.layers.conv_transpose import ConvTranspose1d
from streamwise.layers.upsample import Upsample


def conv_op(t: Traced, node: fx.Node, weight: Tensor, params: Callable[[], tuple[Tensor, Any]],
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
                 empty_shape=t.empty_shape(node), in_frame=t.in_frame(node.args[0]))
    return ModuleOp(op, f"sliding window ({name}: kernel {k[-1]}, stride {s[-1]}, "
                    f"dilation {d[-1]}, time padding {pl}+{pr})")


def transposed_op(t: Traced, node: fx.Node, conv: ConvTranspose1d,
                  axis: int | None) -> NodeOp:
    """A transposed conv over time (the last axis), streamed by overlap-add."""
    ndim = t.ndim(node.args[0])
    if ndim and axis != ndim - 1:
        raise Unstreamable("runs a transposed conv over an axis that is not time",
                           "put time last")
    return ModuleOp(conv, f"transposed conv (overlap-add: kernel {conv.kernel_size}, stride "
                    f"{conv.conv_stride}, padding {conv.padding})")


class _LiveParams(nn.Module):
    """A stand-in for a torch ``ConvTranspose1d`` whose weight and bias are the model's values
    at each call (a functional ``F.conv_transpose1d`` reads them from the graph)."""

    def __init__(self, weight: Callable[[], Tensor], bias: Callable[[], Tensor | None],
                 **geometry: Any) -> None:
        super().__init__()
        self._weight, self._bias = weight, bias
        for k, v in geometry.items():
            setattr(self, k, v)

    @property
    def weight(self) -> Tensor:
        return self._weight()

    @property
    def bias(self) -> Tensor | None:
        return self._bias()


def live_transposed(shape_of: Tensor, weight: Callable[[], Tensor],
                    bias: Callable[[], Tensor | None], stride: Any, padding: Any,
                    output_padding: Any, groups: int, dilation: Any) -> ConvTranspose1d:
    """A streaming transposed conv for ``F.conv_transpose1d`` (``shape_of`` gives the shapes)."""
    if shape_of.dim() != 3:
        raise Unstreamable(f"has a {shape_of.dim()}-D weight", "use a [C_in, C_out/groups, K] "
                           "weight on [B, C, T]")
    c_in, c_out, k = shape_of.shape
    params = _LiveParams(weight, bias, in_channels=c_in, out_channels=c_out * groups,
                         kernel_size=(k,), stride=_tup(stride, 1), padding=_tup(padding, 1),
                         output_padding=_tup(output_padding, 1), groups=groups,
                         dilation=_tup(dilation, 1))
    return ConvTranspose1d.from_torch(params)  # type: ignore[arg-type]


class OverlapAdd(ConvTranspose1d):
    """``F.fold`` of ``[B, C*K, T]`` blocks to ``[B, C, 1, (T-1)*S + K]``: each block's ``K``
    frames added in at ``S`` frames per block, a transposed conv with one-hot kernels."""

    def __init__(self, channels: int, kernel: int, hop: int,
                 dtype: torch.dtype | None = None) -> None:
        super().__init__(channels * kernel, channels, kernel, hop, groups=channels, bias=False,
                         dtype=dtype)
        with torch.no_grad():  # input channel c*K + j adds to output channel c at offset j
            self.weight.copy_(torch.eye(kernel).repeat(channels, 1).unsqueeze(1))
        self.weight.requires_grad_(False)

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x).unsqueeze(-2)

    def step(self, x: Tensor, state: dict[str, Any]) -> tuple[Tensor, dict[str, Any]]:
        y, new = super().step(x, state)
        return y.unsqueeze(-2), new

    def flush(self, state: dict[str, Any]) -> tuple[Tensor, dict[str, Any]]:
        y, new = super().flush(state)
        return y.unsqueeze(-2), new


def fold_op(t: Traced, node: fx.Node, axis: int | None) -> NodeOp:
    """``F.fold`` into ``(1, L)`` with a ``(1, K)`` kernel: an overlap-add along time (an ISTFT's,
    say), where ``L`` is the overlap-add's own length at every probe."""
    a = bind_args(node, ["input", "output_size", "kernel_size", "dilation", "padding", "stride"],
                  {"dilation": 1, "padding": 0, "stride": 1})
    k, d, p, s = (_tup(a[n], 2) for n in ("kernel_size", "dilation", "padding", "stride"))
    src = node.args[0]
    assert isinstance(src, fx.Node)
    ndim = t.ndim(src)
    if ndim != 3 or axis != 2 or k[0] != 1 or s[0] != 1 or d != (1, 1) or p != (0, 0):
        raise Unstreamable("folds blocks in a way that is not an overlap-add along time",
                           "fold [B, C*K, T] into (1, L) with kernel (1, K), stride (1, S)")
    for run in range(3):
        frames = t.info[src].values[run].shape[-1]
        size = tuple(int(v) for v in t.concrete(a["output_size"], run))
        if size != (1, (frames - 1) * s[1] + k[1]):
            raise Unstreamable(f"folds to {size}, not the overlap-add's own length "
                               f"(1, {(frames - 1) * s[1] + k[1]})",
                               "fold to (1, (T - 1) * stride + kernel) and crop after")
    blocks = t.info[src].values[0]
    return ModuleOp(OverlapAdd(blocks.shape[1] // k[1], k[1], s[1], blocks.dtype),
                    f"overlap-add (F.fold: kernel {k[1]}, hop {s[1]})")


def pool_op(t: Traced, node: fx.Node, kind: str, a: dict[str, Any],
          axis: int | None) -> NodeOp | None:
    ndim = t.ndim(node.args[0]) or 3
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
                            empty_shape=t.empty_shape(node), in_frame=t.in_frame(node.args[0])),
                    f"sliding window ({kind} pool: kernel {k[-1]}, stride {s[-1]}, time "
                    f"padding {p[-1]}+{p[-1]})")


def upsample_op(t: Traced, node: fx.Node, scale: Any, mode: str, align: Any,
              axis: int | None) -> NodeOp | None:
    ndim = t.ndim(node.args[0]) or 3
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


def unfold_op(t: Traced, node: fx.Node, axis: int | None) -> NodeOp | None:
    """``x.unfold(time, size, step)``: windows of ``size`` frames every ``step``."""
    a = bind_args(node, ["self", "dimension", "size", "step"], {})
    ndim = t.ndim(node.args[0])
    if not ndim or a["dimension"] % ndim != axis:
        return None  # unfolds another axis: per frame (probed)
    size, step = int(a["size"]), int(a["step"])
    if axis != ndim - 1:
        raise Unstreamable("unfolds time on an axis that is not last", "put time last")
    return ModuleOp(Sliding(lambda w: w.unfold(-1, size, step), size, step, (0, 0), out_axis=-2,
                            empty_shape=t.empty_shape(node), in_frame=t.in_frame(node.args[0])),
                    f"sliding windows (unfold {size} every {step})")


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
