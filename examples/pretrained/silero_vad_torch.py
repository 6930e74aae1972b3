"""silero-vad (MIT, https://github.com/snakers4/silero-vad) rebuilt in plain torch, then streamed.

The vendor ships a stateful TorchScript model that is called once per 512-sample chunk (16 kHz):
it keeps the previous chunk's last 64 samples as context and an LSTM state between calls. Here the
same 16 kHz network is an ordinary offline ``nn.Module`` over a whole signal ``[B, 1, T]``
(``T`` a multiple of 512) that returns one speech probability per chunk, ``[B, 1, T // 512]``.
``sw.convert`` turns it into a stream again, and the script checks both against the vendor.

What one vendor call does (read from ``silero_vad.jit``, ``model.code`` of the 16 kHz branch,
silero-vad 6.2.3):

1. ``x = cat(context, chunk)``: 64 + 512 = 576 samples; the context is zeros on the first call
   and the last 64 samples of the previous chunk afterwards. Over a whole signal that is window
   ``n = xpad[512 n : 512 n + 576]`` of ``xpad = (64 zeros) + x``.
2. STFT: reflection padding of 64 samples on the right only (576 -> 640), then ``conv1d`` with a
   fixed ``[258, 1, 256]`` basis (real and imaginary rows, ``cos`` and ``-sin``, of a 256-point
   DFT times a periodic Hann window), hop 128: 4 frames; magnitude ``sqrt(re^2 + im^2)`` of
   the first 129 (real) and last 129 (imaginary) rows.
3. Encoder: four ``Conv1d(k=3, padding=1) + ReLU`` blocks over those frames, channels
   129 -> 128 -> 64 -> 64 -> 128, strides 1, 2, 2, 1: 4 frames -> 4 -> 2 -> 1 -> 1.
4. Decoder: ``LSTMCell(128, 128)`` whose ``(h, c)`` is carried to the next call, then
   ``Dropout`` (inactive in eval), ``ReLU``, ``Conv1d(128, 1, 1)``, ``Sigmoid``, and a mean over
   the decoder's frames -- of which there is exactly one, so the mean is the identity.

The offline rebuild expresses the same thing with ops that ``sw.convert`` streams: a constant
``F.pad`` and one ``unfold(-1, 576, 512)`` on the time axis (time becomes the window index N);
every later op acts within a window (on non-time axes): the reflect pad, framing by a second
``unfold``, the STFT as a matmul with the basis, the encoder convs as ``Conv2d`` with kernels
``(3, 1)`` over ``[B, C, frames, N]``, the LSTM cell as an ``nn.LSTM`` over the window axis.

Weights: by default from the state_dict of the vendor's TorchScript model (the shipped
``silero_vad/data/silero_vad.jit``). The package also ships ``silero_vad_16k.safetensors`` (same
names as its tinygrad port, same shapes), but in 6.2.3 its weights are a *different* checkpoint:
only the STFT basis is equal, every learned tensor differs (e.g. conv1 weights by up to 4.0), and
none of its tensors occur in the shipped ``.jit`` or ``.onnx`` files, so it cannot match the
vendor's model. ``build_model(weights="safetensors")`` loads it anyway, for comparison.

Measured (this script): offline rebuild vs vendor within 2e-5 on every recording; the converted
stream, pushed 512-sample chunks, within 2e-6 -- closer than offline, because it runs the LSTM
one step per chunk as the vendor's ``LSTMCell`` does, where offline ``nn.LSTM`` runs the whole
sequence at once (float32 rounding in another order).

The file is not called ``silero_vad.py``: run as a script, it would shadow the vendor's package.

Run: ``python examples/pretrained/silero_vad_torch.py`` (needs ``silero-vad`` and ``scipy``).
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
import warnings
from importlib import resources

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

CHUNK = 512  # samples per vendor call at 16 kHz
CONTEXT = 64  # samples of the previous chunk the vendor prepends
N_FFT, HOP, REFLECT = 256, 128, 64  # STFT inside one 576-sample window
RATE = 16000
ALSA = "/usr/share/sounds/alsa"


class SileroVAD16k(nn.Module):
    """silero-vad's 16 kHz network over a whole signal: ``[B, 1, T]`` -> ``[B, 1, T // 512]``.

    Output ``[..., n]`` is the vendor's probability for chunk ``x[..., 512 n : 512 n + 512]``
    (its LSTM state having seen chunks ``0 .. n - 1`` first).
    """

    basis: torch.Tensor

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("basis", torch.zeros(2 * (N_FFT // 2 + 1), N_FFT))  # [258, 256]
        chans = [N_FFT // 2 + 1, 128, 64, 64, 128]
        strides = [1, 2, 2, 1]
        self.encoder = nn.ModuleList(
            nn.Conv2d(chans[i], chans[i + 1], (3, 1), stride=(strides[i], 1), padding=(1, 0))
            for i in range(4)
        )
        self.lstm = nn.LSTM(128, 128, batch_first=True)
        self.head = nn.Linear(128, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # [B, 1, T] -> windows of 64 context + 512 new samples: [B, 1, N, 576]
        w = F.pad(x, (CONTEXT, 0)).unfold(-1, CHUNK + CONTEXT, CHUNK)
        # the vendor's STFT pads each window by reflection on the right: [B, N, 640]
        w = F.pad(w.squeeze(1), (0, REFLECT), mode="reflect")
        frames = w.unfold(-1, N_FFT, HOP)  # [B, N, 4, 256]
        spec = F.linear(frames, self.basis)  # [B, N, 4, 258]
        half = N_FFT // 2 + 1
        mag = torch.sqrt(spec[..., :half] ** 2 + spec[..., half:] ** 2)  # [B, N, 4, 129]
        h = mag.permute(0, 3, 2, 1)  # [B, 129, 4 frames, N]
        for conv in self.encoder:
            h = torch.relu(conv(h))  # frames 4 -> 4 -> 2 -> 1 -> 1
        h = h.squeeze(2).transpose(1, 2)  # [B, N, 128]
        h, _ = self.lstm(h)  # the vendor's LSTMCell, its (h, c) carried from chunk to chunk
        p = torch.sigmoid(self.head(torch.relu(h)))  # [B, N, 1]; dropout is off in eval
        return p.transpose(1, 2)  # [B, 1, N]


def _data_file(name: str) -> str:
    return str(resources.files("silero_vad.data").joinpath(name))


def load_vendor() -> torch.jit.ScriptModule:
    """The vendor's stateful TorchScript model (``silero_vad.load_silero_vad()``), in eval mode.

    Note: importing ``silero_vad`` calls ``torch.set_num_threads(1)``.
    """
    from silero_vad import load_silero_vad

    with warnings.catch_warnings():  # torch.jit.load and importlib.resources.path deprecations
        warnings.filterwarnings("ignore", "`torch.jit.load` is deprecated", DeprecationWarning)
        warnings.filterwarnings("ignore", "path is deprecated", DeprecationWarning)
        return load_silero_vad(onnx=False).eval()


def build_model(weights: str = "jit") -> nn.Module:
    """The 16 kHz silero-vad network as a plain offline module, in eval mode.

    ``weights="jit"`` (default) copies the 16 kHz branch (``_model.*``) of the state_dict of the
    shipped ``silero_vad.jit``; this is the checkpoint that the vendor's TorchScript and ONNX
    models use. ``weights="safetensors"`` loads the shipped ``silero_vad_16k.safetensors`` instead,
    which in silero-vad 6.2.3 holds a different checkpoint (see the module docstring).
    """
    model = SileroVAD16k()
    if weights == "jit":
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "`torch.jit.load` is deprecated", DeprecationWarning)
            jit = torch.jit.load(_data_file("silero_vad.jit"), map_location="cpu")
        sd = jit.state_dict()
        names = {
            "stft": "_model.stft.forward_basis_buffer",
            "conv": "_model.encoder.{i}.reparam_conv.",
            "rnn": "_model.decoder.rnn.",
            "out": "_model.decoder.decoder.2.",
        }
    elif weights == "safetensors":
        from safetensors.torch import load_file

        sd = load_file(_data_file("silero_vad_16k.safetensors"))
        names = {
            "stft": "stft_conv.weight",
            "conv": "conv{j}.",
            "rnn": "lstm_cell.",
            "out": "final_conv.",
        }
    else:
        raise ValueError(f"weights must be 'jit' or 'safetensors', got {weights!r}")
    with torch.no_grad():
        model.basis.copy_(sd[names["stft"]][:, 0, :])
        for i, conv in enumerate(model.encoder):
            assert isinstance(conv, nn.Conv2d) and conv.bias is not None
            prefix = names["conv"].format(i=i, j=i + 1)
            conv.weight.copy_(sd[prefix + "weight"].unsqueeze(-1))  # [o, i, 3] -> [o, i, 3, 1]
            conv.bias.copy_(sd[prefix + "bias"])
        for part in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(model.lstm, part + "_l0").copy_(sd[names["rnn"] + part])
        model.head.weight.copy_(sd[names["out"] + "weight"][:, :, 0])
        model.head.bias.copy_(sd[names["out"] + "bias"])
    return model.eval()


@torch.no_grad()
def vendor_probs(audio_16k: torch.Tensor, vendor: torch.jit.ScriptModule | None = None):
    """The vendor's stateful TorchScript model run chunk by chunk: ``[T]`` or ``[B, T]`` audio
    (``T`` a multiple of 512) -> ``[B, T // 512]`` probabilities (``reset_states()`` first)."""
    vendor = load_vendor() if vendor is None else vendor
    audio = audio_16k.reshape(-1, audio_16k.shape[-1]).float()
    vendor.reset_states()
    out = [vendor(audio[:, i : i + CHUNK], RATE) for i in range(0, audio.shape[-1], CHUNK)]
    return torch.cat(out, dim=1)


def to_16k(audio: torch.Tensor, rate: int) -> torch.Tensor:
    """Mono float32 ``[T]`` at 16 kHz, zero-padded to a multiple of 512 samples."""
    from math import gcd

    from scipy.signal import resample_poly

    mono = audio.mean(0).numpy() if audio.dim() == 2 else audio.numpy()
    g = gcd(RATE, rate)
    y = torch.from_numpy(resample_poly(mono, RATE // g, rate // g).astype(np.float32))
    return F.pad(y, (0, -y.shape[-1] % CHUNK))


ESPEAK_TEXT = (
    "Voice activity detection decides, every thirty two milliseconds, whether someone speaks. "
    "Silence follows."
)


def espeak(text: str = ESPEAK_TEXT) -> torch.Tensor | None:
    """``text`` spoken by espeak-ng (22050 Hz), at 16 kHz; None where espeak-ng is absent."""
    from streamwise.assets import load_wav

    if shutil.which("espeak-ng") is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "speech.wav")
        subprocess.run(["espeak-ng", "-w", path, text], check=True, capture_output=True)
        audio, rate = load_wav(path)
    # about a second of silence after the speech (32 chunks), so that the probabilities fall
    return F.pad(to_16k(audio, rate), (0, 32 * CHUNK))


def recordings() -> dict[str, torch.Tensor]:
    """Real audio at 16 kHz: alsa-utils test recordings (48 kHz), the shipped espeak speech and
    (where espeak-ng is installed) a fresh espeak-ng recording (22050 Hz)."""
    from streamwise.assets import load_wav, speech

    clips = {}
    for path in sorted(glob.glob(f"{ALSA}/*.wav")):
        clips[os.path.basename(path)] = to_16k(*load_wav(path))
    clips["streamwise speech_16k.wav"] = to_16k(*speech())
    fresh = espeak()
    if fresh is not None:
        clips["espeak-ng 22050 Hz"] = fresh
    return clips


def main() -> None:
    torch.manual_seed(0)
    vendor = load_vendor()
    model = build_model()
    clips = recordings()

    print("offline rebuild vs vendor TorchScript, chunk by chunk (512 samples):")
    worst = 0.0
    for name, audio in clips.items():
        ref = vendor_probs(audio, vendor)
        with torch.no_grad():
            ours = model(audio.view(1, 1, -1))[:, 0]
        err = float((ours - ref).abs().max())
        worst = max(worst, err)
        print(f"  {name:28s} {ref.shape[-1]:4d} chunks  max p {float(ref.max()):.3f}"
              f"  max |ours - vendor| = {err:.2e}")
    print(f"  worst: {worst:.2e}")

    audio = clips["streamwise speech_16k.wav"]
    st = build_model("safetensors")
    with torch.no_grad():
        err_st = float((st(audio.view(1, 1, -1))[:, 0] - vendor_probs(audio, vendor)).abs().max())
    print(f"shipped safetensors weights instead: max |ours - vendor| = {err_st:.2e} (another "
          "checkpoint)")

    import streamwise as sw

    if not callable(getattr(sw, "convert", None)):
        print("sw.convert is not available in this checkout: streaming part skipped")
        return
    stream_model = sw.convert(model, torch.zeros(1, 1, RATE), sample_rate=RATE)
    print(stream_model.report)

    # the converted stream, fed 512-sample chunks, against the vendor chunk by chunk
    torch.set_num_threads(1)  # as silero_vad's import does; the same for both timed paths
    warm = torch.zeros(1, 1, 8 * CHUNK)  # first calls: allocator and TorchScript profiling runs
    handle = stream_model.stream(batch_size=1)
    with torch.no_grad():
        for c in warm.split(CHUNK, dim=-1):
            handle.push(c)
    vendor_probs(warm.view(-1), vendor)
    worst_stream, t_ours, t_vendor, n_chunks = 0.0, 0.0, 0.0, 0
    for audio in clips.values():
        chunks = audio.view(1, 1, -1).split(CHUNK, dim=-1)
        handle = stream_model.stream(batch_size=1)
        start = time.perf_counter()
        with torch.no_grad():
            outs = [handle.push(c) for c in chunks]
            tail = handle.close()
        t_ours += time.perf_counter() - start
        start = time.perf_counter()
        ref = vendor_probs(audio, vendor)
        t_vendor += time.perf_counter() - start
        n_chunks += len(chunks)
        first_late = next((i for i, y in enumerate(outs) if y.shape[-1] != 1), None)
        if first_late is not None:
            print(f"  chunk {first_late} gave {tuple(outs[first_late].shape)}, not one probability")
        if tail is not None and tail.shape[-1]:
            print(f"  close() gave {tuple(tail.shape)}: the stream held frames back")
            outs.append(tail)
        ours = torch.cat(outs, -1)[:, 0]
        worst_stream = max(worst_stream, float((ours - ref).abs().max()))

    report = stream_model.report
    latency = report.latency_frames
    print(f"stream vs vendor over {n_chunks} chunks: max error {worst_stream:.2e}")
    print(f"silero-vad streamed: latency {latency:g} frames ({latency / RATE * 1e3:.2f} ms); "
          f"state {report.state_bytes} bytes; max error {max(worst, worst_stream):.2e} "
          f"(offline {worst:.2e}, stream {worst_stream:.2e}); speed ours/vendor JIT "
          f"{t_ours / t_vendor:.2f} ({t_ours / n_chunks * 1e3:.3f} vs "
          f"{t_vendor / n_chunks * 1e3:.3f} ms per 512-sample chunk, 1 thread)")


if __name__ == "__main__":
    main()
