"""The vocabulary, disjoint voices, reproducible utterances, and alsa-utils' real recordings."""

import numpy as np
import pytest

from streamwise.speech.corpus import (
    ALSA_SOUNDS,
    FLITE_VOICES,
    WORDS,
    alsa_recordings,
    decode,
    encode,
    utterances,
    voices,
)
from streamwise.speech.synth import RATE


def test_vocabulary_and_labels():
    assert len(WORDS) == len(set(WORDS)) == 24
    for w in WORDS:
        assert decode(encode(w)) == w and 0 not in encode(w)
    with pytest.raises(ValueError, match="not in the alphabet"):
        encode("Front")


def test_train_and_test_voices_are_disjoint():
    train, test = voices("train"), voices("test")
    assert len(train) >= 100 and len(test) >= 30 and not set(train) & set(test)


def test_utterances_are_reproducible_and_use_the_vocabulary():
    a = list(utterances(4, "test", seed=3))
    b = list(utterances(4, "test", seed=3))
    for u, v in zip(a, b):
        assert u.text == v.text and u.voice == v.voice
        np.testing.assert_array_equal(u.audio, v.audio)
        assert set(u.text.split()) <= set(WORDS) and u.voice in voices("test")
        assert u.audio.dtype == np.float32 and len(u.audio) > RATE // 4
        assert np.isfinite(u.audio).all() and 5 <= u.snr_db <= 30


def test_alsa_recordings_are_the_eight_speaker_positions():
    if not ALSA_SOUNDS.exists():
        pytest.skip(f"{ALSA_SOUNDS} is missing (Debian package alsa-utils)")
    recs = alsa_recordings()
    texts = [t for _, t in recs]
    assert len(recs) == 8 and "front left" in texts and "rear center" in texts
    words = {w for t in texts for w in t.split()}
    assert words <= set(WORDS) and sum(len(t.split()) for t in texts) == 16
    for audio, _ in recs:
        assert audio.dtype == np.float32 and 0.5 < len(audio) / RATE < 3
        assert np.abs(audio).max() > 0.05


def test_a_share_of_training_speech_comes_from_flite_voices():
    us = list(utterances(12, "train", seed=4, flite_share=0.5))
    by_flite = [u for u in us if u.voice.startswith("flite:")]
    assert 0 < len(by_flite) < len(us)
    assert all(u.voice[6:] in FLITE_VOICES for u in by_flite)
    with pytest.raises(ValueError, match="training voices"):
        next(utterances(1, "test", flite_share=0.5))
