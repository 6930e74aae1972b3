import math
from datetime import datetime, timedelta

import numpy as np

from streamwise.learn.htm.detector import HTMDetector


def test_htm_learns_a_periodic_signal_and_flags_a_novel_value():
    det = HTMDetector(-1.0, 1.0, columns=256, learning=50)
    t0 = datetime(2024, 1, 1)
    raws = []
    for i in range(700):
        v = math.sin(2 * math.pi * i / 12) if i != 650 else 5.0  # a value never seen
        det.score_then_learn({"timestamp": t0 + timedelta(minutes=5 * i), "value": v})
        raws.append(det.last_raw)
    assert np.mean(raws[500:640]) < 0.3  # the cycle is predicted
    assert raws[650] > np.mean(raws[500:640]) + 0.5  # the novel value is not
