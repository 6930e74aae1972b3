"""CTC decoding and word error rate against cases worked by hand."""

import torch
from hypothesis import given
from hypothesis import strategies as st

from streamwise.speech.ctc import (
    collapse,
    edit_distance,
    greedy,
    greedy_with_frames,
    matches,
    word_error_rate,
)


def test_collapse_merges_repeats_and_drops_blanks():
    assert collapse([0, 3, 3, 0, 3, 5, 5, 0]) == [3, 3, 5]
    assert collapse([3, 3, 0], previous=3) == []  # the word began in the previous chunk


@given(st.lists(st.integers(0, 4), max_size=30), st.integers(0, 30))
def test_streamed_collapse_equals_whole(frames, cut):
    cut = min(cut, len(frames))
    first = collapse(frames[:cut])
    rest = collapse(frames[cut:], previous=frames[cut - 1] if cut else 0)
    assert first + rest == collapse(frames)


def test_greedy_reads_the_best_label_per_frame():
    logp = torch.full((4, 6), -10.0)
    for t, lab in enumerate([0, 2, 2, 0, 1, 1]):
        logp[lab, t] = 0.0
    assert greedy(logp) == [2, 1]
    assert greedy_with_frames(logp) == [(2, 1), (1, 4)]


def test_edit_distance_and_wer():
    assert edit_distance(["a", "b", "c"], ["a", "x", "c", "d"]) == 2
    assert edit_distance([], ["a", "b"]) == 2
    assert word_error_rate(["one two", "three"], ["one two", "four five"]) == 2 / 3
    assert word_error_rate([], []) == 0.0


@given(st.lists(st.sampled_from("abc"), max_size=8), st.lists(st.sampled_from("abc"), max_size=8))
def test_matches_are_an_optimal_alignment(ref, hyp):
    pairs = matches(ref, hyp)
    assert all(ref[i] == hyp[j] for i, j in pairs)
    assert [i for i, _ in pairs] == sorted({i for i, _ in pairs})  # increasing, no repeats
    assert [j for _, j in pairs] == sorted({j for _, j in pairs})
    # the alignment the pairs define (between matches: substitutions, then insertions or
    # deletions) costs exactly the edit distance
    cost, pi, pj = 0, -1, -1
    for i, j in [*pairs, (len(ref), len(hyp))]:
        cost += max(i - pi - 1, j - pj - 1)
        pi, pj = i, j
    assert cost == edit_distance(ref, hyp)
