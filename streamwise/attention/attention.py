"""``StreamingAttention``: multi-head (grouped-KV) attention whose KV cache a policy bounds.

Offline ``forward`` attends over the whole sequence with the policy's mask; ``step`` keeps a cache
of entries (keys before positions, values, arrival frames) and asks the policy what to show and what
to drop.  Position-based policies drop only entries no later frame can see, so streaming equals the
offline model for every chunking.  Layout ``[B, T, C]`` (the transformer convention) by default,
``layout='bct'`` for pipelines of the core layers, which are time-last.
"""

from __future__ import annotations

import math
from dataclasses import replace
from fractions import Fraction

import torch
from torch import Tensor, nn

from streamwise.attention.cache import entries as E
from streamwise.attention.cache.base import CachePolicy, Full, PState
from streamwise.attention.cache.entries import Entries
from streamwise.attention.positions import (
    alibi_slopes,
    apply_rope,
    encoding_arg,
    rope_frequencies,
    rope_scores,
)
from streamwise.core.protocol import StreamingModule
from streamwise.core.state import INF, Spec, clock, tensor

Segment = str | list[str] | None


class StreamingAttention(StreamingModule):
    """Self-attention over a stream with a bounded KV cache.

    ``dim`` channels in and out; ``heads`` query heads of ``head_dim``; ``kv_heads`` key/value heads
    (grouped-query attention when fewer than ``heads``); ``encoding`` 'rope' | 'alibi' | 'none'
    (how positions enter the scores; the old name ``positions=`` warns);
    ``cache`` a policy (``Window``, ``Sinks``, ``Chunked``, ``Segments``, ...; default ``Full``).
    """

    slopes: Tensor
    in_ndim = 3

    def __init__(
        self,
        dim: int,
        heads: int,
        *,
        kv_heads: int | None = None,
        head_dim: int | None = None,
        encoding: str = "rope",
        cache: CachePolicy | None = None,
        rope_base: float = 10000.0,
        layout: str = "btc",
        bias: bool = False,
        positions: str | None = None,
    ) -> None:
        super().__init__()
        kv_heads = kv_heads or heads
        if heads < 1 or kv_heads < 1 or heads % kv_heads:
            raise ValueError(
                f"heads ({heads}) must be a positive multiple of kv_heads ({kv_heads})")
        hd = head_dim or dim // heads
        if hd < 1:
            raise ValueError(f"head_dim must be >= 1 (dim {dim} / heads {heads})")
        if layout not in ("btc", "bct"):
            raise ValueError(
                f"layout must be 'btc' ([B, T, C]) or 'bct' ([B, C, T]), got {layout!r}")
        self.dim, self.heads, self.kv_heads, self.head_dim = dim, heads, kv_heads, hd
        self.kind = encoding_arg(encoding, positions, "StreamingAttention")
        if self.kind == "rope" and hd % 2:
            raise ValueError(f"RoPE needs an even head_dim, got {hd} (dim {dim} / heads {heads})")
        self.policy = cache if cache is not None else Full()
        if not isinstance(self.policy, CachePolicy):
            raise ValueError(f"cache must be a CachePolicy, got {type(cache).__name__}")
        self.policy.check_encoding(self.kind)
        self.layout = layout
        self.fixed_in_channels = self.fixed_out_channels = dim
        self.q_proj = nn.Linear(dim, heads * hd, bias=bias)
        self.k_proj = nn.Linear(dim, kv_heads * hd, bias=bias)
        self.v_proj = nn.Linear(dim, kv_heads * hd, bias=bias)
        self.out_proj = nn.Linear(heads * hd, dim, bias=bias)
        self.rope_base = rope_base
        self.register_buffer("slopes", alibi_slopes(heads) if self.kind == "alibi"
                             else torch.zeros(0), persistent=False)

    # -- metadata ------------------------------------------------------------------------------
    @property
    def time_axis(self) -> int:
        return 1 if self.layout == "btc" else -1

    @property
    def delay(self) -> Fraction:
        return Fraction(self.policy.block - 1)

    @property
    def period(self) -> int:
        return self.policy.block

    @property
    def receptive_field(self) -> int:
        return self.policy.receptive_field

    @property
    def exact(self) -> bool:
        return self.policy.exact

    def extra_repr(self) -> str:
        return (f"dim={self.dim}, heads={self.heads}, kv_heads={self.kv_heads}, "
                f"head_dim={self.head_dim}, encoding={self.kind!r}, cache={self.policy!r}, "
                f"layout={self.layout!r}")

    # -- shared computation --------------------------------------------------------------------
    def _btc(self, x: Tensor) -> Tensor:
        return x if self.layout == "btc" else x.transpose(1, 2)

    def _out_layout(self, y: Tensor) -> Tensor:
        return y if self.layout == "btc" else y.transpose(1, 2)

    def _project(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, self.heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
        return q, k, v

    def _distance(self, e: Entries, qi: Entries, mask: Tensor) -> Tensor:
        """Query position minus key position as presented, ``[B, Tq, N]``."""
        if self.policy.positions == "within_cache":
            rank = mask.long().cumsum(-1) - 1  # slot of each visible entry among those seen
            own = (mask & (e["pos"][:, None, :] <= qi["pos"][:, :, None])).sum(-1) - 1
            return own[..., None] - rank
        return self.policy.present(qi)[:, :, None] - self.policy.present(e)[:, None, :]

    def _freqs(self, device: torch.device) -> Tensor:
        """RoPE frequencies in float64: angles at frame 100k keep their precision in float32."""
        return rope_frequencies(self.head_dim, self.rope_base, device=device, dtype=torch.float64)

    def _scores(self, q: Tensor, k: Tensor, e: Entries, qi: Entries, mask: Tensor) -> Tensor:
        rep = self.heads // self.kv_heads
        k = k.repeat_interleave(rep, 1) if rep > 1 else k
        if self.kind == "rope" and self.policy.positions != "within_cache":
            qp, kp = self.policy.present(qi), self.policy.present(e)
            f = self._freqs(q.device)
            s = apply_rope(q, qp[:, None], f) @ apply_rope(k, kp[:, None], f).mT
        elif self.kind == "rope":
            s = rope_scores(q, k, self._distance(e, qi, mask), self._freqs(q.device))
        else:
            s = q @ k.mT
        s = s / math.sqrt(self.head_dim)
        if self.kind == "alibi":
            dist = self._distance(e, qi, mask).abs().to(s.dtype)
            s = s - self.slopes.to(s.dtype)[None, :, None, None] * dist[:, None]
        return s + e["bias"][:, None, None, :].to(s.dtype)

    def _attend(self, q: Tensor, e: Entries, qi: Entries, ps: PState,
                policy: CachePolicy | None = None) -> Tensor:
        """Outputs ``[B, H, Tq, D]`` of queries ``q`` over entries ``e``."""
        policy = policy or self.policy
        mask = policy.visible(e, qi, ps)
        s = self._scores(q, e["k"], e, qi, mask).masked_fill(~mask[:, None], -math.inf)
        rep = self.heads // self.kv_heads
        v = e["v"].repeat_interleave(rep, 1) if rep > 1 else e["v"]
        o = torch.softmax(s, -1) @ v
        extra = policy.extra_output(q, e, qi, ps)
        return o if extra is None else o + extra

    def _merge_heads(self, o: Tensor) -> Tensor:
        b, _, t, _ = o.shape
        return self.out_proj(o.transpose(1, 2).reshape(b, t, self.heads * self.head_dim))

    # -- offline -------------------------------------------------------------------------------
    def forward(self, x: Tensor, segment: Segment = None) -> Tensor:
        """Attention over the whole sequence with the policy's mask (sequential policies: the
        plain causal attention they approximate)."""
        xb = self._btc(x)
        b, t, _ = xb.shape
        policy = self.policy
        state = self.init_state(b, device=xb.device, dtype=xb.dtype)
        seg = policy.segment_ids(segment, t, xb.device)
        q, k, v = self._project(xb)
        qi = policy.arrivals(0, seg, state["policy"], b, xb.dtype)
        # sequential policies decide from content: offline, the causal attention they approximate
        ref = Full(policy.positions) if policy.sequential else policy
        e = ref.offline_entries({**qi, "k": k, "v": v}, state["policy"])
        return self._out_layout(self._merge_heads(self._attend(q, e, qi, state["policy"], ref)))

    # -- streaming -----------------------------------------------------------------------------
    def state_spec(self, in_channels: int | None = None) -> Spec:
        bound = self.policy.bound
        held = self.policy.block - 1  # frames of a partial block
        cache = E.spec(self.kv_heads, self.head_dim, INF if bound is None else bound)
        shift = self.policy.shift_invariant and self.policy.positions != "group"
        if shift:  # entry positions are frames of t_in: batched streams move them with it
            cache = {**cache, **{f: replace(cache[f], frames_of=(2, "t_in"))
                                 for f in ("pos", "lidx")}}
        return {
            "cache": cache,
            "policy": self.policy.spec(self.kv_heads, self.head_dim),
            "buf": tensor("B", held, self.dim, grows=1),
            # the held frames' segment ids: one list shared by the rows
            "bufseg": tensor(held, dtype=torch.long, batch_axis=None, grows=0),
            # sinks read the absolute frame; chunk boundaries only its phase (shift-invariant)
            "t_in": clock(rebase=shift),
        }

    def check_chunk(self, x: Tensor, state: dict) -> None:
        """Raise a ValueError naming what was expected; the state is not touched."""
        b = state["buf"].shape[0]
        want = f"[{b}, T, {self.dim}]" if self.layout == "btc" else f"[{b}, {self.dim}, T]"
        if not isinstance(x, Tensor) or x.dim() != 3:
            got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"expected a chunk {want}, got {got}")
        xb = self._btc(x)
        if xb.shape[0] != b:
            raise ValueError(f"batch mismatch: the stream has {b} rows, chunk {tuple(x.shape)} "
                             f"(expected {want})")
        if xb.shape[2] != self.dim:
            raise ValueError(f"expected {self.dim} channels in chunk {want}, got {tuple(x.shape)}")
        if x.dtype != state["buf"].dtype:
            raise ValueError(f"expected dtype {state['buf'].dtype}, got {x.dtype}")
        if x.device != state["buf"].device:
            raise ValueError(f"expected device {state['buf'].device}, got {x.device}")

    def step(self, x: Tensor, state: dict, segment: Segment = None) -> tuple[Tensor, dict]:
        self.check_chunk(x, state)
        xb = self._btc(x)
        seg = self.policy.segment_ids(segment, xb.shape[1], xb.device)
        buf = torch.cat([state["buf"], xb], 1)
        segs = torch.cat([state["bufseg"], seg])
        block = self.policy.block
        ready = buf.shape[1] // block * block
        y, state = self._run(buf[:, :ready], segs[:ready], state)
        state = {**state, "buf": buf[:, ready:], "bufseg": segs[ready:]}
        return self._out_layout(y), state

    def flush(self, state: dict) -> tuple[Tensor, dict]:
        """A partial last chunk (chunked attention) is answered with the frames it has."""
        buf = state["buf"]
        if not buf.shape[1]:  # nothing held back: an empty output of the right shape
            return self._out_layout(buf.new_zeros(buf.shape[0], 0, self.dim)), state
        y, state = self._run(buf, state["bufseg"], state)
        return self._out_layout(y), {**state, "buf": buf[:, :0], "bufseg": state["bufseg"][:0]}

    def _run(self, x: Tensor, seg: Tensor, state: dict) -> tuple[Tensor, dict]:
        """Answer the frames of ``x`` (whole blocks), token by token for sequential policies."""
        if not x.shape[1]:
            return x.new_zeros(x.shape[0], 0, self.dim), state
        if not self.policy.sequential:
            return self._block(x, seg, state)
        ys = []
        for i in range(x.shape[1]):
            y, state = self._block(x[:, i : i + 1], seg[i : i + 1], state)
            ys.append(y)
        return torch.cat(ys, 1), state

    def _block(self, x: Tensor, seg: Tensor, state: dict) -> tuple[Tensor, dict]:
        b, n, _ = x.shape
        t, policy = state["t_in"], self.policy
        q, k, v = self._project(x)
        at: int | Tensor = t
        if (torch.compiler.is_exporting() and policy.warm_keep() is not None
                and E.size(state["cache"])):
            # an exported graph cannot read the Python clock: the newest entry's frame + 1
            at = state["cache"]["pos"][:, -1] + 1
        qi = policy.arrivals(at, seg, state["policy"], b, x.dtype)
        cache, ps = policy.admit(state["cache"], {**qi, "k": k, "v": v}, state["policy"])
        seen, ps = policy.attended(cache, q, qi, ps)
        o = self._attend(q, seen, qi, ps)
        cache, ps = policy.evict(cache, ps, t + n)
        new = {**state, "cache": cache, "policy": ps, "t_in": t + n}
        return self._merge_heads(o), new

    def reset_rows(self, state: dict, mask: Tensor, start: int) -> dict:
        raise ValueError("StreamingAttention cannot restart single rows of a batch (positions "
                         "and caches are per stream): open a new stream for the new input")

    # -- updates instead of appends (Prefix) ---------------------------------------------------
    def crop(self, state: dict, n: int) -> dict:
        """The state as if only the first ``n`` frames had been pushed (Full cache only)."""
        if self.policy.bound is not None or self.policy.sequential or self.policy.block != 1:
            raise ValueError(f"crop needs every past entry in the cache; {self.policy!r} drops "
                             "or merges them (use Full)")
        if not 0 <= n <= state["t_in"]:
            raise ValueError(f"crop to {n} frames: expected 0 <= n <= {state['t_in']}")
        cache = E.select(state["cache"], state["cache"]["pos"] < n)
        return {**state, "cache": cache, "t_in": n}
