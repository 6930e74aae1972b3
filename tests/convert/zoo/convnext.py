"""ConvNeXt vocoder: Vocos (vocos 0.1.0), the backbone alone and with its ISTFT head, small
widths, random weights.

vocos' ``__init__`` imports its pretrained wrapper (torchaudio, encodec, huggingface_hub), so the
package is registered bare; ``vocos.heads`` imports two mel-scale helpers from torchaudio that
only the IMDCT cosine head uses: a placeholder stands in during the import.
"""

from __future__ import annotations

from torch import nn

from tests.convert.zoo.models import Config, seeded
from tests.convert.zoo.packages import load

VOCOS = "vocos==0.1.0"


def _backbone() -> nn.Module:
    cls = load("vocos.models", bare=["vocos"]).VocosBackbone
    return cls(input_channels=8, dim=16, intermediate_dim=32, num_layers=2)


def vocos_backbone() -> nn.Module:
    """ConvNeXt blocks: depthwise conv (kernel 7), LayerNorm over channels, MLP, layer scale."""
    return seeded(_backbone)


def _with_head(padding: str) -> nn.Module:
    head = load("vocos.heads", bare=["vocos"],
                stand_ins=["torchaudio.functional.functional"]).ISTFTHead
    return seeded(lambda: nn.Sequential(_backbone(), head(16, n_fft=16, hop_length=4,
                                                          padding=padding)))


def vocos_istft_same() -> nn.Module:
    """Backbone + ISTFT head, ``padding="same"`` (the package's own overlap-add with ``fold``)."""
    return _with_head("same")


def vocos_istft_center() -> nn.Module:
    """Backbone + ISTFT head, ``padding="center"`` (``torch.istft``)."""
    return _with_head("center")


CONFIGS = [
    Config("Vocos backbone", "convnext", f"{VOCOS} VocosBackbone", vocos_backbone, (2, 8, 64)),
    Config("Vocos + ISTFT head (same)", "convnext", f"{VOCOS} VocosBackbone + ISTFTHead('same')",
           vocos_istft_same, (2, 8, 64)),
    Config("Vocos + ISTFT head (center)", "convnext",
           f"{VOCOS} VocosBackbone + ISTFTHead('center')", vocos_istft_center, (2, 8, 64)),
]
