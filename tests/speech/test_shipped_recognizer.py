"""The shipped weights still recognise what they were measured to (a guard on the asset): held-out
espeak-ng voices and alsa-utils' real recordings, at full context and at 320 ms chunks."""

import pytest
import torch

from streamwise.bench.asr_train import transcribe
from streamwise.speech.corpus import alsa_recordings, utterances
from streamwise.speech.ctc import edit_distance, word_error_rate
from streamwise.speech.recognizer import load_recognizer, transcribe_offline

# the targets (README: measured 1.3% and 1.5% on 300 utterances, 14 of 16 real words)
WER_BOUND = {None: 0.05, 8: 0.10}
ALSA_RIGHT_MIN = 14


@pytest.fixture(scope="module")
def held_out():
    return list(utterances(100, "test", seed=77))


@pytest.mark.parametrize("chunk", [None, 8])
def test_held_out_voices(held_out, chunk):
    model = load_recognizer(chunk)
    wer = word_error_rate([u.text for u in held_out],
                          transcribe(model, [u.audio for u in held_out]))
    print(f"WER {wer:.3f} at chunk {chunk}")
    assert wer <= WER_BOUND[chunk], wer


def test_real_recordings():
    model = load_recognizer(None)
    right = 0
    for audio, text in alsa_recordings():
        hyp = " ".join(w.text for w in transcribe_offline(model, torch.from_numpy(audio)))
        right += len(text.split()) - edit_distance(text.split(), hyp.split())
    assert right >= ALSA_RIGHT_MIN, right
