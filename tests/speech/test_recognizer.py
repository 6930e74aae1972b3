"""Live transcription: streamed words equal the offline decode, at any batch size, with streams
that start and end at different times (no stream waits for another)."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from streamwise.models.asr import FRAME_SAMPLES, speech_recognizer
from streamwise.speech.recognizer import Transcriber, transcribe_offline


def _model(chunk=2):
    torch.manual_seed(1)
    m = speech_recognizer(7, n_mels=16, dim=16, heads=2, layers=2, kernel=5, chunk=chunk,
                          left_frames=4).eval()
    with torch.no_grad():  # sharper outputs, so the best label changes from frame to frame
        m[-2].weight.mul_(30)
    return m


def _audio(n, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, generator=g) * 0.3


def _words(ws):
    return [(w.text, w.frame) for w in ws]


@settings(max_examples=12, deadline=None)
@given(data=st.data(), max_batch=st.sampled_from([1, 2, 3, 8]), chunk=st.sampled_from([2, 4]))
def test_batched_streams_equal_offline_one_by_one(data, max_batch, chunk):
    m = _model(chunk)
    n_streams = data.draw(st.integers(1, 5))
    lengths = [data.draw(st.integers(0, 30)) * FRAME_SAMPLES // 2 for _ in range(n_streams)]
    starts = [data.draw(st.integers(0, 6)) for _ in range(n_streams)]  # in pushes
    piece = data.draw(st.sampled_from([FRAME_SAMPLES, chunk * FRAME_SAMPLES, 1000]))
    audios = [_audio(n, i) for i, n in enumerate(lengths)]
    tr = Transcriber(m, max_batch=max_batch)
    ids: dict[int, int] = {}
    got: dict[int, list] = {i: [] for i in range(n_streams)}
    pos = [0] * n_streams
    tick = 0
    while len(ids) < n_streams or any(i in ids for i in range(n_streams) if pos[i] is not None):
        for i in range(n_streams):
            if starts[i] == tick:
                ids[i] = tr.open()
        active = [i for i in ids if pos[i] is not None]
        if not active and len(ids) == n_streams:
            break
        step = {}
        for i in active:
            if pos[i] >= len(audios[i]):  # this one has ended: it closes alone, others go on
                got[i] += tr.end(ids[i])
                pos[i] = None
                continue
            step[ids[i]] = audios[i][pos[i]:pos[i] + piece]
            pos[i] += piece
        if step:
            new = tr.push(step)
            for i in active:
                if pos[i] is not None:
                    got[i] += new[ids[i]]
        tick += 1
    for i in range(n_streams):
        assert _words(got[i]) == _words(transcribe_offline(m, audios[i])), i
    assert not tr.streams  # every stream ended and was forgotten


def test_unknown_stream_is_named():
    tr = Transcriber(_model())
    with pytest.raises(KeyError, match="no open stream 3"):
        tr.push({3: torch.zeros(640)})
