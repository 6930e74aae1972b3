"""StreamDiT + StreamingT2V on real speech: a small flow-matching DiT continues log-mel streams
chunk by chunk with a moving noise buffer, without and with short-term and long-term memories.

Data: 32-band log-mel frames (25 ms window, 10 ms hop) of the shipped recording and of espeak-ng
sentences of *Pride and Prejudice* by four voices (``VOICES``), normalised per band.  A
``StreamDiT`` (``models/stream_dit.py``: adaLN time embedding per frame, window attention over
the buffer's chunks) is trained by flow matching on buffers of ``buffer`` chunks of ``chunk``
frames at staggered noise levels, with memory tokens dropped at random (none / the previous
chunk / the previous chunk and the utterance's first ``anchor`` chunks), so that one model runs
all three variants.  Each eval prompt (the shipped recording and held-out sentences, two per
voice) gives its first ``prompt`` chunks: the last ``buffer - 1`` prime the moving buffer
(``MovingBuffer.prime``), those before go to the memory; then ``chunks`` chunks are generated,
one model call each, from the same noise for every variant:

- (a) ``buffer``: moving buffer + window attention alone;
- (b) ``short``: + short-term memory (the previous generated chunk, ``AnchorMemory(recent=1)``);
- (c) ``short+anchor``: + the long-term anchor (the prompt's first chunks, kept for ever).

Metrics (normalised log-mel units): *discontinuity* = mean |x[first frame of a chunk] - x[last
frame of the one before]| over the mean frame-to-frame difference inside chunks (1.0: a chunk
boundary is as smooth as the inside of a chunk; real speech cut on the same grid gives its
value too); *drift*: RMS distance of the mean spectrum of the last ``drift_window`` chunks from
the prompt's mean spectrum, along the stream; *speaker match*: share of rows whose generated
mean spectrum (second half) is nearest to their own voice's mean spectrum among the four voices;
*stats gap*: RMS difference of per-band mean and standard deviation from held-out real speech;
*delta ratio*: mean frame-to-frame change inside chunks over real speech's.  Writes
``stream_dit.json`` and ``.png``.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import numpy as np

VOICES = (("en-us", 50), ("en-gb+Alicia", 70), ("en-us+Andy", 35), ("en-gb-scotland+Annie", 60))
N_MELS = 32
VARIANTS = ("buffer", "short", "short+anchor")


def _sentences(n: int, words: tuple[int, int] = (8, 20)) -> list[str]:
    from streamwise.assets import SPEECH_TEXT
    from streamwise.core.data_paths import shared_data

    path = shared_data() / "text" / "pride_and_prejudice.txt"
    if not path.exists():  # the shipped sentence, at several voices, is speech enough
        return [SPEECH_TEXT] * n
    text = " ".join(path.read_text(encoding="utf-8").split())
    out = []
    for s in re.split(r"(?<=[.!?])\s+", text[5000:]):
        s = re.sub(r"[^A-Za-z,.;' ]", "", s).strip()
        if words[0] <= len(s.split()) <= words[1]:
            out.append(s)
        if len(out) == n:
            break
    return out


def _mel(audio: np.ndarray) -> Any:
    import torch

    from streamwise.layers.spectral import MelSpectrogram
    from streamwise.speech.streams import trim

    mel = MelSpectrogram(16_000, n_fft=400, hop_length=160, n_mels=N_MELS, center=False,
                         log=True, eps=1e-4)
    x = torch.from_numpy(np.ascontiguousarray(trim(audio), dtype=np.float32))
    return mel(x[None, None])[0].T.contiguous()  # [T, C]


def _corpus(n_train: int, progress: bool) -> tuple[list[tuple[int, Any]], list[tuple[int, Any]]]:
    """(voice, log-mel [T, C]) for training and for the eval prompts (shipped speech first)."""
    from tqdm import tqdm

    from streamwise.assets import speech
    from streamwise.speech.synth import espeak

    texts = _sentences(n_train + 2 * len(VOICES))
    jobs = [(i % len(VOICES), s) for i, s in enumerate(texts)]
    mels = [(v, _mel(espeak(s, VOICES[v][0], pitch=VOICES[v][1])))
            for v, s in tqdm(jobs, desc="espeak-ng sentences", disable=not progress)]
    shipped = (0, _mel(speech()[0][0].numpy()))
    train = [shipped, *mels[: len(mels) - 2 * len(VOICES) + 1]]
    held = mels[len(mels) - 2 * len(VOICES) + 1:]  # one voice-0 sentence went to training
    return train, [shipped, *held]


def _batch(data: list[Any], k: int, chunk: int, anchor: int, batch: int, mode: int,
           gen: Any) -> tuple[Any, Any]:
    """Clean buffers ``[batch, k * chunk, C]`` and their memory (``mode`` 0 none, 1 the previous
    chunk, 2 the previous chunk and the utterance's first ``anchor`` chunks)."""
    import torch

    need = (anchor + 1 + k) * chunk
    pool = [x for _, x in data if len(x) >= need]
    xs, mems = [], []
    for _ in range(batch):
        x = pool[int(torch.randint(len(pool), (1,), generator=gen))]
        s = int(torch.randint(anchor + 1, len(x) // chunk - k + 1, (1,), generator=gen))
        xs.append(x[s * chunk:(s + k) * chunk])
        mems.append(torch.cat([x[:anchor * chunk], x[(s - 1) * chunk:s * chunk]]))
    clean = torch.stack(xs)
    if mode == 0:
        return clean, None
    kind = torch.tensor([0] * anchor * chunk + [1] * chunk)
    pos = torch.arange(len(kind)) % chunk
    mem = torch.stack(mems)
    if mode == 1:
        return clean, (mem[:, anchor * chunk:], kind[anchor * chunk:], pos[anchor * chunk:])
    return clean, (mem, kind, pos)


def _discontinuity(x: Any, chunk: int) -> float:
    """Mean |jump| across chunk boundaries over the mean |step| inside chunks (``[B, T, C]``)."""
    d = (x[:, 1:] - x[:, :-1]).abs().mean(-1)  # [B, T-1]: step from frame f to f + 1
    at_boundary = (np.arange(1, x.shape[1]) % chunk) == 0
    return float(d[:, at_boundary].mean() / d[:, ~at_boundary].mean())


def _drift(x: Any, ref_mean: Any, chunk: int, window: int) -> list[float]:
    """Per chunk: RMS over bands of (mean of the last ``window`` chunks - ``ref_mean [B, C]``)."""
    out = []
    for c in range(1, x.shape[1] // chunk + 1):
        seg = x[:, max(0, c - window) * chunk:c * chunk].mean(1)
        out.append(float((seg - ref_mean).pow(2).mean(-1).sqrt().mean()))
    return out


def run(out: Path, steps: int = 1500, chunks: int = 120, chunk: int = 8, buffer: int = 6,
        anchor: int = 2, prompt: int = 12, dim: int = 64, layers: int = 3, batch: int = 32,
        n_train: int = 36, drift_window: int = 10, repeats: int = 3, seed: int = 0,
        progress: bool = True) -> dict[str, Any]:
    """Train, generate ``chunks`` chunks per prompt and variant (``repeats`` noise draws of
    each prompt, the same draws for every variant), write the report."""
    import torch
    from tqdm import tqdm

    from streamwise.attention.cache.anchor import AnchorMemory
    from streamwise.bench.report import write_report
    from streamwise.core.moving_buffer import MovingBuffer, flow_times
    from streamwise.models.stream_dit import (
        StreamDiT,
        flow_matching_loss,
        staggered_times,
        velocity,
    )

    if prompt < buffer + anchor:
        raise ValueError(f"prompt ({prompt}) must be >= buffer + anchor ({buffer + anchor}) "
                         "chunks: the anchor and the previous chunk come before the primed ones")
    torch.manual_seed(seed)
    torch.set_num_threads(1)
    out.mkdir(parents=True, exist_ok=True)
    train, evals = _corpus(n_train, progress)
    frames = torch.cat([x for _, x in train])
    mu, sd = frames.mean(0), frames.std(0) + 1e-3
    train = [(v, (x - mu) / sd) for v, x in train]
    evals = [(v, (x - mu) / sd) for v, x in evals]
    model = StreamDiT(N_MELS, chunk, dim=dim, layers=layers, window=1, max_chunks=buffer)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 2e-3, total_steps=max(steps, 1),
                                                pct_start=0.1)
    gen = torch.Generator().manual_seed(seed)
    losses, t0 = [], time.perf_counter()
    model.train()
    for _ in tqdm(range(steps), desc="train StreamDiT (flow matching)", disable=not progress):
        k = buffer if float(torch.rand((), generator=gen)) > 0.15 else int(
            torch.randint(1, buffer + 1, (1,), generator=gen))
        u = float(torch.rand((), generator=gen))  # memories: none / previous chunk / + anchor
        mode = 0 if u < 0.2 else 1 if u < 0.4 else 2
        clean, mem = _batch(train, k, chunk, anchor, batch, mode, gen)
        t = staggered_times(batch, k, chunk, buffer, mixed=0.25, generator=gen)
        loss = flow_matching_loss(model, clean, t, mem, generator=gen)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
    train_s = time.perf_counter() - t0
    model.eval()
    heldout = {}  # the same held-out buffers, noise and times, with each memory
    for mode, name in enumerate(VARIANTS):
        g = torch.Generator().manual_seed(seed + 2)
        with torch.no_grad():
            ls = []
            for _ in range(4):
                clean, mem = _batch(evals, buffer, chunk, anchor, batch, mode, g)
                t = staggered_times(batch, buffer, chunk, buffer, mixed=0.0, generator=g)
                ls.append(float(flow_matching_loss(model, clean, t, mem, generator=g)))
        heldout[name] = float(np.mean(ls))

    # eval prompts: one batch, rows cut to a common length
    length = min(len(x) for _, x in evals) // chunk * chunk
    real = torch.stack([x[:length] for _, x in evals]).repeat(repeats, 1, 1)  # [R, T, C]
    rows = [v for v, _ in evals] * repeats
    p = real[:, :prompt * chunk]
    prompt_mean = p.mean(1)
    voice_mean = torch.stack([torch.cat([x for v, x in train if v == i]).mean(0)
                              for i in range(len(VOICES))])
    held = torch.cat([x for _, x in evals[1:]])
    times = flow_times(buffer)
    v = velocity(model)
    results: dict[str, Any] = {}
    streams: dict[str, Any] = {}
    for name in VARIANTS:
        mem = None if name == "buffer" else AnchorMemory(
            chunk, recent=1, anchor=anchor if name == "short+anchor" else 0)
        sampler = MovingBuffer(v, times, mem)
        g = torch.Generator().manual_seed(seed + 1)  # the same noise for every variant
        n_mem = prompt - (buffer - 1)
        if mem is not None:
            mem.write(p[:, :n_mem * chunk])
        primed = [p[:, c * chunk:(c + 1) * chunk] for c in range(n_mem, prompt)]
        sampler.prime(primed, [torch.randn(pc.shape, generator=g) for pc in primed])
        outs, t1 = [], time.perf_counter()
        for _ in tqdm(range(chunks + buffer - 1), desc=f"generate ({name})",
                      disable=not progress):
            y = sampler.push(torch.randn(len(rows), chunk, N_MELS, generator=g))
            if y is not None:
                outs.append(y)
        gen_s = time.perf_counter() - t1
        x = torch.cat(outs, 1)  # the primed chunks come out first, then the continuation
        cont = x[:, (buffer - 1) * chunk:]
        streams[name] = x
        drift = _drift(cont, prompt_mean, chunk, drift_window)
        late = cont[:, cont.shape[1] // 2:].mean(1)
        nearest = torch.cdist(late, voice_mean).argmin(1)
        gf = cont.reshape(-1, N_MELS)
        inner = (cont[:, 1:] - cont[:, :-1]).abs().mean(-1)[
            :, (np.arange(1, cont.shape[1]) % chunk) != 0]
        real_inner = (real[:, 1:] - real[:, :-1]).abs().mean(-1)[
            :, (np.arange(1, length) % chunk) != 0]
        quarter = max(1, len(drift) // 4)
        results[name] = {
            "discontinuity": _discontinuity(cont, chunk),
            "discontinuity_prompt_to_stream": _discontinuity(x, chunk),
            "drift_first_quarter": float(np.mean(drift[:quarter])),
            "drift_last_quarter": float(np.mean(drift[-quarter:])),
            "drift_mean": float(np.mean(drift)),
            "drift_curve": drift,
            "speaker_match": float((nearest == torch.tensor(rows)).float().mean()),
            "stats_gap": float((gf.mean(0) - held.mean(0)).pow(2).mean().sqrt()
                               + (gf.std(0) - held.std(0)).pow(2).mean().sqrt()),
            "delta_ratio": float(inner.mean() / real_inner.mean()),
            "heldout_loss": heldout[name],
            "calls": sampler.calls,
            "ms_per_chunk": 1000 * gen_s / max(1, len(outs)),
            "state_bytes": sampler.nbytes() + (mem.nbytes() if mem is not None else 0),
        }
    real_rest = real[:, prompt * chunk:]
    results["real_speech"] = {
        "discontinuity": _discontinuity(real, chunk),
        "drift_mean": float(np.mean(_drift(real_rest, prompt_mean, chunk, drift_window))),
        "speaker_match": float((torch.cdist(real_rest.mean(1), voice_mean).argmin(1)
                                == torch.tensor(rows)).float().mean()),
    }
    result = {
        "config": {"steps": steps, "chunks": chunks, "chunk": chunk, "buffer": buffer,
                   "anchor": anchor, "prompt": prompt, "dim": dim, "layers": layers,
                   "batch": batch, "n_train": n_train, "n_mels": N_MELS, "rows": len(rows),
                   "prompts": len(evals), "repeats": repeats,
                   "voices": [f"{n} pitch {pt}" for n, pt in VOICES], "seed": seed,
                   "drift_window": drift_window},
        "train": {"seconds": train_s, "loss_first": float(np.mean(losses[:50])) if losses
                  else float("nan"), "loss_last": float(np.mean(losses[-50:])) if losses
                  else float("nan"), "train_frames": int(len(frames))},
        "variants": results,
    }
    table = _table(result)
    write_report(out, "stream_dit", result,
                 lambda path: _plot(result, {k: s[0] for k, s in streams.items()}, p[0], chunk,
                                    path), table)
    return result


def _table(result: dict[str, Any]) -> str:
    lines = [f"{'variant':14} {'discont.':>9} {'drift mean (1st/last q)':>24} {'speaker':>8} "
             f"{'stats gap':>9} {'delta':>6} {'loss':>6}"]
    for name, r in result["variants"].items():
        if name == "real_speech":
            lines.append(f"{name:14} {r['discontinuity']:9.3f} {r['drift_mean']:8.3f}{'':16} "
                         f"{r['speaker_match']:8.2f}")
            continue
        lines.append(f"{name:14} {r['discontinuity']:9.3f} {r['drift_mean']:8.3f} "
                     f"({r['drift_first_quarter']:.3f}/{r['drift_last_quarter']:.3f}) "
                     f"{r['speaker_match']:8.2f} {r['stats_gap']:9.3f} {r['delta_ratio']:6.2f} "
                     f"{r['heldout_loss']:6.3f}")
    return "\n".join(lines)


def _plot(result: dict[str, Any], streams: dict[str, Any], prompt: Any, chunk: int,
          path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cfg, res = result["config"], result["variants"]
    show = (cfg["prompt"] + 40) * chunk
    fig = plt.figure(figsize=(12, 10))
    grid = fig.add_gridspec(4, 2, height_ratios=[1, 1, 1, 1.2])
    n_mem = cfg["prompt"] - (cfg["buffer"] - 1)
    for i, name in enumerate(VARIANTS):
        ax = fig.add_subplot(grid[i, :])
        x = np.concatenate([prompt[:n_mem * chunk].numpy(), streams[name].numpy()])[:show]
        ax.imshow(x.T, origin="lower", aspect="auto", cmap="magma", vmin=-2.5, vmax=2.5,
                  interpolation="nearest")
        for b in range(chunk, len(x), chunk):
            ax.axvline(b - 0.5, color="w", lw=0.3, alpha=0.4)
        ax.axvline(n_mem * chunk - 0.5, color="c", lw=1.5)
        ax.axvline(cfg["prompt"] * chunk - 0.5, color="lime", lw=1.5)
        ax.set_title(f"({'abc'[i]}) {name}: real prompt | primed buffer (cyan..green) | "
                     f"generated; discontinuity {res[name]['discontinuity']:.2f}", fontsize=9)
        ax.set_ylabel("mel band")
    ax = fig.add_subplot(grid[3, 0])
    names = [*VARIANTS, "real_speech"]
    ax.bar(names, [res[n]["discontinuity"] for n in names], color=["C0", "C1", "C2", "grey"])
    ax.axhline(1.0, color="k", lw=0.8, ls="--")
    ax.set_ylabel("boundary jump / inner step")
    ax.set_title("boundary discontinuity (1 = as smooth as inside a chunk)", fontsize=9)
    ax = fig.add_subplot(grid[3, 1])
    for i, n in enumerate(VARIANTS):
        ax.plot(res[n]["drift_curve"], color=f"C{i}",
                label=f"{n} (speaker match {res[n]['speaker_match']:.2f})")
    ax.axhline(res["real_speech"]["drift_mean"], color="grey", ls="--",
               label=f"real speech after the prompt (mean; speaker match "
                     f"{res['real_speech']['speaker_match']:.2f})")
    ax.set_xlabel("generated chunk")
    ax.set_ylabel("RMS distance to prompt mean spectrum")
    ax.set_title(f"drift (mean of the last {cfg['drift_window']} chunks)", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
