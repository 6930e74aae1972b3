"""``OnnxStream``, the runtime over exported files: causal ends on any length, snapshots, stacked
states, and the errors (each leaves the stream as it was)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import streamwise as sw
from streamwise.runtime import OnnxModel, OnnxStream
from streamwise.runtime.onnx_stream import StreamClosedError, stack_states, unstack_state
from tests.export.exported import assert_onnx_streams_like_offline, exported
from tests.strategies import chunkings


def _causal() -> sw.StreamingModule:
    return sw.Sequential(sw.Conv1d(3, 4, 3, padding="causal"), sw.ELU(),
                         sw.Conv1d(4, 4, 4, stride=2, padding="causal"), sw.GRU(4, 3))


def causal():
    return exported("runtime_causal", _causal, 4, torch.randn(1, 3, 9))


def lookahead():
    return exported("runtime_same", lambda: sw.Conv1d(3, 2, 5, padding="same"), 4,
                    torch.randn(1, 3, 9))


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_causal_export_ends_on_any_length_like_offline(data):
    """No lookahead: the last partial chunk (or a stream shorter than the prologue) is padded and
    stepped, keeping the offline forward's ceil(frames * stride) outputs."""
    e = causal()
    assert e.contract.delay == "0" and e.contract.stride == "1/2"
    length = data.draw(st.integers(1, 3 * e.contract.chunk + e.contract.prologue), label="length")
    x = e.input(data.draw(st.integers(1, 3), label="batch"), length, data.draw(st.integers(0, 9)))
    assert_onnx_streams_like_offline(e, x, data.draw(chunkings(length), label="sizes"))


def test_empty_stream_closes_to_no_output():
    s = causal().runtime.stream(2)
    y = s.close()
    assert y.shape[0] == 2 and y.shape[-1] == 0


def _run(s: OnnxStream, x: np.ndarray, sizes: list[int]) -> list[np.ndarray]:
    ys, pos = [], 0
    for n in sizes:
        ys.append(s.push(x[..., pos:pos + n]))
        pos += n
    return ys


def test_snapshot_restores_into_a_new_model_object_and_goes_on_identically():
    e = lookahead()
    x = e.input(2, e.length(4)).numpy()
    whole = OnnxStream(e.runtime, 2)
    ref = np.concatenate([*_run(whole, x, [7, 6]), *_run(whole, x[..., 13:], [x.shape[-1] - 13]),
                          whole.close()], -1)
    s = OnnxStream(e.runtime, 2)
    first = _run(s, x, [7, 6])
    blob = s.snapshot()
    s.push(np.ones_like(x[..., :4]))  # the original goes elsewhere; the snapshot is unaffected
    r = OnnxStream.restore(OnnxModel(e.path), blob)
    assert (r.frames_in, r.batch_size) == (13, 2)
    rest = [r.push(x[..., 13:]), r.close()]
    np.testing.assert_array_equal(np.concatenate([*first, *rest], -1), ref)


def test_snapshot_before_start_and_after_close():
    e = lookahead()
    s = OnnxStream(e.runtime)
    s.push(e.input(1, 3).numpy())
    r = OnnxStream.restore(e.runtime, s.snapshot())
    assert r.state is None and r.pending.shape[-1] == 3
    c = OnnxStream(e.runtime)
    c.push(e.input(1, e.length(0)).numpy())
    c.close()
    with pytest.raises(StreamClosedError):
        OnnxStream.restore(e.runtime, c.snapshot()).push(e.input(1, 4).numpy())


def test_bad_and_foreign_snapshots_are_refused():
    with pytest.raises(ValueError, match="not an OnnxStream snapshot"):
        OnnxStream.restore(lookahead().runtime, b"garbage")
    blob = OnnxStream(causal().runtime).snapshot()
    with pytest.raises(ValueError, match="different model"):
        OnnxStream.restore(lookahead().runtime, blob)
    other = exported("runtime_same_chunk8", lambda: sw.Conv1d(3, 2, 5, padding="same"), 8,
                     torch.randn(1, 3, 9))
    torch.manual_seed(0)
    same = lookahead()
    other.model.load_state_dict(same.model.state_dict())
    assert other.contract.fingerprint == same.contract.fingerprint
    with pytest.raises(ValueError, match="another export of this model"):
        OnnxStream.restore(other.runtime, OnnxStream(same.runtime).snapshot())


def test_stacked_states_step_like_separate_streams():
    e = causal()
    m = e.runtime
    xs = [e.input(1, e.length(3), seed=i).numpy() for i in range(3)]
    alone = []
    for x in xs:
        s = OnnxStream(m)
        alone.append(s.push(x))
    started = []
    for x in xs:
        y, st_ = m.start(x[..., :m.prologue])
        started.append(st_)
    state = stack_states(m, started)
    xb = np.concatenate([x[..., m.prologue:] for x in xs], 0)
    outs = []
    for k in range(3):
        y, state = m.step(np.ascontiguousarray(xb[..., k * m.chunk:(k + 1) * m.chunk]), state)
        outs.append(y)
    parts = unstack_state(m, state, [1, 1, 1])
    assert len(parts) == 3
    stepped = np.concatenate(outs, -1)
    for i, a in enumerate(alone):
        np.testing.assert_allclose(stepped[i:i + 1], a[..., -stepped.shape[-1]:], atol=1e-6)
    again = stack_states(m, parts)
    for n in m.names:
        np.testing.assert_array_equal(again[n], state[n])


def _same_stream(a: OnnxStream, b: OnnxStream) -> bool:
    return (a.frames_in == b.frames_in and a.frames_out == b.frames_out
            and np.array_equal(a.pending, b.pending)
            and all(np.array_equal(a.state[n], b.state[n]) for n in a.model.names))


@pytest.mark.parametrize("bad, match", [
    (np.zeros((1, 3, 4), np.float32), "shaped \\[2, 3, T\\]"),
    (np.zeros((2, 5, 4), np.float32), "shaped \\[2, 3, T\\]"),
    (np.zeros((2, 3), np.float32), "shaped"),
    (np.zeros((2, 3, 4), np.float64), "dtype float32"),
    (torch.zeros(2, 3, 4, dtype=torch.float64), "dtype float32"),
    ([[0.0]], "takes an array"),
    (np.full((2, 3, 4), np.nan, np.float32), "NaN or inf"),
])
def test_a_rejected_chunk_names_what_was_expected_and_changes_nothing(bad, match):
    e = lookahead()
    s = OnnxStream(e.runtime, 2, check_finite=True)
    s.push(e.input(2, e.length(1) + 3).numpy())
    before = OnnxStream.restore(e.runtime, s.snapshot())
    with pytest.raises((ValueError, TypeError), match=match):
        s.push(bad)
    assert _same_stream(s, before)


def test_torch_in_gives_torch_out():
    e = causal()
    s = OnnxStream(e.runtime)
    y = s.push(e.input(1, e.length(1)))
    assert isinstance(y, torch.Tensor) and y.dtype == torch.float32
    assert isinstance(s.close(), torch.Tensor)


def test_push_after_close_and_close_twice_are_refused():
    e = causal()
    s = OnnxStream(e.runtime)
    s.push(e.input(1, 5).numpy())
    s.close()
    with pytest.raises(StreamClosedError, match="after close"):
        s.push(e.input(1, 1).numpy())
    with pytest.raises(StreamClosedError, match="twice"):
        s.close()


def test_lookahead_ends_refused_where_not_exact_and_the_stream_stays_usable():
    e = lookahead()
    short = OnnxStream(e.runtime)
    short.push(e.input(1, e.contract.prologue - 1).numpy())
    with pytest.raises(ValueError, match="prologue"):
        short.close()
    x = e.input(1, e.length(1) + 2).numpy()
    s = OnnxStream(e.runtime)
    s.push(x)
    with pytest.raises(ValueError, match="multiple of"):
        s.close()
    s.push(np.zeros((1, 3, e.contract.chunk - 2), np.float32))  # pad: now the end is exact
    s.close()


def test_batch_size_must_be_positive():
    with pytest.raises(ValueError, match="batch_size"):
        OnnxStream(causal().runtime, 0)


def _strided():
    return exported("runtime_strided_same", lambda: sw.Sequential(
        sw.Conv1d(3, 6, 5, padding="same"), sw.ELU(), sw.Conv1d(6, 6, 4, stride=2, padding=1),
        sw.ConvTranspose1d(6, 3, 4, stride=2, padding=1)), 4, torch.randn(1, 3, 9))


RESET_MODELS = {"causal": causal, "lookahead": lookahead, "strided_same": _strided}


@pytest.mark.parametrize("name", sorted(RESET_MODELS))
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_reset_mask_matches_the_torch_stream_reset(name, data):
    """Rows restarted at a chunk boundary give what ``core.Stream.reset`` gives: zeros for the
    lookahead, then each row's new stream; the other rows are untouched."""
    e = RESET_MODELS[name]()
    c = e.contract
    batch = data.draw(st.integers(1, 3), label="batch")
    mask = data.draw(st.lists(st.booleans(), min_size=batch, max_size=batch), label="mask")
    at = e.length(data.draw(st.integers(0, 2), label="chunks before reset"))
    after = c.prologue + data.draw(st.integers(0, 2), label="chunks after") * c.chunk
    x = e.input(batch, at + after, data.draw(st.integers(0, 9)))
    ref_stream = e.model.stream(batch)
    with torch.inference_mode():
        ref = [ref_stream.push(x[..., :at])]
        ref_stream.reset(mask)
        ref += [ref_stream.push(x[..., at:]), ref_stream.close()]
    want = torch.cat(ref, -1).numpy()
    s = OnnxStream(e.runtime, batch)
    ys = _run(s, x[..., :at].numpy(), data.draw(chunkings(at), label="sizes before"))
    s.reset(mask)
    snap = data.draw(st.booleans(), label="snapshot mid-restart")
    sizes = data.draw(chunkings(after), label="sizes after")
    pos = at
    for n in sizes:
        ys.append(s.push(x[..., pos:pos + n].numpy()))
        pos += n
        if snap:
            s, snap = OnnxStream.restore(e.runtime, s.snapshot()), False
    ys.append(s.close())
    got = np.concatenate(ys, -1)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=1e-5 * max(1.0, float(np.abs(want).max())))


def test_causal_close_before_the_restarted_rows_prologue_matches_torch():
    e = causal()
    c = e.contract
    at = e.length(1)
    x = e.input(2, at + 3)
    ref_stream = e.model.stream(2)
    with torch.inference_mode():
        ref = [ref_stream.push(x[..., :at]), ]
        ref_stream.reset([False, True])
        ref += [ref_stream.push(x[..., at:]), ref_stream.close()]
    s = OnnxStream(e.runtime, 2)
    ys = [s.push(x[..., :at].numpy())]
    s.reset([False, True])
    ys += [s.push(x[..., at:].numpy()), s.close()]
    assert c.prologue > 3
    np.testing.assert_allclose(np.concatenate(ys, -1), torch.cat(ref, -1).numpy(), atol=1e-5)


def test_reset_refusals_name_what_to_do_and_change_nothing():
    e = lookahead()
    c = e.contract
    s = OnnxStream(e.runtime, 2)
    s.reset([True, True])  # nothing pushed yet: a no-op
    s.push(e.input(2, c.prologue - 1).numpy())
    with pytest.raises(ValueError, match="past its prologue"):
        s.reset([True, False])
    s.push(e.input(2, 3).numpy())
    with pytest.raises(ValueError, match="chunk boundary.*push 2 more"):
        s.reset([True, False])
    with pytest.raises(ValueError, match="needs 2 entries"):
        s.reset([True])
    s.push(e.input(2, 2).numpy())
    s.reset([True, False])
    with pytest.raises(ValueError, match="have not started yet"):
        s.reset([False, True])
    with pytest.raises(ValueError, match="restarted .* lookahead"):
        s.close()
    s.push(e.input(2, c.prologue).numpy())
    s.close()
    with pytest.raises(StreamClosedError):
        s.reset([True, True])


def test_truncated_or_padded_snapshots_are_refused():
    e = lookahead()
    s = OnnxStream(e.runtime, 2)
    s.push(e.input(2, e.length(1) + 1).numpy())
    blob = s.snapshot()
    for bad in (blob[:-3], blob + b"\0", blob[:6]):
        with pytest.raises(ValueError, match="not an OnnxStream snapshot"):
            OnnxStream.restore(e.runtime, bad)
