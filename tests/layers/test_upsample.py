import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

import streamwise as sw
from tests.strategies import assert_streams_like_offline, chunkings


@given(data=st.data(), u=st.integers(1, 5), mode=st.sampled_from(["nearest", "linear"]),
       length=st.integers(3, 40))
def test_upsample_streams_exactly(data, u, mode, length):
    up = sw.Upsample(u, mode)
    x = torch.randn(2, 3, length)
    assert_streams_like_offline(up, x, data.draw(chunkings(length)))


@pytest.mark.parametrize("mode", ["nearest", "linear"])
@pytest.mark.parametrize("u", [2, 3, 4])
def test_upsample_equals_torch(mode, u):
    x = torch.randn(2, 3, 40, dtype=torch.float64)
    ref = F.interpolate(x, scale_factor=u, mode=mode)
    torch.testing.assert_close(sw.Upsample(u, mode)(x), ref, rtol=1e-12, atol=1e-12)


def test_upsample_rejects_fractional_scale():
    with pytest.raises(ValueError, match="integer"):
        sw.Upsample(1.5)  # type: ignore[arg-type]
