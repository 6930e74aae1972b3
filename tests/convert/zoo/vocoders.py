"""Vocoders from parallel-wavegan 0.6.1: HiFiGAN and MelGAN generators (mel frames in, samples
out), small widths, random weights.

parallel-wavegan's ``layers`` package imports ``scipy.signal.kaiser`` (for PQMF, which these
generators do not use), a name SciPy 1.13 moved to ``scipy.signal.windows``: the alias is restored
for the import only.  ``parallel_wavegan.utils`` imports h5py for reading statistics files; h5py
is a placeholder during the import.  Nothing else is changed: the classes run as published,
weight norm included (the old ``torch.nn.utils.weight_norm`` API).
"""

from __future__ import annotations

from types import ModuleType

from torch import nn

from tests.convert.zoo.models import Config, seeded
from tests.convert.zoo.packages import load

SOURCE = "parallel-wavegan==0.6.1"


def _models() -> ModuleType:
    return load("parallel_wavegan.models", bare=["parallel_wavegan"], stand_ins=["h5py"],
                aliases={"scipy.signal.kaiser": "scipy.signal.windows.kaiser"})


def _hifigan(**kw: object) -> nn.Module:
    gen = _models().HiFiGANGenerator
    return seeded(lambda: gen(in_channels=8, out_channels=1, channels=32, kernel_size=7,
                              upsample_scales=(4, 2), upsample_kernel_sizes=(8, 4),
                              resblock_kernel_sizes=(3, 5), resblock_dilations=[(1, 3), (1, 3)],
                              **kw))


def hifigan() -> nn.Module:
    """HiFi-GAN V1 layout (non-causal, weight-normalised convs and transposed convs)."""
    return _hifigan()


def hifigan_causal() -> nn.Module:
    """HiFi-GAN with the package's causal convs (``ConstantPad1d`` + crop) and causal transposed
    convs."""
    return _hifigan(use_causal_conv=True)


def hifigan_plain() -> nn.Module:
    """HiFi-GAN without weight norm (as exported for inference after ``remove_weight_norm``)."""
    return _hifigan(use_weight_norm=False)


def melgan() -> nn.Module:
    """MelGAN: reflection-pad modules, dilated residual stacks, weight norm."""
    gen = _models().MelGANGenerator
    return seeded(lambda: gen(in_channels=8, out_channels=1, kernel_size=7, channels=32,
                              upsample_scales=[4, 2], stack_kernel_size=3, stacks=2))


def melgan_plain() -> nn.Module:
    """MelGAN without weight norm: only the reflection-pad modules stand out."""
    gen = _models().MelGANGenerator
    return seeded(lambda: gen(in_channels=8, out_channels=1, kernel_size=7, channels=32,
                              upsample_scales=[4, 2], stack_kernel_size=3, stacks=2,
                              use_weight_norm=False))


def melgan_causal() -> nn.Module:
    """MelGAN with the package's causal convs (``use_causal_conv=True``)."""
    gen = _models().MelGANGenerator
    return seeded(lambda: gen(in_channels=8, out_channels=1, kernel_size=7, channels=32,
                              upsample_scales=[4, 2], stack_kernel_size=3, stacks=2,
                              use_causal_conv=True))


CONFIGS = [
    Config("HiFi-GAN", "vocoder", f"{SOURCE} HiFiGANGenerator", hifigan, (2, 8, 40)),
    Config("HiFi-GAN causal", "vocoder", f"{SOURCE} HiFiGANGenerator(use_causal_conv)",
           hifigan_causal, (2, 8, 40)),
    Config("HiFi-GAN without weight norm", "vocoder",
           f"{SOURCE} HiFiGANGenerator(use_weight_norm=False)", hifigan_plain, (2, 8, 40)),
    Config("MelGAN", "vocoder", f"{SOURCE} MelGANGenerator", melgan, (2, 8, 40)),
    Config("MelGAN without weight norm", "vocoder",
           f"{SOURCE} MelGANGenerator(use_weight_norm=False)", melgan_plain, (2, 8, 40)),
    Config("MelGAN causal", "vocoder", f"{SOURCE} MelGANGenerator(use_causal_conv)",
           melgan_causal, (2, 8, 40)),
]
