import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import streamwise as sw
from streamwise.layers.lmu import legendre_system
from tests.strategies import assert_streams_like_offline, chunkings


@given(data=st.data(), order=st.integers(1, 12), theta=st.floats(2.0, 50.0),
       channels=st.integers(1, 3), batch=st.integers(1, 3), length=st.integers(1, 80))
def test_lmu_streams_exactly_in_float64(data, order, theta, channels, batch, length):
    torch.manual_seed(0)
    lmu = sw.LMU(3, 5, order=order, theta=theta, memory_channels=channels).double()
    x = torch.randn(batch, 3, length, dtype=torch.float64)
    assert_streams_like_offline(lmu, x, data.draw(chunkings(length)), rtol=1e-10)


def test_lmu_parallel_memory_equals_the_recurrence():
    abar, bbar = legendre_system(8, 10.0)
    u = torch.randn(1, 1, 200, dtype=torch.float64)
    lmu = sw.LMU(1, 1, order=8, theta=10.0).double()
    m, ms = torch.zeros(8, dtype=torch.float64), []
    for t in range(200):
        m = abar @ m + bbar * u[0, 0, t]
        ms.append(m)
    torch.testing.assert_close(lmu.memory(u)[0, 0], torch.stack(ms, -1), rtol=1e-10, atol=1e-10)


def _shifted_legendre(i: int, r: float) -> float:
    return (-1) ** i * sum(math.comb(i, j) * math.comb(i + j, j) * (-r) ** j for j in range(i + 1))


@pytest.mark.parametrize("r", [0.0, 0.5, 1.0])
def test_lmu_memory_reconstructs_a_delayed_input(r):
    """The memory encodes the last theta frames: decoding it with the shifted Legendre
    polynomials at r recovers the input from r * theta frames ago (the LMU's defining property)."""
    order, theta = 24, 40.0
    lmu = sw.LMU(1, 1, order=order, theta=theta).double()
    t = torch.arange(400, dtype=torch.float64)
    u = torch.sin(2 * torch.pi * t / 97)[None, None]
    m = lmu.memory(u)[0, 0]  # [order, T]
    decode = torch.tensor([_shifted_legendre(i, r) for i in range(order)], dtype=torch.float64)
    lag = int(r * theta)
    err = (decode @ m)[200:] - u[0, 0, 200 - lag : 400 - lag]
    assert float(err.abs().max()) < 0.05


def test_lmu_float32_error_grows_slowly():
    torch.manual_seed(0)
    lmu = sw.LMU(2, 4, order=32, theta=200.0)
    x = torch.randn(1, 2, 4000)
    with torch.inference_mode():
        ref = lmu.double()(x.double()).float()
        lmu.float()
        s = lmu.stream()
        y = torch.cat([s.push(x[..., a : a + 250]) for a in range(0, 4000, 250)], -1)
    assert float((y - ref).abs().max()) < 1e-5


def test_lmu_former_block_streams():
    torch.manual_seed(0)
    block = sw.lmu_former_block(2, 8, order=8, theta=16.0, patch=4).eval()
    x = torch.randn(2, 2, 64)
    assert_streams_like_offline(block, x, [5, 0, 1, 30, 28])


def test_lmu_impulse_cache_follows_a_dtype_round_trip():
    lmu = sw.LMU(2, 3, order=16, theta=50.0)
    x = torch.randn(1, 2, 200)
    lmu(x)
    lmu.float().double()
    xd = x.double()
    assert_streams_like_offline(lmu, xd, [200], rtol=1e-10)
