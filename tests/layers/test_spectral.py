"""Streaming STFT and mel spectrograms equal ``torch.stft`` (and librosa's mel filters) under any
chunking, batches, float64, reflect and constant padding, centred or not."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from streamwise.layers.spectral import STFT, MelSpectrogram, mel_filters
from tests.strategies import (
    assert_state_keeps_its_declaration,
    assert_streams_like_offline,
    chunkings,
)


@settings(max_examples=60, deadline=None)
@given(data=st.data(), n_fft=st.sampled_from([4, 8, 15, 16, 32]),
       hop_div=st.sampled_from([1, 2, 3, 4]), center=st.booleans(),
       mode=st.sampled_from(["reflect", "constant"]), power=st.sampled_from([None, 1, 2]),
       batch=st.integers(1, 3), channels=st.integers(1, 2), f64=st.booleans(),
       length=st.integers(40, 120))
def test_stft_streams_like_torch_stft(data, n_fft, hop_div, center, mode, power, batch,
                                      channels, f64, length):
    hop = max(1, n_fft // hop_div)
    layer = STFT(n_fft, hop, center=center, pad_mode=mode, power=power)
    dtype = torch.float64 if f64 else torch.float32
    x = torch.randn(batch, channels, length, dtype=dtype)
    layer = layer.to(dtype)
    sizes = data.draw(chunkings(length))
    y = assert_streams_like_offline(layer, x, sizes)
    ref = torch.stft(x.reshape(-1, length), n_fft, hop, window=torch.hann_window(n_fft,
                     dtype=dtype), center=center, pad_mode=mode, return_complex=True)
    if power is not None:
        ref = ref.abs() ** power
    torch.testing.assert_close(y, ref.reshape(batch, -1, ref.shape[-1]),
                               rtol=1e-9 if f64 else 1e-4, atol=1e-9 if f64 else 1e-4)
    assert_state_keeps_its_declaration(layer, x, sizes, channels)


@settings(max_examples=30, deadline=None)
@given(data=st.data(), win=st.sampled_from([9, 12, 16]), hop=st.sampled_from([4, 7, 16]),
       log=st.booleans(), length=st.integers(20, 200))
def test_mel_spectrogram_streams_exactly(data, win, hop, log, length):
    layer = MelSpectrogram(8000, n_fft=16, hop_length=hop, win_length=win, n_mels=6, log=log)
    x = torch.randn(2, 1, length, dtype=torch.float64)
    assert_streams_like_offline(layer.double(), x, data.draw(chunkings(length)))


@pytest.mark.parametrize("htk,norm", [(False, "slaney"), (True, None), (True, "slaney")])
def test_mel_filters_equal_librosa(htk, norm):
    ours = mel_filters(16000, 400, 40, 20.0, 7600.0, htk=htk, norm=norm).numpy()
    ref = librosa.filters.mel(sr=16000, n_fft=400, n_mels=40, fmin=20.0, fmax=7600.0, htk=htk,
                              norm=norm, dtype=np.float64)
    np.testing.assert_allclose(ours, ref, rtol=1e-7, atol=1e-10)  # librosa's filters: float32


def test_log_mel_equals_librosa_on_speech():
    from streamwise.assets import speech

    clip, rate = speech()
    x = clip[None, :, : rate * 2].double()
    layer = MelSpectrogram(rate, n_fft=400, hop_length=160, n_mels=40).double()
    ours = layer(x)[0].numpy()
    ref = librosa.feature.melspectrogram(y=x[0, 0].numpy(), sr=rate, n_fft=400, hop_length=160,
                                         n_mels=40, center=True, pad_mode="reflect", power=2.0)
    np.testing.assert_allclose(ours, ref, rtol=1e-7, atol=1e-10)  # librosa's filters: float32


def test_reflect_waits_one_sample_past_the_window_and_short_streams_are_refused():
    layer = STFT(8, 4, center=True)  # pad 4: frame 0 spans samples -4..3 and mirrors 1..4
    s = layer.stream()
    assert s.push(torch.randn(1, 1, 4)).shape[-1] == 0
    assert s.push(torch.randn(1, 1, 1)).shape[-1] == 1
    short = layer.stream()
    short.push(torch.randn(1, 1, 3))
    with pytest.raises(ValueError, match="more than n_fft // 2 = 4 samples"):
        short.close()
    s.push(torch.randn(1, 1, 3))  # at a multiple of the hop, where rows may restart
    with pytest.raises(ValueError, match="restart single rows"):
        s.reset(torch.tensor([True]))


def test_delay_and_channels():
    layer = STFT(16, 4)
    assert layer.delay == 16 - 1 - 8 and layer.stride == 0.25
    assert layer.channels_out(2) == 18 and MelSpectrogram(n_mels=40).channels_out(1) == 40
