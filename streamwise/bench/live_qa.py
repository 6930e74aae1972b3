"""``streamwise bench live-qa``: SmolLM2-135M answers timestamped questions while it reads.

Pride and Prejudice is read aloud at ``rate`` words per second (``live/replay.py``'s clock, one
worker; reads of ``batch`` words) by ``live/lm_reader.py``'s ``LMReader``, and answers the
question set of ``live/questions.py`` (backward, real-time, forward and chained questions, answers
correct by construction) closed-set among the book's most frequent speakers or as a number.

1. **When to speak** (VideoLLM-online): the first ``fit_words`` are read once to fit a
   ``SpeakHead`` on the read's hidden states (label: a speaker attribution completes in the read),
   its threshold calibrated to ``false_alarm`` on the held-out later reads.  Reported: the
   false-alarm / miss / delay trade-off over thresholds (held-out reads), and on the questions,
   forward answers' delay after their evidence and guesses (answered before it).
2. **When to think** (AdaSR): notes written into the output segment never (``end``: think only
   when asked), every ``page`` input tokens (``every``), or when the head fires under a budget of
   note tokens per 1000 input tokens (``adaptive``); accuracy, delay and note tokens per policy.
3. References: the rule-based ``TextReader`` with full memory (the harness's ceiling) and with a
   window of ``input_window`` tokens' worth of words (a bounded context with no memory).

4. **Consolidation** (Flash-VStream, Compressive Transformer): the same reader with ``pool``:
   what leaves the input window is averaged ``rate`` tokens at a time into ``slots`` memory
   entries (``attention/cache/compress.py``) that questions still attend to; and with answers
   calibrated against the question asked without the stream (``choose``'s ``prior``).

Questions are asked from word ``fit_words`` to ``fit_words + eval_words`` (the head never saw
them).  The rule-based readers read from word 0, so counts are over the whole stream; the LM
readers join ``warm_words`` before the first question (their memory, at most ``input_window``
tokens plus the pool's ``rate * slots``, reaches less far back), on the same clock.  Writes
``live_qa`` JSON + PNG.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from streamwise.bench.report import write_report

KINDS = ("speaker_last", "mentions", "chapter", "speaker_next", "chain", "all")


def constant_baseline(qs: list[Any]) -> dict[str, float]:
    """Accuracy of answering every question of a kind with that kind's most frequent answer,
    picked with hindsight (what a system that ignores the stream can reach at best)."""
    out: dict[str, float] = {}
    for kind in {q.kind for q in qs}:
        answers = Counter(q.answer for q in qs if q.kind == kind)
        out[kind] = answers.most_common(1)[0][1] / sum(answers.values())
    hits = sum(out[q.kind] for q in qs)  # each question counts its kind's share
    out["all"] = hits / max(len(qs), 1)
    return out


def run(out: Path, gguf: str | None = None, fit_words: int = 12000, eval_words: int = 4000,
        every: int = 100, rate: float = 2.5, batch: int = 16, false_alarm: float = 0.05,
        budgets: tuple[float, ...] = (30.0,), think_tokens: int = 8, page: int = 256,
        input_window: int = 480, names: int = 12, threads: int = 2, progress: bool = True,
        warm_words: int = 1000, pool: tuple[int, int] = (8, 64),
        model: Any = None, tokenizer: Any = None) -> dict[str, Any]:
    """The benchmark (see the module); ``model`` / ``tokenizer`` replace SmolLM2 (tests)."""
    from streamwise.core.data_paths import shared_data
    from streamwise.hf.gguf import find_smollm2, load_gguf
    from streamwise.live.lm_reader import LMReader, Think
    from streamwise.live.questions import load_book, questions
    from streamwise.live.reader import TextReader
    from streamwise.live.replay import replay, score
    from streamwise.live.speak import SpeakHead, read_labels, trade_off

    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(threads)
    label = f"given ({type(model).__name__})" if model is not None else "SmolLM2-135M (GGUF)"
    if model is None:
        model, tokenizer = load_gguf(Path(gguf) if gguf else find_smollm2())
    tok = tokenizer
    book = load_book(shared_data() / "text" / "pride_and_prejudice.txt")
    end = fit_words + eval_words
    cast = [s for s, _ in Counter(s for _, s in book.speeches).most_common(names)]
    qs = questions(book, every=every, start=fit_words, end=end)
    events = [at for at, _ in book.speeches]

    # 1. fit the speak head on the first fit_words
    fitter = LMReader(model, tok, cast, input_window=input_window, record=True)
    for i in tqdm(range(0, fit_words, batch), desc="fit the speak head", disable=not progress):
        fitter.read(book.words[i:i + batch])
    labels = read_labels(events, fitter.bounds)
    feats = np.stack(fitter.trace)
    head = SpeakHead(false_alarm=false_alarm).fit(feats, labels)
    cut = head.info["fit_steps"]
    sweep = trade_off(head.prob(feats[cut:]), labels[cut:],
                      sorted({*np.linspace(0.05, 0.95, 19).round(2).tolist(), head.threshold}))
    lm_start = max(0, fit_words - warm_words)
    result: dict[str, Any] = {
        "model": label, "threads": threads, "rate_words_s": rate,
        "batch_words": batch, "fit_words": fit_words, "eval_words": eval_words,
        "questions": len(qs), "cast": cast, "head": head.info, "head_trade_off": sweep,
        "read_s": batch / rate, "lm_start_word": lm_start, "pool": list(pool),
        "policies": [], "constant_baseline": constant_baseline(qs)}

    def add(name: str, system: Any, think: Any = None) -> None:
        start = lm_start if isinstance(system, LMReader) else 0
        r = replay(book.words[:end], qs, system, rate=rate, batch=batch, start=start)
        s = score(qs, r, rate)
        row: dict[str, Any] = {"policy": name, "score": s}
        if isinstance(system, LMReader):
            row["note_tokens"] = system.note_tokens
            row["notes_per_1000_input"] = 1000 * system.note_tokens / max(system.input_tokens, 1)
            row["notes_sample"] = "".join(system.notes)[-300:]
            if system.trace:  # the head on the evaluated reads, at its calibrated threshold
                ev = np.stack(system.trace)
                bounds = [(a + start, b + start) for a, b in system.bounds]  # stream's words
                lab = read_labels(events, bounds)
                first = next(i for i, (a, _) in enumerate(bounds) if a >= fit_words)
                row["head_on_eval"] = trade_off(head.prob(ev[first:]), lab[first:],
                                                [head.threshold])[0]
        result["policies"].append(row)

    runs: list[tuple[str, Any]] = [
        ("rules, full memory", lambda: TextReader()),
        ("rules, window", lambda: TextReader(window=int(input_window * 0.75))),
        ("LM, no head (forward guessed)", lambda: LMReader(model, tok, cast,
                                                           input_window=input_window)),
        ("LM, think at end", lambda: LMReader(model, tok, cast, input_window=input_window,
                                              head=head, record=True)),
        ("LM, questions at the output offset", lambda: LMReader(
            model, tok, cast, input_window=input_window, head=head, ask_segment="output")),
        (f"LM, think every {page} tokens", lambda: LMReader(
            model, tok, cast, input_window=input_window, head=head,
            think=Think("every", tokens=think_tokens, page=page))),
        (f"LM, pooled memory {pool[0]}x{pool[1]}", lambda: LMReader(
            model, tok, cast, input_window=input_window, head=head, pool=pool)),
        ("LM, pooled + calibrated", lambda: LMReader(
            model, tok, cast, input_window=input_window, head=head, pool=pool,
            calibrate=True))]
    for b in budgets:
        runs.append((f"LM, adaptive {b:g}/1000", lambda b=b: LMReader(
            model, tok, cast, input_window=input_window, head=head,
            think=Think("adaptive", tokens=think_tokens, budget=b))))
    for name, make in tqdm(runs, desc="policies", disable=not progress):
        add(name, make())

    nan = {"accuracy": float("nan"), "delay_s_p50": float("nan"), "guesses": 0}

    def plot(path: Path) -> None:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(1, 3, figsize=(16, 4.5))
        fa = [r["false_alarms_per_1000"] for r in sweep]
        ax[0].plot(fa, [r["miss_rate"] for r in sweep], "o-", label="miss rate")
        ax0 = ax[0].twinx()
        ax0.plot(fa, [r["delay_steps_mean"] * batch / rate for r in sweep], "s--", color="C1",
                 label="delay (s)")
        ax0.set_ylabel("mean delay after the attribution (s)")
        ax[0].axvline(1000 * head.info["held_out_false_alarm"], color="grey", ls=":")
        ax[0].set(xlabel="false alarms per 1000 silent reads", ylabel="miss rate",
                  title="when to speak: threshold sweep (held-out reads)")
        lm = [p for p in result["policies"] if p["policy"].startswith("LM")]
        for p in lm:
            ax[1].scatter(p.get("notes_per_1000_input", 0.0), p["score"]["all"]["accuracy"],
                          s=40 + 400 * p["score"]["ingestion"]["busy_fraction"])
            ax[1].annotate(p["policy"][4:], (p.get("notes_per_1000_input", 0.0),
                                              p["score"]["all"]["accuracy"]), fontsize=7)
        ax[1].set(xlabel="note tokens per 1000 input tokens", ylabel="accuracy (all questions)",
                  title="when to think (marker size: busy fraction)")
        width = 0.8 / len(result["policies"])
        for i, p in enumerate(result["policies"]):
            ax[2].bar(np.arange(len(KINDS)) + i * width, [p["score"].get(k, nan)["accuracy"]
                                                          for k in KINDS], width,
                      label=p["policy"])
        ax[2].set_xticks(np.arange(len(KINDS)) + 0.4, KINDS, rotation=20, fontsize=8)
        ax[2].set(ylabel="accuracy", title="per question kind")
        ax[2].legend(fontsize=6)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)

    rows = ["| system | all | last speaker | mentions | chapter | next speaker (delay p50 s, "
            "guesses) | chain | note tok / 1000 | busy |", "|---|" + "---:|" * 8]
    for p in result["policies"]:
        s = {k: p["score"].get(k, nan) for k in KINDS} | {"ingestion": p["score"]["ingestion"]}
        nxt = s["speaker_next"]
        rows.append(f"| {p['policy']} | {s['all']['accuracy']:.2f} | "
                    f"{s['speaker_last']['accuracy']:.2f} | {s['mentions']['accuracy']:.2f} | "
                    f"{s['chapter']['accuracy']:.2f} | {nxt['accuracy']:.2f} "
                    f"({nxt['delay_s_p50']:.1f}, {nxt['guesses']}) | {s['chain']['accuracy']:.2f}"
                    f" | {p.get('notes_per_1000_input', 0.0):.0f} | "
                    f"{s['ingestion']['busy_fraction']:.2f} |")
    base = result["constant_baseline"]
    rows.append("| best constant answer per kind (hindsight) | "
                + " | ".join(f"{base[k]:.2f}" for k in ("all", "speaker_last", "mentions",
                                                         "chapter", "speaker_next", "chain"))
                + " | - | - |")
    info = head.info
    rows.append(f"\nspeak head: held-out false alarms {info['held_out_false_alarm']:.3f} "
                f"(target {false_alarm}), recall {info['held_out_recall']:.2f}")
    write_report(out, "live_qa", result, plot, "\n".join(rows))
    return result
