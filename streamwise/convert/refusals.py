"""Why a value cannot stream, named by the op that needs the whole sequence.

A reduction over time (a value without a time axis that reads the input) is reported where it
starts; when its result is applied back to every frame it is a global normalisation (gLN), and
the problem says so.  Time folded into the batch axis (a dual-path model cuts the sequence into
chunks and runs an RNN within each) is reported at the op that runs over the folded chunks.
"""

from __future__ import annotations

from torch import fx, nn

from streamwise.convert.trace import Problem, ValueInfo, node_name, where
from streamwise.layers.unstreamable import CANNOT_STREAM, WINDOW_FIX

Info = dict[fx.Node, ValueInfo]


def owner(node: fx.Node) -> str:
    """The innermost module whose forward made ``node`` (its own name where there is none)."""
    stack = node.meta.get("nn_module_stack")
    return str(list(stack.values())[-1][0]) if stack else node.name


def reduced_problem(gm: fx.GraphModule, info: Info, node: fx.Node) -> Problem:
    """The problem of a reduction over time that starts at ``node``."""
    v = info[node]
    if v.length_size:
        return Problem(where(node, gm), "is built from the input's length (a stream has none)",
                       "use a fixed size, or pass it as a model setting")
    name = node_name(gm, node)
    if name in CANNOT_STREAM:
        why, fix = CANNOT_STREAM[name]
    elif name in _STATISTICS and _applied_to_frames(info, node):
        why, fix = CANNOT_STREAM["GlobalLayerNorm"]
    else:
        why, fix = ("reduces over time (its output has no time axis)",
                    "reduce over channels, or use sw.WindowStream")
    return Problem(where(node, gm), why, fix)


#: reductions that compute a statistic (the start of a global normalisation)
_STATISTICS = {"mean", "var", "std", "var_mean", "std_mean", "sum", "norm", "amax", "amin"}


def _applied_to_frames(info: Info, node: fx.Node) -> bool:
    """Whether the reduction's result (through other reduced values) meets a stream again."""
    seen, todo = {node}, [node]
    while todo:
        for user in todo.pop().users:
            v = info.get(user)
            if v is None or user in seen:
                continue
            if v.kind == "stream":
                return True
            if v.kind == "reduced":
                seen.add(user)
                todo.append(user)
    return False


#: ops that read across frames; found past a fold, they are what the fold cannot stream
_READERS = (nn.RNNBase, nn.MultiheadAttention, nn.modules.conv._ConvNd)


def folded_problem(gm: fx.GraphModule, info: Info, node: fx.Node) -> Problem:
    """The problem of ``node``, which folds time into the batch axis: named at the first op
    past it that reads across the folded frames (a dual-path model's intra-chunk RNN)."""
    seen, todo, reader = {node}, [node], None
    while todo and reader is None:
        for user in todo.pop(0).users:
            if user in seen or info.get(user) is None or info[user].kind != "folded":
                continue
            seen.add(user)
            todo.append(user)
            if user.op == "call_module" and isinstance(gm.get_submodule(str(user.target)),
                                                        _READERS):
                reader = user
                break
    if reader is None:
        return Problem(where(node, gm), "folds time into the batch axis (a reshape merges the "
                       "frames with the batch rows)", "keep time on an axis of its own "
                       + WINDOW_FIX)
    why, fix = CANNOT_STREAM["DualPathRNN"]
    return Problem(where(reader, gm), f"{why} (time is folded into the batch at node "
                   f"`{node.name}`)", fix)


def evident_problems(root: nn.Module, graph: fx.Graph) -> list[Problem]:
    """Layers recorded before tracing stopped that could never stream (a bidirectional RNN):
    the model's own reason, named even though the trace did not reach the end."""
    out = []
    for node in graph.nodes:
        if node.op != "call_module":
            continue
        m = root.get_submodule(str(node.target))
        if isinstance(m, nn.RNNBase) and m.bidirectional:
            out.append(Problem(f"module `{node.target}` ({type(m).__name__})",
                               "is bidirectional: it reads the sequence backwards",
                               "use a unidirectional RNN " + WINDOW_FIX))
    return out
