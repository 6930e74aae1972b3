"""The Dual-Stream Transformer LM: streamed == offline for every mixing and the baseline, its
state keeps its declaration, the mixings have their structure, equal parameter counts."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from streamwise.attention import Chunked, Full, Sinks, Window
from streamwise.models.dual_stream import (
    ARCHS,
    MIXINGS,
    DualBlock,
    DualStreamLM,
    HeadMix,
    count_parameters,
)
from tests.strategies import (
    assert_state_keeps_its_declaration,
    assert_streams_like_offline,
    chunkings,
)

VOCAB, DIM, HEADS = 11, 16, 2
CACHES = [lambda: Full(), lambda: Window(4), lambda: Sinks(1, 3)]


def _model(arch: str, cache=None, layers: int = 2, seed: int = 0) -> DualStreamLM:
    """A small float64 model with every weight moved off its init (Kronecker's mix off I)."""
    torch.manual_seed(seed)
    m = DualStreamLM(VOCAB, DIM, HEADS, layers, arch=arch, cache=cache).double()
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.2 * torch.randn_like(p))
    return m.eval()


@given(data=st.data(), arch=st.sampled_from(ARCHS), cache=st.sampled_from(CACHES),
       batch=st.integers(1, 3), length=st.integers(1, 24))
def test_streams_exactly_like_offline(data, arch, cache, batch, length):
    m = _model(arch, cache())
    ids = torch.randint(0, VOCAB, (batch, length))
    assert_streams_like_offline(m, ids, data.draw(chunkings(length)), rtol=1e-10)


@given(data=st.data(), arch=st.sampled_from(ARCHS), cache=st.sampled_from(CACHES),
       batch=st.integers(1, 3), length=st.integers(0, 16))
def test_state_keeps_its_declaration(data, arch, cache, batch, length):
    m = _model(arch, cache(), layers=1)
    ids = torch.randint(0, VOCAB, (batch, length))
    stream = assert_state_keeps_its_declaration(m, ids, data.draw(chunkings(length)))
    assert stream.state["layers"][0]["cache"]["k"].dtype == torch.float64  # ids are long


def test_window_bounds_the_state_and_full_does_not():
    assert _model("kronecker", Window(4)).state_nbytes(2) > 0
    assert _model("kronecker", Full()).state_nbytes(2) == 0  # 0: unbounded


def _token_update_change(mixing: str, j: int, mix: torch.Tensor | None = None) -> torch.Tensor:
    """Per head, the largest change of attention's token-stream update when only head ``j``'s
    slice of the context stream is perturbed."""
    torch.manual_seed(3)
    hd = 4
    block = DualBlock(3, hd, mixing, ffn=8, cache=Full()).double()
    if mix is not None:
        for name in ("q_proj", "k_proj", "v_proj", "out_proj"):
            getattr(block.attn, name).mix.data.copy_(mix)
    xt, xe = torch.randn(2, 2, 7, 3 * hd, dtype=torch.float64)
    xe2 = xe.clone()
    xe2[..., j * hd:(j + 1) * hd] += torch.randn(2, 7, hd, dtype=torch.float64)
    with torch.no_grad():
        d = block.token_update(xt, xe2) - block.token_update(xt, xe)
    return d.unflatten(-1, (3, hd)).abs().amax((0, 1, 3))


def test_independent_heads_only_see_their_own_slice():
    for j in range(3):
        change = _token_update_change("independent", j)
        assert change[j] > 1e-3
        assert all(change[i] < 1e-13 for i in range(3) if i != j), change


def test_kronecker_heads_talk_through_the_mix_matrix_and_dense_through_everything():
    assert (_token_update_change("dense", 1) > 1e-3).all()
    # at init (M = I) Kronecker is independent; an off-diagonal M[0, 1] lets head 1 reach head 0
    at_init = _token_update_change("kronecker", 1)
    assert at_init[0] < 1e-13 and at_init[2] < 1e-13 and at_init[1] > 1e-3
    mix = torch.eye(3, dtype=torch.float64)
    mix[0, 1] = 0.5
    coupled = _token_update_change("kronecker", 1, mix)
    assert coupled[0] > 1e-3 and coupled[1] > 1e-3


@pytest.mark.parametrize("d_in,d_out", [(8, 4), (4, 4)])
def test_weights_have_their_mixing_structure(d_in, d_out):
    torch.manual_seed(0)
    heads = 3
    kron = HeadMix(heads, d_in, d_out, "kronecker")
    kron.mix.data = torch.randn(heads, heads)
    want = torch.kron(kron.mix, torch.eye(d_out)) @ torch.block_diag(*kron.blocks)
    torch.testing.assert_close(kron.weight, want)
    ind = HeadMix(heads, d_in, d_out, "independent").weight.unflatten(0, (heads, d_out))
    ind = ind.unflatten(-1, (heads, d_in))  # [i, o, j, c]
    for i in range(heads):
        for j in range(heads):
            assert (ind[i, :, j].abs().sum() == 0) == (i != j)
    dense = HeadMix(heads, d_in, d_out, "dense")
    assert dense.weight.shape == (heads * d_out, heads * d_in)
    assert (dense.weight != 0).all()
    x = torch.randn(2, 5, heads * d_in)
    for mix in (kron, HeadMix(heads, d_in, d_out, "independent"), dense):  # per-head products
        torch.testing.assert_close(mix(x), x @ mix.weight.T)


@pytest.mark.parametrize("vocab,dim,heads,layers", [(65, 64, 4, 4), (11, 16, 2, 2),
                                                    (100, 96, 6, 3), (65, 128, 8, 2)])
def test_every_arch_has_the_baselines_parameter_count(vocab, dim, heads, layers):
    counts = {a: count_parameters(DualStreamLM(vocab, dim, heads, layers, arch=a))
              for a in ARCHS}
    for arch in MIXINGS:
        assert abs(counts[arch] / counts["standard"] - 1) < 0.02, counts


def test_bad_config_and_input_raise_naming_what_was_expected():
    with pytest.raises(ValueError, match="arch must be one of"):
        DualStreamLM(VOCAB, arch="sparse")
    with pytest.raises(ValueError, match="even head_dim"):
        DualStreamLM(VOCAB, dim=18, heads=2)
    with pytest.raises(ValueError, match="heads"):
        DualStreamLM(VOCAB, dim=16, heads=3)
    with pytest.raises(ValueError, match="layers must be an integer >= 1"):
        DualStreamLM(VOCAB, layers=0)
    with pytest.raises(ValueError, match="block 1"):
        DualStreamLM(VOCAB, cache=Chunked(4, 1))
    with pytest.raises(ValueError, match="ffn must be >= 1"):
        DualStreamLM(VOCAB, ffn=0)
    with pytest.raises(ValueError, match="mixing must be one of"):
        HeadMix(2, 4, 4, "full")
    m = _model("independent")
    with pytest.raises(ValueError, match=r"expected token ids \[B, T\]"):
        m(torch.zeros(2, 3, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="integer token ids"):
        m(torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"\[0, 11\)"):
        m(torch.full((1, 3), 11))
    state = m.init_state(2)
    with pytest.raises(ValueError, match="the stream has 2 rows"):
        m.step(torch.zeros(3, 1, dtype=torch.long), state)
    with pytest.raises(ValueError, match="cannot restart single rows"):
        m.stream(2).reset([True, False])


def test_a_stream_takes_long_ids_and_answers_in_the_weights_dtype():
    m = _model("kronecker", Window(3))
    s = m.stream(1)
    y = torch.cat([s.push(torch.tensor([[1, 2, 3]])), s.push(torch.tensor([[4]])), s.close()], 1)
    assert y.dtype == torch.float64 and y.shape == (1, 4, VOCAB)
    torch.testing.assert_close(y, m(torch.tensor([[1, 2, 3, 4]])), rtol=0, atol=1e-12)


@pytest.mark.parametrize("arch", ARCHS)
def test_receptive_field_is_what_a_window_cache_lets_through(arch):
    m = _model(arch, Window(4))  # two layers: 1 + 2 x 3 frames
    assert m.receptive_field == 7 and m.delay == 0 and m.exact
    ids = torch.randint(0, VOCAB, (1, 12))
    far, near = ids.clone(), ids.clone()
    far[0, 4] = (far[0, 4] + 1) % VOCAB  # 7 frames before the last: out of its reach
    near[0, 5] = (near[0, 5] + 1) % VOCAB
    with torch.no_grad():
        last = m(ids)[0, -1]
        assert torch.equal(m(far)[0, -1], last)
        assert not torch.allclose(m(near)[0, -1], last)
