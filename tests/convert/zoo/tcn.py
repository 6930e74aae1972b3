"""Temporal convolutional networks from pytorch-tcn 1.2.3 (``pytorch_tcn.TCN``), which imports
with torch and numpy alone: causal and non-causal, weight norm and batch norm, random weights.
"""

from __future__ import annotations

from torch import nn

from tests.convert.zoo.models import Config, seeded
from tests.convert.zoo.packages import load

TCN = "pytorch-tcn==1.2.3"


def _tcn(**kw: object) -> nn.Module:
    cls = load("pytorch_tcn").TCN
    return seeded(lambda: cls(4, [8, 8, 8], kernel_size=3, dropout=0.0, **kw))


def tcn_causal() -> nn.Module:
    """Causal TCN, weight norm (the default), dilations 1, 2, 4."""
    return _tcn(causal=True)


def tcn_noncausal() -> nn.Module:
    """Non-causal TCN (centred dilated convs: lookahead)."""
    return _tcn(causal=False)


def tcn_batch_norm_skips() -> nn.Module:
    """Causal TCN with batch norm (eval), skip connections, gated activations, a projection."""
    return _tcn(causal=True, use_norm="batch_norm", use_skip_connections=True, use_gate=True,
                output_projection=3)


def tcn_layer_norm() -> nn.Module:
    """Causal TCN with layer norm over channels."""
    return _tcn(causal=True, use_norm="layer_norm")


CONFIGS = [
    Config("TCN, causal", "tcn", f"{TCN} TCN(causal=True)", tcn_causal, (2, 4, 200)),
    Config("TCN, non-causal", "tcn", f"{TCN} TCN(causal=False)", tcn_noncausal, (2, 4, 200)),
    Config("TCN, batch norm, skips, gates", "tcn",
           f"{TCN} TCN(use_norm='batch_norm', use_skip_connections, use_gate)",
           tcn_batch_norm_skips, (2, 4, 200)),
    Config("TCN, layer norm", "tcn", f"{TCN} TCN(use_norm='layer_norm')", tcn_layer_norm,
           (2, 4, 200)),
]
