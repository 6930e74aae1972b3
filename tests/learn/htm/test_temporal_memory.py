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


def test_out_of_sequence_columns_start_over_on_their_start_cells():
    tm = _tm()
    tm.compute(LETTERS["X"])  # after nothing: every column bursts
    assert np.array_equal(np.sort(tm.winner_cells), LETTERS["X"] * tm.k)  # cell 0 of each
    assert not np.any(tm.seg_cell[: tm.n_segs] % tm.k == 0)  # start cells grow no segments


def test_a_transition_from_a_surprise_is_learned_whatever_came_before():
    tm = _tm()
    for ch in "ABCDEFG":  # X always follows a different, unpredictable element
        _reset(tm)
        _feed(tm, ch + "XY")
    _reset(tm)
    _feed(tm, "HX", learn=False)  # a context never seen before X
    assert set(LETTERS["Y"]) <= set(tm.predicted_columns().tolist())


def test_in_sequence_steps_keep_their_learning_cells():
    tm = _tm()
    for _ in range(10):
        _feed(tm, "ABCD")
        _reset(tm)
    _feed(tm, "ABC")
    cols = np.concatenate([LETTERS["D"][:4], [60]])  # D, with one unexpected column
    tm.compute(cols)
    assert 60 * tm.k not in tm.winner_cells.tolist()  # in sequence: no start cell


def test_a_full_segment_replaces_its_weakest_synapses():
    tm = TemporalMemory(columns=64, cells_per_column=4, activation_threshold=3, min_threshold=2,
                        max_new_synapses=4, max_synapses=4, initial_permanence=0.55, seed=0)
    seg = tm._new_segments(np.array([200]))
    tm._grow(seg, np.array([0, 4, 8, 12]), np.array([4]))
    tm.perm[seg[0], :] = [0.9, 0.3, 0.8, 0.7]
    weakest = tm.presyn[seg[0], 1]
    tm._grow(seg, np.array([16]), np.array([1]))  # no free slot: the 0.3 synapse gives way
    assert sorted(tm.presyn[seg[0]].tolist()) == sorted({0, 4, 8, 12, 16} - {weakest})
