import numpy as np
import pytest

from streamwise.core.data_paths import shared_data
from streamwise.learn.streamx.agents import StreamTD
from streamwise.learn.streamx.predict import discounted_future, load_nab_series, run_prediction


def test_discounted_future_by_hand():
    g = discounted_future(np.array([0.0, 1.0, 2.0, 3.0]), 0.5)
    np.testing.assert_allclose(g, [1 + 0.5 * 2 + 0.25 * 3, 2 + 0.5 * 3, 3.0, 0.0])


@pytest.mark.skipif(not (shared_data() / "nab").exists(),
                    reason="../shared/data/nab is not beside this checkout")
def test_online_td_prediction_on_a_real_series_beats_predicting_zero():
    x = load_nab_series("realKnownCause/nyc_taxi.csv")[:3000]
    learner = StreamTD(48, hidden=(32,), gamma=0.9, seed=0)
    pred = run_prediction(x, learner, 48)
    z = (x - x.mean()) / x.std()
    truth = discounted_future(z, 0.9)
    late = slice(2000, 2999)
    assert np.mean((pred[late] - truth[late]) ** 2) < 0.6 * np.var(truth[late])


def test_missing_series_is_a_clear_error():
    with pytest.raises(FileNotFoundError, match="NAB series not found"):
        load_nab_series("nope/missing.csv")
