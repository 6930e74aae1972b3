"""Weight norm and subclasses of torch layers (issue 15 bugs 1-3).

Both weight-norm APIs (the old ``torch.nn.utils.weight_norm`` pre-hook, the new
``parametrizations.weight_norm``) on ``Conv1d``, ``ConvTranspose1d``, ``Conv2d`` and on
subclasses with their own ``forward``: the stream equals the model under random chunkings, and
keeps equalling it after an in-place training step, ``.double()`` and ``.to()``.  A functional
``F.conv_transpose1d`` streams too; a hook the graph would skip is refused with its name.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn.utils import parametrizations

import streamwise as sw
from streamwise.convert import ConversionError
from streamwise.core.verify import stream_chunks
from tests.strategies import assert_streams_like_offline, chunkings


def old_wn(m: nn.Module) -> nn.Module:
    with warnings.catch_warnings():  # deprecated, yet what most published audio code uses
        warnings.simplefilter("ignore", FutureWarning)
        return torch.nn.utils.weight_norm(m)


new_wn = parametrizations.weight_norm
NORMS: dict[str, Callable[[nn.Module], nn.Module]] = {"old": old_wn, "new": new_wn}


class CausalConv(nn.Conv1d):
    """A Conv1d subclass that pads its own past (pytorch-tcn, WaveNet code do this)."""

    def forward(self, x):
        return super().forward(F.pad(x, ((self.kernel_size[0] - 1) * self.dilation[0], 0)))


class CausalConv2d(nn.Conv2d):
    """Causal in time (the last axis), same-padded in frequency."""

    def forward(self, x):
        return super().forward(F.pad(x, (self.kernel_size[1] - 1, 0, 1, 1)))


class Residual(nn.Module):
    def __init__(self, wn, c: int = 4) -> None:
        super().__init__()
        self.a, self.b = wn(CausalConv(c, c, 3)), wn(CausalConv(c, c, 2, dilation=2))

    def forward(self, x):
        return x + self.b(torch.relu(self.a(x)))


class FunctionalUp(nn.Module):
    """A decoder written with F.conv_transpose1d on its own weight (asteroid's style)."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(4, 2, 6) * 0.3)
        self.bias = nn.Parameter(torch.randn(2))

    def forward(self, x):
        return F.conv_transpose1d(x, self.weight, self.bias, stride=3, padding=2)


def models(wn) -> dict[str, tuple[nn.Module, tuple[int, ...]]]:
    return {
        "transposed (bug 1)": (nn.Sequential(nn.Conv1d(4, 4, 3, padding=1), nn.ReLU(),
                                             wn(nn.ConvTranspose1d(4, 2, 4, stride=2,
                                                                   padding=1))), (1, 4, 40)),
        "conv (bug 2)": (nn.Sequential(wn(nn.Conv1d(4, 4, 3, padding=1)), nn.Tanh(),
                                       wn(nn.Conv1d(4, 2, 5, padding=4, dilation=2))),
                         (1, 4, 40)),
        "subclass in a residual (bug 3)": (Residual(wn), (1, 4, 40)),
        "subclass alone (bug 3)": (wn(CausalConv(4, 3, 3)), (1, 4, 40)),
        "conv2d and its subclass": (nn.Sequential(wn(CausalConv2d(2, 3, (3, 3))), nn.ReLU(),
                                                  wn(nn.Conv2d(3, 2, 3, padding=1))),
                                    (1, 2, 5, 30)),
    }


CASES = [(api, name) for api in NORMS for name in models(new_wn)]


def _build(api: str, name: str) -> tuple[nn.Module, tuple[int, ...]]:
    torch.manual_seed(0)
    model, shape = models(NORMS[api])[name]
    return model.double().eval(), shape


def _train_step(model: nn.Module) -> None:
    """What an optimiser does: every parameter changed in place."""
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1.5).add_(0.05)


@pytest.mark.parametrize("api,name", CASES)
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_weight_norm_streams_like_offline(api, name, data):
    model, shape = _build(api, name)
    s = sw.convert(model, torch.randn(*shape, dtype=torch.float64))
    length = data.draw(st.integers(1, 50))
    x = torch.randn(2, *shape[1:-1], length, dtype=torch.float64)
    assert_streams_like_offline(s, x, data.draw(chunkings(length)))


def assert_streams_before_offline(s, model: nn.Module, x: torch.Tensor, sizes: list[int]) -> None:
    """Streamed before the model runs: the old API's hook would refresh the weight otherwise."""
    with torch.no_grad():
        y, _ = stream_chunks(s, x, sizes)
        ref = model(x)
    err = float((y - ref).abs().max())
    assert err <= (1e-10 if x.dtype == torch.float64 else 1e-5) * max(float(ref.abs().max()), 1)


@pytest.mark.parametrize("api,name", CASES)
def test_weight_norm_follows_training_double_and_to(api, name):
    model, shape = _build(api, name)
    model = model.float()
    s = sw.convert(model, torch.randn(*shape))
    x = torch.randn(2, *shape[1:-1], 37)
    _train_step(model)  # bug 2: the old API kept the weight from before the step
    assert_streams_before_offline(s, model, x, [5, 0, 1, 31])
    s.double()  # bug 2: the old API's weight stayed float32
    assert_streams_before_offline(s, model, x.double(), [1, 0, 20, 16])
    s.to(torch.float32)
    _train_step(model)
    assert_streams_before_offline(s, model, x, [36, 1])


@pytest.mark.parametrize("api", NORMS)
def test_weight_norm_inside_sw_sequential(api):
    """Torch layers placed in streamwise containers read the normalised weight live too."""
    wn = NORMS[api]
    torch.manual_seed(1)
    seq = sw.Sequential(wn(nn.Conv1d(3, 4, 3, padding=1)), nn.ReLU(),
                        wn(nn.ConvTranspose1d(4, 2, 4, stride=2)))
    x = torch.randn(2, 3, 25)
    assert_streams_like_offline(seq, x, [3, 0, 1, 21])
    _train_step(seq)
    assert_streams_before_offline(seq, seq, x, [25])
    assert_streams_like_offline(seq.double(), x.double(), [7, 18], rtol=1e-12)


def test_functional_transposed_conv_streams_and_follows_its_weight():
    torch.manual_seed(2)
    model = nn.Sequential(nn.Conv1d(3, 4, 1), FunctionalUp()).double()
    s = sw.convert(model, torch.randn(1, 3, 30, dtype=torch.float64))
    x = torch.randn(2, 3, 23, dtype=torch.float64)
    assert_streams_like_offline(s, x, [0, 4, 1, 18])
    _train_step(model)
    assert_streams_before_offline(s, model, x, [11, 12])


def test_a_hook_the_graph_would_skip_is_refused_by_name():
    def double_it(module, inputs, output):
        return output * 2

    leaf = nn.Sequential(nn.Conv1d(4, 4, 3, padding=1))  # a recognised torch layer
    traced = Residual(new_wn)  # a subclass traced through
    for model, target in ((leaf, leaf[0]), (traced, traced.a)):
        target.register_forward_hook(double_it)
        with pytest.raises(ConversionError, match="forward hook double_it"):
            sw.convert(model.eval(), torch.randn(1, 4, 20))
