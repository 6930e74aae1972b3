"""Source separation: asteroid 0.7.0's Conv-TasNet (causal with cumulative layer norm, and the
non-causal default with global layer norm) and DPRNN-TasNet, small widths, random weights.
asteroid and asteroid-filterbanks import with torch alone.
"""

from __future__ import annotations

from torch import nn

from tests.convert.zoo.models import Config, seeded
from tests.convert.zoo.packages import load

ASTEROID = "asteroid==0.7.0"
SMALL = {"n_src": 2, "n_filters": 16, "kernel_size": 16, "stride": 8}


def _models():  # noqa: ANN202
    return load("asteroid.models")


def convtasnet_causal() -> nn.Module:
    """Causal Conv-TasNet: free filterbank, TCN masker with cumulative layer norm (cLN)."""
    cls = _models().ConvTasNet
    return seeded(lambda: cls(**SMALL, n_blocks=3, n_repeats=1, bn_chan=8, hid_chan=16,
                              skip_chan=8, causal=True, norm_type="cLN"))


def convtasnet() -> nn.Module:
    """The default Conv-TasNet: non-causal, global layer norm (gLN) over channels and time."""
    cls = _models().ConvTasNet
    return seeded(lambda: cls(**SMALL, n_blocks=3, n_repeats=1, bn_chan=8, hid_chan=16,
                              skip_chan=8))


def dprnn() -> nn.Module:
    """DPRNN-TasNet: chunks of frames, bidirectional intra-chunk RNN, inter-chunk RNN."""
    cls = _models().DPRNNTasNet
    return seeded(lambda: cls(**SMALL, bn_chan=8, hid_size=8, chunk_size=10, n_repeats=1))


CONFIGS = [
    Config("Conv-TasNet, causal (cLN)", "separation", f"{ASTEROID} ConvTasNet(causal=True)",
           convtasnet_causal, (2, 1, 400)),
    Config("Conv-TasNet (gLN)", "separation", f"{ASTEROID} ConvTasNet", convtasnet,
           (2, 1, 400), refused=r"GlobLN|global|normali[sz]es over time"),
    Config("DPRNN-TasNet", "separation", f"{ASTEROID} DPRNNTasNet", dprnn, (2, 1, 400),
           refused=r"dual-path model's intra-chunk RNN"),
]
