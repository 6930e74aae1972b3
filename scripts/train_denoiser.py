"""Train the SEANet-like model of ``streamwise.models.seanet`` as a small speech denoiser.

Development-time only: it synthesises training speech with espeak-ng (sentences from Pride and
Prejudice, several voices, speeds and pitches), adds random noise (white, coloured / brown-ish,
mains hum and tones) at 0-15 dB SNR, and trains with L1 + multi-resolution STFT loss for a fixed
wall-clock budget.  It then reports the SNR on the shipped held-out recording and saves float16
weights for ``streamwise demo``::

    python scripts/train_denoiser.py --minutes 12 --out streamwise/assets/seanet_denoiser.pt

Needs ``espeak-ng`` and ``sox`` on PATH.  The demo reproduces its noisy input with
:func:`make_noise` and :func:`mix_at_snr`.
"""

from __future__ import annotations

import argparse
import math
import random
import re
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import streamwise as sw
from streamwise.assets import SPEECH_TEXT, load_wav, make_noise, mix_at_snr, snr_db, speech
from streamwise.models.seanet import seanet

RATE = 16000
TEXT = Path("/work/shared/data/text/pride_and_prejudice.txt")
VOICES = ("en-us", "en-gb", "en-gb-x-rp", "en+m3", "en+f2", "en+f4", "en-us+f3", "en-029")
CROP = 8192  # samples per training example, a multiple of the model's total stride (16)
FFT_SIZES = (512, 1024, 2048)


# ----------------------------------------------------------------------------- speech data


def load_sentences(path: Path, n: int, seed: int) -> list[str]:
    """Pick ``n`` sentences of 5-25 words from a Gutenberg text, header and footer skipped."""
    text = path.read_text(encoding="utf-8")
    start = text.find("*** START OF")
    end = text.find("*** END OF")
    body = text[text.index("\n", start) + 1 : end if end >= 0 else None]
    body = re.sub(r"[_*\"]", "", " ".join(body.split()))
    sentences = [s.strip() for s in re.split(r"(?<=[.!?])\s+", body)]
    ok = [
        s for s in sentences
        if 5 <= len(s.split()) <= 25 and s != SPEECH_TEXT and not re.search(r"[0-9\[\]]", s)
        and not s.lower().startswith("chapter")
    ]
    return random.Random(seed).sample(ok, min(n, len(ok)))


def synthesize(text: str, voice: str, speed: int, pitch: int, workdir: Path) -> torch.Tensor:
    """Speak ``text`` with espeak-ng and return it as float32 ``[T]`` at 16 kHz mono."""
    raw, wav = workdir / "raw.wav", workdir / "16k.wav"
    subprocess.run(
        ["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(raw), text],
        check=True, capture_output=True,
    )
    subprocess.run(
        ["sox", str(raw), "-r", str(RATE), "-c", "1", "-b", "16", str(wav)],
        check=True, capture_output=True,
    )
    audio, rate = load_wav(str(wav))
    assert rate == RATE
    return audio[0]


def build_corpus(sentences: list[str], renditions: int, seed: int) -> torch.Tensor:
    """Render every sentence ``renditions`` times (random voice, speed, pitch) and join them
    into one long clean signal with 0.1-0.5 s of silence between utterances."""
    rng = random.Random(seed)
    pieces: list[torch.Tensor] = []
    with tempfile.TemporaryDirectory() as tmp:
        for text in sentences:
            for _ in range(renditions):
                voice = rng.choice(VOICES)
                clip = synthesize(text, voice, rng.randint(130, 190), rng.randint(30, 70),
                                  Path(tmp))
                pieces += [clip, torch.zeros(int(RATE * rng.uniform(0.1, 0.5)))]
    return torch.cat(pieces)


# ----------------------------------------------------------------------------- noise


def coloured_noise(batch: int, n: int, gen: torch.Generator) -> torch.Tensor:
    """Noise with a 1/f^alpha spectrum, alpha uniform in [0, 2] per row (white ... brown)."""
    alpha = torch.rand(batch, 1, generator=gen) * 2.0
    spec = torch.fft.rfft(torch.randn(batch, n, generator=gen))
    freqs = torch.fft.rfftfreq(n).clamp(min=20.0 / RATE)
    return torch.fft.irfft(spec * freqs ** (-alpha / 2), n)


def tones(batch: int, n: int, gen: torch.Generator) -> torch.Tensor:
    """Mains hum (50 or 60 Hz with a few harmonics, or 100 Hz) plus occasional whistles."""
    t = torch.arange(n) / RATE
    out = torch.zeros(batch, n)
    for b in range(batch):
        base = [50.0, 60.0, 100.0][int(torch.randint(3, (1,), generator=gen))]
        for k in range(1, 5):
            amp, phase = torch.rand(2, generator=gen)
            out[b] += amp / k * torch.sin(2 * math.pi * base * k * t + 2 * math.pi * phase)
        if torch.rand(1, generator=gen) < 0.3:
            f = 200.0 + 3800.0 * float(torch.rand(1, generator=gen))
            out[b] += 0.5 * torch.sin(2 * math.pi * f * t)
    return out


def training_noise(batch: int, n: int, gen: torch.Generator) -> torch.Tensor:
    """A random mixture of white, coloured and tonal noise per row, unit RMS."""
    parts = [torch.randn(batch, n, generator=gen), coloured_noise(batch, n, gen),
             tones(batch, n, gen)]
    weights = torch.rand(batch, 3, generator=gen) * torch.tensor([1.0, 1.0, 0.5])
    noise = sum(w[:, None] * p / p.pow(2).mean(-1, keepdim=True).sqrt()
                for w, p in zip(weights.unbind(-1), parts, strict=True))
    return noise / noise.pow(2).mean(-1, keepdim=True).sqrt().clamp(min=1e-8)


def make_batch(corpus: torch.Tensor, batch: int, gen: torch.Generator
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Random crops of the corpus with random gain and noise at 0-15 dB SNR: (noisy, clean)."""
    starts = torch.randint(0, corpus.numel() - CROP, (batch,), generator=gen)
    clean = torch.stack([corpus[s : s + CROP] for s in starts.tolist()])
    gain_db = -12.0 * torch.rand(batch, 1, generator=gen)
    sign = torch.where(torch.rand(batch, 1, generator=gen) < 0.5, -1.0, 1.0)
    clean = clean * sign * 10 ** (gain_db / 20)
    # SNR against the crop's speech level, floored so near-silent crops still get some noise
    level = clean.pow(2).mean(-1, keepdim=True).sqrt().clamp(min=0.02 * 10 ** (gain_db / 20))
    snr_db = 15.0 * torch.rand(batch, 1, generator=gen)
    noisy = clean + training_noise(batch, CROP, gen) * level / 10 ** (snr_db / 20)
    return noisy[:, None], clean[:, None]


# ----------------------------------------------------------------------------- loss


def stft_loss(y: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Multi-resolution STFT loss: spectral convergence + L1 of log magnitudes."""
    total = y.new_zeros(())
    for n_fft in FFT_SIZES:
        win = torch.hann_window(n_fft, device=y.device)
        mags = [torch.stft(s, n_fft, n_fft // 4, window=win, return_complex=True).abs()
                for s in (y.flatten(0, 1), target.flatten(0, 1))]
        ym, tm = (m.clamp(min=1e-5) for m in mags)
        total = total + torch.linalg.norm(tm - ym) / torch.linalg.norm(tm).clamp(min=1e-5)
        total = total + (ym.log() - tm.log()).abs().mean()
    return total / len(FFT_SIZES)


def loss_fn(y: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Waveform L1 (weighted up: speech samples are ~0.05) plus multi-resolution STFT loss."""
    return 10.0 * (y - target).abs().mean() + stft_loss(y, target)


# ----------------------------------------------------------------------------- train / eval


def evaluate(model: torch.nn.Module) -> tuple[float, float]:
    """Input and output SNR on the held-out recording mixed with ``make_noise`` at 5 dB."""
    audio, rate = speech()
    assert rate == RATE
    clean = audio[0, : audio.shape[-1] // 16 * 16]
    noisy = mix_at_snr(clean, make_noise(clean.numel(), seed=0), 5.0)
    model.eval()
    with torch.no_grad():
        out = model(noisy[None, None])[0, 0]
    return snr_db(noisy, clean), snr_db(out, clean)


def quiet_output(model: torch.nn.Module, scale: float = 0.1) -> None:
    """Shrink the last convolution so training starts from a small output, not a saturated tanh.

    The stock init keeps the signal scale through the network, so an untrained model outputs
    ~5x its input; starting small makes the first minutes of training count.
    """
    last = [m for m in model.modules() if isinstance(m, sw.Conv1d)][-1]
    with torch.no_grad():
        last.weight.mul_(scale)
        if last.bias is not None:
            last.bias.zero_()


def train(model: torch.nn.Module, corpus: torch.Tensor, minutes: float, batch: int,
          lr: float, seed: int) -> None:
    """Adam with a cosine learning-rate decay over the wall-clock budget."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    budget = minutes * 60.0
    t0 = last = time.perf_counter()
    step, running, count = 0, 0.0, 0
    model.train()
    while (elapsed := time.perf_counter() - t0) < budget:
        for group in opt.param_groups:
            group["lr"] = lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * elapsed / budget)))
        noisy, clean = make_batch(corpus, batch, gen)
        loss = loss_fn(model(noisy), clean)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step, running, count = step + 1, running + loss.item(), count + 1
        if time.perf_counter() - last >= 30.0:
            last = time.perf_counter()
            print(f"  {elapsed / 60:5.1f} min  step {step:5d}  loss {running / count:.4f}  "
                  f"lr {opt.param_groups[0]['lr']:.2e}", flush=True)
            running, count = 0.0, 0
    print(f"trained {step} steps in {(time.perf_counter() - t0) / 60:.1f} min", flush=True)


def save_half(model: torch.nn.Module, path: Path) -> int:
    """Save the state dict as float16; return the file size in bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.detach().half() for k, v in model.state_dict().items()}, path)
    return path.stat().st_size


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=12.0, help="training wall-clock budget")
    p.add_argument("--out", type=Path, default=Path("streamwise/assets/seanet_denoiser.pt"))
    p.add_argument("--sentences", type=int, default=200)
    p.add_argument("--renditions", type=int, default=2, help="voices per sentence")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(1)
    random.seed(args.seed)
    np.random.seed(args.seed)

    t0 = time.perf_counter()
    sentences = load_sentences(TEXT, args.sentences, args.seed)
    corpus = build_corpus(sentences, args.renditions, args.seed)
    print(f"corpus: {len(sentences)} sentences x {args.renditions} voices = "
          f"{corpus.numel() / RATE / 60:.1f} min of speech ({time.perf_counter() - t0:.0f} s)")

    model = seanet(seed=args.seed)
    snr_in, snr_untrained = evaluate(model)
    quiet_output(model)
    train(model, corpus, args.minutes, args.batch, args.lr, args.seed)
    _, snr_trained = evaluate(model)
    print(f"held-out speech + make_noise(seed=0) at 5 dB: input SNR {snr_in:.2f} dB, "
          f"untrained output {snr_untrained:.2f} dB, trained output {snr_trained:.2f} dB")
    size = save_half(model, args.out)
    print(f"saved {args.out} ({size / 1e6:.2f} MB, float16)")


if __name__ == "__main__":
    main()
