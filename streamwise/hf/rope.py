"""RoPE facts a Hugging Face cache needs: the model's frequencies, and re-rotating stored keys.

In transformers 5.x the attention layers rotate keys *before* ``cache.update``, and the cache is not
told the positions.  Rotations compose (``R(a) R(b) = R(a + b)``), so a key rotated at its arrival
frame ``p`` is moved to any presented position ``p + delta`` by one more rotation, without ever
un-rotating it.  ``rotate_half`` convention: dimension ``j`` pairs with ``j + rot/2``; GPT-NeoX's
partial rotary turns only the first ``rot = 2 * len(inv_freq)`` dimensions.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from streamwise.attention.positions import rotate_half

STATIC_ROPE = ("default", "linear", "llama3", "yarn", "longrope_static")


def model_inv_freq(model: nn.Module) -> Tensor:
    """The pretrained model's own ``inv_freq`` (float64 copy), read from its rotary embedding, not
    recomputed (``attention.positions.rope_frequencies`` computes them from head_dim and base);
    refuses RoPE whose frequencies move with length."""
    rot = getattr(getattr(model, "base_model", model), "rotary_emb", None)
    if rot is None or not hasattr(rot, "inv_freq"):
        raise ValueError(f"{type(model).__name__} has no rotary embedding at "
                         "base_model.rotary_emb: within-cache positions need a RoPE model (use "
                         "positions='absolute')")
    kind = getattr(rot, "rope_type", "default")
    if kind == "dynamic":
        raise ValueError("dynamic RoPE changes its frequencies with the sequence length, so cached "
                         "keys cannot be re-rotated: use positions='absolute'")
    return rot.inv_freq.detach().to(torch.float64).clone()


def rerotate(k: Tensor, delta: Tensor, inv_freq: Tensor) -> Tensor:
    """Keys ``k [B, H, N, D]`` rotated by ``delta [N]`` (or ``[B, N]``) more positions."""
    rot = 2 * inv_freq.shape[0]
    ang = delta.to(torch.float64)[..., None] * inv_freq.to(k.device)  # [.., N, rot/2]
    ang = torch.cat([ang, ang], -1)
    if ang.dim() == 3:  # per row: [B, 1, N, rot]
        ang = ang[:, None]
    cos, sin = ang.cos().to(k.dtype), ang.sin().to(k.dtype)  # taken in float64
    kr = k[..., :rot]
    turned = kr * cos + rotate_half(kr) * sin
    return turned if rot == k.shape[-1] else torch.cat([turned, k[..., rot:]], -1)
