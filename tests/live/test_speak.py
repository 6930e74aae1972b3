"""When to speak: labels per read, a head calibrated to a false-alarm rate, its trade-off."""

from __future__ import annotations

import numpy as np
import pytest

from streamwise.live.speak import SpeakHead, read_labels, trade_off


def test_read_labels_mark_the_read_in_which_each_event_completes():
    bounds = [(0, 4), (4, 8), (8, 12), (12, 16)]
    # an event at e is complete once e words are read: e = 4 completes in the first read
    assert read_labels([4, 5, 13, 16], bounds).tolist() == [1, 1, 0, 1]
    assert read_labels([], bounds).tolist() == [0, 0, 0, 0]


def _stream(n=3000, d=16, seed=0):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.1).astype(int)
    x = rng.normal(size=(n, d))
    x[:, 0] += 2.5 * y  # one informative direction
    return x, y


def test_the_threshold_meets_its_false_alarm_target_on_held_out_steps():
    x, y = _stream()
    head = SpeakHead(false_alarm=0.05).fit(x, y)
    assert head.info["held_out_false_alarm"] <= 0.05
    assert head.info["held_out_recall"] > 0.5  # the signal is found
    # on fresh steps from the same stream the rate is near the target
    x2, y2 = _stream(seed=1)
    fa = head.fires(x2)[y2 == 0].mean()
    assert 0.01 < fa < 0.10


def test_the_trade_off_moves_one_way_with_the_threshold():
    x, y = _stream()
    p = SpeakHead(false_alarm=0.05).fit(x, y).prob(x)
    rows = trade_off(p, y, [0.05, 0.2, 0.5, 0.8, 0.95])
    fa = [r["false_alarms_per_1000"] for r in rows]
    miss = [r["miss_rate"] for r in rows]
    assert fa == sorted(fa, reverse=True) and miss == sorted(miss)
    assert fa[0] > fa[-1] and miss[-1] > miss[0]


def test_trade_off_delays_count_steps_to_the_first_firing():
    y = np.array([0, 1, 0, 0, 1, 0, 0, 0])
    p = np.array([0, 0, 0, 1, 0, 0, 0, 0], dtype=float)  # fires 2 steps after the first event
    r = trade_off(p, y, [0.5])[0]
    assert r["delay_steps_mean"] == 2.0 and r["miss_rate"] == 0.5  # the second is never met
    assert r["false_alarms_per_1000"] == pytest.approx(1000 / 6)


def test_bad_input_is_refused_with_what_was_expected():
    x, y = _stream(n=100)
    with pytest.raises(ValueError, match="expected features"):
        SpeakHead().fit(x[:, 0], y)
    with pytest.raises(ValueError, match="both labels"):
        SpeakHead().fit(x, np.zeros(100, dtype=int))
    with pytest.raises(RuntimeError, match="before fit"):
        SpeakHead().prob(x)
