"""``streamwise rl compare``: the stream barrier, shown.

The same streaming agent (one sample at a time, eligibility traces, no replay, no batches) learns
with ObGD, with plain SGD on the traces and with Adam on the traces.  Step sizes of the baselines
are tuned first by a small sweep on one seed (the best mean return over the last 20 episodes),
then every optimizer runs on several seeds.  JSON + PNG of the learning curves.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from streamwise.learn.streamx.train import plot_curves, train

SWEEP = {"sgd": (1e-2, 1e-3, 1e-4), "adam": (1e-3, 1e-4, 1e-5)}


def tune(agent: str, env: str, steps: int, progress: bool = True) -> dict[str, float]:
    """Best step size per baseline optimizer, by final return on seed 0 (a short run)."""
    best: dict[str, float] = {"obgd": 1.0}
    for opt, lrs in SWEEP.items():
        scores = {}
        for lr in tqdm(lrs, desc=f"tune {opt}", disable=not progress):
            r = train(agent, env, steps, seed=0, optimizer=opt, lr=lr, progress=False)
            scores[lr] = -np.inf if r["diverged"] else r["final_mean_return"]
        best[opt] = max(scores, key=lambda k: scores[k])
    return best


def compare(agent: str = "stream-q", env: str = "CartPole-v1", steps: int = 100_000,
            seeds: int = 5, tune_steps: int = 30_000, out_dir: str | Path = "bench-results",
            target: float | None = 450.0, progress: bool = True) -> dict[str, Any]:
    """Tune, run every optimizer on ``seeds`` seeds, write ``rl_<env>.json`` and ``.png``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    lrs = tune(agent, env, tune_steps, progress)
    runs = []
    jobs = [(opt, s) for opt in ("obgd", "sgd", "adam") for s in range(seeds)]
    for opt, seed in tqdm(jobs, desc=f"{agent} {env}", disable=not progress):
        runs.append(train(agent, env, steps, seed, opt, lrs[opt], progress=False))
    summary = {}
    for opt in ("obgd", "sgd", "adam"):
        rs = [r for r in runs if r["optimizer"] == opt]
        finals = [r["final_mean_return"] for r in rs]
        summary[opt] = {
            "lr": lrs[opt],
            "final_mean_return_per_seed": finals,
            "seeds_reaching_target": None if target is None else
            int(sum(f >= target for f in finals if np.isfinite(f))),
            "diverged": int(sum(r["diverged"] for r in rs)),
            "steps_per_second": float(np.mean([r["steps_per_second"] for r in rs])),
        }
    result = {"agent": agent, "env": env, "steps": steps, "seeds": seeds, "target": target,
              "tuned_lr": lrs, "summary": summary, "runs": runs}
    stem = f"rl_{env.replace('/', '_')}"
    (out / f"{stem}.json").write_text(json.dumps(result))
    plot_curves(runs, out / f"{stem}.png", f"{agent} on {env}: {seeds} seeds per optimizer")
    print(format_rl_table(result))
    return result


def format_rl_table(result: dict[str, Any]) -> str:
    lines = [f"{result['agent']} on {result['env']}, {result['steps']:,} steps, "
             f"{result['seeds']} seeds (mean return of the last 20 episodes):", "",
             "| optimizer | step size | final return per seed | seeds >= target | diverged | "
             "steps/s |", "|---|---:|---|---:|---:|---:|"]
    for opt, s in result["summary"].items():
        finals = ", ".join("nan" if not np.isfinite(f) else f"{f:.0f}"
                           for f in s["final_mean_return_per_seed"])
        reached = "-" if s["seeds_reaching_target"] is None else s["seeds_reaching_target"]
        lines.append(f"| {opt} | {s['lr']:g} | {finals} | {reached} | "
                     f"{s['diverged']} | {s['steps_per_second']:.0f} |")
    return "\n".join(lines)
