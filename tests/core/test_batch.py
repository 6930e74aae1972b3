"""Batched stepping of independent streams equals stepping each alone (any start times)."""

import copy
import random

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import streamwise as sw
from streamwise.core.batch import StateBatcher, leaves, rebuild
from streamwise.models.conformer import conformer_encoder
from streamwise.models.seanet import seanet
from streamwise.models.tiny_vad import tiny_vad


def _converted() -> sw.StreamingModule:
    """A plain torch model (strided conv, residual, reflect pad, transposed conv) converted."""

    class Plain(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.down = torch.nn.Conv1d(2, 4, 4, stride=2, padding=1)
            self.res = torch.nn.Conv1d(4, 4, 3)
            self.up = torch.nn.ConvTranspose1d(4, 2, 4, stride=2, padding=1)

        def forward(self, x):
            h = torch.relu(self.down(x))
            h = h + self.res(torch.nn.functional.pad(h, (1, 1), mode="reflect"))
            return self.up(torch.tanh(h))

    return sw.convert(Plain(), torch.randn(1, 2, 64))


def _models() -> dict[str, sw.StreamingModule]:
    torch.manual_seed(0)
    return {
        "converted": _converted(),
        "seanet": seanet(base=4, bottleneck=8, seed=0),
        "tiny_vad": tiny_vad(hidden=8),
        "lstm": sw.Sequential(sw.Conv1d(2, 4, 3, padding="same"), sw.LSTM(4, 5, num_layers=2)),
        "lmu": sw.Sequential(sw.LMU(2, 3, order=4, theta=10.0), sw.Linear(3, 2)),
        "pool_up": sw.Sequential(sw.Conv1d(2, 3, 4, stride=2, padding=(1, 1)),
                                 sw.MaxPool1d(2, ceil_mode=True), sw.Upsample(2),
                                 sw.ConvTranspose1d(3, 2, 4, stride=2, padding=1)),
        "aaren": sw.Aaren(2, heads=1),
        # chunked attention: positions move with each stream's clock, so any start times batch
        "conformer": conformer_encoder(2, dim=8, heads=2, layers=2, chunk=3, left_chunks=1,
                                       kernel=3).eval(),
        # its prefix mean reads the absolute clock: batched only at equal clocks
        "mixer": sw.Sequential(sw.Conv1d(2, 3, 3, padding="same"),
                               sw.CausalPoolingMixer(3, segment=4)),
    }


MODELS = _models()


def _channels(m: sw.StreamingModule) -> int:
    return m.fixed_in_channels or 2


@settings(max_examples=40, deadline=None)
@given(name=st.sampled_from(sorted(MODELS)), seed=st.integers(0, 2**16), n=st.integers(2, 4),
       k=st.integers(1, 3), ragged=st.booleans())
def test_batched_equals_alone(name, seed, n, k, ragged):
    rng = random.Random(seed)
    model = copy.deepcopy(MODELS[name]).double()
    batcher = StateBatcher(model)
    chunk = model.period * k * (4 if name == "lmu" or name == "aaren" else 1)
    ch = _channels(model)
    length = batcher.warm_frames * 2 + chunk * 6
    xs = [torch.randn(1, ch, length, dtype=torch.float64) for _ in range(n)]
    starts = [rng.randint(0, 6) for _ in range(n)]
    streams = [model.stream(1) for _ in range(n)]
    pos, outs, grouped = [0] * n, [[] for _ in range(n)], 0
    tick = 0
    while any(p < length for p in pos):
        act = [i for i in range(n) if tick >= starts[i] and pos[i] < length
               and rng.random() < 0.8]
        if ragged and act:  # random sizes (0 and 1 included): still exact, batched less
            sizes = [rng.choice([0, 1, chunk, 2 * chunk]) for _ in act]
        else:
            sizes = [chunk] * len(act)
        if act and rng.random() < 0.3:  # a checkpoint takes a stream's state out of its batch
            batcher.materialize(streams[rng.choice(act)])
        if act:
            ys = batcher.step_all([streams[i] for i in act],
                                  [xs[i][..., pos[i]: pos[i] + s] for i, s in zip(act, sizes)])
            grouped += sum(g for g in batcher.last_groups if g > 1)
            for i, s, y in zip(act, sizes, ys):
                outs[i].append(y)
                pos[i] = min(length, pos[i] + s)
        tick += 1
    for i in range(n):
        batcher.materialize(streams[i])
        got = torch.cat([*outs[i], streams[i].close()], -1)
        with torch.inference_mode():
            ref = model(xs[i])
        assert got.shape == ref.shape
        torch.testing.assert_close(got, ref, atol=1e-10, rtol=0)
    if not ragged and batcher.rebase:  # (equal clocks only otherwise: may never meet)
        assert grouped > 0, "sessions with equal chunks never shared a step"


def test_clocks_follow_each_stream():
    """Two streams at different positions share a step; each keeps its own clocks."""
    model = MODELS["tiny_vad"]
    b = StateBatcher(model)
    a, c = model.stream(1), model.stream(1)
    x = torch.randn(1, 1, 4096)
    a.push(x[..., :1024])
    c.push(x[..., :2048])
    def clocks(s):
        b.materialize(s)
        return {p: v for p, v in leaves(s.state) if p[-1] == "t_in"}

    gap = {p: clocks(c)[p] - v for p, v in clocks(a).items()}
    old_a = clocks(a)
    b.step_all([a, c], [x[..., :32], x[..., :32]])
    assert b.last_groups == [2]
    assert {p: clocks(c)[p] - v for p, v in clocks(a).items()} == gap
    assert any(clocks(a)[p] > v for p, v in old_a.items())


def test_rebuild_roundtrip():
    state = {"a": [1, torch.zeros(2)], "b": (None, {"c": 3})}
    got = rebuild(state, dict(leaves(state)))
    assert got["a"][0] == 1 and got["b"][1]["c"] == 3 and isinstance(got["b"], tuple)


def test_step_all_rejects_before_changing_anything():
    model = MODELS["tiny_vad"]
    b = StateBatcher(model)
    s1, s2 = model.stream(1), model.stream(1)
    with pytest.raises(ValueError, match="channels"):
        b.step_all([s1, s2], [torch.randn(1, 1, 32), torch.randn(1, 2, 32)])
    assert s1.frames_in == 0 and s2.frames_in == 0


def test_streams_with_own_counters_or_resets_step_alone():
    delta = sw.DeltaLinear(2, 3, threshold=0.1)
    b = StateBatcher(delta)
    s1 = delta.stream(1)
    x = torch.randn(1, 2, 8)
    assert b.key(s1, x) is None  # its ``sent`` counter is per stream
    model = MODELS["tiny_vad"]
    b = StateBatcher(model)
    s = model.stream(1)
    s.push(torch.randn(1, 1, 256))
    assert b.key(s, torch.randn(1, 1, 32)) is not None
    s.reset([True])
    assert b.key(s, torch.randn(1, 1, 32)) is None  # its restart sits on an absolute clock


def test_row_state_reads_a_resident_row_without_taking_it_out():
    model = MODELS["tiny_vad"]
    b = StateBatcher(model)
    a, c = model.stream(1), model.stream(1)
    x = torch.randn(1, 1, 640)
    a.push(x[..., :320])
    c.push(x[..., :320])
    b.step_all([a, c], [x[..., 320:], x[..., 320:]])
    assert b.is_resident(c)
    blob = c.snapshot(b.row_state(c))  # what a server checkpoints
    assert b.is_resident(c)
    b.materialize(c)
    assert blob == c.snapshot()
    restored = sw.Stream.restore(model, blob)
    y = torch.randn(1, 1, 320)
    torch.testing.assert_close(restored.push(y), c.push(y), atol=0, rtol=0)


class _Transposed(sw.StreamingModule):
    """A running sum whose state keeps the batch on axis 1 and a clock under a name the batcher
    has never seen: stacking and clocks must come from the declaration alone."""

    in_ndim = 3
    fixed_in_channels = fixed_out_channels = 2

    def forward(self, x):
        return x.cumsum(-1)

    def state_spec(self, in_channels=None):
        from streamwise.core.state import clock, tensor
        return {"acc": tensor(2, "B", batch_axis=1), "frames_seen": clock()}

    def step(self, x, state):
        y = x.cumsum(-1) + state["acc"].T[..., None]
        acc = y[..., -1].T if x.shape[-1] else state["acc"]
        return y, {"acc": acc, "frames_seen": state["frames_seen"] + x.shape[-1]}


def test_batching_reads_axes_and_clocks_from_the_declaration():
    model = _Transposed().double()
    b = StateBatcher(model)
    assert b.axes == {("acc",): 1} and b.stackable and b.rebase
    a, c = model.stream(1, dtype=torch.float64), model.stream(1, dtype=torch.float64)
    x = torch.randn(2, 2, 40, dtype=torch.float64)
    a.push(x[:1, :, :7])  # two warm streams at different positions share one step
    c.push(x[1:, :, :3])
    outs = b.step_all([a, c], [x[:1, :, 7:12], x[1:, :, 3:8]])
    assert b.last_groups == [2]
    torch.testing.assert_close(outs[0], model(x[:1, :, :12])[..., 7:], rtol=0, atol=1e-12)
    torch.testing.assert_close(outs[1], model(x[1:, :, :8])[..., 3:], rtol=0, atol=1e-12)
    b.materialize(a)
    b.materialize(c)
    assert a.state["frames_seen"] == 12 and c.state["frames_seen"] == 8
    assert a.state["acc"].shape == (2, 1)
