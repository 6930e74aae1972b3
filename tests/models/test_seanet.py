import torch

import streamwise as sw
from streamwise.models.seanet import seanet


def test_seanet_is_a_real_encoder_decoder():
    model = seanet().eval()
    n = sum(p.numel() for p in model.parameters())
    assert 1_000_000 <= n <= 5_000_000
    assert model.stride == 1 and model.period == 16
    kinds = {type(m) for m in model.modules()}
    assert {sw.Conv1d, sw.ConvTranspose1d, sw.Residual} <= kinds
    assert model.delay > 0  # non-causal convs: lookahead, not an error


def test_seanet_streams_exactly_in_float64():
    model = seanet(base=8, bottleneck=16).double().eval()
    x = torch.randn(2, 1, 480, dtype=torch.float64)
    report = sw.verify(model, x, trials=3)
    assert report.max_abs_error <= 1e-10 * max(report.output_scale, 1.0)


def test_seanet_streams_within_float32_tolerance():
    model = seanet().eval()
    x = torch.randn(1, 1, 1600) * 0.3
    report = sw.verify(model, x, trials=2)
    assert report.passed, str(report)
