"""Speech front ends from transformers 5.18.0 (installed with the ``hf`` extra): the conv feature
encoder that wav2vec 2.0, HuBERT and WavLM share, with either of its norms, and their
convolutional relative position embedding (a grouped conv under ``parametrizations.weight_norm``
with weight norm over the kernel axis, and a same-pad that drops the last frame).
"""

from __future__ import annotations

from torch import Tensor, nn

from tests.convert.zoo.models import Config, seeded
from tests.convert.zoo.packages import load

HF = "transformers==5.18.0"
W2V = "transformers.models.wav2vec2.modeling_wav2vec2"


def _encoder(norm: str) -> nn.Module:
    hf = load("transformers")
    w2v = load(W2V)
    cfg = hf.Wav2Vec2Config(conv_dim=(16, 16, 16), conv_kernel=(10, 3, 2), conv_stride=(5, 2, 2),
                            feat_extract_norm=norm, conv_bias=True)
    return seeded(lambda: w2v.Wav2Vec2FeatureEncoder(cfg))


class _Samples(nn.Module):
    """[B, 1, T] samples to the encoder's [B, T] input (the zoo's examples keep a channel)."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, x: Tensor) -> Tensor:
        return self.encoder(x[:, 0])


class _TimeLast(nn.Module):
    """The position embedding's [B, T, C] as the zoo's [B, C, T]."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: Tensor) -> Tensor:
        return self.inner(x.transpose(1, 2)).transpose(1, 2)


def wav2vec2_layer_norm() -> nn.Module:
    """The feature encoder with LayerNorm over channels after every conv ("layer")."""
    return _Samples(_encoder("layer"))


def wav2vec2_group_norm() -> nn.Module:
    """The base models' encoder: GroupNorm(C, C) after the first conv, statistics over time."""
    return _Samples(_encoder("group"))


def wav2vec2_position_conv() -> nn.Module:
    """The relative position embedding: kernel 16 (even, so the last frame is dropped)."""
    hf = load("transformers")
    w2v = load(W2V)
    cfg = hf.Wav2Vec2Config(hidden_size=32, num_conv_pos_embeddings=16,
                            num_conv_pos_embedding_groups=4)
    return seeded(lambda: _TimeLast(w2v.Wav2Vec2PositionalConvEmbedding(cfg)))


CONFIGS = [
    Config("wav2vec 2.0 feature encoder (layer norm)", "front end",
           f"{HF} Wav2Vec2FeatureEncoder", wav2vec2_layer_norm, (2, 1, 800)),
    Config("wav2vec 2.0 feature encoder (group norm)", "front end",
           f"{HF} Wav2Vec2FeatureEncoder", wav2vec2_group_norm, (2, 1, 800),
           refused="GroupNorm.*normali[sz]es over time"),
    Config("wav2vec 2.0 position conv (weight norm)", "front end",
           f"{HF} Wav2Vec2PositionalConvEmbedding", wav2vec2_position_conv, (2, 32, 100)),
]
