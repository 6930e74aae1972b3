"""Noise at an exact SNR; reverberation keeps length and peak and spreads energy in time."""

import numpy as np
import pytest

from streamwise.speech.augment import add_noise, reverberate, room_response


@pytest.mark.parametrize("colour", ["white", "brown"])
def test_noise_has_the_asked_snr(colour):
    rng = np.random.default_rng(0)
    x = np.sin(np.linspace(0, 200, 16_000)).astype(np.float32)
    y = add_noise(x, 10.0, rng, colour)
    noise = y.astype(np.float64) - x
    snr = 10 * np.log10(np.mean(x.astype(np.float64) ** 2) / np.mean(noise**2))
    assert abs(snr - 10.0) < 1e-3


def test_room_response_decays_60_db_over_rt60():
    h = room_response(0.4, 16_000, np.random.default_rng(1))
    assert h[0] == 1.0 and len(h) == 6400
    head = np.sqrt(np.mean(h[100:900] ** 2))
    tail = np.sqrt(np.mean(h[-800:] ** 2))
    assert 20 * np.log10(head / tail) > 40


def test_reverberate_keeps_length_and_peak():
    rng = np.random.default_rng(2)
    x = np.zeros(8000, np.float32)
    x[100] = 0.8
    y = reverberate(x, 0.3, 16_000, rng)
    assert y.shape == x.shape and np.isclose(np.abs(y).max(), 0.8)
    assert np.abs(y[2000:]).max() > 1e-3  # energy arrives after the direct path
    np.testing.assert_array_equal(reverberate(x, 0.0, 16_000, rng), x)
