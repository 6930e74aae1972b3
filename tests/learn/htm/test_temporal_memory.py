"""The temporal memory's rules on small hand-made sequences."""

import numpy as np

from streamwise.learn.htm.temporal_memory import TemporalMemory


def _tm(seed=0):
    return TemporalMemory(columns=64, cells_per_column=4, activation_threshold=3,
                          min_threshold=2, max_new_synapses=4, max_synapses=16,
                          initial_permanence=0.55, connected=0.5, inc=0.1, dec=0.02,
                          predicted_decrement=0.05, seed=seed)


LETTERS = {ch: np.arange(5 * i, 5 * i + 5) for i, ch in enumerate("ABCDEFGHXY")}


def _feed(tm, seq, learn=True):
    return [tm.compute(LETTERS[ch], learn) for ch in seq]


def _reset(tm):
    tm.reset()


def test_a_learned_sequence_is_predicted():
    tm = _tm()
    for _ in range(10):
        _feed(tm, "ABCD")
        _reset(tm)
    scores = _feed(tm, "ABCD", learn=False)
    assert scores[0] == 1.0  # nothing predicts the first element after a reset
    assert scores[1:] == [0.0, 0.0, 0.0]  # every later element was predicted


def test_a_novel_element_bursts():
    tm = _tm()
    for _ in range(10):
        _feed(tm, "ABCD")
        _reset(tm)
    _feed(tm, "AB", learn=False)
    score = tm.compute(LETTERS["X"], learn=False)  # C was expected
    assert score == 1.0
    assert len(tm.active_cells) == len(LETTERS["X"]) * tm.k  # all cells of its columns fire


def test_a_branching_sequence_keeps_both_predictions():
    tm = _tm()
    for _ in range(15):
        _feed(tm, "ABCD")
        _reset(tm)
        _feed(tm, "XBCY")
        _reset(tm)
    _feed(tm, "ABC", learn=False)
    predicted = set(tm.predicted_columns().tolist())
    assert set(LETTERS["D"]) <= predicted  # high-order context: after A-B-C comes D ...
    assert not set(LETTERS["Y"]) <= predicted  # ... not Y
    _reset(tm)
    _feed(tm, "B", learn=False)  # without context, B predicts C in both of its learned contexts
    cells_c = tm.predictive_cells[np.isin(tm.predictive_cells // tm.k, LETTERS["C"])]
    assert len(cells_c) >= 2 * len(LETTERS["C"])  # two sets of C cells: both branches kept


def test_deterministic_for_a_seed():
    a, b = _tm(seed=5), _tm(seed=5)
    assert _feed(a, "ABCDABCD") == _feed(b, "ABCDABCD")
    assert np.array_equal(a.presyn[: a.n_segs], b.presyn[: b.n_segs])
