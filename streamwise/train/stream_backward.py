"""StreamBP: the exact gradient of a causal LM's loss, computed chunk by chunk along the sequence.

A causal LM's loss over ``T`` tokens is ``L = sum_c L_c``, ``L_c`` the cross-entropy of chunk
``c = [s, e)``.  Position ``t``'s only route to a later position is its keys and values
``K_t, V_t`` in every layer (what a KV cache keeps).  So, with the KV of the whole sequence
computed once without a graph, the chunks can be differentiated one at a time, last first:

    grad_theta L = sum_c d/d theta [ L_c + <K_c, G^K_c> + <V_c, G^V_c> ],
    G^K_{<s} += dL_c' / dK_{<s}   (the same for V),

where chunk ``c``'s forward reads the cached prefix ``K_{<s}, V_{<s}`` as leaves,
``L_c' = L_c + <K_c, G^K_c> + <V_c, G^V_c>`` is its objective, and ``G^K_c`` is the gradient
that the later chunks sent back into chunk ``c``'s own keys (complete once they are all done:
hence last first).  This is the chain rule, not an approximation: the gradients equal full
backpropagation up to rounding (tests: float64 to 1e-10, float32 to 1e-5, on Llama and GPT-2).

Memory: the keys and values of every layer and their gradients (``4 L T d_kv`` numbers) plus
one chunk's activations, against every layer's activations for all ``T`` tokens (plain
backprop) or every layer's input plus one layer's activations for all ``T`` (checkpointing).
The price is one extra forward pass (the KV pass), like checkpointing.

Works on any transformers causal LM whose layers cache plain keys and values in a
``DynamicCache`` (Llama, Qwen2, Mistral, GPT-2, ...); sliding-window or recurrent caches are
refused.  Dropout must be off: the KV pass and the chunk pass must compute the same values.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import accumulate
from typing import Any

import torch
from torch import Tensor

IGNORE = -100  # labels with this value are not scored (as in transformers)


def _check(model: Any, tokens: Tensor, labels: Tensor | None) -> Tensor:
    if not isinstance(tokens, Tensor) or tokens.dim() != 2 or tokens.dtype != torch.long:
        raise ValueError(f"expected tokens as a (batch, time) long tensor, got "
                         f"{getattr(tokens, 'dtype', type(tokens))} of shape "
                         f"{tuple(getattr(tokens, 'shape', ()))}")
    if tokens.shape[1] < 2:
        raise ValueError(f"expected at least 2 tokens per row (one to predict), got "
                         f"{tokens.shape[1]}")
    vocab = model.config.vocab_size
    if tokens.numel() and (int(tokens.min()) < 0 or int(tokens.max()) >= vocab):
        raise ValueError(f"expected token ids in [0, {vocab}), got "
                         f"[{int(tokens.min())}, {int(tokens.max())}]")
    if labels is None:
        return tokens
    if not isinstance(labels, Tensor) or labels.shape != tokens.shape or \
            labels.dtype != torch.long:
        raise ValueError(f"expected labels as a long tensor of the tokens' shape "
                         f"{tuple(tokens.shape)}, got {getattr(labels, 'dtype', type(labels))} "
                         f"of shape {tuple(getattr(labels, 'shape', ()))}")
    bad = (labels != IGNORE) & ((labels < 0) | (labels >= vocab))
    if bad.any():
        raise ValueError(f"expected labels in [0, {vocab}) or {IGNORE}")
    return labels


def _bounds(chunk: int | Sequence[int], t: int) -> list[tuple[int, int]]:
    """``[s, e)`` of every non-empty chunk: ``chunk`` tokens each, or the sizes given."""
    if isinstance(chunk, int) and not isinstance(chunk, bool):
        if chunk < 1:
            raise ValueError(f"expected chunk as an integer >= 1, got {chunk}")
        sizes = [min(chunk, t - s) for s in range(0, t, chunk)]
    else:
        sizes = list(chunk) if isinstance(chunk, Sequence) else []
        if not sizes or any(isinstance(n, bool) or not isinstance(n, int) or n < 0
                            for n in sizes) or sum(sizes) != t:
            raise ValueError(f"expected chunk as an integer >= 1 or a list of sizes >= 0 "
                             f"summing to the {t} tokens, got {chunk!r}")
    ends = list(accumulate(sizes))
    return [(e - n, e) for n, e in zip(sizes, ends) if n]


def _check_model(model: Any) -> None:
    if model.training:
        drop = [n for n, m in model.named_modules()
                if isinstance(m, torch.nn.Dropout) and m.p > 0]
        if drop:
            raise ValueError(f"dropout is on in {drop[:3]}: the KV pass and each chunk's pass "
                             f"would draw different masks; call model.eval() or set p=0")


def _kv_layers(cache: Any) -> list[Any]:
    from transformers.cache_utils import DynamicLayer

    layers = list(cache.layers)
    odd = sorted({type(layer).__name__ for layer in layers if type(layer) is not DynamicLayer})
    if odd:
        raise ValueError(f"stream_backward needs plain key/value caches (DynamicLayer); this "
                         f"model's cache has {odd} (sliding-window or recurrent layers)")
    return layers


def stream_backward(model: Any, tokens: Tensor, chunk: int | Sequence[int],
                    labels: Tensor | None = None) -> Tensor:
    """Accumulate into ``p.grad`` of every parameter the gradient of the model's mean next-token
    cross-entropy over ``tokens`` ``(batch, time)`` (``labels`` default to the tokens; entries
    of -100 are not scored), ``chunk`` tokens at a time (or chunks of the sizes listed, 0
    allowed); return the loss (detached).  Equal to
    ``model(tokens, labels=labels).loss.backward()`` up to rounding (transformers computes that
    loss in float32; this one in the model's dtype)."""
    from transformers import DynamicCache

    labels = _check(model, tokens, labels)
    _check_model(model)
    b, t = tokens.shape
    target = labels[:, 1:]
    n = int((target != IGNORE).sum())
    if n == 0:
        raise ValueError("every label is -100: nothing to learn from")
    bounds = _bounds(chunk, t)

    def run(s: int, e: int, cache: Any) -> Tensor:
        pos = torch.arange(s, e, device=tokens.device).expand(b, -1)
        return model(input_ids=tokens[:, s:e], past_key_values=cache, use_cache=True,
                     position_ids=pos).logits

    full = DynamicCache(config=model.config)
    with torch.no_grad():  # the KV pass
        for s, e in bounds:
            run(s, e, full)
    layers = _kv_layers(full)
    keys = [layer.keys for layer in layers]
    values = [layer.values for layer in layers]
    del full, layers
    g_keys = [torch.zeros_like(k) for k in keys]
    g_values = [torch.zeros_like(v) for v in values]
    total = torch.zeros((), dtype=torch.float64)
    for s, e in reversed(bounds):
        cache = DynamicCache(config=model.config)
        leaves = []
        if s:
            for i, (k, v) in enumerate(zip(keys, values)):
                lk = k[:, :, :s].detach().requires_grad_()
                lv = v[:, :, :s].detach().requires_grad_()
                cache.update(lk, lv, i)
                leaves.append((lk, lv))
        logits = run(s, e, cache)
        stop = min(e, t - 1)  # the sequence's last position has nothing to predict
        y = target[:, s:stop]
        loss = torch.nn.functional.cross_entropy(
            logits[:, :stop - s].reshape(-1, logits.shape[-1]), y.reshape(-1),
            ignore_index=IGNORE, reduction="sum") / n
        objective = loss
        for i, layer in enumerate(_kv_layers(cache)):
            objective = objective + (layer.keys[:, :, s:e] * g_keys[i][:, :, s:e]).sum() \
                + (layer.values[:, :, s:e] * g_values[i][:, :, s:e]).sum()
        objective.backward()
        for i, (lk, lv) in enumerate(leaves):
            assert lk.grad is not None and lv.grad is not None
            g_keys[i][:, :, :s] += lk.grad
            g_values[i][:, :, :s] += lv.grad
        total += float(loss.detach())
    return total.to(keys[0].dtype if keys else torch.float32)
