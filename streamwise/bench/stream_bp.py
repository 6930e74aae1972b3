"""StreamBP against plain backpropagation and gradient checkpointing, on a small Llama trained
here on the shipped tinyshakespeare (characters as tokens).

For each method and each sequence length (doubling), one forward + backward of the mean
next-character loss runs in a fresh process on one thread; its peak resident memory above what
the process held before (the model loaded, one short warm-up step done; the kernel's peak-RSS
count is reset just before the step) and its wall time are recorded, and the method stops at the
first length over ``budget`` MiB.  "Longest that fits" is the last length under the budget.
Every method's loss at a length is printed next to the others (they compute the same gradient;
the tests check it to 1e-10 in float64).  Writes ``stream_bp.json`` and ``stream_bp.png``.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

METHODS = ("backprop", "checkpointing", "stream_bp")


def _text() -> str:
    from streamwise.core.data_paths import shared_data

    path = shared_data() / "text" / "tinyshakespeare.txt"
    if not path.exists():
        raise FileNotFoundError(f"expected the shipped text at {path}")
    return path.read_text()


def _encode(text: str, vocab: list[str]) -> Any:
    import torch

    index = {c: i for i, c in enumerate(vocab)}
    return torch.tensor([index[c] for c in text], dtype=torch.long)


def train_model(folder: Path, steps: int = 200, length: int = 256, batch: int = 16,
                hidden: int = 64, layers: int = 4, progress: bool = True) -> dict[str, Any]:
    """A character-level Llama trained on 90% of tinyshakespeare; saved to ``folder``."""
    import torch
    from tqdm import tqdm
    from transformers import LlamaConfig, LlamaForCausalLM

    text = _text()
    vocab = sorted(set(text))
    data = _encode(text, vocab)
    cut = int(0.9 * len(data))
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(vocab), hidden_size=hidden, intermediate_size=4 * hidden,
                      num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                      max_position_embeddings=1 << 17)
    model = LlamaForCausalLM(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    losses = []
    for _ in tqdm(range(steps), desc="train on tinyshakespeare", disable=not progress):
        start = torch.randint(0, cut - length - 1, (batch,), generator=gen)
        x = torch.stack([data[s:s + length] for s in start.tolist()])
        loss = model(input_ids=x, labels=x).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    model.eval()
    with torch.no_grad():
        val = data[cut:cut + 8 * length].view(8, length)
        val_loss = float(model(input_ids=val, labels=val).loss)
    model.save_pretrained(folder)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    return {"steps": steps, "parameters": sum(p.numel() for p in model.parameters()),
            "train_loss_last_20": sum(losses[-20:]) / 20, "val_loss": val_loss,
            "config": {"hidden": hidden, "layers": layers, "heads": 4, "kv_heads": 2,
                       "vocab": len(vocab)}}


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def _reset_peak() -> None:
    """Restart the kernel's peak-RSS count (VmHWM) from the current RSS (Linux)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def _peak() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def _worker(folder: str, method: str, length: int, chunk: int) -> dict[str, Any]:
    import torch
    from transformers import LlamaForCausalLM

    from streamwise.train import stream_backward

    torch.set_num_threads(1)
    model = LlamaForCausalLM.from_pretrained(folder)
    vocab = json.loads((Path(folder) / "vocab.json").read_text())
    text = _text()
    x = _encode(text[len(text) - length:], vocab)[None]  # the held-out end of the text

    def step(tokens: Any) -> float:
        model.zero_grad(set_to_none=True)
        if method == "stream_bp":
            model.eval()
            return float(stream_backward(model, tokens, chunk))
        if method == "checkpointing":
            model.gradient_checkpointing_enable()
            model.train()  # transformers checkpoints only in training mode (no dropout here)
        loss = model(input_ids=tokens, labels=tokens, use_cache=False).loss
        loss.backward()
        return float(loss.detach())

    step(x[:, :64])  # warm-up: lazy allocations, threads
    model.zero_grad(set_to_none=True)
    before = _rss()
    _reset_peak()
    start = time.perf_counter()
    loss = step(x)
    seconds = time.perf_counter() - start
    peak = _peak()
    return {"method": method, "length": length, "chunk": chunk, "loss": loss,
            "seconds": seconds, "peak_mib": max(0, peak - before) / 2**20}


def measure(folder: Path, method: str, length: int, chunk: int) -> dict[str, Any]:
    """One forward + backward in a fresh process (so the peak is this step's alone)."""
    cmd = [sys.executable, "-m", "streamwise.bench.stream_bp", str(folder), method,
           str(length), str(chunk)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode:
        raise RuntimeError(f"{method} at {length} tokens failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(out: Path, budget: float = 256.0, start: int = 1024, longest: int = 32768,
        chunk: int = 64, steps: int = 200, progress: bool = True) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="stream-bp-") as tmp:
        folder = Path(tmp)
        model = train_model(folder, steps=steps, progress=progress)
        print(f"trained: {model['parameters']:,} parameters, validation loss "
              f"{model['val_loss']:.3f} nats/char")
        rows: dict[str, list[dict[str, Any]]] = {m: [] for m in METHODS}
        for method in METHODS:
            length = start
            while length <= longest:
                r = measure(folder, method, length, chunk)
                rows[method].append(r)
                print(f"{method:>14} {length:>7} tokens: peak {r['peak_mib']:8.1f} MiB, "
                      f"{r['seconds']:7.2f} s, loss {r['loss']:.6f}", flush=True)
                if r["peak_mib"] > budget:
                    break
                length *= 2
    fits = {m: max([r["length"] for r in rs if r["peak_mib"] <= budget], default=0)
            for m, rs in rows.items()}
    result = {"model": model, "budget_mib": budget, "chunk": chunk, "rows": rows,
              "longest_within_budget": fits,
              "capped_at": longest, "threads": 1}
    (out / "stream_bp.json").write_text(json.dumps(result, indent=1))
    _plot(result, out / "stream_bp.png")
    for m in METHODS:
        capped = " (the longest tried)" if fits[m] == longest else ""
        print(f"{m:>14}: longest within {budget:g} MiB: {fits[m]:,} tokens{capped}")
    print(f"wrote {out / 'stream_bp.json'}, stream_bp.png")
    return result


def _plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for m, rs in result["rows"].items():
        n = [r["length"] for r in rs]
        axes[0].plot(n, [r["peak_mib"] for r in rs], marker="o", label=m)
        axes[1].plot(n, [r["seconds"] for r in rs], marker="o", label=m)
    axes[0].axhline(result["budget_mib"], color="k", ls="--", lw=1, label="budget")
    axes[0].set_ylabel("peak memory above the loaded model (MiB)")
    axes[1].set_ylabel("forward + backward (s, 1 thread)")
    for ax in axes:
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("sequence length (tokens)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"one gradient of a {result['model']['parameters']:,}-parameter Llama on "
                 f"tinyshakespeare; StreamBP chunk {result['chunk']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    print(json.dumps(_worker(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))))
