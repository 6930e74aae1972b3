"""Stream.FM on CPU: a frame-causal flow-matching denoiser against the shipped SEANet denoiser.

``models/flow_denoiser.py`` is trained here on espeak-ng speech (en-us, the demo's voice, saying
sentences of Pride and Prejudice, none of them the demo's) in the demo's noise kind (white +
brown, ``make_noise``, seeds other than the demo's) at a few SNRs.  Evaluated on the demo's
held-out recording at 5 dB (the demo's input exactly): SNR in, SNR out of the flow model at each
number of Euler steps (and midpoint steps, two network calls each) and of the shipped SEANet
denoiser.  Latency, as Stream.FM accounts it, for pushes of ``chunk_ms``: algorithmic (chunk +
lookahead) plus the measured compute of a push (p50/p99) = total, from ``sw.verify`` (which also
checks streamed == offline on an excerpt).  The flow model's lookahead grows with its network
calls: ``hop - 1 + calls * lookahead * hop`` samples.  Writes ``stream_fm.json`` and ``.png``.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import numpy as np


def sentences(count: int, skip: str = "", min_chars: int = 50, max_chars: int = 150
              ) -> list[str]:
    """The first ``count`` sentences of Pride and Prejudice (``../shared/data/text``) of
    ``min_chars`` to ``max_chars`` characters, other than ``skip``."""
    from streamwise.core.data_paths import shared_data

    path = shared_data() / "text" / "pride_and_prejudice.txt"
    if not path.exists():
        raise FileNotFoundError(f"{path} is absent (the training text)")
    text = path.read_text(encoding="utf-8")
    text = text[text.find("Chapter 1"):]
    flat = re.sub(r"\s+", " ", text.replace("_", "").replace('"', ""))
    out = []
    for s in re.split(r"(?<=[.!?]) ", flat):
        if min_chars <= len(s) <= max_chars and s != skip and not s.startswith("Chapter"):
            out.append(s)
        if len(out) == count:
            break
    return out


def _training_speech(count: int, progress: bool) -> list[np.ndarray]:
    from tqdm import tqdm

    from streamwise.assets import SPEECH_TEXT
    from streamwise.speech.synth import espeak

    texts = sentences(count, skip=SPEECH_TEXT)
    pitches = (40, 50, 60)
    return [espeak(t, "en-us", pitch=pitches[i % 3])
            for i, t in enumerate(tqdm(texts, desc="espeak-ng", disable=not progress))]


def _batch(speech: list[np.ndarray], noise_bank: Any, batch: int, length: int,
           snrs: tuple[float, ...], rng: np.random.Generator) -> tuple[Any, Any]:
    import torch

    from streamwise.assets import mix_at_snr

    cs, ys = [], []
    for _ in range(batch):  # mixed at the SNR over the whole sentence (as the demo), then cut
        one = speech[int(rng.integers(len(speech)))]
        s = torch.from_numpy(np.pad(one, (0, max(0, length - len(one)))))
        b = int(rng.integers(0, len(noise_bank) - len(s) + 1))
        noise = noise_bank[b:b + len(s)]
        noisy = mix_at_snr(s, noise, float(rng.choice(snrs)))
        a = int(rng.integers(0, len(s) - length + 1))
        cs.append(s[a:a + length])
        ys.append(noisy[a:a + length])
    return torch.stack(cs)[:, None], torch.stack(ys)[:, None]


def _latency(report: Any) -> dict[str, Any]:
    return {
        "delay_samples": report.delay_frames,
        "measured_delay_samples": report.measured_delay_frames,
        "chunk_samples": report.chunk_frames,
        "algorithmic_ms": report.algorithmic_frames / report.sample_rate * 1e3,
        "compute_ms_p50": report.compute_ms["p50"],
        "compute_ms_p99": report.compute_ms["p99"],
        "total_ms_p50": report.total_latency_ms["p50"],
        "total_ms_p99": report.total_latency_ms["p99"],
        "stream_max_abs_error": report.max_abs_error,
        "stream_passed": report.passed,
    }


def run(out: Path, steps: int = 700, ode_steps: tuple[int, ...] = (1, 2, 4),
        midpoint_steps: tuple[int, ...] = (1,), sentence_count: int = 30, batch: int = 16,
        seconds: float = 1.0,
        snrs: tuple[float, ...] = (0.0, 5.0, 10.0), lr: float = 2e-3, hop: int = 80,
        width: int = 96, lookahead: int = 1, chunk_ms: float = 10.0, excerpt_s: float = 1.0,
        snr_in: float = 5.0, progress: bool = True, seed: int = 0) -> dict[str, Any]:
    """Train, evaluate, time; write ``out/stream_fm.json`` and ``.png``; return the results."""
    import torch
    from tqdm import tqdm

    import streamwise as sw
    from streamwise.assets import make_noise, mix_at_snr, snr_db, speech
    from streamwise.bench.report import write_report
    from streamwise.models.flow_denoiser import FlowDenoiser
    from streamwise.models.seanet import denoiser

    if steps < 1 or not ode_steps or min(ode_steps) < 1 or min(midpoint_steps, default=1) < 1:
        raise ValueError(f"steps and every ODE step count must be >= 1, got steps={steps}, "
                         f"ode_steps={ode_steps}, midpoint_steps={midpoint_steps}")
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    t_start = time.perf_counter()
    train_speech = _training_speech(sentence_count, progress)
    model = FlowDenoiser(hop=hop, width=width, lookahead=lookahead, seed=seed)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps, pct_start=0.1)
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    length = int(round(seconds * 16000)) // hop * hop
    longest = max(length, *(len(s) for s in train_speech))
    noise_bank = make_noise(8 * longest, seed=seed + 1000)  # the demo's kind, never its seed 0
    losses = []
    t0 = time.perf_counter()
    for _ in tqdm(range(steps), desc="flow matching", disable=not progress):
        clean, noisy = _batch(train_speech, noise_bank, batch, length, snrs, rng)
        loss = model.loss(clean, noisy, gen)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
    train_s = time.perf_counter() - t0
    model.eval()

    audio, rate = speech()
    seanet = denoiser()
    period = int(np.lcm(seanet.period, hop))
    clean = audio[:, : audio.shape[-1] // period * period]
    x = mix_at_snr(clean, make_noise(clean.numel(), seed=0), snr_in)[None]  # the demo's input
    chunk = int(round(rate * chunk_ms / 1000))
    excerpt = x[..., : int(excerpt_s * rate) // period * period]
    rows: dict[str, dict[str, Any]] = {}
    with torch.inference_mode():
        rows["seanet"] = {"snr_out_db": snr_db(seanet(x)[0], clean[:, : x.shape[-1]]),
                          "parameters": sum(p.numel() for p in seanet.parameters())}
    rows["seanet"].update(_latency(sw.verify(seanet, excerpt, trials=2, chunk=chunk,
                                             sample_rate=rate)))
    n_flow = sum(p.numel() for p in params)
    runs = [("euler", k, f"flow_{k}") for k in ode_steps]
    runs += [("midpoint", k, f"flow_mid_{k}") for k in midpoint_steps]
    for solver, k, name in runs:
        sampler = model.sampler(k, seed=seed, solver=solver).eval()
        with torch.inference_mode():
            y = sampler(x)
        row: dict[str, Any] = {
            "snr_out_db": snr_db(y[0], clean[:, : y.shape[-1]]), "parameters": n_flow,
            "solver": solver, "ode_steps": k,
            "network_calls_per_frame": k * (2 if solver == "midpoint" else 1),
            "formula_delay_samples": model.latency_samples(k, chunk, solver)["delay"]}
        row.update(_latency(sw.verify(sampler, excerpt, trials=2, chunk=chunk,
                                      sample_rate=rate)))
        rows[name] = row
    snr_in_db = snr_db(x[0], clean)
    for r in rows.values():
        r["snr_gain_db"] = r["snr_out_db"] - snr_in_db
    best = max((r for n, r in rows.items() if n != "seanet"), key=lambda r: r["snr_out_db"])
    result: dict[str, Any] = {
        "snr_in_db": snr_in_db,
        "models": rows,
        "flow_beats_seanet": best["snr_out_db"] > rows["seanet"]["snr_out_db"],
        "sample_rate": rate,
        "chunk_ms": chunk_ms,
        "config": {"steps": steps, "ode_steps": list(ode_steps),
                   "midpoint_steps": list(midpoint_steps), "sentences": sentence_count,
                   "batch": batch, "seconds": seconds, "snrs": list(snrs), "lr": lr, "hop": hop,
                   "width": width, "lookahead": lookahead, "sigma": model.sigma,
                   "gain": model.gain, "seed": seed, "excerpt_s": excerpt_s},
        "train_seconds": train_s,
        "train_audio_seconds": float(sum(len(s) for s in train_speech) / rate),
        "loss_first": float(np.mean(losses[: max(1, steps // 20)])),
        "loss_last": float(np.mean(losses[-max(1, steps // 20):])),
        "loss_curve": [float(v) for v in losses[:: max(1, steps // 200)]],
        "wall_seconds": time.perf_counter() - t_start,
    }
    lines = [f"Stream.FM on the demo recording, {snr_in_db:.2f} dB in, {chunk_ms:g} ms chunks",
             f"{'model':<10} {'SNR out':>8} {'gain':>7} {'algo ms':>8} {'compute p50':>12} "
             f"{'total p50':>10} {'total p99':>10}"]
    for name, r in rows.items():
        lines.append(f"{name:<10} {r['snr_out_db']:8.2f} {r['snr_gain_db']:+7.2f} "
                     f"{r['algorithmic_ms']:8.2f} {r['compute_ms_p50']:12.3f} "
                     f"{r['total_ms_p50']:10.2f} {r['total_ms_p99']:10.2f}")
    verdict = "beats" if result["flow_beats_seanet"] else "loses to"
    lines.append(f"the best flow model {verdict} SEANet ({best['snr_out_db']:.2f} vs "
                 f"{rows['seanet']['snr_out_db']:.2f} dB out)")
    write_report(out, "stream_fm", result, lambda p: _plot(p, result), "\n".join(lines))
    return result


def _plot(path: Path, result: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["models"]
    names = list(rows)
    fig, ax = plt.subplots(1, 3, figsize=(15, 4), constrained_layout=True)
    ax[0].semilogy(result["loss_curve"], color="C0")
    ax[0].set_title("flow-matching loss (training)")
    ax[0].set_xlabel(f"step / {max(1, result['config']['steps'] // 200)}")
    ax[1].bar(["noisy"] + names, [result["snr_in_db"]] + [rows[n]["snr_out_db"] for n in names],
              color=["0.6", "C3"] + ["C0" if "mid" not in n else "C4" for n in names[1:]])
    ax[1].set_ylabel("SNR (dB)")
    ax[1].set_title("demo recording: SNR in and out")
    algo = [rows[n]["algorithmic_ms"] for n in names]
    comp = [rows[n]["compute_ms_p50"] for n in names]
    ax[2].bar(names, algo, label="algorithmic (chunk + lookahead)", color="C1")
    ax[2].bar(names, comp, bottom=algo, label="compute per push (p50)", color="C2")
    ax[2].set_ylabel("ms")
    ax[2].set_title(f"total latency, {result['chunk_ms']:g} ms chunks")
    ax[2].legend()
    fig.savefig(path, dpi=110)
    plt.close(fig)
