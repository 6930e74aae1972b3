from datetime import datetime

import numpy as np
import pytest

from streamwise.learn.htm.encoders import (
    DateEncoder,
    RandomDistributedScalarEncoder,
    ScalarEncoder,
)


def _overlap(a, b):
    return len(np.intersect1d(a, b))


def test_rdse_neighbours_share_bits_and_far_values_do_not():
    enc = RandomDistributedScalarEncoder(resolution=1.0, n=400, w=21)
    a, b, far = enc.encode(10.0), enc.encode(11.0), enc.encode(500.0)
    assert 19 <= len(a) <= 21
    assert _overlap(a, b) >= len(a) - 2
    assert _overlap(a, far) <= 3
    np.testing.assert_array_equal(enc.encode(10.0), a)  # deterministic
    assert len(enc.encode(-7.5)) > 15 and enc.encode(-7.5).min() >= 0


def test_scalar_encoder_slides_and_periodic_wraps():
    enc = ScalarEncoder(0.0, 10.0, n=50, w=5)
    assert list(enc.encode(0.0)) == [0, 1, 2, 3, 4]
    assert list(enc.encode(100.0)) == [45, 46, 47, 48, 49]  # clipped
    per = ScalarEncoder(0.0, 24.0, n=48, w=5, periodic=True)
    assert _overlap(per.encode(23.9), per.encode(0.1)) >= 3  # midnight wraps


def test_date_encoder_time_of_day_and_weekend():
    enc = DateEncoder()
    mon9, mon10 = enc.encode(datetime(2024, 1, 1, 9)), enc.encode(datetime(2024, 1, 1, 10))
    sat9 = enc.encode(datetime(2024, 1, 6, 9))
    assert _overlap(mon9, mon10) > 10 and _overlap(mon9, sat9) == 21  # same hour, other day type
    assert mon9.max() < enc.size


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_encoders_refuse_non_finite_values(bad):
    with pytest.raises(ValueError, match="cannot encode"):
        RandomDistributedScalarEncoder(1.0).encode(bad)
