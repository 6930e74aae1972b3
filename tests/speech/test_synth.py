"""espeak-ng and flite speech at 16 kHz; the resampler against scipy's polyphase filter and a
pure tone."""

import numpy as np
import pytest
import scipy.signal

from streamwise.speech.synth import RATE, espeak, flite, resample


def test_resample_keeps_a_tone_and_matches_scipy():
    t = np.arange(22_050) / 22_050
    x = np.sin(2 * np.pi * 440 * t) + 0.5 * np.sin(2 * np.pi * 3000 * t)
    y = resample(x, 22_050, RATE)
    assert len(y) == RATE
    n = np.arange(RATE) / RATE
    ref = np.sin(2 * np.pi * 440 * n) + 0.5 * np.sin(2 * np.pi * 3000 * n)
    assert np.abs(y - ref)[100:-100].max() < 1e-3  # the band below the cut-off passes untouched
    sp = scipy.signal.resample_poly(x, 320, 441)
    assert np.abs(y - sp[: len(y)])[100:-100].max() < 1e-3


def test_resample_removes_what_the_new_rate_cannot_hold():
    t = np.arange(48_000) / 48_000
    y = resample(np.sin(2 * np.pi * 12_000 * t), 48_000, RATE)  # above 8 kHz Nyquist
    assert np.abs(y[100:-100]).max() < 1e-2


def test_espeak_speaks_at_16k_and_voices_differ():
    a = espeak("front left", "en-us")
    b = espeak("front left", "en-gb+f3")
    assert a.dtype == np.float32 and 0.4 < len(a) / RATE < 2.5 and np.abs(a).max() > 0.05
    assert len(a) != len(b) or not np.allclose(a, b)
    np.testing.assert_array_equal(a, espeak("front left", "en-us"))  # deterministic
    with pytest.raises(RuntimeError, match="voice"):
        espeak("one", "xx-nope")


def test_flite_speaks_with_real_speakers_voices_rate_and_pitch():
    a = flite("front left", "slt")
    assert a.dtype == np.float32 and 0.4 < len(a) / RATE < 2.5 and np.abs(a).max() > 0.05
    np.testing.assert_array_equal(a, flite("front left", "slt"))  # deterministic
    slow = flite("front left", "slt", stretch=1.5)
    assert 1.3 < len(slow) / len(a) < 1.7  # the stretch reaches the voice
    assert not np.array_equal(flite("front left", "slt", f0_mean=200), a)
    assert not np.array_equal(flite("front left", "awb"), a)
    with pytest.raises(RuntimeError, match="no voice 'nope'"):
        flite("one", "nope")
