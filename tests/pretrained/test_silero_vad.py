"""silero-vad rebuilt in plain torch (examples/pretrained/silero_vad_torch.py) against the vendor's
own stateful TorchScript model, chunk by chunk, on real recordings."""

from __future__ import annotations

import os

import pytest
import torch

from tests.pretrained.examples import load_example

pytest.importorskip("silero_vad", reason="silero-vad (pip install silero-vad==6.2.3) not installed")
pytest.importorskip("scipy", reason="scipy (for resampling 48 kHz to 16 kHz) not installed")

ALSA = "/usr/share/sounds/alsa"
CLIPS = ["Front_Center.wav", "Rear_Right.wav"]
if not all(os.path.exists(f"{ALSA}/{name}") for name in CLIPS):
    pytest.skip(f"alsa-utils recordings {CLIPS} absent from {ALSA}", allow_module_level=True)

TOL = 1e-4



@pytest.fixture(scope="module")
def ex():
    return load_example("silero_vad_torch")


@pytest.fixture(scope="module")
def vendor(ex):
    threads = torch.get_num_threads()
    model = ex.load_vendor()  # importing silero_vad calls torch.set_num_threads(1)
    torch.set_num_threads(threads)
    return model


@pytest.fixture(scope="module")
def clips(ex):
    from streamwise.assets import load_wav, speech

    audio = {name: ex.to_16k(*load_wav(f"{ALSA}/{name}")) for name in CLIPS}
    audio["speech"] = ex.to_16k(*speech())
    return audio


@pytest.fixture(scope="module")
def reference(ex, vendor, clips):
    return {name: ex.vendor_probs(audio, vendor) for name, audio in clips.items()}


def test_offline_rebuild_equals_vendor_chunk_by_chunk(ex, clips, reference):
    model = ex.build_model()
    for name, audio in clips.items():
        ref = reference[name]
        assert ref.shape == (1, audio.shape[-1] // 512)
        with torch.no_grad():
            ours = model(audio.view(1, 1, -1))
        assert ours.shape == (1, 1, ref.shape[-1])
        err = float((ours[:, 0] - ref).abs().max())
        assert err < TOL, f"{name}: max |offline rebuild - vendor| = {err:.2e}"
    # the recordings exercise both classes: speech is detected, and silence is not
    speech_ref = reference["speech"]
    assert speech_ref.max() > 0.9 and speech_ref.min() < 0.1


def test_offline_rebuild_batched_equals_rows(ex, clips):
    model = ex.build_model()
    a, b = clips[CLIPS[0]], clips[CLIPS[1]]
    n = min(a.shape[-1], b.shape[-1])
    x = torch.stack([a[:n], b[:n]]).unsqueeze(1)
    with torch.no_grad():
        both = model(x)
        rows = torch.cat([model(x[:1]), model(x[1:])])
    assert torch.allclose(both, rows, atol=1e-6)


def test_shipped_safetensors_load(ex):
    # silero-vad 6.2.3 ships a different checkpoint in silero_vad_16k.safetensors: it loads into
    # the same architecture but does not reproduce the vendor's TorchScript model
    model = ex.build_model("safetensors")
    with torch.no_grad():
        p = model(torch.zeros(1, 1, 2048))
    assert p.shape == (1, 1, 4) and bool(((p >= 0) & (p <= 1)).all())


def test_converted_stream_equals_vendor_chunk_by_chunk(ex, clips, reference):
    import streamwise as sw

    if not callable(getattr(sw, "convert", None)):
        pytest.skip("sw.convert is not available in this checkout")
    stream = sw.convert(ex.build_model(), torch.zeros(1, 1, 16000))
    for name, audio in clips.items():
        ref = reference[name]
        handle = stream.stream(batch_size=1)
        outs = []
        with torch.no_grad():
            for i in range(0, audio.shape[-1], 512):
                y = handle.push(audio[i : i + 512].view(1, 1, -1))
                # one probability per pushed chunk, at once: no lookahead
                assert y.shape[-1] == 1, f"{name}: chunk {i // 512} gave {tuple(y.shape)}"
                outs.append(y)
            tail = handle.close()
        assert tail is None or tail.shape[-1] == 0
        ours = torch.cat(outs, -1)[:, 0]
        err = float((ours - ref).abs().max())
        assert err < TOL, f"{name}: max |stream - vendor| = {err:.2e}"
