"""Recurrent layers restart a row exactly at its new stream's first frame, even when that frame
reaches them after the reset (an upstream layer with lookahead still had old frames in flight)."""

import pytest
import torch

import streamwise as sw


def _recurrent_layers():
    return {
        "LMU": lambda: sw.LMU(3, 4, order=6, theta=8.0),
        "Aaren": lambda: sw.Aaren(3, heads=1, head_dim=3, out_dim=4),
        "LIF": lambda: sw.LIF(3, 4, beta=0.8, threshold=0.3),
        "DeltaLinear": lambda: sw.DeltaLinear(3, 4, threshold=0.05, resync=4),
        "DeltaGRU": lambda: sw.DeltaGRU(3, 4, 0.05, 0.05),
        "GRU": lambda: sw.GRU(3, 4),
        "CausalPoolingMixer": lambda: sw.CausalPoolingMixer(3, segment=2, local=2),
    }


@pytest.mark.parametrize("name", list(_recurrent_layers()))
def test_reset_behind_a_lookahead_layer_restarts_exactly(name):
    torch.manual_seed(0)
    model = sw.Sequential(sw.Conv1d(2, 3, 5, padding="same"), _recurrent_layers()[name]()).double()
    model.eval()
    assert model.delay == 2
    old = torch.randn(1, 2, 40, dtype=torch.float64)
    fresh = torch.randn(1, 2, 25, dtype=torch.float64)
    cut = 12
    s = model.stream(batch_size=2, dtype=torch.float64)
    head = s.push(torch.cat([old[..., :cut], old[..., :cut]]))
    s.reset([False, True])
    rest = torch.cat([old[..., cut : cut + 25], fresh])
    tail = torch.cat([s.push(rest[..., :7]), s.push(rest[..., 7:]), s.close()], -1)
    out = torch.cat([head, tail], -1)
    start = cut  # stride 1
    torch.testing.assert_close(out[1:, :, start:], model(fresh), rtol=1e-10, atol=1e-10)
    assert out[1:, :, head.shape[-1] : start].abs().max() == 0
    torch.testing.assert_close(out[:1], model(old[..., : cut + 25]), rtol=1e-10, atol=1e-10)
