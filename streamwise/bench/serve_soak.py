"""``streamwise bench serve --soak M --kill-every S``: the soak, with the server SIGKILLed.

N real-time tiny_vad streams (default: 80% of the load held in ``OUT/serve.json``) run for M
minutes against a durable SQLite store; once in every S seconds, at a random moment, the server
is SIGKILLed and restarted on the same port and store, as a supervisor would.  Every client
resumes (``bench/faults.py``).  Reported, as JSON and a PNG (``OUT/serve-faults.*``): chunks
answered, re-delivered (below the acknowledgement, allowed), duplicates and losses (both must be
0), streams exact against the offline ``forward``, and per minute the chunks answered, p99 of
the outputs that came live and of all of them (those recovered by a resume wait for the restart),
and the server's RSS.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from streamwise.bench.faults import check_exact, run_with_kills
from streamwise.bench.report import write_report
from streamwise.bench.serve_server import CHUNK, RATE, Server

RECOVERY_S = 10.0  # after a restart, this long counts as recovery (not steady state)
DISTINCT = 8  # streams start at one of this many offsets into the speech (offline refs cached)


def run_kill_soak(model: str, n: int, minutes: float, kill_every_s: float, audio: np.ndarray,
                  extra: list[str], out: Path, seed: int = 0) -> dict[str, Any]:
    from streamwise.serve.run import demo_models

    rng = random.Random(seed)
    n_chunks = int(minutes * 60 * RATE / CHUNK)
    offsets = [(i % DISTINCT) * 12 * CHUNK for i in range(n)]
    if audio.shape[-1] < max(offsets) + n_chunks * CHUNK:
        raise ValueError("the audio is shorter than the soak")
    inputs = [[audio[:, o + k * CHUNK : o + (k + 1) * CHUNK] for k in range(n_chunks)]
              for o in offsets]
    span = minutes * 60
    kills = [k * kill_every_s + rng.uniform(0.1, 0.9) * kill_every_s
             for k in range(int(span // kill_every_s))]
    server = Server(extra)
    samples: list[dict[str, float]] = []
    stop = threading.Event()
    t_start = time.monotonic()
    bar = tqdm(total=int(span), desc=f"soak {model} x{n}, SIGKILL every {kill_every_s:g} s",
               unit="s")

    def sample() -> None:
        while not stop.wait(10.0):
            samples.append({"t_s": time.monotonic() - t_start, "rss_mb": server.rss_mb()})
            bar.update(min(10, int(span) - bar.n))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        run = asyncio.run(run_with_kills(server, server.url, model, inputs, kills,
                                         period_s=CHUNK / RATE, ack_every=25, give_up_s=120,
                                         on_kill=lambda i: tqdm.write(f"  kill {i + 1} done")))
    finally:
        stop.set()
        sampler.join()
        bar.close()
        server.stop()
    net = demo_models()[model]
    refs: dict[int, np.ndarray] = {}

    def offline(x: np.ndarray) -> np.ndarray:
        key = hash(x[:, :4096].tobytes())
        if key not in refs:
            with torch.inference_mode():
                refs[key] = net(torch.from_numpy(x)[None])[0].numpy()
        return refs[key]

    inexact = check_exact(run, inputs, offline)
    totals = run.totals()
    result: dict[str, Any] = {"model": model, "n": n, "minutes": minutes,
                              "kill_every_s": kill_every_s, "extra": extra, **totals,
                              "exact_streams": n - inexact, "inexact_streams": inexact,
                              "kill_at_s": [k - run.t0 for k in run.kills],
                              "restart_s": run.restarts_s,
                              "per_minute": per_minute(run, samples), "samples": samples}
    write_report(out, "serve-faults", result, lambda p: plot(result, p), table(result))
    return result


def per_minute(run: Any, samples: list[dict[str, float]]) -> list[dict[str, Any]]:
    """Chunks answered, re-delivered, p99 (live outputs; all outputs) and RSS, per minute."""
    stamps = [(t - run.t0, lat, live) for log in run.ledgers for t, lat, live in log.stamps]
    again = [t - run.t0 for log in run.ledgers for t in log.redelivered_at]
    kills = [k - run.t0 for k in run.kills]
    back = np.asarray([k + r for k, r in zip(kills, run.restarts_s)])  # restarted at

    def steady(t: float) -> bool:  # outside the RECOVERY_S after each restart (and outages)
        since = t - back[back <= t]
        return not any(k <= t for k in kills[len(since):]) and not (since < RECOVERY_S).any()

    last = max([t for t, _, _ in stamps] + [0.0])
    rows = []
    for m in range(int(last // 60) + 1):
        lo, hi = m * 60, (m + 1) * 60
        lat = np.asarray([x for t, x, _ in stamps if lo <= t < hi])
        live = np.asarray([x for t, x, ok in stamps if lo <= t < hi and ok])
        calm = np.asarray([x for t, x, ok in stamps if lo <= t < hi and ok and steady(t)])
        rss = [s["rss_mb"] for s in samples if lo <= s["t_s"] < hi and s["rss_mb"] == s["rss_mb"]]
        rows.append({"minute": m + 1, "answered": int(lat.size),
                     "redelivered": sum(lo <= t < hi for t in again),
                     "kills": sum(lo <= t < hi for t in kills),
                     "p99_ms": float(np.percentile(lat, 99) * 1e3) if lat.size else None,
                     "p99_live_ms": float(np.percentile(live, 99) * 1e3) if live.size else None,
                     "p99_steady_ms": (float(np.percentile(calm, 99) * 1e3) if calm.size
                                       else None),
                     "p50_live_ms": float(np.percentile(live, 50) * 1e3) if live.size else None,
                     "rss_mb": max(rss) if rss else None})
    return rows


def table(r: dict[str, Any]) -> str:
    lines = [f"soak with SIGKILLs: {r['model']} x{r['n']} for {r['minutes']} min, "
             f"{r['kills']} kills (restart max {max(r['restart_s'], default=0):.1f} s): "
             f"{r['answered']} of {r['chunks']} chunks answered, {r['redelivered']} re-delivered, "
             f"{r['duplicates']} duplicates, {r['lost']} lost, {r['mismatched']} mismatched, "
             f"{r['exact_streams']}/{r['n']} streams exact, {r['errors']} errors",
             "| minute | kills | answered | re-delivered | p50 / p99 live (ms) | p99 all (ms) | "
             f"p99 > {RECOVERY_S:.0f} s after a restart (ms) | RSS (MB) |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|"]

    def f(x: float | None) -> str:
        return "-" if x is None else f"{x:.0f}"

    for m in r["per_minute"]:
        lines.append(f"| {m['minute']} | {m['kills']} | {m['answered']} | {m['redelivered']} | "
                     f"{f(m['p50_live_ms'])} / {f(m['p99_live_ms'])} | {f(m['p99_ms'])} | "
                     f"{f(m['p99_steady_ms'])} | {f(m['rss_mb'])} |")
    return "\n".join(lines)


def plot(r: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.2))
    pm = r["per_minute"]
    x = [m["minute"] - 0.5 for m in pm]
    a.plot(x, [m["p99_live_ms"] for m in pm], "o-", label="p99, outputs that came live")
    a.plot(x, [m["p99_ms"] for m in pm], "s--", label="p99, all (incl. recovered by resume)")
    a.plot(x, [m["p99_steady_ms"] for m in pm], "^-",
           label=f"p99, more than {RECOVERY_S:.0f} s after a restart")
    a.plot(x, [m["p50_live_ms"] for m in pm], ".:", label="p50, live")
    for k in r["kill_at_s"]:
        a.axvline(k / 60, color="r", lw=0.6, alpha=0.5)
    a.set_yscale("log")
    a.set_xlabel("minutes (red: SIGKILL)")
    a.set_ylabel("end-to-end latency (ms)")
    a.set_title(f"{r['model']} x{r['n']}: {r['duplicates']} duplicates, {r['lost']} lost, "
                f"{r['exact_streams']}/{r['n']} exact")
    a.legend(fontsize=8)
    b.bar(x, [m["answered"] for m in pm], width=0.8, alpha=0.5, label="answered")
    for xi, m in zip(x, pm):
        if m["redelivered"]:
            b.annotate(f"{m['redelivered']}", (xi, m["answered"]), ha="center", va="bottom",
                       fontsize=7, color="r")
    b.set_xlabel("minutes")
    b.set_ylabel("outputs per minute (red: re-delivered)")
    b.legend(fontsize=8, loc="lower left")
    b2 = b.twinx()
    b2.plot([s["t_s"] / 60 for s in r["samples"]], [s["rss_mb"] for s in r["samples"]], "k.-",
            ms=3, label="server RSS (a dip: a fresh process after a kill)")
    b2.legend(fontsize=8, loc="lower right")
    b2.set_ylabel("server RSS (MB)")
    b2.set_ylim(0, max([s["rss_mb"] for s in r["samples"] if s["rss_mb"] == s["rss_mb"]]
                       + [1]) * 1.3)
    b.set_title(f"{r['answered']} answered, {r['redelivered']} re-delivered, "
                f"{r['kills']} SIGKILLs")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
