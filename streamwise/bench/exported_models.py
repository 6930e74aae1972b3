"""``streamwise bench exported-models``: real models exported by streamwise vs the vendors' own.

- silero-vad (16 kHz, 512-sample chunks): the plain-torch rebuild (``examples/pretrained/
  silero_vad_torch.py``), converted with ``sw.convert`` and exported to ONNX, run by ``OnnxStream``,
  against the vendor's own ONNX model (``silero_vad/data/silero_vad.onnx`` from the installed wheel)
  driven as its ``OnnxWrapper`` does (64 samples of context prepended in numpy, ``state`` carried),
  both on onnxruntime with one thread.  Outputs: one speech probability per chunk, compared to 1e-5.
- PESTO (pesto-pitch 2.0.1, ``mir-1k_g7``, 48 kHz, one 10 ms hop per chunk): the rebuild
  (``examples/pretrained/pesto_pitch.py``) converted and exported, against PESTO's own streaming
  mode (torch, one thread).  Errors per output group as the example's ``compare``.

Audio: the Debian alsa-utils recordings (``/usr/share/sounds/alsa``) and the shipped speech, as the
examples load them.  Each round runs both ways over the same audio, in alternating order (a shared
machine's drift hits both alike); the per-chunk time is the median call time of a round, then the
median over rounds.  Results go to ``exported_models.json`` and ``exported_models.png``.

The builders live in ``examples/pretrained`` (scripts, not a package), so this benchmark needs a
source checkout; it says so where they are missing.
"""

from __future__ import annotations

import importlib.util
import platform
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch

from streamwise.bench.report import write_report

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "pretrained"


def example(script: str) -> ModuleType:
    """``examples/pretrained/<script>.py`` as a module (the rebuilt vendor models live there)."""
    path = EXAMPLES / f"{script}.py"
    if not path.exists():
        raise FileNotFoundError(f"{path}: the pretrained builders ship with the source checkout "
                                "(examples/pretrained), not with the installed package")
    spec = importlib.util.spec_from_file_location(f"{script}_bench_example", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _median_ms(times: list[float]) -> float:
    return float(np.median(times) * 1e3)


def _rounds(ways: dict[str, Any], rounds: int) -> tuple[dict[str, list[float]], dict[str, Any]]:
    """Run every way (``make() -> run() -> (outputs, per-chunk seconds)``) ``rounds`` times,
    alternating the order; per-round median ms per way, and each way's outputs of round 0."""
    medians: dict[str, list[float]] = {k: [] for k in ways}
    outs: dict[str, Any] = {}
    names = list(ways)
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            y, times = ways[name]()
            medians[name].append(_median_ms(times))
            outs.setdefault(name, y)
    return medians, outs


def silero(tmp: Path, rounds: int, seconds: float) -> dict[str, Any]:
    import onnxruntime as ort

    import streamwise as sw
    from streamwise.export import onnx
    from streamwise.runtime import OnnxModel, OnnxStream

    ex = example("silero_vad_torch")
    chunk, ctx = ex.CHUNK, ex.CONTEXT
    clips = torch.cat(list(ex.recordings().values())).numpy()
    n = max(1, int(seconds * ex.RATE) // chunk) * chunk
    x = np.resize(clips, n).reshape(1, 1, -1).astype(np.float32)  # repeats clips if short
    model = sw.convert(ex.build_model(), torch.zeros(1, 1, ex.RATE)).eval()
    t0 = time.perf_counter()
    contract = onnx(model, tmp / "silero_vad.onnx", chunk, example=torch.zeros(1, 1, 4 * chunk))
    export_s = time.perf_counter() - t0
    ours_model = OnnxModel(tmp / "silero_vad.onnx", threads=1)
    vendor_path = ex._data_file("silero_vad.onnx")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    vendor = ort.InferenceSession(vendor_path, opts, providers=["CPUExecutionProvider"])
    sr = np.array(ex.RATE, dtype=np.int64)

    def ours() -> tuple[np.ndarray, list[float]]:
        s, ys, times = OnnxStream(ours_model), [], []
        for i in range(0, n, chunk):
            t = time.perf_counter()
            ys.append(s.push(x[..., i : i + chunk]))
            times.append(time.perf_counter() - t)
        ys.append(s.close())
        return np.concatenate(ys, -1)[0, 0], times

    def theirs() -> tuple[np.ndarray, list[float]]:
        # what silero_vad.utils_vad.OnnxWrapper does per call, in numpy (no torch conversions)
        state = np.zeros((2, 1, 128), np.float32)
        context = np.zeros((1, ctx), np.float32)
        ys, times = [], []
        for i in range(0, n, chunk):
            t = time.perf_counter()
            inp = np.concatenate([context, x[0, :, i : i + chunk]], 1)
            p, state = vendor.run(None, {"input": inp, "state": state, "sr": sr})
            context = inp[:, -ctx:]
            times.append(time.perf_counter() - t)
            ys.append(p[:, 0])
        return np.concatenate(ys), times

    medians, outs = _rounds({"streamwise_onnx": ours, "vendor_onnx": theirs}, rounds)
    a, b = outs["streamwise_onnx"], outs["vendor_onnx"]
    if a.shape != b.shape:
        raise AssertionError(f"silero-vad: exported gives {a.shape} probabilities, vendor "
                             f"{b.shape}")
    with torch.inference_mode():
        offline = model(torch.from_numpy(x))[0, 0].numpy()
    err = float(np.abs(a - b).max())
    return {
        "model": "silero-vad 16 kHz (weights of the shipped silero_vad.jit)",
        "vendor": Path(vendor_path).name, "rate": ex.RATE, "chunk": chunk, "chunks": n // chunk,
        "audio_seconds": n / ex.RATE, "export_seconds": export_s, "prologue": contract.prologue,
        "ms_per_chunk": {k: float(np.median(v)) for k, v in medians.items()},
        "ms_per_chunk_rounds": medians,
        "vendor_over_streamwise_time": float(np.median(medians["vendor_onnx"])
                                             / np.median(medians["streamwise_onnx"])),
        "max_abs_error_vs_vendor": err, "equal_to_1e-5": err <= 1e-5,
        "max_abs_error_vs_offline_torch": float(np.abs(a - offline).max()),
        "max_prob": float(b.max()),
    }


def pesto(tmp: Path, rounds: int, seconds: float) -> dict[str, Any]:
    import streamwise as sw
    from streamwise.export import onnx
    from streamwise.runtime import OnnxModel, OnnxStream

    ex = example("pesto_pitch")
    hop = int(ex.STEP_MS * ex.RATE / 1000 + 0.5)
    audio = ex.alsa_audio()
    n = max(20, int(seconds * ex.RATE) // hop) * hop
    audio = audio[:n] if audio.shape[-1] >= n else torch.from_numpy(np.resize(audio.numpy(), n))
    x = audio.view(1, 1, -1).contiguous()
    model = sw.convert(ex.build_model(), x[..., : 20 * hop]).eval()
    t0 = time.perf_counter()
    contract = onnx(model, tmp / "pesto.onnx", hop, example=torch.zeros(1, 1, 4 * hop))
    export_s = time.perf_counter() - t0
    ours_model = OnnxModel(tmp / "pesto.onnx", threads=1)
    xn = x.numpy()

    def ours() -> tuple[np.ndarray, list[float]]:
        s, ys, times = OnnxStream(ours_model), [], []
        for i in range(0, n, hop):
            t = time.perf_counter()
            ys.append(s.push(xn[..., i : i + hop]))
            times.append(time.perf_counter() - t)
        ys.append(s.close())
        return np.concatenate(ys, -1)[0], times

    def theirs() -> tuple[np.ndarray, list[float]]:
        vendor, ys, times = ex.load_vendor(streaming=True), [], []
        with torch.inference_mode():
            for i in range(0, n, hop):
                t = time.perf_counter()
                out = vendor(x[0, :, i : i + hop], return_activations=True)
                times.append(time.perf_counter() - t)
                ys.append(ex.vendor_rows(*out))
        return torch.cat(ys, -1)[0].numpy(), times

    medians, outs = _rounds({"streamwise_onnx": ours, "vendor_streaming": theirs}, rounds)
    a, b = outs["streamwise_onnx"], outs["vendor_streaming"]
    if a.shape != b.shape:
        raise AssertionError(f"PESTO: exported gives {a.shape}, vendor streaming {b.shape}")
    errors = ex.compare(torch.from_numpy(a), torch.from_numpy(b))
    return {
        "model": f"PESTO {ex.CHECKPOINT} (pesto-pitch wheel)", "rate": ex.RATE, "chunk": hop,
        "chunks": n // hop, "audio_seconds": n / ex.RATE, "export_seconds": export_s,
        "prologue": contract.prologue,
        "ms_per_chunk": {k: float(np.median(v)) for k, v in medians.items()},
        "ms_per_chunk_rounds": medians,
        "vendor_over_streamwise_time": float(np.median(medians["vendor_streaming"])
                                             / np.median(medians["streamwise_onnx"])),
        "max_error_vs_vendor": errors,
    }


def format_table(result: dict[str, Any]) -> str:
    lines = ["| model | way | ms per chunk (median of rounds) |", "|---|---|---:|"]
    for key in ("silero_vad", "pesto"):
        for way, ms in result[key]["ms_per_chunk"].items():
            lines.append(f"| {key} | {way} | {ms:.3f} |")
    s, p = result["silero_vad"], result["pesto"]
    lines.append(f"silero-vad: vendor/streamwise time {s['vendor_over_streamwise_time']:.2f}, "
                 f"max |ours - vendor| {s['max_abs_error_vs_vendor']:.2e} "
                 f"({'equal' if s['equal_to_1e-5'] else 'NOT equal'} to 1e-5)")
    lines.append(f"PESTO: vendor/streamwise time {p['vendor_over_streamwise_time']:.2f}, "
                 f"errors {p['max_error_vs_vendor']}")
    return "\n".join(lines)


def _plot(path: Path, result: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key in zip(axes, ("silero_vad", "pesto")):
        r = result[key]
        ways = list(r["ms_per_chunk_rounds"])
        data = [r["ms_per_chunk_rounds"][w] for w in ways]
        ax.boxplot(data)
        ax.set_xticks(range(1, len(ways) + 1), ways)
        ax.set_ylabel("ms per chunk (round medians)")
        ax.set_title(f"{key}: {r['chunk']}-sample chunks at {r['rate']} Hz, 1 thread")
        ax.set_ylim(bottom=0)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def run(out_dir: str | Path = "bench-results", rounds: int = 5, seconds: float = 10.0
        ) -> dict[str, Any]:
    """Benchmark both models (``seconds`` of audio each, ``rounds`` interleaved rounds, one
    thread) and write ``exported_models.json`` and ``.png`` into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with tempfile.TemporaryDirectory(prefix="streamwise-exported-") as tmp:
            result: dict[str, Any] = {
                "rounds": rounds, "threads": 1, "torch": torch.__version__,
                "machine": platform.machine(),
                "silero_vad": silero(Path(tmp), rounds, seconds),
                "pesto": pesto(Path(tmp), rounds, seconds),
            }
    finally:
        torch.set_num_threads(threads)
    write_report(out, "exported_models", result, lambda q: _plot(q, result), format_table(result))
    return result
