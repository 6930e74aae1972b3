"""The flow-matching denoiser and its few-step ODE sampler: streamed == offline under random
chunkings (float64, batches), declared state, the flow path, Euler with the exact velocity, the
latency formula, and clear errors for bad input."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import streamwise as sw
from streamwise.layers.ode import AppendTime, EulerUpdate, euler_sampler, ode_sampler
from streamwise.layers.pointwise import Stateless
from streamwise.models.flow_denoiser import (
    FlowDenoiser,
    SourceNoise,
    counter_normal,
    flow_path,
)
from tests.strategies import (
    assert_state_keeps_its_declaration,
    assert_streams_like_offline,
    chunkings,
)

HOP = 4


def small(lookahead: int = 1, seed: int = 0) -> FlowDenoiser:
    return FlowDenoiser(hop=HOP, width=6, lookahead=lookahead, dilations=(1, 2), seed=seed
                        ).double().eval()


MODELS = {la: small(la) for la in (0, 1, 2)}


class ExactVelocity(Stateless):
    """``[x, x1, t] -> (x1 - x) / (1 - t)``: the conditional velocity towards ``x1``."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        c = (z.shape[1] - 1) // 2
        return (z[:, c:2 * c] - z[:, :c]) / (1 - z[:, 2 * c:])

    def channels_out(self, in_channels):
        return None if in_channels is None else (in_channels - 1) // 2


@settings(max_examples=20, deadline=None)
@given(data=st.data(), lookahead=st.sampled_from([0, 1, 2]), steps=st.integers(1, 3),
       batch=st.integers(1, 3), frames=st.integers(0, 12), seed=st.integers(0, 3),
       solver=st.sampled_from(["euler", "midpoint"]))
def test_sampler_streams_like_offline(data, lookahead, steps, batch, frames, seed, solver):
    model = MODELS[lookahead].sampler(steps, seed=seed, solver=solver).eval()
    t = frames * HOP + data.draw(st.integers(0, HOP - 1))  # a ragged tail is dropped alike
    x = torch.randn(batch, 1, t, dtype=torch.float64, generator=torch.Generator().manual_seed(t))
    y = assert_streams_like_offline(model, x, data.draw(chunkings(t)))
    assert y.shape == (batch, 1, frames * HOP)


@settings(max_examples=10, deadline=None)
@given(data=st.data(), steps=st.integers(1, 3))
def test_sampler_state_keeps_its_declaration(data, steps):
    model = MODELS[1].sampler(steps)
    x = torch.randn(2, 1, 40, dtype=torch.float64)
    assert_state_keeps_its_declaration(model, x, data.draw(chunkings(40)), in_channels=1)


@pytest.mark.parametrize("solver, calls", [("euler", 1), ("midpoint", 2)])
@pytest.mark.parametrize("steps", [1, 2, 4])
@pytest.mark.parametrize("lookahead", [0, 1, 2])
def test_lookahead_is_the_formula_and_is_measured(steps, lookahead, solver, calls):
    flow = MODELS[lookahead]
    model = flow.sampler(steps, solver=solver)
    want = flow.latency_samples(steps, chunk=8, solver=solver)
    assert want["delay"] == HOP - 1 + calls * steps * lookahead * HOP
    assert want["algorithmic"] == 8 + want["delay"]
    assert model.delay == want["delay"]
    report = sw.verify(model, torch.randn(1, 1, 96, dtype=torch.float64), trials=2, chunk=8,
                       sample_rate=16000)
    assert report.passed and report.measured_delay_frames == want["delay"]
    assert report.algorithmic_frames == want["algorithmic"]


def test_rows_of_a_batch_are_independent():
    model = MODELS[1].sampler(2)
    x = torch.randn(3, 1, 48, dtype=torch.float64)
    with torch.inference_mode():
        both = model(x)
        alone = model(x[1:2])
    assert torch.allclose(both[1:2], alone, atol=1e-12, rtol=0)


def test_counter_noise_depends_on_seed_and_position_only():
    pos = torch.arange(100_000)
    z = counter_normal(3, pos, torch.float64)
    assert torch.equal(z[500:700], counter_normal(3, pos[500:700], torch.float64))
    assert abs(float(z.mean())) < 0.02 and abs(float(z.std()) - 1) < 0.02
    assert not torch.equal(z, counter_normal(4, pos, torch.float64))
    noise = SourceNoise(0.5, seed=3)
    y = torch.zeros(2, 1, 10, dtype=torch.float64)
    out = noise(y)
    assert torch.equal(out[:, 1:], y) and torch.equal(out[0, 0], out[1, 0])
    assert torch.allclose(out[0, 0], 0.5 * z[:10])


def test_flow_path_and_exact_velocity():
    x0, x1 = torch.randn(2, 3, 5, dtype=torch.float64), torch.randn(2, 3, 5, dtype=torch.float64)
    xt, u = flow_path(x0, x1, torch.tensor([0.0, 1.0], dtype=torch.float64))
    assert torch.equal(xt[0], x0[0]) and torch.equal(xt[1], x1[1]) and torch.equal(u, x1 - x0)
    t = torch.tensor([0.25, 0.7], dtype=torch.float64)
    xt, u = flow_path(x0, x1, t)
    assert torch.allclose(xt + (1 - t.view(-1, 1, 1)) * u, x1)  # straight line to x1


@settings(max_examples=10, deadline=None)
@given(data=st.data(), steps=st.integers(1, 6), solver=st.sampled_from(["euler", "midpoint"]))
def test_ode_with_the_exact_velocity_reaches_x1(data, steps, solver):
    sampler = ode_sampler(ExactVelocity(), steps, channels=2, solver=solver).eval()
    x0, x1 = torch.randn(2, 2, 30, dtype=torch.float64), torch.randn(2, 2, 30, dtype=torch.float64)
    z = torch.cat([x0, x1], 1)
    y = assert_streams_like_offline(sampler, z, data.draw(chunkings(30)))
    assert torch.allclose(y, x1, atol=1e-12, rtol=0)


def test_loss_is_zero_for_the_target_velocity_and_trains():
    flow = FlowDenoiser(hop=HOP, width=8, dilations=(1,), sigma=0.0, seed=0)
    clean = torch.randn(4, 1, 64)
    noisy = clean + 0.3 * torch.randn(4, 1, 64)
    with torch.no_grad():  # a zero velocity net: the loss is E|x1 - x0|^2
        for p in flow.velocity.parameters():
            p.zero_()
        x1, y = flow.frames(clean), flow.frames(noisy)
        assert torch.allclose(flow.loss(clean, noisy), ((x1 - y) ** 2).mean())
    flow = FlowDenoiser(hop=HOP, width=8, dilations=(1,), seed=0)
    opt = torch.optim.Adam([p for p in flow.parameters() if p.requires_grad], 1e-2)
    gen = torch.Generator().manual_seed(0)
    first = flow.loss(clean, noisy, torch.Generator().manual_seed(0)).item()
    for _ in range(60):
        loss = flow.loss(clean, noisy, gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert flow.loss(clean, noisy, torch.Generator().manual_seed(0)).item() < 0.5 * first


def test_ode_layers_keep_channel_counts():
    assert AppendTime(0.5).channels_out(4) == 5 and EulerUpdate(0.5, 2).channels_out(6) == 4
    z = AppendTime(0.25)(torch.zeros(1, 2, 3))
    assert z.shape == (1, 3, 3) and torch.all(z[:, 2] == 0.25)


@pytest.mark.parametrize("kwargs, match", [
    ({"hop": 0}, "hop must be an integer >= 1"),
    ({"lookahead": -1}, "lookahead must be an integer >= 0"),
    ({"width": 1.5}, "width must be an integer >= 1"),
    ({"sigma": -0.1}, "sigma must be a finite number >= 0"),
    ({"gain": 0.0}, "gain must be a finite number > 0"),
])
def test_bad_construction_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        FlowDenoiser(**kwargs)


def test_bad_input_errors():
    flow = MODELS[1]
    with pytest.raises(ValueError, match="steps must be an integer >= 1"):
        flow.sampler(0)
    with pytest.raises(ValueError, match="steps must be an integer >= 1"):
        euler_sampler(ExactVelocity(), True, 2)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="solver must be one of"):
        flow.sampler(2, solver="rk4")
    with pytest.raises(ValueError, match="solver must be one of"):
        flow.latency_samples(2, 8, solver="heun")
    with pytest.raises(ValueError, match="channels must be an integer >= 1"):
        euler_sampler(ExactVelocity(), 2, 0)
    with pytest.raises(ValueError, match="velocity must be a time-last StreamingModule"):
        euler_sampler(torch.nn.Identity(), 2, 1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"expected noisy audio \[B, 1, T\]"):
        flow.sampler(1)(torch.zeros(1, 2, 16, dtype=torch.float64))
    with pytest.raises(ValueError, match="channel"):
        flow.sampler(1).stream().push(torch.zeros(1, 2, 16, dtype=torch.float64))
    with pytest.raises(ValueError, match="a multiple of hop=4"):
        flow.loss(torch.zeros(1, 1, 10), torch.zeros(1, 1, 10))
    with pytest.raises(ValueError, match="must have one shape"):
        flow.loss(torch.zeros(1, 1, 8), torch.zeros(2, 1, 8))
    with pytest.raises(ValueError, match=r"t must be \[B\]"):
        flow_path(torch.zeros(2, 1, 3), torch.zeros(2, 1, 3), torch.zeros(3))
    with pytest.raises(ValueError, match=r"EulerUpdate expects \[B, C >= 4"):
        EulerUpdate(0.5, 2)(torch.zeros(1, 3, 5))
