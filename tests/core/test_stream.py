import pickle

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import streamwise as sw
from streamwise.core.protocol import tree_tensors
from tests.layers.test_containers import composite
from tests.strategies import chunkings


def _model():
    torch.manual_seed(0)
    return composite().eval()


def _state_copy(s):
    return [t.clone() for t in tree_tensors(s.state)], s.frames_in


def _same_state(s, saved):
    tensors, frames = saved
    now = tree_tensors(s.state)
    return frames == s.frames_in and len(now) == len(tensors) and all(
        a.shape == b.shape and torch.equal(a, b) for a, b in zip(now, tensors)
    )


@given(data=st.data(), length=st.integers(10, 60))
def test_snapshot_restore_continues_identically(data, length):
    model = _model()
    x = torch.randn(2, 3, length)
    sizes = data.draw(chunkings(length))
    cut = data.draw(st.integers(0, len(sizes)))
    s = model.stream(batch_size=2)
    head, pos = [], 0
    for n in sizes[:cut]:
        head.append(s.push(x[..., pos : pos + n]))
        pos += n
    blob = s.snapshot()
    # a fresh model object with the same weights: what a new process would build
    twin = composite().eval()
    twin.load_state_dict(model.state_dict())
    restored = sw.Stream.restore(twin, blob)
    rest_a = [s.push(x[..., pos:]), s.close()]
    rest_b = [restored.push(x[..., pos:]), restored.close()]
    assert torch.equal(torch.cat(rest_a, -1), torch.cat(rest_b, -1))
    full = torch.cat(head + rest_b, -1)
    torch.testing.assert_close(full, model(x), atol=1e-5, rtol=1e-5)


def test_snapshot_is_bytes_and_refuses_other_models():
    s = _model().stream()
    s.push(torch.randn(1, 3, 9))
    blob = s.snapshot()
    assert isinstance(blob, bytes)
    with pytest.raises(ValueError, match="different model"):
        sw.Stream.restore(sw.Sequential(sw.Conv1d(3, 3, 3)), blob)
    with pytest.raises(ValueError, match="not a streamwise snapshot"):
        sw.Stream.restore(_model(), b"garbage")
    with pytest.raises(ValueError, match="not a streamwise snapshot"):
        sw.Stream.restore(_model(), pickle.dumps({"x": 1}))


def test_reset_restarts_chosen_rows_only():
    model = _model()
    period = model.period
    a, b, c = torch.randn(1, 3, 80), torch.randn(1, 3, 80), torch.randn(1, 3, 48)
    s = model.stream(batch_size=2)
    cut = 2 * period  # reset point: a multiple of the model's period
    y0 = s.push(torch.cat([a[..., :cut], b[..., :cut]]))
    s.reset([False, True])
    rest = torch.cat([a[..., cut : cut + 48], c])
    y1 = torch.cat([s.push(rest[..., :17]), s.push(rest[..., 17:]), s.close()], -1)
    out = torch.cat([y0, y1], -1)
    # row 0 never noticed
    torch.testing.assert_close(out[0:1], model(a[..., : cut + 48]), atol=1e-5, rtol=1e-5)
    # row 1: zeros for the lookahead it lost, then exactly the fresh stream's output
    start = int(cut * model.stride)
    fresh = model(c)
    torch.testing.assert_close(out[1:2, :, start:], fresh, atol=1e-5, rtol=1e-5)
    assert out[1:2, :, y0.shape[-1] : start].abs().max() == 0


def test_reset_off_period_is_refused_without_damage():
    model = _model()
    assert model.period > 1
    s = model.stream()
    s.push(torch.randn(1, 3, model.period + 1))
    saved = _state_copy(s)
    with pytest.raises(ValueError, match="multiple of"):
        s.reset([True])
    assert _same_state(s, saved)


@pytest.mark.parametrize(
    "bad, words",
    [
        (torch.randn(3, 10), "3-D"),
        (torch.randn(2, 3, 10), "batch size 1"),
        (torch.randn(1, 4, 10), "3 channels"),
        (torch.randn(1, 3, 10, dtype=torch.float64), "dtype torch.float32"),
        (torch.randn(1, 3, 10).numpy(), "torch.Tensor"),
    ],
)
def test_bad_chunks_are_rejected_and_state_untouched(bad, words):
    s = _model().stream()
    s.push(torch.randn(1, 3, 13))
    saved = _state_copy(s)
    with pytest.raises((ValueError, TypeError), match=words):
        s.push(bad)
    assert _same_state(s, saved)


def test_wrong_device_is_rejected():
    s = _model().stream()
    meta = torch.empty(1, 3, 4, device="meta")
    with pytest.raises(ValueError, match="device cpu"):
        s.push(meta)


def test_check_finite_rejects_nan_and_keeps_state():
    s = _model().stream(check_finite=True)
    s.push(torch.randn(1, 3, 13))
    saved = _state_copy(s)
    bad = torch.randn(1, 3, 5)
    bad[0, 1, 2] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        s.push(bad)
    bad[0, 1, 2] = float("inf")
    with pytest.raises(ValueError, match="inf"):
        s.push(bad)
    assert _same_state(s, saved)


def test_push_after_close_is_an_error():
    s = _model().stream()
    s.push(torch.randn(1, 3, 20))
    s.close()
    with pytest.raises(sw.StreamClosedError, match="after close"):
        s.push(torch.randn(1, 3, 2))
    with pytest.raises(sw.StreamClosedError):
        s.close()


def test_zero_length_chunks_and_empty_close():
    s = _model().stream()
    assert s.push(torch.randn(1, 3, 0)).shape[-1] == 0
    tail = s.close()
    assert tail.shape[-1] == 0


def test_state_stays_bounded_on_a_long_stream():
    model = _model()
    s = model.stream()
    sizes = []
    for n in [1, 7, 160, 3, 1600, 1] * 20:
        s.push(torch.randn(1, 3, n))
        sizes.append(s.state_nbytes())
    assert max(sizes[6:]) <= model.state_nbytes(1, in_channels=3)


def test_reset_refuses_models_that_emit_ahead_of_time():
    s = sw.Conv1d(1, 1, 2, padding=(3, 0)).stream(batch_size=2)
    s.push(torch.randn(2, 1, 4))
    with pytest.raises(ValueError, match="ahead of their time"):
        s.reset([False, True])


def test_chunks_must_keep_the_first_chunks_shape():
    s = sw.Conv2d(1, 2, 3, padding=1).stream()
    s.push(torch.randn(1, 1, 8, 5))
    saved = _state_copy(s)
    with pytest.raises(ValueError, match="like the first one"):
        s.push(torch.randn(1, 1, 9, 5))
    assert _same_state(s, saved)


def test_snapshot_fingerprint_sees_layer_options():
    s = sw.MaxPool1d(2, ceil_mode=True).stream()
    s.push(torch.randn(1, 1, 5))
    with pytest.raises(ValueError, match="different model"):
        sw.Stream.restore(sw.MaxPool1d(2), s.snapshot())
