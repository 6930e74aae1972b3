"""Neural codecs: EnCodec's SEANet encoder and decoder (encodec 0.1.1) and SNAC's DAC-style
encoder and decoder (snac 1.2.1: snake activations compiled with TorchScript, weight norm from
``torch.nn.utils.parametrizations``), small widths, random weights, no quantizer (the codes'
rounding is per frame and would only hide errors).

encodec's ``__init__`` imports its pretrained-model wrapper, which imports torchaudio: the
package is registered bare and ``encodec.modules`` imported directly.  descript-audio-codec
1.0.0 (DAC) is not used: its model module imports audiotools, which needs torchaudio, and its
wheel installs a top-level ``tests`` package that would shadow ours; SNAC's ``layers`` carry the
same DAC blocks (residual units with snake, strided weight-normalised convs, the length crop in
each residual unit) and import with torch and einops alone.
"""

from __future__ import annotations

from types import ModuleType

from torch import nn

from tests.convert.zoo.models import Config, seeded
from tests.convert.zoo.packages import load

ENCODEC = "encodec==0.1.1"
SNAC = "snac==1.2.1"


def _seanet() -> ModuleType:
    return load("encodec.modules.seanet", bare=["encodec"])


def _small(**kw: object) -> dict[str, object]:
    return {"channels": 1, "dimension": 8, "n_filters": 4, "n_residual_layers": 1,
            "ratios": [4, 2], **kw}


def encodec_encoder_causal() -> nn.Module:
    """EnCodec's streaming encoder layout: causal SConv1d (left pad + end pad to a full stride),
    weight norm (old API), a two-layer unidirectional LSTM."""
    enc = _seanet().SEANetEncoder
    return seeded(lambda: enc(**_small(causal=True)))


def encodec_decoder_causal() -> nn.Module:
    """EnCodec's causal decoder: LSTM, weight-normalised transposed convs trimmed on the right."""
    dec = _seanet().SEANetDecoder
    return seeded(lambda: dec(**_small(causal=True)))


def encodec_decoder_no_norm() -> nn.Module:
    """The causal decoder with ``norm="none"`` (plain convs)."""
    dec = _seanet().SEANetDecoder
    return seeded(lambda: dec(**_small(causal=True, norm="none")))


def encodec_encoder() -> nn.Module:
    """The non-causal 24 kHz layout: reflect padding split around each conv."""
    enc = _seanet().SEANetEncoder
    return seeded(lambda: enc(**_small(causal=False, lstm=0)))


def encodec_encoder_group_norm() -> nn.Module:
    """The 48 kHz layout's ``time_group_norm``: GroupNorm(1, C) over channels and time."""
    enc = _seanet().SEANetEncoder
    return seeded(lambda: enc(**_small(causal=False, lstm=0, norm="time_group_norm")))


def _snac() -> ModuleType:
    return load("snac.layers")


def snac_encoder() -> nn.Module:
    """DAC-style encoder: snake (TorchScript), residual units with a length crop, strided convs."""
    layers = _snac()
    return seeded(lambda: layers.Encoder(d_model=4, strides=[2, 4], attn_window_size=None))


def snac_decoder() -> nn.Module:
    """DAC-style decoder: snake, weight-normalised transposed convs, residual units."""
    layers = _snac()
    return seeded(lambda: layers.Decoder(16, 16, [4, 2], attn_window_size=None))


def snac_encoder_local_attention() -> nn.Module:
    """SNAC's encoder with its local attention: attention within fixed windows of 8 frames, cut
    from the start of the sequence with einops (``b (w n) c``)."""
    layers = _snac()
    # d_model 16 widens the last stage to 128 channels: LocalMHA's heads = 128 // 64 = 2 (at 32
    # channels the package's own forward fails, heads = 32 // 64 = 0)
    return seeded(lambda: layers.Encoder(d_model=16, strides=[2, 4], attn_window_size=8))


#: pad1d takes another path for inputs no longer than its reflect pad (`if length <= max_pad`):
#: the streams these configurations convert for are at least this long (convert's min_length)
SHORT_ENCODER = {"min_length": 64}
SHORT_DECODER = {"min_length": 8}

CONFIGS = [
    Config("EnCodec encoder, causal", "codec", f"{ENCODEC} SEANetEncoder(causal=True)",
           encodec_encoder_causal, (2, 1, 320), kwargs=SHORT_ENCODER),
    Config("EnCodec decoder, causal", "codec", f"{ENCODEC} SEANetDecoder(causal=True)",
           encodec_decoder_causal, (2, 8, 40), kwargs=SHORT_DECODER),
    Config("EnCodec decoder, causal, no norm", "codec",
           f"{ENCODEC} SEANetDecoder(causal=True, norm='none')", encodec_decoder_no_norm,
           (2, 8, 40), kwargs=SHORT_DECODER),
    Config("EnCodec encoder", "codec", f"{ENCODEC} SEANetEncoder(causal=False)",
           encodec_encoder, (2, 1, 320), kwargs=SHORT_ENCODER),
    Config("EnCodec encoder, time group norm", "codec",
           f"{ENCODEC} SEANetEncoder(norm='time_group_norm')", encodec_encoder_group_norm,
           (2, 1, 320), refused=r"GroupNorm.*normali[sz]es over time", kwargs=SHORT_ENCODER),
    Config("SNAC/DAC encoder (snake)", "codec", f"{SNAC} layers.Encoder", snac_encoder,
           (2, 1, 320)),
    Config("SNAC/DAC decoder (snake)", "codec", f"{SNAC} layers.Decoder", snac_decoder,
           (2, 16, 40)),
    Config("SNAC encoder, local attention", "codec", f"{SNAC} layers.Encoder(attn_window_size=8)",
           snac_encoder_local_attention, (2, 1, 512)),
]
