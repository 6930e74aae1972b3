"""Speech enhancement and music separation in the waveform domain: denoiser's Demucs (denoiser
0.1.5, the causal real-time speech enhancer) and Demucs v3 (demucs 4.1.0, ``demucs.demucs``),
small widths, random weights.  Both import with torch and julius alone.
"""

from __future__ import annotations

from torch import nn

from tests.convert.zoo.models import Config, seeded
from tests.convert.zoo.packages import load

DENOISER = "denoiser==0.1.5"
DEMUCS = "demucs==4.1.0"


def _denoiser(**kw: object) -> nn.Module:
    cls = load("denoiser.demucs").Demucs
    return seeded(lambda: cls(chin=1, chout=1, hidden=4, depth=3, kernel_size=8, stride=4,
                              **kw))


def denoiser_causal() -> nn.Module:
    """Causal Demucs without input normalisation, no resampling: convs, unidirectional LSTM,
    U-Net skips; the input is padded at the end to a valid length and the output cropped."""
    return _denoiser(causal=True, resample=1, normalize=False)


def denoiser_causal_resample() -> nn.Module:
    """The released layout: resample x4 (sinc filters as convs), normalisation off."""
    return _denoiser(causal=True, resample=4, normalize=False)


def denoiser_normalized() -> nn.Module:
    """The released default ``normalize=True``: the input is divided by its std over time."""
    return _denoiser(causal=True, resample=1, normalize=True)


def denoiser_bidirectional() -> nn.Module:
    """``causal=False``: a bidirectional LSTM in the bottleneck."""
    return _denoiser(causal=False, resample=1, normalize=False)


def demucs_v3() -> nn.Module:
    """Demucs v3 (music), BLSTM bottleneck, no normalisation or resampling."""
    cls = load("demucs.demucs").Demucs
    return seeded(lambda: cls(["a", "b"], audio_channels=1, channels=4, depth=2, lstm_layers=1,
                              normalize=False, resample=False, dconv_mode=0))


CONFIGS = [
    Config("denoiser Demucs, causal", "enhancement", f"{DENOISER} Demucs(causal=True)",
           denoiser_causal, (2, 1, 512)),
    Config("denoiser Demucs, causal, resample 4", "enhancement",
           f"{DENOISER} Demucs(causal=True, resample=4)", denoiser_causal_resample, (2, 1, 512)),
    Config("denoiser Demucs, normalize", "enhancement", f"{DENOISER} Demucs(normalize=True)",
           denoiser_normalized, (2, 1, 512), refused=r"std|reduc\w* over time|whole sequence"),
    Config("denoiser Demucs, non-causal", "enhancement", f"{DENOISER} Demucs(causal=False)",
           denoiser_bidirectional, (2, 1, 512), refused=r"bidirectional"),
    Config("Demucs v3 (music)", "enhancement", f"{DEMUCS} demucs.Demucs(lstm_layers=1)",
           demucs_v3, (2, 1, 512), refused=r"bidirectional"),
]
