"""CTC decoding and word error rate.

Greedy CTC: the best label per frame, repeats merged, blanks (label 0) dropped.  Streamed, the
merge needs one label of memory: the last frame's best label, so a word split across two chunks
is not counted twice.  Word error rate is the Levenshtein distance over words divided by the
reference length.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor


def best_labels(logp: Tensor) -> Tensor:
    """``[V, T]`` (or ``[B, V, T]``) log-probabilities -> the best label per frame."""
    return logp.argmax(dim=-2)


def collapse(frames: Sequence[int], previous: int = 0) -> list[int]:
    """Per-frame labels -> CTC output: repeats merged, blanks dropped (``previous``: the label of
    the frame before ``frames``, for streams)."""
    out = []
    for lab in frames:
        if lab != previous and lab != 0:
            out.append(int(lab))
        previous = int(lab)
    return out


def greedy(logp: Tensor) -> list[int]:
    """Greedy CTC decoding of one utterance ``[V, T]``."""
    return collapse(best_labels(logp).tolist())


def greedy_with_frames(logp: Tensor) -> list[tuple[int, int]]:
    """Greedy CTC as ``(label, frame)``: each label with the frame where it first appears."""
    frames = best_labels(logp).tolist()
    out, previous = [], 0
    for t, lab in enumerate(frames):
        if lab != previous and lab != 0:
            out.append((int(lab), t))
        previous = lab
    return out


def edit_distance(ref: Sequence[object], hyp: Sequence[object]) -> int:
    """Levenshtein distance (substitutions, insertions, deletions all cost 1)."""
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1]


def matches(ref: Sequence[object], hyp: Sequence[object]) -> list[tuple[int, int]]:
    """Index pairs ``(i, j)`` with ``ref[i] == hyp[j]`` on one minimum-edit alignment."""
    n, m = len(ref), len(hyp)
    d = [[i + j if i == 0 or j == 0 else 0 for j in range(m + 1)] for i in range(n + 1)]
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1,
                          d[i - 1][j - 1] + (ref[i - 1] != hyp[j - 1]))
    out, i, j = [], n, m
    while i and j:
        if ref[i - 1] == hyp[j - 1] and d[i][j] == d[i - 1][j - 1]:
            out.append((i - 1, j - 1))
            i, j = i - 1, j - 1
        elif d[i][j] == d[i - 1][j - 1] + 1:
            i, j = i - 1, j - 1
        elif d[i][j] == d[i - 1][j] + 1:
            i -= 1
        else:
            j -= 1
    return out[::-1]


def word_error_rate(refs: Sequence[str], hyps: Sequence[str]) -> float:
    """Total word edits over total reference words (0.0 for an empty reference set)."""
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses")
    words = sum(len(r.split()) for r in refs)
    edits = sum(edit_distance(r.split(), h.split()) for r, h in zip(refs, hyps))
    return edits / words if words else 0.0


def words_right(refs: Sequence[str], hyps: Sequence[str]) -> int:
    """Reference words minus word edits, summed over the pairs: the words recognised right."""
    return sum(len(r.split()) - edit_distance(r.split(), h.split()) for r, h in zip(refs, hyps))


def frames_for(samples: int, n_fft: int = 400, hop: int = 160, subsample: int = 4) -> int:
    """Label frames the recogniser emits for ``samples`` of audio (no centre padding; each
    stride-2 causal convolution keeps ``ceil(n / 2)``)."""
    n = 0 if samples < n_fft else (samples - n_fft) // hop + 1
    while subsample > 1:
        n, subsample = -(-n // 2), subsample // 2
    return n


def batch_greedy(logp: Tensor, lengths: Sequence[int] | None = None) -> list[list[int]]:
    """Greedy CTC for each row of ``[B, V, T]`` (``lengths``: valid frames per row)."""
    best = best_labels(logp)
    lengths = [best.shape[-1]] * best.shape[0] if lengths is None else lengths
    return [collapse(best[i, :n].tolist()) for i, n in enumerate(lengths)]


__all__ = ["batch_greedy", "best_labels", "collapse", "edit_distance", "frames_for", "greedy",
           "greedy_with_frames", "matches", "word_error_rate", "words_right"]
