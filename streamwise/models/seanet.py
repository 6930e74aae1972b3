"""A SEANet-like 1-D convolutional encoder-decoder (the kind used in neural audio codecs).

Non-causal convolutions (lookahead), strided downsampling, transposed-conv upsampling and residual
units with dilations: every mechanism the core must stream exactly.  About 1.2 M parameters with
the defaults, total stride 16.
"""

from __future__ import annotations

import torch

import streamwise as sw


def residual_unit(channels: int, dilation: int, kernel: int = 3) -> sw.Residual:
    """ELU -> dilated non-causal conv -> ELU -> 1x1 conv, added to the input."""
    hidden = channels // 2
    return sw.Residual(
        sw.Sequential(
            sw.ELU(),
            sw.Conv1d(channels, hidden, kernel, padding="same", dilation=dilation),
            sw.ELU(),
            sw.Conv1d(hidden, channels, 1),
        )
    )


def _down(ch_in: int, ch_out: int, r: int) -> sw.Conv1d:
    # kernel 2r, stride r; padding r split as (ceil, floor): non-causal, length T -> T / r
    return sw.Conv1d(ch_in, ch_out, 2 * r, stride=r, padding=(r - r // 2, r // 2))


def _up(ch_in: int, ch_out: int, r: int) -> sw.ConvTranspose1d:
    p = (r + 1) // 2  # length T -> T * r
    return sw.ConvTranspose1d(ch_in, ch_out, 2 * r, stride=r, padding=p, output_padding=2 * p - r)


def seanet(
    channels: int = 1,
    base: int = 32,
    ratios: tuple[int, ...] = (2, 2, 4),
    dilations: tuple[int, ...] = (1, 3),
    bottleneck: int = 256,
    seed: int | None = 0,
) -> sw.Sequential:
    """Encoder-decoder that maps ``[B, channels, T]`` to ``[B, channels, T]`` (T a multiple of
    the total stride).  Randomly initialised from ``seed``; train it or load weights as usual."""
    if seed is not None:
        torch.manual_seed(seed)
    enc: list[torch.nn.Module] = [sw.Conv1d(channels, base, 7, padding="same")]
    ch = base
    for r in ratios:
        enc += [residual_unit(ch, d) for d in dilations]
        enc += [sw.ELU(), _down(ch, 2 * ch, r)]
        ch *= 2
    mid = [
        sw.ELU(), sw.Conv1d(ch, bottleneck, 3, padding="same"),
        sw.ELU(), sw.Conv1d(bottleneck, ch, 3, padding="same"),
    ]
    dec: list[torch.nn.Module] = []
    for r in reversed(ratios):
        dec += [sw.ELU(), _up(ch, ch // 2, r)]
        ch //= 2
        dec += [residual_unit(ch, d) for d in dilations]
    dec += [sw.ELU(), sw.Conv1d(ch, channels, 7, padding="same"), sw.Tanh()]
    model = sw.Sequential(*enc, *mid, *dec)
    _variance_preserving_init(model)
    return model


def denoiser() -> sw.Sequential:
    """``seanet()`` with the shipped weights: a speech denoiser trained at development time
    (``scripts/train_denoiser.py``, 12 CPU-minutes on espeak-ng speech in white, coloured and hum
    noise).  On the shipped recording at 5 dB SNR it outputs 8.2 dB: modest, but real."""
    from importlib import resources

    model = seanet(seed=None)
    ref = resources.files("streamwise.assets").joinpath("seanet_denoiser.pt")
    with resources.as_file(ref) as path:
        weights = torch.load(path, weights_only=True)
    model.load_state_dict({k: v.float() for k, v in weights.items()})
    return model.eval()


def _variance_preserving_init(model: torch.nn.Module) -> None:
    """Weights ~ N(0, 1/fan_in): a random model keeps its signal scale through ~40 layers.

    torch's default init shrinks activations layer after layer, so an untrained deep model
    outputs almost nothing and any float32 rounding looks large next to it.
    """
    for m in model.modules():
        if isinstance(m, sw.Conv1d):
            fan_in = m.weight.shape[1] * m.weight.shape[2]
        elif isinstance(m, sw.ConvTranspose1d):
            fan_in = m.weight.shape[0] * m.weight.shape[2] // m.conv_stride
        else:
            continue
        with torch.no_grad():
            m.weight.normal_(0.0, fan_in**-0.5)
