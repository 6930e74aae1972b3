"""Train the shipped word recogniser on speech synthesised here (``streamwise bench asr-train``).

1. Synthesise ``n_train`` utterances on the training voices (``speech.corpus``: 1-3 words,
   random rate, pitch, room and noise; 35% by flite's voices, made from real speakers'
   recordings, the rest by espeak-ng's), each also sped up or slowed down by a random
   factor in ``[0.88, 1.12]`` (a resampling: pitch, formants and tempo move together, a cheap
   stand-in for speakers with other vocal tracts).  Workers share the synthesis.
2. Train ``models.asr.speech_recognizer`` with CTC on word labels, batches of similar length,
   SpecAugment-style band and time masks on the normalised log-mel, and the attention chunk drawn
   per batch from ``TRAIN_CHUNKS`` (one set of weights for every latency).
3. After each epoch: word error rate on held-out voices at full context and at 320 ms chunks, and
   on alsa-utils' real recordings; the log goes to ``out_dir`` as JSON + PNG.

The weights go to ``weights`` (default: the package's ``assets/asr_words.pt``).
"""

from __future__ import annotations

import json
import time
from multiprocessing import Pool
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm import tqdm

from streamwise.layers.containers import Sequential
from streamwise.models.asr import TRAIN_CHUNKS, get_chunk, set_chunk, speech_recognizer
from streamwise.speech.corpus import WORDS, alsa_recordings, label_words, utterances, word_labels
from streamwise.speech.ctc import batch_greedy, frames_for, word_error_rate, words_right
from streamwise.speech.synth import RATE, resample

WEIGHTS = Path(__file__).resolve().parent.parent / "assets" / "asr_words.pt"
CONFIG: dict[str, Any] = {"labels": len(WORDS) + 1, "n_mels": 64, "dim": 96, "heads": 4,
                          "layers": 4, "kernel": 15, "expansion": 2, "left_frames": 32}

Example = tuple[np.ndarray, list[int], str]


FLITE_SHARE = 0.35  # of the training utterances, spoken by flite's voices


def _synth_shard(args: tuple[int, str, int, bool]) -> list[Example]:
    n, split, seed, perturb = args
    rng = np.random.default_rng(seed + 7919)
    out = []
    share = FLITE_SHARE if split == "train" else 0.0
    for u in utterances(n, split, seed, flite_share=share):
        audio = u.audio
        if perturb:
            factor = float(rng.uniform(0.88, 1.12))
            audio = resample(audio, RATE, round(RATE * factor))
        out.append((audio, word_labels(u.text), u.text))
    return out


def synthesise(n: int, split: str, seed: int, workers: int = 2, perturb: bool = True,
               shard: int = 250) -> list[Example]:
    """``n`` utterances in shards of ``shard``, each shard seeded ``seed * 100_000 + i``."""
    jobs = [(min(shard, n - i), split, seed * 100_000 + k, perturb)
            for k, i in enumerate(range(0, n, shard))]
    out: list[Example] = []
    with Pool(workers) as pool, tqdm(total=n, desc=f"synthesising {split}", unit="utt") as bar:
        for part in pool.imap(_synth_shard, jobs):
            out.extend(part)
            bar.update(len(part))
    return out


def _pad(audios: list[np.ndarray]) -> Tensor:
    n = max(len(a) for a in audios)
    x = torch.zeros(len(audios), 1, n)
    for i, a in enumerate(audios):
        x[i, 0, : len(a)] = torch.from_numpy(a)
    return x


def batches(data: list[Example], seconds: float, rng: np.random.Generator) -> list[list[int]]:
    """Indices in batches of about ``seconds`` of audio, similar lengths together, shuffled."""
    order = sorted(range(len(data)), key=lambda i: len(data[i][0]) + rng.uniform(0, 800))
    out: list[list[int]] = []
    cur: list[int] = []
    cur_max = 0
    for i in order:
        n = len(data[i][0])
        if cur and max(cur_max, n) * (len(cur) + 1) > seconds * RATE:
            out.append(cur)
            cur, cur_max = [], 0
        cur.append(i)
        cur_max = max(cur_max, n)
    if cur:
        out.append(cur)
    rng.shuffle(out)
    return out


def spec_augment(generator: torch.Generator, bands: int = 2, band_width: int = 8,
                 spans: int = 2, span_width: int = 10):
    """A forward hook for the feature normaliser: zero random mel bands and time spans."""
    def hook(module: torch.nn.Module, inputs: Any, out: Tensor) -> Tensor:
        if not module.training:
            return out
        out = out.clone()
        b, f, t = out.shape
        for i in range(b):
            for _ in range(bands):
                w = int(torch.randint(0, band_width + 1, (1,), generator=generator))
                f0 = int(torch.randint(0, max(1, f - w), (1,), generator=generator))
                out[i, f0:f0 + w] = 0
            for _ in range(spans):
                w = int(torch.randint(0, span_width + 1, (1,), generator=generator))
                t0 = int(torch.randint(0, max(1, t - w), (1,), generator=generator))
                out[i, :, t0:t0 + w] = 0
        return out
    return hook


@torch.inference_mode()
def transcribe(model: Sequential, audios: list[np.ndarray]) -> list[str]:
    """Offline greedy transcripts (one per audio) at the model's current chunk, each audio alone:
    in a padded batch the padding would reach every frame through full-context attention."""
    was = model.training
    model.eval()
    out = [label_words(batch_greedy(model(_pad([a])))[0]) for a in audios]
    model.train(was)
    return out


def evaluate(model: Sequential, test: list[Example],
             alsa: list[tuple[np.ndarray, str]]) -> dict[str, float]:
    """Held-out WER at full context and 320 ms, and alsa-utils words right at full context."""
    res: dict[str, float] = {}
    chunk_before = get_chunk(model)
    for name, chunk in (("full", None), ("320ms", 8)):
        set_chunk(model, chunk)
        res[f"wer_{name}"] = word_error_rate([t for _, _, t in test],
                                             transcribe(model, [a for a, _, _ in test]))
    set_chunk(model, None)
    hyps = transcribe(model, [a for a, _ in alsa])
    res["alsa_words_right"] = words_right([r for _, r in alsa], hyps)
    set_chunk(model, chunk_before)
    return res


def train(out_dir: Path, weights: Path = WEIGHTS, n_train: int = 20_000, n_test: int = 300,
          epochs: int = 16, batch_seconds: float = 48.0, lr: float = 2e-3, seed: int = 0,
          threads: int = 2, workers: int = 2) -> dict[str, Any]:
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    train_set = synthesise(n_train, "train", seed, workers)
    test_set = synthesise(n_test, "test", seed + 1, workers, perturb=False)
    alsa = alsa_recordings()
    synth_s = time.time() - t0

    model = speech_recognizer(**CONFIG, chunk=None, dropout=0.1)
    gen = torch.Generator().manual_seed(seed)
    model[1].register_forward_hook(spec_augment(gen))
    rng = np.random.default_rng(seed)
    steps_per_epoch = len(batches(train_set, batch_seconds, np.random.default_rng(0)))
    total = steps_per_epoch * epochs
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-2)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=total,
                                                pct_start=0.1)
    log: list[dict[str, Any]] = []
    step = 0
    for epoch in range(epochs):
        model.train()
        losses = []
        bar = tqdm(batches(train_set, batch_seconds, rng), desc=f"epoch {epoch + 1}/{epochs}",
                   unit="batch")
        for idx in bar:
            if step >= total:
                break
            chunk = TRAIN_CHUNKS[int(rng.integers(len(TRAIN_CHUNKS)))]
            set_chunk(model, chunk)
            part = [train_set[i] for i in idx]
            x = _pad([a for a, _, _ in part])
            logp = model(x)  # [B, V, T]
            in_len = torch.tensor([frames_for(len(a)) for a, _, _ in part])
            targets = torch.cat([torch.tensor(lab) for _, lab, _ in part])
            tgt_len = torch.tensor([len(lab) for _, lab, _ in part])
            loss = F.ctc_loss(logp.permute(2, 0, 1), targets, in_len, tgt_len, blank=0,
                              zero_infinity=True)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            sched.step()
            step += 1
            losses.append(float(loss.detach()))
            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}")
        res = evaluate(model, test_set, alsa)
        log.append({"epoch": epoch + 1, "loss": float(np.mean(losses)),
                    "elapsed_s": time.time() - t0, **res})
        print(f"epoch {epoch + 1}: loss {log[-1]['loss']:.3f}  WER full {res['wer_full']:.3f}  "
              f"320 ms {res['wer_320ms']:.3f}  alsa {res['alsa_words_right']:.0f}/16", flush=True)
        _save(model, weights, log, seed)
    summary = {"config": CONFIG, "n_train": n_train, "n_test": n_test, "epochs": epochs,
               "synthesis_s": synth_s, "total_s": time.time() - t0, "log": log,
               "params": sum(p.numel() for p in model.parameters())}
    (out_dir / "asr-train.json").write_text(json.dumps(summary, indent=1))
    _plot(log, out_dir / "asr-train.png")
    return summary


def _save(model: torch.nn.Module, path: Path, log: list[dict[str, Any]], seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v for k, v in model.state_dict().items() if not k.endswith("mel_fb")}
    torch.save({"config": CONFIG, "state_dict": state, "log": log[-1:], "seed": seed}, path)


def _plot(log: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ep = [r["epoch"] for r in log]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.5))
    a.plot(ep, [r["loss"] for r in log], marker="o")
    a.set(xlabel="epoch", ylabel="CTC loss", title="training loss")
    b.plot(ep, [r["wer_full"] for r in log], marker="o", label="held-out voices, full context")
    b.plot(ep, [r["wer_320ms"] for r in log], marker="o", label="held-out voices, 320 ms")
    b.plot(ep, [1 - r["alsa_words_right"] / 16 for r in log], marker="o",
           label="alsa-utils real voice, full")
    b.set(xlabel="epoch", ylabel="word error rate", title="WER", ylim=(0, 1))
    b.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("docs/speech/train"))
    p.add_argument("--weights", type=Path, default=WEIGHTS)
    p.add_argument("--n-train", type=int, default=20_000)
    p.add_argument("--epochs", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    train(a.out, a.weights, a.n_train, epochs=a.epochs, seed=a.seed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = ["CONFIG", "WEIGHTS", "synthesise", "train", "transcribe"]
