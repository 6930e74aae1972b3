"""Delta layers: transmit only the inputs that changed by more than a threshold.

Each input keeps its last transmitted value ``xhat``; a new frame transmits ``x - xhat`` where
``|x - xhat| > threshold`` and nothing elsewhere, and ``xhat`` takes the new value there.  The
output accumulates ``W @ delta``, so computation scales with the number of changes, and equals
``W @ xhat + b``: the error against the dense layer is ``W @ (xhat - x)`` with every entry of
``xhat - x`` at most the threshold, and it does not drift, because ``xhat`` is kept exactly and the
accumulator is recomputed densely every ``resync`` frames (at absolute frame indices).  Threshold 0
transmits every change and equals the dense layer.  (Delta networks, Neil et al. 2017; the Delta
Activation Layer's temporal sparsity.)
"""

from __future__ import annotations

from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from streamwise.core.protocol import StreamingModule
from streamwise.core.state import Spec, clock, counter, tensor
from streamwise.layers.recurrence import Recurrence


def transmit(x: Tensor, xhat: Tensor, threshold: float) -> tuple[Tensor, Tensor]:
    """``(delta, new xhat)`` for one frame ``x [B, C]``: changes above the threshold only."""
    diff = x - xhat
    keep = diff.abs() > threshold
    return torch.where(keep, diff, 0.0), torch.where(keep, x, xhat)


class TransposedWeight:
    """``weight.T`` kept contiguous, so that the rows for the inputs that changed are whole runs
    of memory rather than scattered columns.  Refreshed when the weight is replaced or changed
    in place through autograd-visible ops, and at every new stream (``.data`` writes are
    invisible to the version counter; call ``clear()`` after them mid-stream)."""

    def __init__(self) -> None:
        self.key: tuple[int, int] | None = None
        self.value: Tensor | None = None

    def clear(self) -> None:
        self.key, self.value = None, None

    def get(self, weight: Tensor) -> Tensor:
        key = (weight.data_ptr(), weight._version)
        if key != self.key or self.value is None:
            self.value, self.key = weight.detach().t().contiguous(), key
        return self.value


def sparse_matvec(weight_t: Tensor, delta: Tensor) -> tuple[Tensor, int]:
    """``delta @ weight_t`` reading only the rows of ``weight_t`` (= ``W.T``) that ``delta``
    touches, and the number of nonzero entries of ``delta``."""
    if delta.shape[0] == 1:
        idx = delta[0].nonzero().flatten()
        n = idx.numel()
        if n * 2 < delta.shape[1]:  # sparse enough to pay for the gather
            return (delta[0, idx] @ weight_t.index_select(0, idx)).unsqueeze(0), n
        return delta @ weight_t, n
    return delta @ weight_t, int((delta != 0).sum())


def delta_sparsity_loss(a: Tensor) -> Tensor:
    """Mean absolute change between consecutive frames of ``a [B, C, T]``: add it, scaled, to a
    training loss to make activations change rarely (the Delta Activation Layer's regulariser)."""
    return (a[..., 1:] - a[..., :-1]).abs().mean()


class DeltaLinear(Recurrence):
    """``nn.Linear`` over channels of ``[B, C, T]`` that computes only on transmitted changes."""

    in_ndim = 3

    def __init__(
        self, in_features: int, out_features: int, threshold: float = 0.0, bias: bool = True,
        resync: int = 256,
    ) -> None:
        super().__init__()
        ref = nn.Linear(in_features, out_features, bias)
        self.weight = ref.weight
        self.bias = ref.bias
        self.in_features, self.out_features = in_features, out_features
        self.fixed_in_channels, self.fixed_out_channels = in_features, out_features
        self.threshold, self.resync = float(threshold), resync
        self._wt = TransposedWeight()

    @classmethod
    def from_linear(cls, layer: nn.Module, threshold: float = 0.0) -> DeltaLinear:
        """From an ``nn.Linear`` or ``sw.Linear`` (parameters shared) or a 1x1 ``Conv1d``
        (parameters copied: a 1x1 kernel has another shape)."""
        w = cast(Tensor, layer.weight)
        bias = cast(Tensor | None, layer.bias)
        if w.dim() == 3:
            if w.shape[-1] != 1:
                raise ValueError("only 1x1 convolutions are pointwise; this one has a kernel")
            new = cls(w.shape[1], w.shape[0], threshold, bias is not None)
            new.weight = nn.Parameter(w.detach()[..., 0].clone())
            if bias is not None:
                bias = nn.Parameter(bias.detach().clone())
        else:
            new = cls(w.shape[1], w.shape[0], threshold, bias is not None)
            new.weight = w
        new.bias = bias  # type: ignore[assignment]
        return new



    @property
    def exact(self) -> bool:
        return self.threshold == 0.0

    def _dense(self, xhat: Tensor) -> Tensor:
        return F.linear(xhat, self.weight, self.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self._run(x, self._fresh(x.shape[0], x.device, x.dtype), False)[0]

    def _advance(self, x: Tensor, inner: dict[str, Any], t: int) -> tuple[Tensor, dict[str, Any]]:
        return self._run(x, inner, True)

    def _run(self, x: Tensor, state: dict[str, Any], sparse: bool) -> tuple[Tensor, dict[str, Any]]:
        xhat, acc, t, sent = state["xhat"], state["acc"], state["t"], state["sent"]
        w_t = self._wt.get(self.weight) if sparse else self.weight.T
        ys = []
        for i in range(x.shape[-1]):
            delta, xhat = transmit(x[..., i], xhat, self.threshold)
            if sparse:
                z, n = sparse_matvec(w_t, delta)
                sent += n
            else:
                z = delta @ w_t
            # every `resync` frames the accumulator is recomputed densely: no drift
            acc = self._dense(xhat) if acc is None or t % self.resync == 0 else acc + z
            ys.append(acc)
            t += 1
        y = torch.stack(ys, -1) if ys else x.new_empty(x.shape[0], self.out_features, 0)
        return y, {"xhat": xhat, "acc": acc, "t": t, "sent": sent}

    def _inner_spec(self, in_channels: int | None) -> Spec:
        return {"xhat": tensor("B", self.in_features),  # the input as last transmitted
                "acc": tensor("B", self.out_features, lazy=True),  # outputs so far
                "t": clock(rebase=False),  # frames since the stream began (resyncs read it)
                "sent": counter()}  # transmitted changes: this stream's sparsity

    def init_state(self, batch_size: int, *, device: Any = None, dtype: Any = None) -> Any:
        self._wt.clear()  # a new stream reads the weights as they are now
        return super().init_state(batch_size, device=device, dtype=dtype)

    def _restart(self, inner: dict[str, Any], rows: Tensor, t: int) -> dict[str, Any]:
        r = rows.view(-1, 1)
        acc = inner["acc"]
        if acc is not None:  # a fresh row: xhat = 0, accumulator = bias
            acc = torch.where(r, self._dense(torch.zeros_like(inner["xhat"])), acc)
        return {**inner, "xhat": inner["xhat"].masked_fill(r, 0.0), "acc": acc}


class DeltaGRU(Recurrence):
    """GRU on ``[B, C, T]`` whose input and hidden matmuls run on transmitted changes only.

    Parameters are an ``nn.GRU``'s (``self.gru``), so trained GRU weights load as they are.
    Threshold 0 equals the dense GRU.
    """

    in_ndim = 3

    def __init__(
        self, input_size: int, hidden_size: int, threshold_x: float = 0.0,
        threshold_h: float = 0.0, resync: int = 256,
    ) -> None:
        super().__init__()
        self.gru = nn.GRU(input_size, hidden_size, batch_first=True)
        self.input_size, self.hidden_size = input_size, hidden_size
        self.fixed_in_channels, self.fixed_out_channels = input_size, hidden_size
        self.threshold_x, self.threshold_h, self.resync = threshold_x, threshold_h, resync
        self._wt_ih, self._wt_hh = TransposedWeight(), TransposedWeight()



    @property
    def exact(self) -> bool:
        return self.threshold_x == 0.0 and self.threshold_h == 0.0

    def forward(self, x: Tensor) -> Tensor:
        return self._run(x, self._fresh(x.shape[0], x.device, x.dtype), False)[0]

    def _advance(self, x: Tensor, inner: dict[str, Any], t: int) -> tuple[Tensor, dict[str, Any]]:
        return self._run(x, inner, True)

    def _inner_spec(self, in_channels: int | None) -> Spec:
        h = self.hidden_size
        return {"xhat": tensor("B", self.input_size), "hhat": tensor("B", h),  # as transmitted
                "h": tensor("B", h),
                # the gates' pre-activations, accumulated from deltas (made on the first frame)
                "mx": tensor("B", 3 * h, lazy=True), "mh": tensor("B", 3 * h, lazy=True),
                "t": clock(rebase=False), "sent": counter()}

    def init_state(self, batch_size: int, *, device: Any = None, dtype: Any = None) -> Any:
        self._wt_ih.clear()  # a new stream reads the weights as they are now
        self._wt_hh.clear()
        return super().init_state(batch_size, device=device, dtype=dtype)

    def _run(self, x: Tensor, state: dict[str, Any], sparse: bool) -> tuple[Tensor, dict[str, Any]]:
        w_ih, w_hh, b_ih, b_hh = self._params()
        xhat, hhat, h = state["xhat"], state["hhat"], state["h"]
        mx, mh, t, sent = state["mx"], state["mh"], state["t"], state["sent"]
        if sparse:
            wt_ih, wt_hh = self._wt_ih.get(w_ih), self._wt_hh.get(w_hh)
        else:
            wt_ih, wt_hh = w_ih.T, w_hh.T
        ys = []
        for i in range(x.shape[-1]):
            dx, xhat = transmit(x[..., i], xhat, self.threshold_x)
            dh, hhat = transmit(h, hhat, self.threshold_h)
            if sparse:
                (zx, nx), (zh, nh) = sparse_matvec(wt_ih, dx), sparse_matvec(wt_hh, dh)
                sent += nx + nh
            else:
                zx, zh = dx @ wt_ih, dh @ wt_hh
            if mx is None or t % self.resync == 0:
                mx, mh = F.linear(xhat, w_ih, b_ih), F.linear(hhat, w_hh, b_hh)
            else:
                mx, mh = mx + zx, mh + zh
            xr, xz, xn = mx.chunk(3, 1)
            hr, hz, hn = mh.chunk(3, 1)
            r, zg = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
            n = torch.tanh(xn + r * hn)
            h = (1 - zg) * n + zg * h
            ys.append(h)
            t += 1
        y = torch.stack(ys, -1) if ys else x.new_empty(x.shape[0], self.hidden_size, 0)
        return y, {"xhat": xhat, "hhat": hhat, "h": h, "mx": mx, "mh": mh, "t": t, "sent": sent}

    def _params(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        names = ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")
        w_ih, w_hh, b_ih, b_hh = (cast(Tensor, getattr(self.gru, n)) for n in names)
        return w_ih, w_hh, b_ih, b_hh

    def _restart(self, inner: dict[str, Any], rows: Tensor, t: int) -> dict[str, Any]:
        r = rows.view(-1, 1)
        new = dict(inner)
        for k in ("xhat", "hhat", "h"):
            new[k] = inner[k].masked_fill(r, 0.0)
        if inner["mx"] is not None:
            _, _, b_ih, b_hh = self._params()
            new["mx"] = torch.where(r, b_ih.expand_as(inner["mx"]), inner["mx"])
            new["mh"] = torch.where(r, b_hh.expand_as(inner["mh"]), inner["mh"])
        return new


def delta_pointwise(model: nn.Module, threshold: float) -> StreamingModule:
    """A copy of a ``Sequential`` of pointwise layers with every ``Linear`` / 1x1 conv replaced by
    a ``DeltaLinear`` (weights shared with a Linear, copied from a 1x1 conv) and the rest kept."""
    from streamwise.layers.containers import Sequential
    from streamwise.layers.conv import Conv1d
    from streamwise.layers.pointwise import Linear

    if not isinstance(model, Sequential):
        raise TypeError("delta_pointwise takes a sw.Sequential of pointwise layers")
    layers: list[nn.Module] = []
    for i, m in enumerate(model):
        if isinstance(m, (Linear, nn.Linear)):
            layers.append(DeltaLinear.from_linear(m, threshold))
        elif isinstance(m, Conv1d):
            if m.kernel_size != 1 or m.conv_stride != 1 or m.padding != (0, 0) or m.groups != 1:
                raise ValueError(f"layer {i}: only 1x1 convolutions are pointwise")
            layers.append(DeltaLinear.from_linear(m, threshold))
        elif m.receptive_field == 1 and m.delay == 0 and m.stride == 1:
            layers.append(m)
        else:
            raise ValueError(f"layer {i} ({type(m).__name__}) is not pointwise")
    return Sequential(*layers)


def sparsity(state: Any) -> tuple[int, int]:
    """(transmitted, total) element counts summed over the delta layers in a state tree."""
    sent = total = 0
    if isinstance(state, dict):
        if "sent" in state and "xhat" in state:
            sent += state["sent"]
            per = state["xhat"].numel() + (state["hhat"].numel() if "hhat" in state else 0)
            total += per * state["t"]
        for v in state.values():
            s, t = sparsity(v) if isinstance(v, (dict, tuple, list)) else (0, 0)
            sent, total = sent + s, total + t
    elif isinstance(state, (tuple, list)):
        for v in state:
            s, t = sparsity(v)
            sent, total = sent + s, total + t
    return sent, total
