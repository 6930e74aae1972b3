import math

import pytest

from streamwise.learn.series import nab_root
from streamwise.nab.corpus import score_detector
from streamwise.nab.scorer import (
    best_threshold,
    normalised,
    probation_length,
    scaled_sigmoid,
    sweep_points,
    threshold_scores,
)

STANDARD = {"tpWeight": 1.0, "fpWeight": 0.11, "fnWeight": 1.0}
HAVE_NAB = (nab_root() / "results" / "numenta").exists()


def test_scaled_sigmoid_landmarks():
    assert scaled_sigmoid(-1.0) == pytest.approx(0.98661, abs=1e-5)
    assert scaled_sigmoid(-0.5) == pytest.approx(0.84828, abs=1e-5)
    assert scaled_sigmoid(0.0) == 0.0
    assert scaled_sigmoid(1.0) == pytest.approx(-0.98661, abs=1e-5)
    assert scaled_sigmoid(3.0) == -1.0


def test_probation_is_15_percent_capped_at_750():
    assert probation_length(1000) == 150
    assert probation_length(10000) == 750


def test_earliest_detection_in_a_window_scores_the_full_reward():
    scores = [0.0] * 100
    windows = [(40, 49)]
    scores[40] = 0.9  # first row of the window
    pts = sweep_points(scores, windows, "f", STANDARD)
    assert len(pts) == 85  # 15 probationary rows dropped
    thr, total = best_threshold(pts, STANDARD)
    assert thr == 0.9 and total == pytest.approx(1.0)


def test_late_detection_false_positive_and_missed_window():
    scores = [0.0] * 100
    scores[60] = 0.8  # 11 rows after a 10-row window that ended at row 49
    pts = sweep_points(scores, [(40, 49)], "f", STANDARD)
    by = dict(threshold_scores(pts, STANDARD))
    assert by[math.inf] == -1.0  # nothing detected: one missed window
    expected = -1.0 + 0.11 * scaled_sigmoid(11 / 9)
    assert by[0.8] == pytest.approx(expected)


def test_normalisation_maps_null_to_0_and_perfect_to_100():
    assert normalised(-5.0, -5.0, 5, STANDARD) == 0.0
    assert normalised(5.0, -5.0, 5, STANDARD) == 100.0


@pytest.mark.skipif(not HAVE_NAB, reason="../shared/data/nab is not beside this checkout")
def test_reproduces_nab_v11_scores_for_numentas_results():
    got = score_detector(nab_root() / "results", "numenta")
    assert got["standard"] == pytest.approx(70.10, abs=0.05)
    assert got["reward_low_FP_rate"] == pytest.approx(63.21, abs=0.05)
    assert got["reward_low_FN_rate"] == pytest.approx(74.32, abs=0.05)


@pytest.mark.skipif(not HAVE_NAB, reason="../shared/data/nab is not beside this checkout")
def test_incomplete_results_name_the_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="result files missing"):
        score_detector(tmp_path, "numenta")
