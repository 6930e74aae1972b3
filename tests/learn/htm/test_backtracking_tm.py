"""The backtracking temporal memory on small hand-made sequences."""

import pickle

import numpy as np
import pytest

from streamwise.learn.htm.backtracking_tm import BacktrackingTM

LETTERS = {ch: np.arange(8 * i, 8 * i + 8) for i, ch in enumerate("ABCDEFGHXYZ")}


def _tm(seed=0, **kw):
    params = dict(columns=128, cells_per_column=8, activation_threshold=5, min_threshold=3,
                  new_synapses=6, max_synapses=12, initial_permanence=0.21, connected=0.5,
                  inc=0.1, dec=0.1, pam_length=3, seed=seed)
    return BacktrackingTM(**{**params, **kw})


def _feed(tm, seq, learn=True):
    return [tm.compute(LETTERS[ch], learn) for ch in seq]


def test_a_repeating_sequence_is_learned_to_zero_anomaly():
    tm = _tm(max_seq_length=0)  # (restarts every 32 steps leave a few partial misses)
    scores = _feed(tm, "ABCDEFG" * 40)
    assert scores[0] == 1.0
    assert max(scores[-3 * 7:]) == 0.0  # every element of the last laps predicted


def test_a_novel_transition_is_flagged():
    tm = _tm()
    _feed(tm, "ABCDEFG" * 40)
    _feed(tm, "ABC")
    assert tm.compute(LETTERS["X"]) == 1.0  # X never followed C
    assert tm.compute(LETTERS["Y"]) == 1.0


def test_backtracking_recovers_a_start_in_mid_sequence():
    tm = _tm()
    for _ in range(30):  # a sequence that always starts after a reset
        tm.reset()
        _feed(tm, "ABCDEFG")
    tm.reset()
    _feed(tm, "XYZ")  # unrelated context, then the sequence picked up in the middle
    scores = _feed(tm, "CDEFG", learn=False)
    assert scores[0] == 1.0  # C after Z: a surprise
    assert max(scores[2:]) == 0.0  # backtracking locked onto the sequence at once


def test_an_unpredicted_start_of_a_known_sequence_is_taken_on_its_start_cells():
    def trained(**kw):
        tm = _tm(**kw)
        for _ in range(30):
            tm.reset()
            _feed(tm, "ABCDEFG")
        tm.reset()
        _feed(tm, "XYZ", learn=False)
        return tm
    tm = trained()
    assert tm.compute(LETTERS["A"], learn=False) == 1.0
    assert np.array_equal(tm.inf_active, LETTERS["A"] * tm.k)  # locked on: start cells only
    assert _feed(tm, "BCD", learn=False) == [0.0, 0.0, 0.0]
    plain = trained(max_inf_backtrack=0)  # no backtracking: the column bursts
    plain.compute(LETTERS["A"], learn=False)
    assert len(plain.inf_active) == len(LETTERS["A"]) * plain.k


def test_start_cells_grow_no_segments():
    tm = _tm()
    _feed(tm, "ABCDEFG" * 10 + "XYZ" * 5)
    assert tm.n_segs > 0
    assert not np.any(tm.seg_cell[: tm.n_segs] % tm.k == 0)


def test_state_pickles_and_continues_the_same():
    tm = _tm(seed=3)
    _feed(tm, "ABCDXYZ" * 5)
    clone = pickle.loads(pickle.dumps(tm))
    assert _feed(tm, "ABCDEFGXYZ" * 3) == _feed(clone, "ABCDEFGXYZ" * 3)
    assert np.array_equal(tm.presyn[: tm.n_segs], clone.presyn[: clone.n_segs])


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError):
        _tm(min_threshold=9)
    with pytest.raises(ValueError, match="active columns"):
        _tm().compute(np.array([500]))
