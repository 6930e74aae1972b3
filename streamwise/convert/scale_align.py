"""Layer-wise scale alignment of overlapping windows (LASER), an ``align`` hook for
``WindowStream``.

A model that predicts up to an unknown scale per window (monocular depth, a per-window
normalisation, predictions expressed in the window's first frame) gives stitched outputs that
jump at every window boundary.  A single scale per window does not fix it when the parts of the
output ("layers": near and far depth) change scale differently between windows.  So, over the
overlap of the previous window's (already aligned) output ``p`` and the current one's ``c``:

1. split the values into ``layers`` layers at the ``layers - 1`` widest gaps between the sorted
   ``log |c|`` of the overlap (each row of the batch on its own);
2. per layer ``k``, the least-squares scale ``s_k = <p, c>_k / <c, c>_k`` over its overlap
   entries;
3. scale every entry of the current window by the factor of its layer (entries outside the
   overlap are put in a layer by the same edges).

Chained window after window, every window is brought to the first window's scales: where the
model is exact up to those per-layer scales and every layer appears in every overlap, the
stitched stream equals the offline output (a test); where not, ``WindowStream.measure`` reports
the error.  ``layers=1`` is the plain per-window scale alignment.
"""

from __future__ import annotations

import torch
from torch import Tensor


class ScaleAlign:
    """``align(prev, cur)``: ``cur`` with each layer's scale matched to ``prev`` over their
    overlap (``prev`` covers the first ``prev.shape[-1]`` frames of ``cur``)."""

    def __init__(self, layers: int = 1, eps: float = 1e-12) -> None:
        if isinstance(layers, bool) or not isinstance(layers, int) or layers < 1:
            raise ValueError(f"expected layers as an integer >= 1, got {layers!r}")
        self.layers, self.eps = layers, eps

    def edges(self, c: Tensor) -> Tensor:
        """The ``layers - 1`` cut points in ``log |c|`` (midpoints of the widest gaps)."""
        v = torch.log(c.abs().flatten().clamp_min(self.eps)).sort().values
        if self.layers == 1 or v.numel() < 2:
            return v.new_empty(0)
        gaps = v[1:] - v[:-1]
        widest = gaps.topk(min(self.layers - 1, gaps.numel())).indices.sort().values
        return (v[widest] + v[widest + 1]) / 2

    def __call__(self, prev: Tensor, cur: Tensor) -> Tensor:
        n = prev.shape[-1]
        if n == 0:
            return cur
        if prev.shape[:-1] != cur.shape[:-1] or n > cur.shape[-1]:
            raise ValueError(f"expected the previous window's overlap {tuple(prev.shape)} to "
                             f"cover the first frames of the current window {tuple(cur.shape)}")
        out = []
        for p, c in zip(prev, cur):  # each row on its own
            edges = self.edges(c[..., :n])
            layer = torch.bucketize(torch.log(c.abs().clamp_min(self.eps)), edges)
            scale = torch.ones_like(c)
            lo, co = layer[..., :n], c[..., :n]
            for k in range(len(edges) + 1):
                mask = lo == k
                den = (co * co)[mask].sum()
                if den > self.eps:
                    scale = torch.where(layer == k, (p * co)[mask].sum() / den, scale)
            out.append(c * scale)
        return torch.stack(out)
