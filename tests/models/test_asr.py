"""The multi-latency recogniser streams exactly at every chunk: one set of weights, swapped
attention policies, streamed == the chunked-attention offline forward."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from streamwise.models.asr import (
    FRAME_SAMPLES,
    chunk_for_ms,
    get_chunk,
    set_chunk,
    speech_recognizer,
)
from streamwise.speech.ctc import frames_for
from tests.strategies import assert_streams_like_offline, chunkings


def _small(chunk=2):
    torch.manual_seed(0)
    m = speech_recognizer(7, n_mels=16, dim=16, heads=2, layers=2, kernel=5, chunk=chunk,
                          left_frames=4).double().eval()
    for mod in m.modules():  # non-trivial running statistics, as after training
        if isinstance(mod, torch.nn.BatchNorm1d):
            mod.running_mean.uniform_(-1, 1)
            mod.running_var.uniform_(0.5, 2.0)
    return m


@settings(max_examples=25, deadline=None)
@given(data=st.data(), chunk=st.sampled_from([1, 2, 4, None]), batch=st.integers(1, 2),
       length=st.integers(0, 12 * FRAME_SAMPLES))
def test_streams_exactly_at_each_chunk(data, chunk, batch, length):
    m = _small()
    set_chunk(m, chunk)  # one model, the latency chosen after construction
    x = torch.randn(batch, 1, length, dtype=torch.float64) * 0.1
    sizes = data.draw(chunkings(length))
    assert_streams_like_offline(m, x, sizes, rtol=1e-9)


def test_chunk_changes_the_offline_output_and_the_lookahead():
    m = _small().float()
    x = torch.randn(1, 1, 20 * FRAME_SAMPLES) * 0.1
    outs = {}
    for chunk in (1, 4, None):
        set_chunk(m, chunk)
        assert get_chunk(m) == chunk
        with torch.inference_mode():
            outs[chunk] = m(x)
        # frames emitted after pushing k label frames' worth of audio: whole chunks only
        s = m.stream()
        y = s.push(x[..., : 9 * FRAME_SAMPLES + 400])
        if chunk is None:
            assert y.shape[-1] == 0  # full context: nothing before the end
        else:
            assert y.shape[-1] % chunk == 0 and y.shape[-1] >= 9 - chunk
    assert not torch.allclose(outs[1], outs[None])
    assert not torch.allclose(outs[4], outs[None])


def test_frame_count_formula_matches_the_model():
    m = _small().float()
    for n in (0, 399, 400, 559, 560, 1000, 3333, 16000):
        with torch.inference_mode():
            assert m(torch.zeros(1, 1, n)).shape[-1] == frames_for(n), n


def test_latency_names_and_bad_chunks():
    assert [chunk_for_ms(ms) for ms in (80, 160, 320, 640, None)] == [2, 4, 8, 16, None]
    with pytest.raises(ValueError, match="40 ms"):
        chunk_for_ms(100)
    with pytest.raises(ValueError, match="chunk must be"):
        set_chunk(_small(), 0)


@settings(max_examples=10, deadline=None)
@given(data=st.data(), chunk=st.sampled_from([2, 4]), length=st.integers(0, 10 * FRAME_SAMPLES))
def test_peek_is_what_close_would_give_and_changes_nothing(data, chunk, length):
    m = _small(chunk)
    x = torch.randn(1, 1, length, dtype=torch.float64) * 0.1
    cut = data.draw(st.integers(0, length))
    s, ref = m.stream(dtype=torch.float64), m.stream(dtype=torch.float64)
    s.push(x[..., :cut])
    ref.push(x[..., :cut])
    tentative = s.peek()
    assert torch.equal(tentative, s.peek())  # looking twice: the same
    twin = m.stream(dtype=torch.float64)
    twin.push(x[..., :cut])
    assert torch.equal(tentative, twin.close())  # a peek is the tail a close would give now
    # the peeked stream goes on exactly like one nobody looked at
    assert torch.equal(s.push(x[..., cut:]), ref.push(x[..., cut:]))
    assert torch.equal(s.close(), ref.close())
