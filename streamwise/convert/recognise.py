"""Recognising ops: map every graph node that carries time to its streaming form.

Ops that read neighbouring frames are recognised by what they are: streamwise modules, recurrent
layers, convs, pools, upsampling and unfold (time windows), pads and crops.  Everything else must
work frame by frame; that is not assumed but probed (``probe.py``).  A node that cannot stream
raises ``Unstreamable``: why, and what to do.
"""

from __future__ import annotations

import operator

import torch
import torch.nn.functional as F
from torch import Tensor, fx, nn

from streamwise.convert.node_ops import Framewise, ModuleOp, NodeOp, Recurrent
from streamwise.convert.pads_crops import crop_op, pad_op
from streamwise.convert.probe import make_call, probe
from streamwise.convert.statics import Traced
from streamwise.convert.trace import Unstreamable, bind_args, node_name, nodes_in
from streamwise.convert.windows import (
    conv_op,
    fold_op,
    live_transposed,
    pool_op,
    transposed_op,
    unfold_op,
    upsample_op,
)
from streamwise.core.protocol import StreamingModule
from streamwise.core.torch_layers import (
    HOOK_FIX,
    HOOK_WHY,
    live_weight,
    own_class,
    runs_as,
    unseen_hooks,
)
from streamwise.layers.conv_transpose import ConvTranspose1d
from streamwise.layers.unstreamable import WINDOW_FIX


def op_for(t: Traced, node: fx.Node, stream_args: list[fx.Node]) -> NodeOp:
    """The streaming op of ``node`` (its streamed inputs are ``stream_args``)."""
    axis = t.info[stream_args[0]].time_axis if stream_args else None
    if node.op == "call_module":
        special = _module(t, node, t.gm.get_submodule(str(node.target)), axis)
    elif node.op in ("call_function", "call_method"):
        special = _function(t, node, stream_args, axis)
    else:
        special = None
    return special if special is not None else probe(t, node, stream_args)


def _module(t: Traced, node: fx.Node, m: nn.Module, axis: int | None) -> NodeOp | None:
    ndim = t.ndim(node.args[0]) if node.args else None
    if isinstance(m, StreamingModule):
        own = m.time_axis % ndim if ndim else m.time_axis
        if axis is not None and ndim and axis % ndim != own:
            raise Unstreamable(f"takes time on axis {own} but time is on axis {axis} here",
                               "move the time axis (transpose) before this module")
        return ModuleOp(m, f"streaming module ({type(m).__name__})")
    if isinstance(m, _RECOGNISED):
        _check_runs_as_torch(m)
    if isinstance(m, nn.RNNBase):
        if m.bidirectional:
            raise Unstreamable("is bidirectional: it reads the sequence backwards",
                               "use a unidirectional RNN " + WINDOW_FIX)
        hx = node.args[1] if len(node.args) > 1 else node.kwargs.get("hx")
        if any(bool(torch.as_tensor(v).any()) for n in nodes_in(hx) for v in t.info[n].values):
            raise Unstreamable("starts from a given nonzero hidden state",
                               "leave hx out (zeros), or add the initial state's effect "
                               "as an input")
        if axis != (1 if m.batch_first else 0):
            raise Unstreamable(f"expects time on axis {1 if m.batch_first else 0}, found "
                               f"it on axis {axis}", "transpose the input")
        return Recurrent(m)
    if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        return conv_op(t, node, m.weight, lambda: (live_weight(m), m.bias), m.stride, m.padding,
                       m.dilation, m.groups, m.padding_mode, axis, f"{own_class(m).__name__}")
    if isinstance(m, nn.ConvTranspose1d):
        return transposed_op(t, node, ConvTranspose1d.from_torch(m), axis)
    if isinstance(m, (nn.MaxPool1d, nn.MaxPool2d, nn.AvgPool1d, nn.AvgPool2d)):
        pars = {k: getattr(m, k, d) for k, d in (("kernel_size", 1), ("stride", None),
                ("padding", 0), ("dilation", 1), ("ceil_mode", False),
                ("count_include_pad", True), ("return_indices", False),
                ("divisor_override", None))}
        return pool_op(t, node, "max" if "Max" in type(m).__name__ else "avg", pars, axis)
    if isinstance(m, nn.Upsample):
        return upsample_op(t, node, m.scale_factor, m.mode, m.align_corners, axis)
    return None


#: torch layers recognised by what they are, whose forward the converter does not run
_RECOGNISED = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.MaxPool1d, nn.MaxPool2d,
               nn.AvgPool1d, nn.AvgPool2d, nn.Upsample, nn.RNN, nn.LSTM, nn.GRU)


def _check_runs_as_torch(m: nn.Module) -> None:
    """A recognised layer is rebuilt from its attributes: only where its forward is torch's and
    no hook changes what it does."""
    base = next(c for c in own_class(m).__mro__ if c in _RECOGNISED)
    if not runs_as(m, base):
        raise Unstreamable(f"is a {base.__name__} subclass ({own_class(m).__name__}) with its own "
                           "forward, which the converter would not run",
                           "define the class outside the torch.nn namespace (it is then traced "
                           "through), or wrap its forward in a module that calls the layer")
    hooks = unseen_hooks(m)
    if hooks:
        raise Unstreamable(HOOK_WHY.format(hooks), HOOK_FIX)


def _squeeze_units(t: Traced, node: fx.Node) -> NodeOp:
    """``x.squeeze()`` drops every unit axis, time too in a one-frame chunk: it streams as the
    squeeze of the axes that are 1 in every probe run (never time, long in one of them)."""
    src = node.args[0]
    assert isinstance(src, fx.Node)
    shapes = [v.shape for v in t.info[src].values]
    dims = tuple(i for i in range(len(shapes[0])) if all(sh[i] == 1 for sh in shapes))
    op = Framewise(lambda ins, chunk: ins[0].squeeze(dims))
    op.args = [src]
    return op


def _function(t: Traced, node: fx.Node, stream_args: list[fx.Node],
              axis: int | None) -> NodeOp | None:
    fn = node.target
    if fn in (F.conv1d, F.conv2d, torch.conv1d, torch.conv2d):
        a = bind_args(node, ["input", "weight", "bias", "stride", "padding", "dilation",
                             "groups"],
                      {"bias": None, "stride": 1, "padding": 0, "dilation": 1, "groups": 1})
        weight, bias = t.live(a["weight"]), t.live(a["bias"])
        return conv_op(t, node, t.static(a["weight"]), lambda: (weight(), bias()),
                       a["stride"], a["padding"], a["dilation"], a["groups"], "zeros",
                       axis, node_name(t.gm, node))
    if fn in (F.conv_transpose1d, torch.conv_transpose1d):
        a = bind_args(node, ["input", "weight", "bias", "stride", "padding", "output_padding",
                             "groups", "dilation"],
                      {"bias": None, "stride": 1, "padding": 0, "output_padding": 0,
                       "groups": 1, "dilation": 1})
        conv = live_transposed(t.static(a["weight"]), t.live(a["weight"]), t.live(a["bias"]),
                               a["stride"], a["padding"], a["output_padding"], a["groups"],
                               a["dilation"])
        return transposed_op(t, node, conv, axis)
    if fn in (F.max_pool1d, F.max_pool2d, F.avg_pool1d, F.avg_pool2d):
        kind = "max" if "max" in fn.__name__ else "avg"
        names = (["input", "kernel_size", "stride", "padding", "dilation", "ceil_mode",
                  "return_indices"] if kind == "max" else
                 ["input", "kernel_size", "stride", "padding", "ceil_mode",
                  "count_include_pad", "divisor_override"])
        a = bind_args(node, names, {"stride": None, "padding": 0, "dilation": 1,
                                    "ceil_mode": False, "count_include_pad": True})
        return pool_op(t, node, kind, a, axis)
    if fn is F.pad:
        return pad_op(t, node, stream_args, axis)
    if fn is F.fold:
        return fold_op(t, node, axis)
    if node.op == "call_method" and fn == "squeeze" and len(node.args) == 1 and stream_args:
        return _squeeze_units(t, node)
    src = node.args[0] if node.args else None
    src_value = t.info[src].values[0] if isinstance(src, fx.Node) else None
    if fn is operator.getitem and stream_args and isinstance(node.args[1], int) and \
            isinstance(src_value, (tuple, list)):
        # one element of a tuple of streams (an RNN's sequence, a chunk along channels)
        return Framewise(make_call(t.gm, node, stream_args, t.info, t.statics))
    if fn is operator.getitem and stream_args and isinstance(src_value, Tensor):
        return crop_op(t, node, stream_args, axis)
    if node.op == "call_method" and fn == "unfold":
        return unfold_op(t, node, axis)
    if fn in (F.interpolate, F.upsample):
        a = bind_args(node, ["input", "size", "scale_factor", "mode", "align_corners"],
                      {"size": None, "scale_factor": None, "mode": "nearest",
                       "align_corners": None})
        if a["size"] is not None:
            raise Unstreamable("resamples to a fixed size (depends on the sequence length)",
                               "use scale_factor")
        return upsample_op(t, node, a["scale_factor"], a["mode"], a["align_corners"], axis)
    if fn in (torch.cat, torch.stack, torch.concat):
        dim = bind_args(node, ["tensors", "dim"], {"dim": 0})["dim"]
        out_axis = t.info[node].time_axis
        if fn is not torch.stack and out_axis is not None and dim % t.out_ndim(node) == out_axis:
            raise Unstreamable("concatenates along time", "concatenate along channels "
                               "(a stream has no end to append to) " + WINDOW_FIX)
    return None
