"""Shape-only Python converts (issue 15): ranks, fixed sizes, defaulted arguments, **kwargs, pad
modules, einops, TorchScript; Python on the length or the batch is refused with that reason, and
refusals name the op that needs the whole sequence."""

from __future__ import annotations

import einops
import pytest
import torch
import torch.nn.functional as F
from einops.layers.torch import Rearrange
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

import streamwise as sw
from streamwise.convert import ConversionError
from tests.strategies import assert_streams_like_offline, chunkings

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated")


class ShapeChecks(nn.Module):
    """Rank checks, fixed sizes in asserts and views, torch.tensor(x.shape), len(x.shape)."""

    def __init__(self, c: int = 3) -> None:
        super().__init__()
        self.c = c
        self.conv = nn.Conv1d(c, c, 3, padding=1)

    def forward(self, x):
        if x.dim() == 2:
            x = x.unsqueeze(1)
        assert x.shape[1] == self.c and len(x.shape) == 3
        if x.ndim == 3 and x.size(1) == self.c:
            x = self.conv(x)
        b, c, _ = x.shape
        n = int(torch.tensor(x.shape)[1])
        return x.reshape(b, c, -1) * n + x.new_zeros(b, 1, 1)


class ChannelNorm(nn.Module):
    """A norm layer that checks `input.dim()` before normalising over channels."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(c)

    def forward(self, input):
        if input.dim() == 3:
            return self.norm(input.transpose(1, 2)).transpose(1, 2)
        return self.norm(input)


def causal_pad(x, kernel: int, channels: int):
    assert x.shape[1] == channels, "wrong channel count"
    return F.pad(x, (kernel - 1, 0))


class PaddedBlock(nn.Module):
    """A padding helper with a size assert, a defaulted flag, and **kwargs."""

    def __init__(self, c: int = 3) -> None:
        super().__init__()
        self.c = c
        self.conv = nn.Conv1d(c, c, 4)
        self.norm = ChannelNorm(c)

    def forward(self, x, inference=False, mask=None, **kwargs):
        y = self.norm(self.conv(causal_pad(x, 4, self.c)))
        if inference:
            y = y * 0.5
        if mask is not None:
            y = y * mask
        return y + kwargs.get("bias", 0.0)


@torch.jit.script
def snake(x, alpha):
    return x + (1.0 / (alpha + 1e-9)) * torch.sin(alpha * x) ** 2


class Snake(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.rand(1, c, 1) + 0.5)

    def forward(self, x):
        return snake(x, self.alpha)


class SnakeScripted(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.rand(1, c, 1) + 0.5)

    def forward(self, x):
        return x + torch.sin(self.alpha * x) ** 2 / self.alpha


class EinopsMixer(nn.Module):
    """An einops layer and an einops call around a Linear over channels."""

    def __init__(self, c: int = 3) -> None:
        super().__init__()
        self.to_frames = Rearrange("b c t -> b t c")
        self.linear = nn.Linear(c, 4)

    def forward(self, x):
        return einops.rearrange(self.linear(self.to_frames(x)), "b t c -> b c t")


def models() -> dict[str, tuple[nn.Module, tuple[int, ...]]]:
    """Name -> (model, example shape [B, ..., T]); each fails to convert before issue 15."""
    c = 3
    return {
        "shape_checks": (ShapeChecks(c), (1, c, 30)),
        "padded_block": (PaddedBlock(c), (1, c, 30)),
        "pad_modules_1d": (nn.Sequential(nn.ConstantPad1d((2, 1), 0.5), nn.Conv1d(c, c, 4),
                                         nn.ReflectionPad1d(3), nn.ReplicationPad1d((0, 2))),
                           (1, c, 30)),
        "pad_modules_2d": (nn.Sequential(nn.ConstantPad2d((2, 1, 1, 1), 0.5), nn.Conv2d(c, 2, 3),
                                         nn.ReflectionPad2d((1, 2, 0, 0)),
                                         nn.ZeroPad2d((1, 1, 1, 1)),
                                         nn.ReplicationPad2d((0, 2, 0, 0))), (1, c, 6, 30)),
        "einops": (EinopsMixer(c), (1, c, 30)),
        "snake_jit_function": (nn.Sequential(nn.Conv1d(c, c, 5, padding=2), Snake(c)),
                               (1, c, 30)),
        "snake_jit_module": (nn.Sequential(nn.Conv1d(c, c, 3, padding=1),
                                           torch.jit.script(SnakeScripted(c).double())),
                             (1, c, 30)),
    }


NAMES = sorted(models())


@pytest.mark.parametrize("name", NAMES)
@settings(deadline=None, max_examples=6, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_shape_only_python_streams_like_offline(name, data):
    torch.manual_seed(0)
    model, shape = models()[name]
    model = model.double().eval()
    s = sw.convert(model, torch.randn(*shape, dtype=torch.float64))
    length = data.draw(st.integers(8, 60))
    x = torch.randn(2, *shape[1:-1], length, dtype=torch.float64)  # batch 2, example batch 1
    assert_streams_like_offline(s, x, data.draw(chunkings(length)))


def test_defaulted_flag_is_its_default_and_kwargs_is_no_input():
    torch.manual_seed(0)
    model = PaddedBlock().double().eval()
    x = torch.randn(1, 3, 20, dtype=torch.float64)
    s = sw.convert(model, x)
    # the flag's default (False) is what streams, not the `if` branch a proxy would take
    assert torch.allclose(s(x), model(x)) and not torch.allclose(s(x), model(x, inference=True))


def test_python_on_the_length_is_refused_not_frozen():
    class LengthBranch(nn.Module):
        def forward(self, x):
            if x.shape[-1] > 4:  # true for the example; a stream has no length
                return x * 2
            return x

    with pytest.raises(ConversionError, match=r"test_shape_python.py:\d+ `if x.shape\[-1\] > 4:"
                       r".*follows the sequence length"):
        sw.convert(LengthBranch(), torch.randn(1, 2, 20))


def test_python_on_the_batch_or_parameters_is_refused_with_the_reason():
    class BatchLoop(nn.Module):
        def forward(self, x):
            for _ in range(x.shape[0]):
                x = x + 1
            return x

    class ParamBranch(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.ones(2))

        def forward(self, x):
            return x * 2 if self.w.sum() > 0 else x

    with pytest.raises(ConversionError, match="follows the batch size"):
        sw.convert(BatchLoop(), torch.randn(1, 2, 20))
    with pytest.raises(ConversionError, match="parameter or buffer"):
        sw.convert(ParamBranch(), torch.randn(1, 2, 20))


def test_second_input_still_counted_beside_kwargs():
    class Two(nn.Module):
        def forward(self, x, y, **kwargs):
            return x + y

    with pytest.raises(ConversionError, match="takes 2 inputs"):
        sw.convert(Two(), torch.randn(1, 2, 10))


def _glob_norm(x, eps=1e-8):
    dims = torch.arange(1, len(x.shape)).tolist()  # where tracing used to stop
    mean = x.mean(dim=dims, keepdim=True)
    var = torch.pow(x - mean, 2).mean(dim=dims, keepdim=True)
    return (x - mean) / (var + eps).sqrt()


class GlobLN(nn.Module):
    """Conv-TasNet's global layer norm, written as asteroid writes it."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(c))
        self.beta = nn.Parameter(torch.zeros(c))

    def forward(self, x):
        return self.gamma.view(1, -1, 1) * _glob_norm(x) + self.beta.view(1, -1, 1)


def test_global_layer_norm_is_refused_at_its_statistic():
    model = nn.Sequential(nn.Conv1d(1, 4, 3), GlobLN(4), nn.PReLU())
    with pytest.raises(ConversionError) as err:
        sw.convert(model, torch.randn(1, 1, 40))
    text = str(err.value)
    assert "cannot trace" not in text and len(err.value.problems) == 1, text
    p = err.value.problems[0]
    assert "`.mean()` in module `1` (GlobLN)" in p.where and "global layer norm" in p.why
    assert "cumulative layer norm" in p.fix


class DualPath(nn.Module):
    """DPRNN (Luo et al. 2020): overlapping chunks, a BiLSTM within each chunk (time folded into
    the batch), an LSTM across chunks, overlap-add back."""

    def __init__(self, n: int = 4, k: int = 8) -> None:
        super().__init__()
        self.k = k
        self.intra = nn.LSTM(n, n, batch_first=True, bidirectional=True)
        self.intra_fc = nn.Linear(2 * n, n)
        self.inter = nn.LSTM(n, n, batch_first=True)

    def forward(self, x):
        batch, n, _ = x.shape
        win = {"kernel_size": (self.k, 1), "padding": (self.k, 0), "stride": (self.k // 2, 1)}
        h = F.unfold(x.unsqueeze(-1), **win)
        chunks = h.shape[-1]
        h = h.reshape(batch, n, self.k, chunks)
        intra = h.permute(0, 3, 2, 1).reshape(batch * chunks, self.k, n)
        intra = self.intra_fc(self.intra(intra)[0])
        h = h + intra.reshape(batch, chunks, self.k, n).permute(0, 3, 2, 1)
        inter = h.permute(0, 2, 3, 1).reshape(batch * self.k, chunks, n)
        h = h + self.inter(inter)[0].reshape(batch, self.k, chunks, n).permute(0, 3, 1, 2)
        out = F.fold(h.reshape(batch, n * self.k, chunks), (x.shape[-1], 1), **win)
        return out.squeeze(-1)


def test_dual_path_rnn_is_refused_at_its_intra_chunk_rnn():
    with pytest.raises(ConversionError) as err:
        sw.convert(DualPath(), torch.randn(1, 4, 64))
    text = str(err.value)
    assert "cannot trace" not in text and "len(" not in text, text
    intra = [p for p in err.value.problems if "module `intra` (LSTM)" in p.where]
    assert len(intra) == 1 and "dual-path" in intra[0].why and "folded" in intra[0].why


@pytest.mark.parametrize(("model", "match"), [
    (Rearrange("b c t -> b (c t)"), r"rearranges time together.*pattern `b c t -> b \(c t\)`"),
    (nn.Sequential(torch.jit.script(nn.Conv1d(2, 2, 3, padding=1))), "TorchScript module"),
    (nn.CircularPad1d((1, 1)), "mode 'circular'"),
])
def test_refusals_name_the_op(model, match):
    with pytest.raises(ConversionError, match=match):
        sw.convert(nn.Sequential(model) if isinstance(model, Rearrange) else model,
                   torch.randn(1, 2, 20))


def test_jit_function_without_source_runs_as_a_probed_op():
    @torch.jit.script
    def centre(x):
        return x - x.mean(-1, keepdim=True)

    @torch.jit.script
    def square(x):
        return x * x

    for f in (centre, square):
        del f._torchdynamo_inline  # as if loaded without its Python source

    class Centre(nn.Module):
        def forward(self, x):
            return centre(x)

    class Square(nn.Module):
        def forward(self, x):
            return square(x) + 1

    x = torch.randn(1, 2, 20, dtype=torch.float64)
    s = sw.convert(Square(), x)
    assert_streams_like_offline(s, torch.randn(2, 2, 33, dtype=torch.float64), [0, 1, 5, 27])
    with pytest.raises(ConversionError, match="TorchScript function `centre`.*mixes time"):
        sw.convert(Centre(), x)
