"""``streamwise bench serve``: how many real-time 16 kHz streams one server holds, on loopback.

For each model, the compute floor is measured first: N_floor = 1 / (offline real-time factor of
the model on one thread).  Then a server (``streamwise serve`` in its own process, durable SQLite
store) is loaded with N concurrent WebSocket clients, each sending real speech in 20 ms chunks
on a real-time clock and timing every output.  A level is *held* when no chunk errs and the p99
end-to-end latency is under 100 ms.  Batching on and off run side by side in one run; the ratio
of held streams is the number that matters (machines are shared and noisy).
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import torch
from tqdm import tqdm

from streamwise.bench.report import write_report
from streamwise.bench.serve_server import CHUNK, RATE, Server

P99_LIMIT = 0.100


def compute_floor(model_name: str, seconds: float = 10.0) -> dict[str, float]:
    """Offline real-time factor on one thread, and N_floor = 1 / RTF."""
    from streamwise.serve.run import demo_models

    torch.set_num_threads(1)
    model = demo_models()[model_name]
    x = torch.randn(1, 1, int(RATE * seconds))
    with torch.inference_mode():
        model(x)
        best = min(_timed(model, x) for _ in range(3))
    return {"rtf": best / seconds, "n_floor": seconds / best}


def _timed(model: torch.nn.Module, x: torch.Tensor) -> float:
    t = time.perf_counter()
    model(x)
    return time.perf_counter() - t


async def _client(url: str, model: str, audio: np.ndarray, start: list[float], n_chunks: int,
                  lat: list[float], errors: list[str], opened: asyncio.Event,
                  go: asyncio.Event, stamps: list[tuple[float, float]] | None = None) -> None:
    """One live stream: open, wait for the common start, send on a real-time clock."""
    import websockets

    from streamwise.serve import wire

    try:
        ws = await websockets.connect(url, max_size=None, open_timeout=30, compression=None)
    except Exception as e:  # noqa: BLE001 - any failure is an error of this stream
        errors.append(f"connect: {e}")
        opened.set()
        return
    async with ws:
        await ws.send(json.dumps({"op": "open", "model": model}))
        r = json.loads(await ws.recv())
        opened.set()
        if r.get("op") != "opened":
            errors.append(f"open: {r.get('code')}")
            return
        await go.wait()
        sent: dict[int, float] = {}
        offset = random.randrange(0, audio.shape[-1] - CHUNK * n_chunks)

        async def reader() -> None:
            for _ in range(n_chunks):
                msg = await ws.recv()
                now = time.perf_counter()
                if isinstance(msg, str):
                    errors.append(json.loads(msg).get("code", "?"))
                    continue
                seq = wire.HEADER.unpack_from(msg)[3]
                lat.append(now - sent.pop(seq))
                if stamps is not None:
                    stamps.append((now, lat[-1]))
                if seq % 25 == 24:
                    await ws.send(json.dumps({"op": "ack", "ack": seq}))

        task = asyncio.create_task(reader())
        t0 = start[0] + random.random() * CHUNK / RATE  # streams are out of phase
        for seq in range(n_chunks):
            delay = t0 + seq * CHUNK / RATE - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            a = offset + seq * CHUNK
            sent[seq] = time.perf_counter()
            await ws.send(wire.encode(seq, audio[:, a : a + CHUNK]))
        try:
            await asyncio.wait_for(task, timeout=10)
        except TimeoutError:
            errors.append("timeout: outputs missing 10 s after the last chunk")
            task.cancel()
        await ws.send(json.dumps({"op": "close"}))
        try:
            while True:
                if isinstance(await asyncio.wait_for(ws.recv(), 10), bytes):
                    break
        except Exception:  # noqa: BLE001 - a missing tail is an error, not a crash
            errors.append("close: no tail")


async def _level(url: str, model: str, n: int, seconds: float, audio: np.ndarray,
                 stamps: list[tuple[float, float]] | None = None) -> dict[str, Any]:
    lat: list[float] = []
    errors: list[str] = []
    events = [asyncio.Event() for _ in range(n)]
    go = asyncio.Event()
    n_chunks = int(seconds * RATE / CHUNK)
    start = [0.0]
    tasks = []
    for i in range(n):  # open gradually: a burst of handshakes is not what is measured
        tasks.append(asyncio.create_task(_client(url, model, audio, start, n_chunks, lat, errors,
                                                 events[i], go, stamps)))
        if i % 20 == 19:
            await asyncio.sleep(0.05)
    await asyncio.gather(*(e.wait() for e in events))
    start[0] = time.perf_counter() + 0.2  # all streams share the start, each its own phase
    go.set()
    await asyncio.gather(*tasks)
    arr = np.asarray(lat) if lat else np.asarray([np.inf])
    return {"n": n, "chunks": len(lat), "expected": n * n_chunks,
            "p50_ms": float(np.percentile(arr, 50) * 1e3),
            "p99_ms": float(np.percentile(arr, 99) * 1e3),
            "errors": len(errors), "error_kinds": sorted(set(errors))[:5]}


def run_level(url: str, model: str, n: int, seconds: float, audio: np.ndarray,
              server: Server) -> dict[str, Any]:
    """One load level: N streams for ``seconds``; server CPU and memory alongside."""
    server.ps.cpu_percent()
    me = psutil.Process()
    me.cpu_percent()
    t = time.perf_counter()
    r = asyncio.run(_level(url, model, n, seconds, audio))
    r["wall_s"] = time.perf_counter() - t
    r["server_cpu_pct"] = server.ps.cpu_percent()
    r["client_cpu_pct"] = me.cpu_percent()
    r["server_rss_mb"] = server.rss_mb()
    r["held"] = (r["errors"] == 0 and r["chunks"] == r["expected"]
                 and r["p99_ms"] < P99_LIMIT * 1e3)
    return r


def _levels(n_floor: float) -> list[int]:
    fr = [0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    return sorted({max(1, round(f * n_floor)) for f in fr})


#: the second scheduler of each comparison: its result key and its ``serve`` flags
OTHER = {"batching": ("no_batching", ["--no-batching"]),
         "slo": ("slo_batching", ["--slo-batching"])}


def sweep(model: str, flags: list[str], levels: list[int], seconds: float,
          audio: np.ndarray, extra: list[str]) -> list[dict[str, Any]]:
    """Levels in increasing order; stops after the second level that is not held."""
    server = Server([*flags, *extra])
    label = " ".join(flags) or "batching"
    rows, failed = [], 0
    try:
        for n in tqdm(levels, desc=f"{model} {label}", unit="level", leave=False):
            r = run_level(server.url, model, n, seconds, audio, server)
            tqdm.write(f"  {model} {label} N={n}: p50 "
                       f"{r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, errors {r['errors']}, "
                       f"server CPU {r['server_cpu_pct']:.0f}%, client CPU "
                       f"{r['client_cpu_pct']:.0f}% -> {'held' if r['held'] else 'not held'}")
            rows.append(r)
            failed += not r["held"]
            time.sleep(2.5)  # let the server's 2 s load window forget this level
            if failed >= 2:
                break
    finally:
        server.stop()
    return rows


def held(rows: list[dict[str, Any]]) -> int:
    return max([r["n"] for r in rows if r["held"]], default=0)


def run_soak(model: str, n: int, minutes: float, audio: np.ndarray,
             extra: list[str]) -> dict[str, Any]:
    """The same ``n`` sessions stream for ``minutes``; server memory and CPU sampled every 10 s,
    latency percentiles per minute."""
    import threading

    server = Server(extra)
    samples: list[dict[str, float]] = []
    stop = threading.Event()
    t0 = time.monotonic()

    def sample() -> None:
        server.ps.cpu_percent()
        while not stop.wait(10.0):
            samples.append({"t_s": time.monotonic() - t0, "rss_mb": server.rss_mb(),
                            "cpu_pct": server.ps.cpu_percent()})

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stamps: list[tuple[float, float]] = []
    try:
        r = asyncio.run(_level(server.url, model, n, minutes * 60, audio, stamps=stamps))
    finally:
        stop.set()
        sampler.join()
        server.stop()
    start = min(t for t, _ in stamps) if stamps else 0.0
    per_min: list[dict[str, float]] = []
    for m in range(int(np.ceil(minutes))):
        lat = np.asarray([v for t, v in stamps if m * 60 <= t - start < (m + 1) * 60])
        if lat.size:
            per_min.append({"minute": m + 1, "chunks": int(lat.size),
                            "p50_ms": float(np.percentile(lat, 50) * 1e3),
                            "p99_ms": float(np.percentile(lat, 99) * 1e3)})
    rss = [x["rss_mb"] for x in samples] or [server.rss_mb()]
    return {"model": model, "n": n, "minutes": minutes, "chunks": r["chunks"],
            "expected": r["expected"], "errors": r["errors"], "error_kinds": r["error_kinds"],
            "p50_ms": r["p50_ms"], "p99_ms": r["p99_ms"], "per_minute": per_min,
            "samples": samples, "rss_first_mb": rss[0], "rss_last_mb": rss[-1],
            "rss_max_mb": max(rss),
            "p99_ms_max": max((x["p99_ms"] for x in per_min), default=float("nan"))}


def run_serve_bench(out_dir: str | Path = "bench-results", models: list[str] | None = None,
                    seconds: float = 8.0, soak: float = 0.0,
                    checkpoint_every: int = 1, soak_only: bool = False,
                    runtime: str = "torch", onnx_chunk: int | None = None,
                    kill_every: float = 0.0, soak_streams: int | None = None,
                    compare: str = "batching") -> dict[str, Any]:
    """The whole benchmark; writes ``serve.json`` and ``serve.png`` to ``out_dir``.

    ``compare``: the batched scheduler against no batching ('batching') or against SLO-aware
    batch sizes (``serve --slo-batching``, 'slo'), side by side in one run.

    ``runtime="onnx"``: the servers step sessions through onnxruntime (``serve --runtime
    onnx``), the models exported here once, with chunk ``onnx_chunk`` (default: the client
    chunk, 20 ms); N_floor stays the torch offline floor.

    ``soak_only``: skip the sweep and soak at 80% of the held load in ``out_dir/serve.json``
    (or at ``soak_streams``).  ``kill_every``: SIGKILL the soak's server once in every so many
    seconds (``bench/serve_soak.py``, written to ``serve-faults.json``/``.png``).
    """
    from streamwise.assets import speech

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    random.seed(0)
    gc.freeze()  # the load generator's own pauses would show up as server latency
    gc.set_threshold(50_000, 20, 20)
    clip, _ = speech()
    longest = max(seconds, soak * 60) + 2.0  # a client starts at a random offset
    reps = int(np.ceil(longest * RATE / clip.shape[-1])) + 1
    audio = np.tile(clip.numpy().astype(np.float32), (1, reps))
    extra = ["--checkpoint-every", str(checkpoint_every)]
    if runtime != "torch":
        from streamwise.serve.onnx_runtime import DEFAULT_CACHE, onnx_models
        from streamwise.serve.run import demo_models

        onnx_chunk = onnx_chunk or CHUNK
        onnx_models(demo_models(), DEFAULT_CACHE, chunk=onnx_chunk)  # servers find the cache
        extra += ["--runtime", runtime, "--onnx-chunk", str(onnx_chunk),
                  "--onnx-cache", str(DEFAULT_CACHE)]
    result: dict[str, Any] = {"chunk_ms": 1000 * CHUNK / RATE, "p99_limit_ms": P99_LIMIT * 1e3,
                              "checkpoint_every": checkpoint_every, "cpus": os.cpu_count(),
                              "runtime": runtime, "onnx_chunk": onnx_chunk, "models": {}}
    if soak_only and soak_streams is None:
        if not (out / "serve.json").exists():
            raise FileNotFoundError(f"--soak-only needs {out / 'serve.json'} (a sweep's held "
                                    "load) or --soak-streams N")
        result = json.loads((out / "serve.json").read_text())
    if compare not in OTHER:
        raise ValueError(f"compare must be one of {sorted(OTHER)}, got {compare!r}")
    key, flags = OTHER[compare]
    result["compare"] = key
    for name in [] if soak_only else models or ["tiny_vad", "denoiser"]:
        floor = compute_floor(name)
        levels = _levels(floor["n_floor"])
        on = sweep(name, [], levels, seconds, audio, extra)
        other = sweep(name, flags, levels, seconds, audio, extra)
        n_on, n_other = held(on), held(other)
        res: dict[str, Any] = {**floor, "levels": levels, "batching": on, key: other,
                               "held_batching": n_on, f"held_{key}": n_other,
                               "held_fraction_of_floor": n_on / floor["n_floor"],
                               "ratio": n_on / n_other if n_other else float("inf")}
        if key == "no_batching":
            res["batching_ratio"] = res["ratio"]
        result["models"][name] = res
        print(f"{name}: N_floor {floor['n_floor']:.0f}, held {n_on} with batching, "
              f"{n_other} with {key.replace('_', ' ')}")
    if not soak_only:
        write_report(out, "serve", result, lambda p: plot(result, p), table(result))
    if soak > 0:  # the sweep is already on disk if the soak is interrupted
        name = (models or ["tiny_vad"])[0]
        n = soak_streams or max(1, int(0.8 * result["models"][name]["held_batching"]))
        if kill_every > 0:
            from streamwise.bench.serve_soak import run_kill_soak

            return run_kill_soak(name, n, soak, kill_every, audio, extra, out)
        result["soak"] = run_soak(name, n, soak, audio, extra)
        write_report(out, "serve", result, lambda p: plot(result, p), table(result))
    return result


def table(result: dict[str, Any]) -> str:
    key = result.get("compare", "no_batching")
    lines = [f"| model | N_floor | held (batching) | held ({key.replace('_', ' ')}) | ratio | "
             "p50 / p99 ms at held, each |", "|---|---:|---:|---:|---:|---|"]

    def at_held(rows: list[dict[str, Any]], n: int) -> str:
        row = next((x for x in rows if x["n"] == n), None)
        return f"{row['p50_ms']:.1f} / {row['p99_ms']:.1f}" if row else "-"

    for name, r in result["models"].items():
        ratio = r.get("ratio", r.get("batching_ratio", float("nan")))
        lines.append(f"| {name} | {r['n_floor']:.0f} | {r['held_batching']} | "
                     f"{r[f'held_{key}']} | {ratio:.2f} | "
                     f"{at_held(r['batching'], r['held_batching'])}; "
                     f"{at_held(r[key], r[f'held_{key}'])} |")
    if "soak" in result:
        s = result["soak"]
        lines.append(f"\nsoak: {s['model']} x{s['n']} for {s['minutes']} min: {s['chunks']} of "
                     f"{s['expected']} chunks answered, {s['errors']} errors, server RSS "
                     f"{s['rss_first_mb']:.0f} -> {s['rss_last_mb']:.0f} MB (max "
                     f"{s['rss_max_mb']:.0f}), p99 {s['p99_ms']:.1f} ms overall, worst minute "
                     f"{s['p99_ms_max']:.1f} ms")
    return "\n".join(lines)


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = result["models"]
    ncol = len(models) + (1 if "soak" in result else 0)
    fig, axes = plt.subplots(1, ncol, figsize=(5.5 * ncol, 4.2), squeeze=False)
    other = result.get("compare", "no_batching")
    for ax, (name, r) in zip(axes[0], models.items()):
        for key, style in (("batching", "o-"), (other, "s--")):
            rows = r[key]
            ns = [x["n"] for x in rows]
            ax.plot(ns, [x["p99_ms"] for x in rows], style, label=f"p99, {key.replace('_', ' ')}")
            ax.plot(ns, [x["p50_ms"] for x in rows], style, alpha=0.4,
                    label=f"p50, {key.replace('_', ' ')}")
        ax.axhline(result["p99_limit_ms"], color="k", lw=0.8, ls=":")
        ax.axvline(r["n_floor"], color="r", lw=0.8, ls=":", label="N_floor (compute)")
        ax.set_yscale("log")
        ax.set_xlabel("concurrent real-time streams")
        ax.set_ylabel("end-to-end latency (ms)")
        ax.set_title(f"{name}: held {r['held_batching']} vs {r[f'held_{other}']} "
                     f"(N_floor {r['n_floor']:.0f})")
        ax.legend(fontsize=7)
    if "soak" in result:
        s, ax = result["soak"], axes[0][-1]
        ax.plot([x["t_s"] / 60 for x in s["samples"]], [x["rss_mb"] for x in s["samples"]],
                "o-", ms=3, label="server RSS (MB)")
        ax.set_ylim(0, max(x["rss_mb"] for x in s["samples"]) * 1.3 if s["samples"] else 1)
        ax2 = ax.twinx()
        ax2.plot([x["minute"] - 0.5 for x in s["per_minute"]],
                 [x["p99_ms"] for x in s["per_minute"]], "r.-", label="p99 ms per minute")
        ax2.set_ylim(0, max([x["p99_ms"] for x in s["per_minute"]] + [100]) * 1.2)
        ax.set_xlabel("minutes")
        ax.set_ylabel("server RSS (MB)")
        ax2.set_ylabel("p99 latency (ms)")
        ax.set_title(f"soak: {s['model']} x{s['n']}, {s['errors']} errors")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
